#include "dataplane/synhold.h"

#include <string.h>

static size_t bucket_of(const struct lg_synhold *h, uint32_t ra, uint16_t rp, uint16_t pp)
{
	uint64_t x = h->seed ^ ((uint64_t)ra << 32 | (uint64_t)rp << 16 | pp);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x & (LG_SYNHOLD_SLOTS - 1);
}

void lg_synhold_init(struct lg_synhold *h, uint64_t seed)
{
	memset(h, 0, sizeof(*h));
	h->seed = seed;
}

static struct lg_synhold_entry *find(struct lg_synhold *h, uint32_t ra, uint16_t rp, uint16_t pp)
{
	for (uint16_t i = h->buckets[bucket_of(h, ra, rp, pp)]; i; i = h->ring[i - 1].next) {
		struct lg_synhold_entry *e = &h->ring[i - 1];

		if (e->rem_addr == ra && e->rem_port == rp && e->pub_port == pp)
			return e;
	}
	return NULL;
}

static void unlink_entry(struct lg_synhold *h, size_t idx)
{
	struct lg_synhold_entry *e = &h->ring[idx];
	uint16_t *link = &h->buckets[bucket_of(h, e->rem_addr, e->rem_port, e->pub_port)];

	while (*link && *link != idx + 1)
		link = &h->ring[*link - 1].next;
	if (*link)
		*link = e->next;
}

/* Remove the oldest entry; returns its ring index. */
static size_t pop_head(struct lg_synhold *h)
{
	size_t idx = h->head;

	unlink_entry(h, idx);
	h->head = (h->head + 1) % LG_SYNHOLD_SLOTS;
	h->count--;
	return idx;
}

bool lg_synhold_note(struct lg_synhold *h, uint32_t rem_addr, uint16_t rem_port, uint16_t pub_port,
		     uint64_t now_ns, const uint8_t *quote, size_t quote_len)
{
	struct lg_synhold_entry *e = find(h, rem_addr, rem_port, pub_port);
	size_t idx, b;

	if (e && e->live)
		return false;
	if (e) {
		/* Cancelled earlier, and now a new SYN: hold it afresh in arrival order. The old
		 * slot stays in the ring until it reaches the head, unlinked and keyless. */
		unlink_entry(h, (size_t)(e - h->ring));
		e->rem_addr = 0;
		e->rem_port = e->pub_port = 0;
	}
	if (h->count == LG_SYNHOLD_SLOTS) {
		if (h->ring[h->head].live)
			h->overflow++;
		pop_head(h);
	}
	idx = (h->head + h->count) % LG_SYNHOLD_SLOTS;
	e = &h->ring[idx];
	b = bucket_of(h, rem_addr, rem_port, pub_port);
	*e = (struct lg_synhold_entry){ .rem_addr = rem_addr, .rem_port = rem_port,
					.pub_port = pub_port, .first_ns = now_ns, .live = true,
					.next = h->buckets[b] };
	if (quote_len > sizeof(e->quote))
		quote_len = sizeof(e->quote);
	memcpy(e->quote, quote, quote_len);
	e->quote_len = (uint8_t)quote_len;
	h->buckets[b] = (uint16_t)(idx + 1);
	h->count++;
	return true;
}

bool lg_synhold_cancel(struct lg_synhold *h, uint32_t rem_addr, uint16_t rem_port, uint16_t pub_port)
{
	struct lg_synhold_entry *e = find(h, rem_addr, rem_port, pub_port);

	if (!e || !e->live)
		return false;
	e->live = false;
	return true;
}

size_t lg_synhold_due(struct lg_synhold *h, uint64_t now_ns,
		      void (*fn)(const struct lg_synhold_entry *e, void *arg), void *arg)
{
	size_t calls = 0;

	while (h->count && now_ns >= h->ring[h->head].first_ns + LG_SYNHOLD_NS) {
		struct lg_synhold_entry *e = &h->ring[pop_head(h)];

		if (e->live) {
			fn(e, arg);
			calls++;
		}
	}
	return calls;
}
