#include "dataplane/flowtab.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

/* An index bucket is one cache line: a meta word and 15 entries. An entry is the record
 * index + 1 in its high 24 bits and 8 bits of the key's hash as a tag, so that most
 * non-matching entries are told apart without touching their record; 0 is empty. */
#define BUCKET_ENTRIES 15
#define PROBE_BUCKETS 16 /* a key lives in its home bucket or one of the next 15 */
/* Index entries used when every record is. Bucketed linear probing clusters: at 80% one key
 * in 400 found no room within 4 buckets; at 65% one in 10 million within 8. */
#define LOAD_PERCENT 65
#define META_LOCK 0x80000000u /* low bits: keys homed here that live in a later bucket */
#define TAG_MASK 0xffu

struct bucket {
	_Alignas(64) _Atomic uint32_t meta;
	_Atomic uint32_t entry[BUCKET_ENTRIES];
};

struct index {
	struct bucket *buckets;
	uint32_t count;
	uint64_t key;
};

/* Records removed and not yet reusable: a list, and the grace period it waits for. */
struct limbo {
	uint32_t head, tail, n;
	uint64_t target;
};

struct lg_flowtab {
	struct lg_flow *pool;
	struct lg_flow_addr6 *addr6; /* IPv6 tables: beside each record */
	bool own_qsbr;
	uint32_t records, capacity;
	struct index by_inside, by_public;
	struct lg_qsbr *qsbr;
	size_t pool_bytes, index_bytes;
	uint64_t serial;       /* tells this table's records in a thread's cache from another's */
	_Alignas(64) _Atomic size_t in_use; /* allocated and not removed: at most CAPACITY */
	_Alignas(64) atomic_flag pool_lock; /* free list and limbo, a few instructions at a time */
	uint32_t free_head;
	struct limbo open, waiting;
	uint32_t next_id;
};

static void *map_zeroed(size_t bytes)
{
	/* populated now: the packet path must never wait for the kernel to find a page */
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static uint64_t mix(uint64_t key, uint64_t a, uint64_t b)
{
	uint64_t h = (a ^ key) * 0x9e3779b97f4a7c15ull;

	h ^= (b + (key >> 17)) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 31;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 29;
	return h;
}

static uint64_t key_hash(const struct index *ix, uint32_t a_addr, uint16_t a_port, uint32_t b_addr,
			 uint16_t b_port)
{
	return mix(ix->key, ((uint64_t)a_addr << 32) | b_addr, ((uint64_t)a_port << 16) | b_port);
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint64_t key_hash6(const struct index *ix, const uint8_t *a_addr, uint16_t a_port,
			  const uint8_t *b_addr, uint16_t b_port)
{
	uint64_t h = mix(ix->key, load64(a_addr), load64(a_addr + 8));

	h = mix(h, load64(b_addr ? b_addr : a_addr), b_addr ? load64(b_addr + 8) : 0);
	return mix(h, a_port, b_port);
}

static uint32_t home_of(const struct index *ix, uint64_t h)
{
	return (uint32_t)(((h >> 32) * ix->count) >> 32);
}

static uint32_t entry_of(uint32_t record, uint64_t h)
{
	return ((record + 1) << 8) | (uint32_t)(h & TAG_MASK);
}

static uint32_t next_bucket(const struct index *ix, uint32_t b)
{
	return b + 1 == ix->count ? 0 : b + 1;
}

static void bucket_lock(struct bucket *b)
{
	while (atomic_fetch_or_explicit(&b->meta, META_LOCK, memory_order_acquire) & META_LOCK)
		while (atomic_load_explicit(&b->meta, memory_order_relaxed) & META_LOCK)
			lg_cpu_relax();
}

static void bucket_unlock(struct bucket *b)
{
	atomic_fetch_and_explicit(&b->meta, ~META_LOCK, memory_order_release);
}

static bool spilled(struct bucket *b)
{
	return atomic_load_explicit(&b->meta, memory_order_acquire) & ~META_LOCK;
}

static bool is_inside(const struct lg_flow *f, uint32_t ia, uint16_t ip, uint32_t ra, uint16_t rp)
{
	return f->in_addr == ia && f->in_port == ip && f->rem_addr == ra && f->rem_port == rp;
}

static bool is_public(const struct lg_flow *f, uint32_t pa, uint16_t pp, uint32_t ra, uint16_t rp)
{
	return f->pub_port == pp && f->rem_addr == ra && f->rem_port == rp && f->pub_addr == pa;
}

static bool is_inside6(const struct lg_flowtab *t, const struct lg_flow *f, const uint8_t *ia,
		       uint16_t ip, const uint8_t *ra, uint16_t rp)
{
	const struct lg_flow_addr6 *a = &t->addr6[f - t->pool];

	return f->in_port == ip && f->rem_port == rp && memcmp(a->in, ia, 16) == 0 &&
	       memcmp(a->rem, ra, 16) == 0;
}

static bool is_endpoint6(const struct lg_flowtab *t, const struct lg_flow *f, const uint8_t *ia,
			 uint16_t ip, const uint8_t *ra)
{
	const struct lg_flow_addr6 *a = &t->addr6[f - t->pool];

	return f->in_port == ip && (__atomic_load_n(&f->flags, __ATOMIC_ACQUIRE) & LG_FLOW_LIVE) &&
	       memcmp(a->in, ia, 16) == 0 && (!ra || memcmp(a->rem, ra, 16) == 0);
}

/* Generic probe: MATCH decides on a candidate record. */
#define PROBE(t, ix, h, MATCH)                                                                  \
	do {                                                                                    \
		uint32_t b_ = home_of(ix, h), tag_ = (uint32_t)((h)&TAG_MASK);                  \
		struct bucket *home_ = &(ix)->buckets[b_];                                      \
		for (int p_ = 0; p_ < PROBE_BUCKETS; p_++, b_ = next_bucket(ix, b_)) {           \
			struct bucket *bk_ = &(ix)->buckets[b_];                                \
			for (int i_ = 0; i_ < BUCKET_ENTRIES; i_++) {                           \
				uint32_t e_ = atomic_load_explicit(&bk_->entry[i_],             \
								   memory_order_acquire);       \
				struct lg_flow *f;                                              \
				if (!e_ || (e_ & TAG_MASK) != tag_)                             \
					continue;                                               \
				f = &(t)->pool[(e_ >> 8) - 1];                                  \
				if (MATCH)                                                      \
					return f;                                               \
			}                                                                       \
			if (!spilled(home_))                                                    \
				return NULL;                                                    \
		}                                                                               \
		return NULL;                                                                    \
	} while (0)

static struct lg_flow *find_inside_hashed(struct lg_flowtab *t, uint64_t h, uint32_t in_addr,
					  uint16_t in_port, uint32_t rem_addr, uint16_t rem_port)
{
	PROBE(t, &t->by_inside, h, is_inside(f, in_addr, in_port, rem_addr, rem_port));
}

struct lg_flow *lg_flowtab_find_inside(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				       uint32_t rem_addr, uint16_t rem_port)
{
	return find_inside_hashed(t, key_hash(&t->by_inside, in_addr, in_port, rem_addr, rem_port),
				  in_addr, in_port, rem_addr, rem_port);
}

static struct lg_flow *find6_hashed(struct lg_flowtab *t, uint64_t h, const uint8_t *in_addr,
				    uint16_t in_port, const uint8_t *rem_addr, uint16_t rem_port)
{
	PROBE(t, &t->by_inside, h, is_inside6(t, f, in_addr, in_port, rem_addr, rem_port));
}

struct lg_flow *lg_flowtab_find6(struct lg_flowtab *t, const uint8_t in_addr[16], uint16_t in_port,
				 const uint8_t rem_addr[16], uint16_t rem_port)
{
	return find6_hashed(t, key_hash6(&t->by_inside, in_addr, in_port, rem_addr, rem_port),
			    in_addr, in_port, rem_addr, rem_port);
}

struct lg_flow *lg_flowtab_find_endpoint6(struct lg_flowtab *t, const uint8_t in_addr[16],
					  uint16_t in_port, const uint8_t *rem_addr)
{
	uint64_t h = key_hash6(&t->by_public, in_addr, in_port, NULL, 0);

	PROBE(t, &t->by_public, h, is_endpoint6(t, f, in_addr, in_port, rem_addr));
}

struct lg_flow_addr6 *lg_flowtab_addr6(struct lg_flowtab *t, const struct lg_flow *f)
{
	return &t->addr6[f - t->pool];
}

uint32_t lg_flowtab_fold6(const uint8_t addr[16])
{
	uint32_t w[4];

	memcpy(w, addr, 16);
	return w[0] ^ w[1] ^ w[2] ^ w[3];
}

struct lg_flow *lg_flowtab_find_public(struct lg_flowtab *t, uint32_t pub_addr, uint16_t pub_port,
				       uint32_t rem_addr, uint16_t rem_port)
{
	uint64_t h = key_hash(&t->by_public, pub_addr, pub_port, rem_addr, rem_port);

	PROBE(t, &t->by_public, h, is_public(f, pub_addr, pub_port, rem_addr, rem_port));
}

#define BATCH 16

/* Three passes over at most BATCH keys: hash and prefetch the buckets, pick the candidate
 * entries and prefetch their records, then compare. Misses of one key overlap the others'. */
static void find_batch(struct lg_flowtab *t, const struct lg_flowkey *keys, size_t n,
		       struct lg_flow **out)
{
	const struct index *ix = &t->by_inside;
	uint64_t h[BATCH];
	uint32_t cand[BATCH];

	for (size_t k = 0; k < n; k++) {
		h[k] = key_hash(ix, keys[k].a_addr, keys[k].a_port, keys[k].b_addr, keys[k].b_port);
		__builtin_prefetch(&ix->buckets[home_of(ix, h[k])]);
	}
	for (size_t k = 0; k < n; k++) {
		struct bucket *bk = &ix->buckets[home_of(ix, h[k])];
		uint32_t tag = (uint32_t)(h[k] & TAG_MASK);

		cand[k] = 0;
		for (int i = 0; i < BUCKET_ENTRIES; i++) {
			uint32_t e = atomic_load_explicit(&bk->entry[i], memory_order_acquire);

			if (e && (e & TAG_MASK) == tag) {
				cand[k] = e >> 8;
				__builtin_prefetch(&t->pool[cand[k] - 1]);
				break;
			}
		}
	}
	for (size_t k = 0; k < n; k++) {
		const struct lg_flowkey *q = &keys[k];

		if (cand[k] && is_inside(&t->pool[cand[k] - 1], q->a_addr, q->a_port, q->b_addr,
					 q->b_port))
			out[k] = &t->pool[cand[k] - 1];
		else /* a second candidate, a spilled key, or none: the plain path decides */
			out[k] = lg_flowtab_find_inside(t, q->a_addr, q->a_port, q->b_addr, q->b_port);
	}
}

void lg_flowtab_find_inside_batch(struct lg_flowtab *t, const struct lg_flowkey *keys, size_t n,
				  struct lg_flow **out)
{
	for (size_t done = 0; done < n; done += BATCH)
		find_batch(t, keys + done, n - done < BATCH ? n - done : BATCH, out + done);
}

/* Insert ENTRY for hash H under the home bucket's lock, unless DUP finds the key there. */
static enum lg_flowtab_status index_insert(struct index *ix, uint64_t h, uint32_t entry)
{
	uint32_t home = home_of(ix, h), b = home;
	struct bucket *hb = &ix->buckets[home];

	for (int p = 0; p < PROBE_BUCKETS; p++, b = next_bucket(ix, b)) {
		struct bucket *bk = &ix->buckets[b];

		if (p > 0) /* lookups must look past the home bucket before the entry is there */
			atomic_fetch_add_explicit(&hb->meta, 1, memory_order_release);
		for (int i = 0; i < BUCKET_ENTRIES; i++) {
			uint32_t empty = 0;

			if (atomic_load_explicit(&bk->entry[i], memory_order_relaxed) == 0 &&
			    atomic_compare_exchange_strong_explicit(&bk->entry[i], &empty, entry,
								    memory_order_release,
								    memory_order_relaxed))
				return LG_FLOWTAB_OK;
		}
		if (p > 0)
			atomic_fetch_sub_explicit(&hb->meta, 1, memory_order_relaxed);
	}
	return LG_FLOWTAB_PROBE_LIMIT;
}

static void index_delete(struct index *ix, uint64_t h, uint32_t entry)
{
	uint32_t home = home_of(ix, h), b = home;

	for (int p = 0; p < PROBE_BUCKETS; p++, b = next_bucket(ix, b)) {
		struct bucket *bk = &ix->buckets[b];

		for (int i = 0; i < BUCKET_ENTRIES; i++) {
			uint32_t want = entry;

			if (atomic_compare_exchange_strong_explicit(&bk->entry[i], &want, 0,
								    memory_order_release,
								    memory_order_relaxed)) {
				if (p > 0)
					atomic_fetch_sub_explicit(&ix->buckets[home].meta, 1,
								  memory_order_release);
				return;
			}
		}
	}
}

static uint64_t inside_hash(const struct lg_flowtab *t, const struct lg_flow *f)
{
	if (t->addr6) {
		const struct lg_flow_addr6 *a = &t->addr6[f - t->pool];

		return key_hash6(&t->by_inside, a->in, f->in_port, a->rem, f->rem_port);
	}
	return key_hash(&t->by_inside, f->in_addr, f->in_port, f->rem_addr, f->rem_port);
}

/* IPv6 tables: the second index is by inside endpoint. */
static uint64_t public_hash(const struct lg_flowtab *t, const struct lg_flow *f)
{
	if (t->addr6)
		return key_hash6(&t->by_public, t->addr6[f - t->pool].in, f->in_port, NULL, 0);
	return key_hash(&t->by_public, f->pub_addr, f->pub_port, f->rem_addr, f->rem_port);
}

static bool published(struct lg_flowtab *t, uint64_t hi, const struct lg_flow *f)
{
	if (t->addr6) {
		const struct lg_flow_addr6 *a = &t->addr6[f - t->pool];

		return find6_hashed(t, hi, a->in, f->in_port, a->rem, f->rem_port) != NULL;
	}
	return find_inside_hashed(t, hi, f->in_addr, f->in_port, f->rem_addr, f->rem_port) != NULL;
}

enum lg_flowtab_status lg_flowtab_publish(struct lg_flowtab *t, struct lg_flow *f)
{
	uint32_t rec = lg_flowtab_index_of(t, f);
	uint64_t hi = inside_hash(t, f), hp = public_hash(t, f);
	struct bucket *home_in = &t->by_inside.buckets[home_of(&t->by_inside, hi)];
	enum lg_flowtab_status st;

	/* The inside bucket's lock makes "look, then insert" one step for this tuple. A public
	 * tuple is unique when the inside one is: a public port belongs to one inside endpoint. */
	bucket_lock(home_in);
	if (published(t, hi, f)) {
		bucket_unlock(home_in);
		return LG_FLOWTAB_EXISTS;
	}
	lg_flow_lock(f);
	f->flags |= LG_FLOW_LIVE;
	f->id = __atomic_add_fetch(&t->next_id, 1, __ATOMIC_RELAXED);
	lg_flow_unlock(f);
	st = index_insert(&t->by_public, hp, entry_of(rec, hp));
	if (st == LG_FLOWTAB_OK) {
		st = index_insert(&t->by_inside, hi, entry_of(rec, hi));
		if (st != LG_FLOWTAB_OK)
			index_delete(&t->by_public, hp, entry_of(rec, hp));
	}
	bucket_unlock(home_in);
	if (st != LG_FLOWTAB_OK) {
		lg_flow_lock(f);
		f->flags &= (uint8_t)~LG_FLOW_LIVE;
		lg_flow_unlock(f);
		return st;
	}
	return LG_FLOWTAB_OK;
}

static void pool_lock(struct lg_flowtab *t)
{
	while (atomic_flag_test_and_set_explicit(&t->pool_lock, memory_order_acquire))
		lg_cpu_relax();
}

static void pool_unlock(struct lg_flowtab *t)
{
	atomic_flag_clear_explicit(&t->pool_lock, memory_order_release);
}

static void limbo_append(struct lg_flowtab *t, struct limbo *l, uint32_t rec)
{
	t->pool[rec].link_next = LG_FLOWTAB_NONE;
	if (l->n == 0)
		l->head = rec;
	else
		t->pool[l->tail].link_next = rec;
	l->tail = rec;
	l->n++;
}

/* With the pool lock held. */
static size_t reclaim_locked(struct lg_flowtab *t)
{
	size_t freed = 0;

	if (t->waiting.n && lg_qsbr_passed(t->qsbr, t->waiting.target)) {
		t->pool[t->waiting.tail].link_next = t->free_head;
		t->free_head = t->waiting.head;
		freed = t->waiting.n;
		t->waiting.n = 0;
	}
	if (t->waiting.n == 0 && t->open.n) {
		t->waiting = t->open;
		t->waiting.target = lg_qsbr_advance(t->qsbr);
		t->open.n = 0;
	}
	return freed;
}

void lg_flowtab_remove(struct lg_flowtab *t, struct lg_flow *f)
{
	uint32_t rec = lg_flowtab_index_of(t, f);
	uint64_t hi = inside_hash(t, f), hp = public_hash(t, f);
	struct bucket *home_in = &t->by_inside.buckets[home_of(&t->by_inside, hi)];
	bool was_live;

	bucket_lock(home_in);
	lg_flow_lock(f);
	was_live = f->flags & LG_FLOW_LIVE;
	f->flags &= (uint8_t)~LG_FLOW_LIVE;
	lg_flow_unlock(f);
	if (was_live) {
		index_delete(&t->by_inside, hi, entry_of(rec, hi));
		index_delete(&t->by_public, hp, entry_of(rec, hp));
	}
	bucket_unlock(home_in);
	if (!was_live)
		return;
	atomic_fetch_sub_explicit(&t->in_use, 1, memory_order_relaxed);
	pool_lock(t);
	limbo_append(t, &t->open, rec);
	pool_unlock(t);
}

size_t lg_flowtab_reclaim(struct lg_flowtab *t)
{
	size_t n;

	pool_lock(t);
	n = reclaim_locked(t);
	pool_unlock(t);
	return n;
}

/* Records a thread took from the free list and has not used yet: most allocations then touch
 * no shared line but IN_USE. Records cached for a table the thread no longer uses stay
 * there (at most CACHE_RECORDS a thread, well within the reserve). */
#define CACHE_RECORDS 16
static _Thread_local struct {
	uint64_t serial;
	uint32_t n;
	uint32_t rec[CACHE_RECORDS];
} cache;
static _Atomic uint64_t table_serial;

static bool cache_refill(struct lg_flowtab *t)
{
	pool_lock(t);
	if (t->free_head == LG_FLOWTAB_NONE)
		reclaim_locked(t);
	while (cache.n < CACHE_RECORDS / 2 && t->free_head != LG_FLOWTAB_NONE) {
		cache.rec[cache.n++] = t->free_head;
		t->free_head = t->pool[t->free_head].link_next;
	}
	pool_unlock(t);
	return cache.n > 0;
}

struct lg_flow *lg_flowtab_alloc(struct lg_flowtab *t)
{
	struct lg_flow *f;
	/* blanked around its lock, with it held: a walker may be looking at it */
	struct lg_flow blank = { .link_prev = LG_FLOWTAB_NONE, .link_next = LG_FLOWTAB_NONE };
	size_t after = offsetof(struct lg_flow, lock) + sizeof(blank.lock);

	if (atomic_fetch_add_explicit(&t->in_use, 1, memory_order_relaxed) >= t->capacity) {
		atomic_fetch_sub_explicit(&t->in_use, 1, memory_order_relaxed);
		return NULL;
	}
	if (cache.serial != t->serial) {
		cache.serial = t->serial;
		cache.n = 0;
	}
	if (cache.n == 0 && !cache_refill(t)) {
		atomic_fetch_sub_explicit(&t->in_use, 1, memory_order_relaxed);
		return NULL; /* every spare record waits out a grace period */
	}
	f = &t->pool[cache.rec[--cache.n]];
	lg_flow_lock(f);
	memcpy(f, &blank, offsetof(struct lg_flow, lock));
	memcpy((char *)f + after, (const char *)&blank + after, sizeof(*f) - after);
	lg_flow_unlock(f);
	return f;
}

void lg_flowtab_abandon(struct lg_flowtab *t, struct lg_flow *f)
{
	uint32_t rec = lg_flowtab_index_of(t, f);

	atomic_fetch_sub_explicit(&t->in_use, 1, memory_order_relaxed);
	if (cache.serial == t->serial && cache.n < CACHE_RECORDS) {
		cache.rec[cache.n++] = rec;
		return;
	}
	pool_lock(t);
	f->link_next = t->free_head;
	t->free_head = rec;
	pool_unlock(t);
}

static int index_init(struct index *ix, uint32_t records, uint64_t key, size_t *bytes)
{
	uint64_t entries = (uint64_t)records * 100 / LOAD_PERCENT + 1;

	ix->count = (uint32_t)((entries + BUCKET_ENTRIES - 1) / BUCKET_ENTRIES);
	if (ix->count < PROBE_BUCKETS)
		ix->count = PROBE_BUCKETS;
	ix->key = key;
	*bytes = (size_t)ix->count * sizeof(struct bucket);
	ix->buckets = map_zeroed(*bytes);
	return ix->buckets ? 0 : -1;
}

static struct lg_flowtab *create(uint32_t capacity, uint64_t seed, bool ipv6, struct lg_qsbr *shared)
{
	/* records beyond CAPACITY: removed ones wait out a grace period before reuse, and a full
	 * table that evicts to admit must still have a record to give at once */
	uint64_t reserve = capacity / 64 > 1024 ? capacity / 64 : 1024;
	uint64_t keys[2];
	struct lg_flowtab *t;
	size_t ib, pb;

	if (capacity == 0 || (uint64_t)capacity + reserve > LG_FLOWTAB_MAX_RECORDS)
		return NULL;
	t = map_zeroed(sizeof(*t));
	if (!t)
		return NULL;
	t->capacity = capacity;
	t->records = (uint32_t)(capacity + reserve);
	if (seed) {
		keys[0] = mix(seed, 1, 2);
		keys[1] = mix(seed, 3, 4);
	} else if (getrandom(keys, sizeof(keys), 0) != sizeof(keys)) {
		munmap(t, sizeof(*t));
		return NULL;
	}
	t->pool_bytes = (size_t)t->records * sizeof(struct lg_flow);
	t->pool = map_zeroed(t->pool_bytes);
	if (ipv6) {
		t->addr6 = map_zeroed((size_t)t->records * sizeof(struct lg_flow_addr6));
		t->pool_bytes += (size_t)t->records * sizeof(struct lg_flow_addr6);
	}
	t->own_qsbr = !shared;
	t->qsbr = shared ? shared : lg_qsbr_create();
	if (!t->pool || (ipv6 && !t->addr6) || !t->qsbr || index_init(&t->by_inside, t->records, keys[0], &ib) < 0 ||
	    index_init(&t->by_public, t->records, keys[1], &pb) < 0) {
		lg_flowtab_destroy(t);
		return NULL;
	}
	t->index_bytes = ib + pb;
	for (uint32_t i = 0; i < t->records; i++)
		t->pool[i].link_next = i + 1 < t->records ? i + 1 : LG_FLOWTAB_NONE;
	t->free_head = 0;
	t->serial = atomic_fetch_add(&table_serial, 1) + 1;
	if (ipv6) /* ids from another range, so that one number names one flow of either family */
		t->next_id = 1u << 31;
	atomic_flag_clear(&t->pool_lock);
	return t;
}

struct lg_flowtab *lg_flowtab_create(uint32_t capacity, uint64_t seed)
{
	return create(capacity, seed, false, NULL);
}

struct lg_flowtab *lg_flowtab_create6(uint32_t capacity, uint64_t seed, struct lg_qsbr *shared)
{
	return create(capacity, seed, true, shared);
}

void lg_flowtab_destroy(struct lg_flowtab *t)
{
	size_t addr6_bytes;

	if (!t)
		return;
	addr6_bytes = t->addr6 ? (size_t)t->records * sizeof(struct lg_flow_addr6) : 0;
	if (t->pool)
		munmap(t->pool, t->pool_bytes - addr6_bytes);
	if (t->addr6)
		munmap(t->addr6, addr6_bytes);
	if (t->by_inside.buckets)
		munmap(t->by_inside.buckets, (size_t)t->by_inside.count * sizeof(struct bucket));
	if (t->by_public.buckets)
		munmap(t->by_public.buckets, (size_t)t->by_public.count * sizeof(struct bucket));
	if (t->own_qsbr)
		lg_qsbr_destroy(t->qsbr);
	munmap(t, sizeof(*t));
}

struct lg_qsbr *lg_flowtab_qsbr(struct lg_flowtab *t)
{
	return t->qsbr;
}

size_t lg_flowtab_count(const struct lg_flowtab *t)
{
	return atomic_load_explicit(&t->in_use, memory_order_relaxed);
}

size_t lg_flowtab_capacity(const struct lg_flowtab *t)
{
	return t->capacity;
}

size_t lg_flowtab_memory(const struct lg_flowtab *t)
{
	return t->pool_bytes + t->index_bytes + sizeof(*t);
}

uint32_t lg_flowtab_index_of(const struct lg_flowtab *t, const struct lg_flow *f)
{
	return (uint32_t)(f - t->pool);
}

struct lg_flow *lg_flowtab_record(struct lg_flowtab *t, uint32_t index)
{
	return index < t->records ? &t->pool[index] : NULL;
}

size_t lg_flowtab_records(const struct lg_flowtab *t)
{
	return t->records;
}
