/* The engine's insides, shared by engine.c (IPv4: NAPT, echo, hairpinning, the tables' upkeep)
 * and engine6.c (IPv6: stateful filtering without translation). Nothing else includes it. */
#ifndef LG_ENGINE_IMPL_H
#define LG_ENGINE_IMPL_H

#include "dataplane/echomap.h"
#include "dataplane/engine.h"
#include "dataplane/icmpgen.h"
#include "dataplane/observe.h"
#include "dataplane/synhold.h"
#include "dataplane/timers.h"

#include <pthread.h>

#define LG_REFUSAL_RING 256 /* ICMP 3/1 answers queued between two due() calls; more are dropped */

struct lg_pending_refusal {
	struct lg_icmp_dest to;
	uint32_t from4; /* IPv4: the public address the answer comes from */
	bool prohibited; /* administratively prohibited, else host (address) unreachable */
	uint8_t quote[LG_SYNHOLD_QUOTE_MAX];
	uint8_t quote_len;
};

/* A thread's own counters, on its own cache lines; summed by lg_engine_stats(). Only the
 * owner writes them (relaxed atomic stores, so that a concurrent reader sees whole values). */
struct lg_slot {
	_Alignas(64) struct lg_engine_stats st;
};

/* One address family's flows and their idle timers. */
struct lg_table {
	struct lg_flowtab *flows;
	struct lg_timers *timers;
};

/* A policy replaced by a reload, freed once no packet thread can still be reading it. */
struct lg_retired_policy {
	struct lg_policy *pol;
	uint64_t target; /* the QSBR grace period it waits for */
};
#define LG_RETIRED_MAX 8

struct lg_engine {
	struct lg_policy *pol; /* read with lg_eng_pol(); swapped whole by a reload */
	struct lg_obs_pool *obs; /* mail sessions observed, a fixed pool */
	struct lg_retired_policy retired[LG_RETIRED_MAX];
	size_t retired_count;
	struct lg_table t4, t6; /* t6.flows is NULL without 'ipv6 inside' */
	struct lg_qsbr *qsbr;   /* t4's, shared by t6 */
	/* making and ending flows, mappings and timers; never held while waiting for a flow */
	pthread_mutex_t wlock;
	/* the public addresses: their mappings (under WLOCK) and echo sessions (ECHO_LOCK) */
	struct lg_public {
		uint32_t addr;
		struct lg_natmap *maps;
		struct lg_echomap *echo;
	} pub[LG_MAX_PUBLIC];
	size_t pub_count;
	uint64_t pool_key; /* pairs each inside address with one public address */
	pthread_mutex_t echo_lock;
	/* held SYNs and pending refusals */
	pthread_mutex_t aux;
	struct lg_synhold synhold;
	struct lg_pending_refusal refusals[LG_REFUSAL_RING];
	size_t refusal_count;
	uint64_t serial;
	int shared_id; /* the slot of threads that found none free, under SHARED */
	pthread_mutex_t shared;
	lg_offload_hook *offload_fn; /* set before the packet threads start */
	void *offload_arg;
	struct lg_slot slots[LG_QSBR_MAX_THREADS];
};

/* The calling thread's slot in one engine. */
struct lg_ctx {
	struct lg_engine *e;
	struct lg_engine_stats *st;
	int id;
	bool shared;
};

#define ADD(c, field, n) __atomic_store_n(&(c)->st->field, (c)->st->field + (n), __ATOMIC_RELAXED)
#define BUMP(c, field) ADD(c, field, 1)

/* The public address ADDR's index, or -1: not one of ours. */
static inline int lg_eng_public(const struct lg_engine *e, uint32_t addr)
{
	for (size_t i = 0; i < e->pub_count; i++)
		if (e->pub[i].addr == addr)
			return (int)i;
	return -1;
}

/* The public address an inside address always uses (paired pooling, RFC 4787 REQ-2). */
static inline struct lg_public *lg_eng_paired(struct lg_engine *e, uint32_t in_addr)
{
	uint64_t h = in_addr ^ e->pool_key;

	/* every bit of the address moves every bit of the hash (murmur3's finalizer) */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return &e->pub[h % e->pub_count];
}

/* The policy in force. Packet threads may hold it until they leave the engine. */
static inline const struct lg_policy *lg_eng_pol(const struct lg_engine *e)
{
	return __atomic_load_n(&e->pol, __ATOMIC_ACQUIRE);
}

static inline uint32_t lg_eng_seconds(uint64_t now_ns)
{
	return (uint32_t)(now_ns / 1000000000ull);
}

enum lg_verdict lg_eng_drop(struct lg_ctx *c, enum lg_drop_reason why);
/* F if it is live and within its idle limit, returned LOCKED; else NULL (an expired flow is
 * ended on the way). WLOCKED: the caller holds the writer lock. */
struct lg_flow *lg_eng_usable(struct lg_engine *e, struct lg_ctx *c, struct lg_table *tb,
			      struct lg_flow *f, uint32_t now_s, bool wlocked);
/* With the writer lock: make room for one flow of TB under overload, in the policy's order. */
bool lg_eng_evict_one(struct lg_engine *e, struct lg_ctx *c, struct lg_table *tb, uint32_t now_s);
/* With the writer lock: F, just published in TB, gets its first (transitory) deadline. */
void lg_eng_arm_new(struct lg_engine *e, struct lg_table *tb, struct lg_flow *f, uint32_t now_s);
/* Move F's state (locked) for a segment from SIDE (0 inside, 1 outside), unless it is a RST
 * that does not belong to the connection. True when F went from a long timer to the short. */
bool lg_eng_track_segment(struct lg_ctx *c, struct lg_flow *f, int side, const struct lg_pkt *p,
			  uint32_t now_s);
/* The inside refused, with a RST, a connection an outside host opened through F (state
 * BEFORE was INIT_IN): F ends at once, so that such answers never keep a mapping alive
 * (RFC 7857 section 7.1). Call after F's lock is released; true if F ended. */
bool lg_eng_end_refused(struct lg_engine *e, struct lg_ctx *c, struct lg_table *tb,
			struct lg_flow *f, uint8_t before, uint32_t now_s);
/* A segment took F from a long timer to a short one (FIN, RST): its wheel slot is too late. */
void lg_eng_rearm_sooner(struct lg_engine *e, struct lg_table *tb, struct lg_flow *f);
/* The flags a new flow to remote port REM_PORT (network order) starts with. */
uint8_t lg_eng_new_flags(const struct lg_engine *e, uint16_t rem_port);

/* An inbound SYN nobody asked for, K its connection: dropped (counted as WHY) and, if it is a
 * bare SYN and QUOTE bytes of it can be quoted, held 6 s to be answered (N5382-R4). */
enum lg_verdict lg_eng_unsolicited(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
				   const struct lg_synhold_key *k, size_t quote, uint64_t now_ns,
				   enum lg_drop_reason why);
/* A new outbound flow that cannot be had: dropped (counted as WHY), no existing mapping given
 * up for it, and the inside host TO told at once, as the policy says, quoting QUOTE_LEN bytes
 * of P (RFC 6888 REQ-4, REQ-11; RFC 5508 REQ-8). */
enum lg_verdict lg_eng_refuse(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
			      const struct lg_icmp_dest *to, size_t quote_len, enum lg_drop_reason why);
/* What the rules say of a new flow or echo session described by D: PASS, or the packet is
 * dropped (counted as LG_DROP_RULE) and, for 'block return', answered with administratively
 * prohibited to TO, quoting QUOTE_LEN bytes of P. ACCEPT means go on. */
enum lg_verdict lg_eng_rules(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
			     const struct lg_flow_desc *d, const struct lg_icmp_dest *to,
			     size_t quote_len);
/* The inside opened connection K: a SYN held for it is forgotten unanswered (N5382-R4). */
void lg_eng_supersede_held(struct lg_engine *e, struct lg_ctx *c, const struct lg_synhold_key *k);

/* One more ICMP error of FAMILY, TYPE and CODE passed on. */
void lg_eng_count_icmp(struct lg_ctx *c, uint8_t family, uint8_t type, uint8_t code);

/* F was just made: observe it if its server's port is a mail service's (INBOUND: the server is
 * the inside host). With the writer lock. */
void lg_eng_observe_open(struct lg_engine *e, struct lg_ctx *c, struct lg_flow *f, bool inbound);
/* A segment F (locked by nobody) passed: show it to F's observer. FROM_INSIDE: its direction. */
void lg_eng_observe(struct lg_engine *e, struct lg_flow *f, bool from_inside, const struct lg_pkt *p,
		    uint32_t now_s);

/* engine6.c: an IPv6 packet that parsed (or not: STATUS). */
enum lg_verdict lg_eng_classify6(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p,
				 enum lg_pkt_status status, uint64_t now_ns);

#endif
