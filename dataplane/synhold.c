#include "dataplane/synhold.h"

#include <string.h>

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static size_t bucket_of(const struct lg_synhold *h, const struct lg_synhold_key *k)
{
	uint64_t x = h->seed ^ ((uint64_t)k->rem_port << 16 | k->local_port);

	x = mix(x ^ load64(k->rem));
	x = mix(x ^ load64(k->rem + 8));
	x = mix(x ^ load64(k->local));
	x = mix(x ^ load64(k->local + 8));
	return x & (LG_SYNHOLD_SLOTS - 1);
}

static bool same_key(const struct lg_synhold_key *a, const struct lg_synhold_key *b)
{
	return a->family == b->family && a->rem_port == b->rem_port &&
	       a->local_port == b->local_port && memcmp(a->rem, b->rem, 16) == 0 &&
	       memcmp(a->local, b->local, 16) == 0;
}

void lg_synhold_init(struct lg_synhold *h, uint64_t seed)
{
	memset(h, 0, sizeof(*h));
	h->seed = seed;
}

static struct lg_synhold_entry *find(struct lg_synhold *h, const struct lg_synhold_key *k)
{
	for (uint16_t i = h->buckets[bucket_of(h, k)]; i; i = h->ring[i - 1].next) {
		struct lg_synhold_entry *e = &h->ring[i - 1];

		if (same_key(&e->key, k))
			return e;
	}
	return NULL;
}

static void unlink_entry(struct lg_synhold *h, size_t idx)
{
	struct lg_synhold_entry *e = &h->ring[idx];
	uint16_t *link = &h->buckets[bucket_of(h, &e->key)];

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

bool lg_synhold_note(struct lg_synhold *h, const struct lg_synhold_key *k, uint64_t now_ns,
		     const uint8_t *quote, size_t quote_len)
{
	struct lg_synhold_entry *e = find(h, k);
	size_t idx, b;

	if (e && e->live)
		return false;
	if (e) {
		/* Cancelled earlier, and now a new SYN: hold it afresh in arrival order. The old
		 * slot stays in the ring until it reaches the head, unlinked and keyless. */
		unlink_entry(h, (size_t)(e - h->ring));
		memset(&e->key, 0, sizeof(e->key));
	}
	if (h->count == LG_SYNHOLD_SLOTS) {
		if (h->ring[h->head].live)
			h->overflow++;
		pop_head(h);
	}
	idx = (h->head + h->count) % LG_SYNHOLD_SLOTS;
	e = &h->ring[idx];
	b = bucket_of(h, k);
	*e = (struct lg_synhold_entry){ .key = *k, .first_ns = now_ns, .live = true,
					.next = h->buckets[b] };
	if (quote_len > sizeof(e->quote))
		quote_len = sizeof(e->quote);
	memcpy(e->quote, quote, quote_len);
	e->quote_len = (uint8_t)quote_len;
	h->buckets[b] = (uint16_t)(idx + 1);
	h->count++;
	return true;
}

bool lg_synhold_cancel(struct lg_synhold *h, const struct lg_synhold_key *k)
{
	struct lg_synhold_entry *e = find(h, k);

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
