#include "dataplane/flowtab.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define PORT_SPACE 65536

/* An endpoint-independent mapping (RFC 5382 REQ-1): one inside addr:port, one public port,
 * shared by every flow from that endpoint whatever the destination, released with the last. */
struct mapping {
	uint32_t in_addr;          /* network byte order */
	uint16_t in_port, pub_port; /* network byte order */
	uint32_t refs;             /* flows using it */
	uint32_t next;             /* index + 1 in its bucket chain; 0 ends it */
	uint32_t flows;            /* its flows: slot + 1, linked by next_in_mapping */
};

/* Mappings held by one inside address, for the per-host quota. */
struct host {
	uint32_t addr;     /* network byte order */
	uint32_t mappings;
	uint32_t next;     /* index + 1 in its bucket chain */
};

struct lg_flowtab {
	struct lg_flow *slots;
	struct host *hosts;                 /* at most one per mapping */
	uint32_t *host_buckets, *host_free;
	size_t host_free_top;
	uint32_t host_quota;
	struct mapping *maps;               /* at most one per flow, so capacity entries */
	uint32_t *map_buckets, *map_free;
	size_t map_free_top, map_count;
	uint32_t *in_buckets, *pub_buckets; /* slot index + 1; 0 = empty */
	uint32_t *free_list;
	uint8_t *in_use;                    /* per slot */
	uint8_t port_used[PORT_SPACE / 8];
	uint32_t port_map[PORT_SPACE];      /* public port (host order) -> mapping index + 1 */
	size_t capacity, count, free_top, bucket_mask;
	uint32_t pub_addr;
	uint16_t port_lo, port_hi;
	uint64_t seed, rng;
	uint32_t next_id;
	lg_mapping_hook *mapping_hook;
	void *mapping_hook_arg;
};

/* Keyed so that remote parties cannot aim many tuples at one chain. */
static uint64_t mix(uint64_t seed, uint64_t a, uint64_t b)
{
	uint64_t h = seed ^ (a * 0x9e3779b97f4a7c15ull);

	h ^= b + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static size_t hash_inside(const struct lg_flowtab *t, uint32_t ia, uint16_t ip, uint32_t ra,
			  uint16_t rp)
{
	return mix(t->seed, ((uint64_t)ia << 32) | ra, ((uint64_t)ip << 16) | rp) & t->bucket_mask;
}

static size_t hash_mapping(const struct lg_flowtab *t, uint32_t ia, uint16_t ip)
{
	return mix(t->seed ^ 0x27d4eb2fu, ia, ip) & t->bucket_mask;
}

static size_t hash_public(const struct lg_flowtab *t, uint16_t pp, uint32_t ra, uint16_t rp)
{
	return mix(t->seed ^ 0x5bd1e995u, ra, ((uint64_t)pp << 16) | rp) & t->bucket_mask;
}

static uint64_t next_random(struct lg_flowtab *t)
{
	/* xorshift64*: port choice needs to be unpredictable to outsiders, not cryptographic */
	t->rng ^= t->rng >> 12;
	t->rng ^= t->rng << 25;
	t->rng ^= t->rng >> 27;
	return t->rng * 0x2545f4914f6cdd1dull;
}

struct lg_flowtab *lg_flowtab_create(uint32_t max_flows, uint32_t pub_addr, uint16_t port_lo,
				     uint16_t port_hi, uint32_t host_quota, uint64_t seed)
{
	struct lg_flowtab *t;
	size_t buckets = 1;

	if (max_flows == 0 || port_lo > port_hi)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	while (buckets < max_flows)
		buckets <<= 1;
	t->capacity = max_flows;
	t->bucket_mask = buckets - 1;
	t->slots = calloc(max_flows, sizeof(*t->slots));
	t->in_buckets = calloc(buckets, sizeof(uint32_t));
	t->pub_buckets = calloc(buckets, sizeof(uint32_t));
	t->free_list = calloc(max_flows, sizeof(uint32_t));
	t->in_use = calloc(max_flows, 1);
	t->maps = calloc(max_flows, sizeof(*t->maps));
	t->map_buckets = calloc(buckets, sizeof(uint32_t));
	t->map_free = calloc(max_flows, sizeof(uint32_t));
	t->hosts = calloc(max_flows, sizeof(*t->hosts));
	t->host_buckets = calloc(buckets, sizeof(uint32_t));
	t->host_free = calloc(max_flows, sizeof(uint32_t));
	if (!t->hosts || !t->host_buckets || !t->host_free || !t->slots || !t->in_buckets || !t->pub_buckets || !t->free_list || !t->in_use ||
	    !t->maps || !t->map_buckets || !t->map_free) {
		lg_flowtab_destroy(t);
		return NULL;
	}
	if (seed) {
		t->seed = mix(seed, 1, 2);
		t->rng = mix(seed, 3, 4);
	} else if (getrandom(&t->seed, sizeof(t->seed), 0) != sizeof(t->seed) ||
		   getrandom(&t->rng, sizeof(t->rng), 0) != sizeof(t->rng)) {
		lg_flowtab_destroy(t);
		return NULL;
	}
	t->rng |= 1;
	for (size_t i = 0; i < max_flows; i++) {
		t->free_list[i] = (uint32_t)(max_flows - 1 - i);
		t->map_free[i] = (uint32_t)(max_flows - 1 - i);
		t->host_free[i] = (uint32_t)(max_flows - 1 - i);
	}
	t->host_free_top = max_flows;
	t->host_quota = host_quota ? host_quota : UINT32_MAX;
	t->free_top = max_flows;
	t->map_free_top = max_flows;
	t->pub_addr = pub_addr;
	t->port_lo = port_lo;
	t->port_hi = port_hi;
	return t;
}

void lg_flowtab_destroy(struct lg_flowtab *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t->in_buckets);
	free(t->pub_buckets);
	free(t->free_list);
	free(t->in_use);
	free(t->maps);
	free(t->map_buckets);
	free(t->map_free);
	free(t->hosts);
	free(t->host_buckets);
	free(t->host_free);
	free(t);
}

struct lg_flow *lg_flowtab_find_inside(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				       uint32_t rem_addr, uint16_t rem_port)
{
	uint32_t i = t->in_buckets[hash_inside(t, in_addr, in_port, rem_addr, rem_port)];

	while (i) {
		struct lg_flow *f = &t->slots[i - 1];

		if (f->in_addr == in_addr && f->in_port == in_port && f->rem_addr == rem_addr &&
		    f->rem_port == rem_port)
			return f;
		i = f->next_by_inside;
	}
	return NULL;
}

struct lg_flow *lg_flowtab_find_public(struct lg_flowtab *t, uint16_t pub_port,
				       uint32_t rem_addr, uint16_t rem_port)
{
	uint32_t i = t->pub_buckets[hash_public(t, pub_port, rem_addr, rem_port)];

	while (i) {
		struct lg_flow *f = &t->slots[i - 1];

		if (f->pub_port == pub_port && f->rem_addr == rem_addr && f->rem_port == rem_port)
			return f;
		i = f->next_by_public;
	}
	return NULL;
}

static bool port_taken(const struct lg_flowtab *t, uint16_t port_host)
{
	return t->port_used[port_host / 8] & (1u << (port_host % 8));
}

static void port_mark(struct lg_flowtab *t, uint16_t port_host, bool used)
{
	if (used)
		t->port_used[port_host / 8] |= (uint8_t)(1u << (port_host % 8));
	else
		t->port_used[port_host / 8] &= (uint8_t)~(1u << (port_host % 8));
}

/* A random starting point, then the next free port: O(range) only when nearly exhausted. */
static int port_alloc(struct lg_flowtab *t, uint16_t *port_host)
{
	uint32_t range = (uint32_t)t->port_hi - t->port_lo + 1;
	uint32_t start = (uint32_t)(next_random(t) % range);

	for (uint32_t k = 0; k < range; k++) {
		uint16_t p = (uint16_t)(t->port_lo + (start + k) % range);

		if (!port_taken(t, p)) {
			port_mark(t, p, true);
			*port_host = p;
			return 0;
		}
	}
	return -1;
}

static size_t hash_host(const struct lg_flowtab *t, uint32_t addr)
{
	return mix(t->seed ^ 0x85ebca6bu, addr, 0) & t->bucket_mask;
}

static struct host *host_find(struct lg_flowtab *t, uint32_t addr)
{
	for (uint32_t i = t->host_buckets[hash_host(t, addr)]; i; i = t->hosts[i - 1].next)
		if (t->hosts[i - 1].addr == addr)
			return &t->hosts[i - 1];
	return NULL;
}

/* Count one more mapping for ADDR; false when it is at its quota. */
static bool host_take(struct lg_flowtab *t, uint32_t addr)
{
	struct host *h = host_find(t, addr);
	size_t b;
	uint32_t idx;

	if (h) {
		if (h->mappings >= t->host_quota)
			return false;
		h->mappings++;
		return true;
	}
	if (t->host_free_top == 0 || t->host_quota == 0)
		return false;
	idx = t->host_free[--t->host_free_top];
	b = hash_host(t, addr);
	t->hosts[idx] = (struct host){ .addr = addr, .mappings = 1, .next = t->host_buckets[b] };
	t->host_buckets[b] = idx + 1;
	return true;
}

static void host_release(struct lg_flowtab *t, uint32_t addr)
{
	uint32_t *link = &t->host_buckets[hash_host(t, addr)];

	while (*link) {
		struct host *h = &t->hosts[*link - 1];

		if (h->addr == addr) {
			if (--h->mappings == 0) {
				uint32_t idx = *link - 1;

				*link = h->next;
				t->host_free[t->host_free_top++] = idx;
			}
			return;
		}
		link = &h->next;
	}
}

static struct mapping *mapping_find(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port)
{
	uint32_t i = t->map_buckets[hash_mapping(t, in_addr, in_port)];

	while (i) {
		struct mapping *m = &t->maps[i - 1];

		if (m->in_addr == in_addr && m->in_port == in_port)
			return m;
		i = m->next;
	}
	return NULL;
}

/* The mapping for an inside endpoint, created with a fresh random port if there is none. */
static struct mapping *mapping_get(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				   enum lg_flowtab_error *err)
{
	struct mapping *m = mapping_find(t, in_addr, in_port);
	uint16_t port;
	size_t b;
	uint32_t idx;

	if (m)
		return m;
	if (!host_take(t, in_addr)) {
		*err = LG_FLOWTAB_QUOTA;
		return NULL;
	}
	if (t->map_free_top == 0 || port_alloc(t, &port) < 0) {
		host_release(t, in_addr);
		*err = LG_FLOWTAB_NO_PORT;
		return NULL;
	}
	idx = t->map_free[--t->map_free_top];
	m = &t->maps[idx];
	b = hash_mapping(t, in_addr, in_port);
	*m = (struct mapping){ .in_addr = in_addr, .in_port = in_port, .pub_port = htons(port),
			       .refs = 0, .next = t->map_buckets[b], .flows = 0 };
	t->map_buckets[b] = idx + 1;
	t->port_map[port] = idx + 1;
	t->map_count++;
	if (t->mapping_hook)
		t->mapping_hook(true, in_addr, in_port, t->pub_addr, m->pub_port, t->mapping_hook_arg);
	return m;
}

/* Drop flow SLOT from its mapping, and the mapping with its last flow. */
static void mapping_put(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port, uint32_t slot)
{
	size_t b = hash_mapping(t, in_addr, in_port);
	uint32_t *link = &t->map_buckets[b];

	while (*link) {
		struct mapping *m = &t->maps[*link - 1];

		if (m->in_addr == in_addr && m->in_port == in_port) {
			uint32_t idx = *link - 1;
			uint32_t *fl = &m->flows;

			while (*fl && *fl != slot + 1)
				fl = &t->slots[*fl - 1].next_in_mapping;
			if (*fl)
				*fl = t->slots[slot].next_in_mapping;
			if (--m->refs > 0)
				return;
			*link = m->next;
			port_mark(t, ntohs(m->pub_port), false);
			t->port_map[ntohs(m->pub_port)] = 0;
			host_release(t, in_addr);
			if (t->mapping_hook)
				t->mapping_hook(false, in_addr, in_port, t->pub_addr, m->pub_port,
						t->mapping_hook_arg);
			t->map_free[t->map_free_top++] = idx;
			t->map_count--;
			return;
		}
		link = &m->next;
	}
}

struct lg_flow *lg_flowtab_insert(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				  uint32_t rem_addr, uint16_t rem_port, uint64_t now_ns,
				  enum lg_flowtab_error *err)
{
	struct lg_flow *f;
	struct mapping *m;
	uint32_t slot;
	size_t hi, hp;

	if (t->free_top == 0) {
		*err = LG_FLOWTAB_FULL;
		return NULL;
	}
	m = mapping_get(t, in_addr, in_port, err);
	if (!m)
		return NULL;
	m->refs++;
	slot = t->free_list[--t->free_top];
	f = &t->slots[slot];
	memset(f, 0, sizeof(*f));
	f->id = ++t->next_id;
	f->in_addr = in_addr;
	f->in_port = in_port;
	f->rem_addr = rem_addr;
	f->rem_port = rem_port;
	f->pub_addr = t->pub_addr;
	f->pub_port = m->pub_port;
	f->created_ns = now_ns;
	f->last_ns = now_ns;
	f->track.wscale[0] = f->track.wscale[1] = -1;
	hi = hash_inside(t, in_addr, in_port, rem_addr, rem_port);
	hp = hash_public(t, f->pub_port, rem_addr, rem_port);
	f->next_by_inside = t->in_buckets[hi];
	t->in_buckets[hi] = slot + 1;
	f->next_by_public = t->pub_buckets[hp];
	t->pub_buckets[hp] = slot + 1;
	f->next_in_mapping = m->flows;
	m->flows = slot + 1;
	t->in_use[slot] = 1;
	t->count++;
	return f;
}

static void unlink_chain(struct lg_flowtab *t, uint32_t *head, uint32_t slot1, bool by_inside)
{
	uint32_t *link = head;

	while (*link) {
		struct lg_flow *cur = &t->slots[*link - 1];
		uint32_t *next = by_inside ? &cur->next_by_inside : &cur->next_by_public;

		if (*link == slot1) {
			*link = *next;
			return;
		}
		link = next;
	}
}

void lg_flowtab_remove(struct lg_flowtab *t, struct lg_flow *f)
{
	uint32_t slot = (uint32_t)(f - t->slots);

	unlink_chain(t, &t->in_buckets[hash_inside(t, f->in_addr, f->in_port, f->rem_addr,
						  f->rem_port)], slot + 1, true);
	unlink_chain(t, &t->pub_buckets[hash_public(t, f->pub_port, f->rem_addr, f->rem_port)],
		     slot + 1, false);
	mapping_put(t, f->in_addr, f->in_port, slot);
	t->in_use[slot] = 0;
	t->free_list[t->free_top++] = slot;
	t->count--;
}

size_t lg_flowtab_count(const struct lg_flowtab *t)
{
	return t->count;
}

bool lg_flowtab_mapping_of_port(const struct lg_flowtab *t, uint16_t pub_port, uint32_t *in_addr,
				uint16_t *in_port)
{
	uint32_t i = t->port_map[ntohs(pub_port)];

	if (!i)
		return false;
	*in_addr = t->maps[i - 1].in_addr;
	*in_port = t->maps[i - 1].in_port;
	return true;
}

bool lg_flowtab_port_of_mapping(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				uint16_t *pub_port)
{
	const struct mapping *m = mapping_find(t, in_addr, in_port);

	if (!m)
		return false;
	*pub_port = m->pub_port;
	return true;
}

bool lg_flowtab_mapping_sent_to(const struct lg_flowtab *t, uint16_t pub_port, uint32_t rem_addr)
{
	uint32_t i = t->port_map[ntohs(pub_port)];

	if (!i)
		return false;
	for (uint32_t s = t->maps[i - 1].flows; s; s = t->slots[s - 1].next_in_mapping)
		if (t->slots[s - 1].rem_addr == rem_addr)
			return true;
	return false;
}

void lg_flowtab_set_mapping_hook(struct lg_flowtab *t, lg_mapping_hook *fn, void *arg)
{
	t->mapping_hook = fn;
	t->mapping_hook_arg = arg;
}

size_t lg_flowtab_mappings(const struct lg_flowtab *t)
{
	return t->map_count;
}

size_t lg_flowtab_capacity(const struct lg_flowtab *t)
{
	return t->capacity;
}

void lg_flowtab_walk(struct lg_flowtab *t, bool (*fn)(struct lg_flow *f, void *arg), void *arg)
{
	for (size_t i = 0; i < t->capacity; i++)
		if (t->in_use[i] && fn(&t->slots[i], arg))
			lg_flowtab_remove(t, &t->slots[i]);
}
