/* The flow table: a fixed pool of flow records and two hash indexes over it, one by the
 * inside tuple and one by the public tuple, so that both directions of a flow find the same
 * record. Lookups take no lock: a reader registered with the table's QSBR (lg_flowtab_qsbr)
 * may use what it finds until its next quiescent point or offline. Publishing and removing
 * lock one index bucket each; removed records are reused only after a grace period.
 * The hash is keyed per table and probing is bounded, so crafted tuples cannot build a chain.
 * Memory is allocated at creation; nothing is allocated afterwards. */
#ifndef LG_FLOWTAB_H
#define LG_FLOWTAB_H

#include "dataplane/qsbr.h"
#include "dataplane/tcpstate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The core record, 120 bytes: what every flow needs and no more. Application-layer state
 * would live in a separate pool for the flows that have it. The tuple is fixed while the
 * record is published; flags, state, track, times and counters change with LOCK held;
 * map_next, the wheel fields and the links belong to whoever holds the engine's writer lock. */
struct lg_flow {
	uint32_t in_addr, rem_addr;           /* network byte order */
	uint16_t in_port, rem_port, pub_port; /* network byte order */
	uint8_t lock;                         /* lg_flow_lock() */
	uint8_t flags;                        /* LG_FLOW_* */
	uint32_t id;
	uint8_t state;                        /* enum lg_tcp_state */
	uint8_t wheel;                        /* timer list: class + 1, 0 = none */
	uint16_t wheel_slot;
	struct lg_tcp_track track;
	uint32_t created_s, last_s;           /* seconds of the engine's clock */
	uint32_t map_next;                    /* next flow of the same mapping: index + 1 */
	uint64_t pkts_out, pkts_in, bytes_out, bytes_in;
	uint32_t link_prev, link_next;        /* timer list while published; free list after */
	uint32_t pub_addr;                    /* network byte order: the public address (IPv4) */
	uint32_t obs;                         /* its mail session being observed, 0 = none */
	uint8_t offload;                      /* LG_OFFLOAD_*: its translation in the kernel */
};

#define LG_FLOW_LIVE 0x01 /* published, not yet removed */
#define LG_FLOW_MAIL 0x02 /* to a mail port: evicted last under overload */
#define LG_FLOW_SVC_SHIFT 2 /* 4 bits: the policy's per-port timer + 1, 0 for the default */
#define LG_FLOW_SVC_MASK 0x3c
#define LG_FLOW_INBOUND 0x40 /* opened from outside (through a mapping, or to an IPv6 host) */
#define LG_FLOW_IDLING 0x80  /* a mail session seen in IMAP IDLE: evicted last of all */

#define LG_OFFLOAD_ON 0x01     /* the kernel translates its packets (lg_knat) */
#define LG_OFFLOAD_REFUSED 0x02 /* the kernel would not take it: not asked again */

#define LG_FLOWTAB_MAX_RECORDS ((1u << 24) - 2)

#if defined(__x86_64__) || defined(__i386__)
#define lg_cpu_relax() __builtin_ia32_pause()
#else
#define lg_cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

/* Held for a few instructions, by the two directions of one flow at worst. */
static inline void lg_flow_lock(struct lg_flow *f)
{
	while (__atomic_exchange_n(&f->lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&f->lock, __ATOMIC_RELAXED))
			lg_cpu_relax();
}

static inline void lg_flow_unlock(struct lg_flow *f)
{
	__atomic_store_n(&f->lock, 0, __ATOMIC_RELEASE);
}

/* Copy F (locked by the caller) without touching its lock byte. */
static inline void lg_flow_copy(struct lg_flow *dst, const struct lg_flow *f)
{
	size_t after = __builtin_offsetof(struct lg_flow, lock) + sizeof(f->lock);

	__builtin_memcpy(dst, f, __builtin_offsetof(struct lg_flow, lock));
	__builtin_memcpy((char *)dst + after, (const char *)f + after, sizeof(*f) - after);
	dst->lock = 0;
}

struct lg_flowkey {
	uint32_t a_addr, b_addr; /* network byte order */
	uint16_t a_port, b_port;
};

enum lg_flowtab_status { LG_FLOWTAB_OK = 0, LG_FLOWTAB_EXISTS, LG_FLOWTAB_PROBE_LIMIT };

struct lg_flowtab;

/* IPv6 flows (stateful filtering, no translation) live in a table of their own, made by
 * lg_flowtab_create6. A record's full addresses are kept beside it (lg_flowtab_addr6, written
 * before it is published); its in_addr and rem_addr hold a 32-bit fold of them and pub_port
 * its inside port, since nothing is translated. The second index is by inside endpoint, so
 * that an inbound SYN can be admitted by the filtering mode: all flows of one endpoint share
 * a probe sequence, which bounds them to about 200 per inside address and port. Flow ids
 * count from 2^31, apart from an IPv4 table's. */
struct lg_flow_addr6 {
	uint8_t in[16], rem[16];
};

/* CAPACITY flows at once. SEED 0 draws the hash key from the kernel; any other value makes
 * it reproducible (offline replays and tests only). NULL on failure or a capacity above
 * LG_FLOWTAB_MAX_RECORDS less the reserve kept for records waiting out a grace period. */
struct lg_flowtab *lg_flowtab_create(uint32_t capacity, uint64_t seed);
/* SHARED: the QSBR of another table (its readers then cover this one too), or NULL. */
struct lg_flowtab *lg_flowtab_create6(uint32_t capacity, uint64_t seed, struct lg_qsbr *shared);
void lg_flowtab_destroy(struct lg_flowtab *t);
struct lg_qsbr *lg_flowtab_qsbr(struct lg_flowtab *t);

/* Lookups: the caller is an online reader. */
struct lg_flow *lg_flowtab_find_inside(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				       uint32_t rem_addr, uint16_t rem_port);
struct lg_flow *lg_flowtab_find_public(struct lg_flowtab *t, uint32_t pub_addr, uint16_t pub_port,
				       uint32_t rem_addr, uint16_t rem_port);
/* N lookups by inside tuple (a = inside, b = remote), overlapped so that their cache misses
 * are paid together. */
void lg_flowtab_find_inside_batch(struct lg_flowtab *t, const struct lg_flowkey *keys, size_t n,
				  struct lg_flow **out);

/* IPv6 tables only. */
struct lg_flow_addr6 *lg_flowtab_addr6(struct lg_flowtab *t, const struct lg_flow *f);
uint32_t lg_flowtab_fold6(const uint8_t addr[16]);
struct lg_flow *lg_flowtab_find6(struct lg_flowtab *t, const uint8_t in_addr[16], uint16_t in_port,
				 const uint8_t rem_addr[16], uint16_t rem_port);
/* A live flow of the inside endpoint IN_ADDR:IN_PORT, to REM_ADDR unless that is NULL. */
struct lg_flow *lg_flowtab_find_endpoint6(struct lg_flowtab *t, const uint8_t in_addr[16],
					  uint16_t in_port, const uint8_t *rem_addr);

/* A blank record (tuple and counters zero, not published), or NULL when CAPACITY flows are
 * in use and none is free. */
struct lg_flow *lg_flowtab_alloc(struct lg_flowtab *t);
/* Give back a record that was never published. */
void lg_flowtab_abandon(struct lg_flowtab *t, struct lg_flow *f);
/* Make F findable by both tuples. EXISTS if its inside tuple is already published;
 * PROBE_LIMIT if an index has no room within the probe bound. F is unchanged on failure. */
enum lg_flowtab_status lg_flowtab_publish(struct lg_flowtab *t, struct lg_flow *f);
/* Unfindable from now on; the record is reused after the next grace period. */
void lg_flowtab_remove(struct lg_flowtab *t, struct lg_flow *f);
/* Free the removed records whose grace period has passed; returns how many. */
size_t lg_flowtab_reclaim(struct lg_flowtab *t);

/* Flows in use: published, or allocated and about to be. */
size_t lg_flowtab_count(const struct lg_flowtab *t);
size_t lg_flowtab_capacity(const struct lg_flowtab *t);
/* Bytes allocated at creation, indexes included. */
size_t lg_flowtab_memory(const struct lg_flowtab *t);

/* Records by index, for the timers and for walks: LG_FLOWTAB_NONE never names a record. */
#define LG_FLOWTAB_NONE 0xffffffffu
uint32_t lg_flowtab_index_of(const struct lg_flowtab *t, const struct lg_flow *f);
struct lg_flow *lg_flowtab_record(struct lg_flowtab *t, uint32_t index);
size_t lg_flowtab_records(const struct lg_flowtab *t);

#endif
