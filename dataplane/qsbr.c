#include "dataplane/qsbr.h"

#include <stdatomic.h>
#include <stdlib.h>

/* One cache line per reader: a quiescent report is a store to the reader's own line only. */
struct reader {
	_Alignas(64) _Atomic uint64_t seen; /* the epoch last observed; 0 while offline */
	atomic_bool taken;
};

struct lg_qsbr {
	_Alignas(64) _Atomic uint64_t epoch;
	struct reader readers[LG_QSBR_MAX_THREADS];
};

struct lg_qsbr *lg_qsbr_create(void)
{
	struct lg_qsbr *q = aligned_alloc(64, sizeof(*q));

	if (!q)
		return NULL;
	atomic_init(&q->epoch, 1);
	for (int i = 0; i < LG_QSBR_MAX_THREADS; i++) {
		atomic_init(&q->readers[i].seen, 0);
		atomic_init(&q->readers[i].taken, false);
	}
	return q;
}

void lg_qsbr_destroy(struct lg_qsbr *q)
{
	free(q);
}

int lg_qsbr_register(struct lg_qsbr *q)
{
	for (int i = 0; i < LG_QSBR_MAX_THREADS; i++) {
		bool expected = false;

		if (atomic_compare_exchange_strong(&q->readers[i].taken, &expected, true))
			return i;
	}
	return -1;
}

void lg_qsbr_unregister(struct lg_qsbr *q, int id)
{
	atomic_store_explicit(&q->readers[id].seen, 0, memory_order_release);
	atomic_store_explicit(&q->readers[id].taken, false, memory_order_release);
}

void lg_qsbr_online(struct lg_qsbr *q, int id)
{
	atomic_store_explicit(&q->readers[id].seen, atomic_load(&q->epoch), memory_order_relaxed);
	/* the report must be visible before the thread loads any table pointer, or a writer
	 * could still see it offline and reuse what the thread is about to read */
	atomic_thread_fence(memory_order_seq_cst);
}

void lg_qsbr_offline(struct lg_qsbr *q, int id)
{
	atomic_store_explicit(&q->readers[id].seen, 0, memory_order_release);
}

void lg_qsbr_quiescent(struct lg_qsbr *q, int id)
{
	atomic_store_explicit(&q->readers[id].seen,
			      atomic_load_explicit(&q->epoch, memory_order_acquire),
			      memory_order_release);
}

uint64_t lg_qsbr_advance(struct lg_qsbr *q)
{
	return atomic_fetch_add(&q->epoch, 1) + 1;
}

bool lg_qsbr_passed(struct lg_qsbr *q, uint64_t target)
{
	atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in lg_qsbr_online() */
	for (int i = 0; i < LG_QSBR_MAX_THREADS; i++) {
		uint64_t seen;

		if (!atomic_load_explicit(&q->readers[i].taken, memory_order_acquire))
			continue;
		seen = atomic_load(&q->readers[i].seen);
		if (seen != 0 && seen < target)
			return false;
	}
	return true;
}
