/* The lock-free flow table on its own: both tuples find one record, uniqueness, the probe
 * bound, reuse only after a grace period, the memory budget, and a stress run with threads
 * publishing, looking up and removing at once (also built under ThreadSanitizer). Uses no
 * other module, so that the TSan build needs only flowtab.c and qsbr.c. */
#include "dataplane/flowtab.h"
#include "lgtest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static struct lg_flow *add(struct lg_flowtab *t, uint32_t ia, uint16_t ip, uint32_t ra,
			   uint16_t rp, uint16_t pp)
{
	struct lg_flow *f = lg_flowtab_alloc(t);

	if (!f)
		return NULL;
	f->in_addr = ia;
	f->in_port = ip;
	f->rem_addr = ra;
	f->rem_port = rp;
	f->pub_port = pp;
	if (lg_flowtab_publish(t, f) != LG_FLOWTAB_OK) {
		lg_flowtab_abandon(t, f);
		return NULL;
	}
	return f;
}

static void test_basics(void)
{
	struct lg_flowtab *t = lg_flowtab_create(1000, 42);
	struct lg_qsbr *q = lg_flowtab_qsbr(t);
	int me = lg_qsbr_register(q);
	struct lg_flow *f, *dup;
	struct lg_flowkey keys[3] = { { 1, 2, 3, 4 }, { 9, 9, 9, 9 }, { 1, 2, 3, 4 } };
	struct lg_flow *found[3];

	lg_qsbr_online(q, me);
	f = add(t, 1, 3, 2, 4, 5000);
	CHECK(f != NULL, "published");
	CHECK(lg_flowtab_find_inside(t, 1, 3, 2, 4) == f, "found by the inside tuple");
	CHECK(lg_flowtab_find_public(t, 0, 5000, 2, 4) == f, "the same record by the public tuple");
	CHECK(lg_flowtab_find_inside(t, 1, 3, 2, 5) == NULL, "another remote port: no flow");
	CHECK(lg_flowtab_find_public(t, 0, 5001, 2, 4) == NULL, "another public port: no flow");
	lg_flowtab_find_inside_batch(t, keys, 3, found);
	CHECK(found[0] == f && found[1] == NULL && found[2] == f, "batched lookups agree");
	CHECK(f->id != 0, "an id is given at publication");
	dup = lg_flowtab_alloc(t);
	dup->in_addr = 1;
	dup->in_port = 3;
	dup->rem_addr = 2;
	dup->rem_port = 4;
	dup->pub_port = 5002;
	CHECK_EQ_INT(lg_flowtab_publish(t, dup), LG_FLOWTAB_EXISTS, "an inside tuple is published once");
	lg_flowtab_abandon(t, dup);
	CHECK_EQ_INT(lg_flowtab_count(t), 1, "one live flow");

	lg_flowtab_remove(t, f);
	CHECK(lg_flowtab_find_inside(t, 1, 3, 2, 4) == NULL, "removed: gone by inside tuple");
	CHECK(lg_flowtab_find_public(t, 0, 5000, 2, 4) == NULL, "removed: gone by public tuple");
	CHECK_EQ_INT(lg_flowtab_count(t), 0, "no live flow");
	/* this thread is online and has not been quiescent since: the record must wait */
	CHECK_EQ_INT(lg_flowtab_reclaim(t), 0, "not reclaimed while a reader may hold it");
	CHECK_EQ_INT(lg_flowtab_reclaim(t), 0, "still not reclaimed");
	lg_qsbr_quiescent(q, me);
	CHECK_EQ_INT(lg_flowtab_reclaim(t), 1, "reclaimed once every reader has been quiescent");
	lg_qsbr_offline(q, me);
	lg_qsbr_unregister(q, me);
	lg_flowtab_destroy(t);
}

static void test_capacity_and_budget(void)
{
	const uint32_t cap = 200000;
	struct lg_flowtab *t = lg_flowtab_create(cap, 7);
	uint32_t made = 0;

	/* keys from a plain counter: bounded probing must hold them all at full capacity */
	for (uint32_t i = 0; i < cap; i++)
		made += add(t, 0x0a000000u + (i >> 8), (uint16_t)(i & 0xff), 0xc6336402u,
			    (uint16_t)(143 + (i >> 16)), (uint16_t)i) != NULL;
	CHECK_EQ_INT(made, cap, "every flow up to capacity published within the probe bound");
	CHECK(lg_flowtab_alloc(t) == NULL, "no record beyond capacity");
	CHECK(lg_flowtab_memory(t) <= 136ull * cap, "at most 136 bytes a flow, indexes included "
						     "(%zu for %u)", lg_flowtab_memory(t), cap);
	CHECK(sizeof(struct lg_flow) <= 120, "core record is %zu bytes", sizeof(struct lg_flow));
	CHECK(lg_flowtab_create(LG_FLOWTAB_MAX_RECORDS, 1) == NULL, "capacity beyond the index refused");
	lg_flowtab_destroy(t);
}

/* Stress: each thread owns a key range and cycles publish -> look up (own and others') ->
 * remove, while a reclaimer recycles records. A lookup must never return a record whose
 * tuple differs from the one asked for; a thread's own published flow must always be found. */
#define THREADS 4
#define KEYS_PER_THREAD 512

struct stress {
	struct lg_flowtab *t;
	int index;
	unsigned rounds;
	atomic_int *stop;
	atomic_uint wrong, missing;
};

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	struct lg_qsbr *q = lg_flowtab_qsbr(s->t);
	int me = lg_qsbr_register(q);
	struct lg_flow *mine[KEYS_PER_THREAD] = { 0 };
	unsigned seed = (unsigned)s->index * 7919u + 1;

	lg_qsbr_online(q, me);
	for (unsigned r = 0; r < s->rounds; r++) {
		unsigned k = (unsigned)rand_r(&seed) % KEYS_PER_THREAD;
		uint32_t ia = 0x0a000000u | ((uint32_t)s->index << 16) | k;
		unsigned other = (unsigned)rand_r(&seed) % THREADS;
		uint32_t oa = 0x0a000000u | (other << 16) | ((unsigned)rand_r(&seed) % KEYS_PER_THREAD);
		struct lg_flow *f;

		if (mine[k]) {
			if (lg_flowtab_find_inside(s->t, ia, 1, 2, 3) != mine[k] ||
			    lg_flowtab_find_public(s->t, 0, (uint16_t)(s->index * KEYS_PER_THREAD + k), 2, 3) !=
				    mine[k])
				atomic_fetch_add(&s->missing, 1);
			lg_flowtab_remove(s->t, mine[k]);
			mine[k] = NULL;
		} else {
			mine[k] = add(s->t, ia, 1, 2, 3, (uint16_t)(s->index * KEYS_PER_THREAD + k));
		}
		f = lg_flowtab_find_inside(s->t, oa, 1, 2, 3);
		if (f && (f->in_addr != oa || f->in_port != 1 || f->rem_addr != 2 || f->rem_port != 3))
			atomic_fetch_add(&s->wrong, 1);
		if (r % 64 == 0)
			lg_qsbr_quiescent(q, me);
		if (r % 4096 == 0) { /* sometimes offline, as a thread waiting for packets is */
			lg_qsbr_offline(q, me);
			lg_qsbr_online(q, me);
		}
	}
	for (unsigned k = 0; k < KEYS_PER_THREAD; k++)
		if (mine[k])
			lg_flowtab_remove(s->t, mine[k]);
	lg_qsbr_offline(q, me);
	lg_qsbr_unregister(q, me);
	return NULL;
}

static void *reclaimer(void *arg)
{
	struct stress *s = arg;

	while (!atomic_load(s->stop))
		lg_flowtab_reclaim(s->t);
	return NULL;
}

static void test_stress(unsigned rounds)
{
	struct lg_flowtab *t = lg_flowtab_create(THREADS * KEYS_PER_THREAD, 99);
	struct stress s[THREADS];
	pthread_t tid[THREADS], rtid;
	atomic_int stop = 0;
	unsigned wrong = 0, missing = 0;

	for (int i = 0; i < THREADS; i++) {
		s[i] = (struct stress){ .t = t, .index = i, .rounds = rounds, .stop = &stop };
		atomic_init(&s[i].wrong, 0);
		atomic_init(&s[i].missing, 0);
		pthread_create(&tid[i], NULL, stress_thread, &s[i]);
	}
	pthread_create(&rtid, NULL, reclaimer, &s[0]);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		wrong += atomic_load(&s[i].wrong);
		missing += atomic_load(&s[i].missing);
	}
	atomic_store(&stop, 1);
	pthread_join(rtid, NULL);
	CHECK_EQ_INT(wrong, 0, "no lookup returned another tuple's record");
	CHECK_EQ_INT(missing, 0, "every published flow was found by both tuples");
	CHECK_EQ_INT(lg_flowtab_count(t), 0, "everything removed at the end");
	lg_flowtab_reclaim(t);
	lg_flowtab_reclaim(t);
	CHECK(lg_flowtab_alloc(t) != NULL, "records come back after the grace periods");
	lg_flowtab_destroy(t);
}

int main(int argc, char **argv)
{
	unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 200000;

	test_basics();
	test_capacity_and_budget();
	test_stress(rounds);
	return lgtest_finish();
}
