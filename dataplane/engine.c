#include "dataplane/engine.h"

#include "dataplane/engine_impl.h"
#include "dataplane/nat.h"
#include "dataplane/synhold.h"
#include "dataplane/tcpstate.h"
#include "dataplane/timers.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define EXPIRE_BATCH 1024 /* flows ended per hold of the writer lock */
#define EVICT_TRIES 64    /* flows looked at per class before trying the next one */

static void free_retired(struct lg_engine *e, bool wait);

/* Type and first code of each run of codes counted apart, per family; the kinds are laid out
 * in this order, each family's "other" bucket after its runs. */
static const struct {
	uint8_t family, type, codes;
} icmp_runs[] = {
	{ 4, 3, 16 }, { 4, 4, 1 }, { 4, 5, 4 }, { 4, 11, 2 }, { 4, 12, 3 },
	{ 6, 1, 8 },  { 6, 2, 1 }, { 6, 3, 2 }, { 6, 4, 4 },
};
#define ICMP_RUNS (sizeof(icmp_runs) / sizeof(icmp_runs[0]))

unsigned lg_icmp_kind_index(uint8_t family, uint8_t type, uint8_t code)
{
	unsigned base = 0;

	for (size_t r = 0; r < ICMP_RUNS; r++) {
		if (icmp_runs[r].family == family && icmp_runs[r].type == type && code < icmp_runs[r].codes)
			return base + code;
		base += icmp_runs[r].codes;
		if (r + 1 == ICMP_RUNS || icmp_runs[r + 1].family != icmp_runs[r].family) {
			if (icmp_runs[r].family == family)
				return base; /* the family's other bucket */
			base++;
		}
	}
	return LG_ICMP_KINDS - 1;
}

struct lg_icmp_kind lg_icmp_kind_of(unsigned i)
{
	unsigned base = 0;

	for (size_t r = 0; r < ICMP_RUNS; r++) {
		if (i < base + icmp_runs[r].codes)
			return (struct lg_icmp_kind){ icmp_runs[r].family, icmp_runs[r].type,
						      (uint8_t)(i - base), false };
		base += icmp_runs[r].codes;
		if (r + 1 == ICMP_RUNS || icmp_runs[r + 1].family != icmp_runs[r].family) {
			if (i == base)
				return (struct lg_icmp_kind){ icmp_runs[r].family, 0, 0, true };
			base++;
		}
	}
	return (struct lg_icmp_kind){ 6, 0, 0, true };
}

void lg_eng_count_icmp(struct lg_ctx *c, uint8_t family, uint8_t type, uint8_t code)
{
	BUMP(c, icmp_by_kind[lg_icmp_kind_index(family, type, code)]);
}

static _Atomic uint64_t engine_serial;
static _Thread_local struct {
	uint64_t serial;
	int id;
} my_slot;

static void slot_enter(struct lg_engine *e, struct lg_ctx *c)
{
	c->e = e;
	c->shared = false;
	if (my_slot.serial != e->serial) {
		my_slot.id = lg_qsbr_register(e->qsbr);
		my_slot.serial = e->serial;
	}
	c->id = my_slot.id;
	if (c->id < 0) {
		pthread_mutex_lock(&e->shared);
		c->id = e->shared_id;
		c->shared = true;
	}
	c->st = &e->slots[c->id].st;
}

static void slot_leave(struct lg_ctx *c)
{
	if (c->shared)
		pthread_mutex_unlock(&c->e->shared);
}

/* A reader of the flow table until leave(): what it finds is not reused meanwhile. */
static void enter(struct lg_engine *e, struct lg_ctx *c)
{
	slot_enter(e, c);
	lg_qsbr_online(e->qsbr, c->id);
}

static void leave(struct lg_ctx *c)
{
	lg_qsbr_offline(c->e->qsbr, c->id);
	slot_leave(c);
}

void lg_engine_thread_done(struct lg_engine *e)
{
	if (my_slot.serial == e->serial && my_slot.id >= 0)
		lg_qsbr_unregister(e->qsbr, my_slot.id);
	my_slot.serial = 0;
}

struct lg_engine *lg_engine_create(const struct lg_policy *pol, uint64_t seed)
{
	struct lg_engine *e = aligned_alloc(64, sizeof(*e));

	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->pol = malloc(sizeof(*e->pol));
	if (!e->pol) {
		free(e);
		return NULL;
	}
	*e->pol = *pol;
	e->serial = atomic_fetch_add(&engine_serial, 1) + 1;
	e->t4.flows = lg_flowtab_create(pol->max_flows, seed);
	{
		const uint32_t *addrs;

		e->pub_count = lg_policy_public(pol, &addrs);
		for (size_t i = 0; i < e->pub_count; i++) {
			uint64_t sub = seed ? seed + i * 0x1000193ull : 0;

			e->pub[i].addr = addrs[i];
			e->pub[i].maps = lg_natmap_create(addrs[i], pol->port_lo, pol->port_hi,
							  pol->host_quota, pol->port_rest, sub);
			e->pub[i].echo = lg_echomap_create(pol->timeout_query, pol->host_quota,
							   seed ? sub ^ 0xec40ull : 0);
			if (!e->pub[i].maps || !e->pub[i].echo) {
				lg_engine_destroy(e);
				return NULL;
			}
		}
		e->pool_key = seed ? seed * 0xff51afd7ed558ccdull : 0;
		if (!seed && getrandom(&e->pool_key, sizeof(e->pool_key), 0) != sizeof(e->pool_key))
			e->pool_key = (uint64_t)(uintptr_t)e * 0xff51afd7ed558ccdull;
	}
	e->t4.timers = e->t4.flows ? lg_timers_create(e->t4.flows, 0) : NULL;
	if (e->t4.flows && pol->inside6_count) {
		e->t6.flows = lg_flowtab_create6(pol->max_flows6, seed ? seed ^ 0x6666ull : 0,
						 lg_flowtab_qsbr(e->t4.flows));
		e->t6.timers = e->t6.flows ? lg_timers_create(e->t6.flows, 0) : NULL;
	}
	lg_synhold_init(&e->synhold, seed ^ 0x5eed5eedull);
	/* one observer per concurrent mail flow, up to a fixed number: memory is bounded */
	if (pol->observe_sessions)
		e->obs = lg_obs_pool_create(pol->max_flows < pol->observe_sessions ? pol->max_flows
										   : pol->observe_sessions);
	if ((pol->observe_sessions && !e->obs) || !e->t4.flows || !e->t4.timers ||
	    (pol->inside6_count && !e->t6.timers)) {
		lg_engine_destroy(e);
		return NULL;
	}
	e->qsbr = lg_flowtab_qsbr(e->t4.flows);
	e->shared_id = lg_qsbr_register(e->qsbr);
	pthread_mutex_init(&e->wlock, NULL);
	pthread_mutex_init(&e->aux, NULL);
	pthread_mutex_init(&e->echo_lock, NULL);
	pthread_mutex_init(&e->shared, NULL);
	return e;
}

void lg_engine_destroy(struct lg_engine *e)
{
	if (!e)
		return;
	if (e->qsbr) {
		pthread_mutex_destroy(&e->wlock);
		pthread_mutex_destroy(&e->aux);
		pthread_mutex_destroy(&e->echo_lock);
		pthread_mutex_destroy(&e->shared);
	}
	for (size_t i = 0; i < e->pub_count; i++) {
		lg_echomap_destroy(e->pub[i].echo);
		lg_natmap_destroy(e->pub[i].maps);
	}
	lg_timers_destroy(e->t6.timers);
	lg_flowtab_destroy(e->t6.flows); /* before t4: it uses t4's QSBR */
	lg_timers_destroy(e->t4.timers);
	lg_flowtab_destroy(e->t4.flows);
	lg_obs_pool_destroy(e->obs);
	for (size_t i = 0; i < e->retired_count; i++)
		free(e->retired[i].pol);
	free(e->pol);
	free(e);
}

/* The idle timer of a flow in STATE with FLAGS: transitory, its service's, or established. */
static uint32_t idle_limit(const struct lg_engine *e, uint8_t state, uint8_t flags)
{
	unsigned svc = (flags & LG_FLOW_SVC_MASK) >> LG_FLOW_SVC_SHIFT;

	if (lg_tcp_is_transitory(state))
		return lg_eng_pol(e)->timeout_transitory;
	return svc ? lg_eng_pol(e)->port_timeouts[svc - 1].secs : lg_eng_pol(e)->timeout_established;
}

/* F's lock held. */
static bool expired(const struct lg_engine *e, const struct lg_flow *f, uint32_t now_s)
{
	return (int32_t)(now_s - f->last_s) > 0 && now_s - f->last_s > idle_limit(e, f->state, f->flags);
}

static enum lg_timer_class timer_class(uint8_t state, uint8_t flags)
{
	if (lg_tcp_is_transitory(state))
		return LG_TIMER_TRANSITORY;
	if (flags & LG_FLOW_IDLING)
		return LG_TIMER_MAIL_IDLE;
	return flags & LG_FLOW_MAIL ? LG_TIMER_MAIL : LG_TIMER_OTHER;
}

/* What the timers need of F, read under its lock. */
struct timing {
	enum lg_timer_class cls;
	uint32_t due_s; /* the first second at which it is expired */
	bool live;
};

static struct timing timing_of(const struct lg_engine *e, struct lg_flow *f)
{
	struct timing t;

	lg_flow_lock(f);
	t.cls = timer_class(f->state, f->flags);
	t.due_s = f->last_s + idle_limit(e, f->state, f->flags) + 1;
	t.live = f->flags & LG_FLOW_LIVE;
	lg_flow_unlock(f);
	return t;
}

/* With the writer lock: F goes from its table, its mapping (IPv4) and its timer. */
static void end_flow(struct lg_engine *e, struct lg_table *tb, struct lg_flow *f, uint32_t now_s)
{
	int pub = tb == &e->t4 ? lg_eng_public(e, f->pub_addr) : -1;

	lg_timers_disarm(tb->timers, f);
	if ((f->offload & LG_OFFLOAD_ON) && e->offload_fn) {
		/* before the tuple can be reused: a kernel entry left behind would translate a
		 * later flow of the same endpoints with this flow's mapping */
		e->offload_fn(e->offload_arg, false, f);
		f->offload = 0;
	}
	if (pub >= 0)
		lg_natmap_detach(e->pub[pub].maps, e->t4.flows, f, now_s);
	if (f->obs) {
		lg_obs_close(e->obs, f->obs);
		__atomic_store_n(&f->obs, 0, __ATOMIC_RELAXED);
	}
	lg_flowtab_remove(tb->flows, f);
}

/* F was found idle past its deadline before the timers came to it: it goes now. */
static void reap(struct lg_engine *e, struct lg_ctx *c, struct lg_table *tb, struct lg_flow *f,
		 uint32_t now_s, bool wlocked)
{
	bool still;

	if (!wlocked)
		pthread_mutex_lock(&e->wlock);
	lg_flow_lock(f);
	still = (f->flags & LG_FLOW_LIVE) && expired(e, f, now_s);
	lg_flow_unlock(f);
	if (still) {
		end_flow(e, tb, f, now_s);
		BUMP(c, flows_expired);
	}
	if (!wlocked)
		pthread_mutex_unlock(&e->wlock);
}

struct lg_flow *lg_eng_usable(struct lg_engine *e, struct lg_ctx *c, struct lg_table *tb,
			      struct lg_flow *f, uint32_t now_s, bool wlocked)
{
	if (!f)
		return NULL;
	lg_flow_lock(f);
	if (!(f->flags & LG_FLOW_LIVE)) {
		lg_flow_unlock(f);
		return NULL;
	}
	if (expired(e, f, now_s)) {
		lg_flow_unlock(f);
		reap(e, c, tb, f, now_s, wlocked);
		return NULL;
	}
	return f;
}

bool lg_eng_evict_one(struct lg_engine *e, struct lg_ctx *c, struct lg_table *tb, uint32_t now_s)
{
	static const enum lg_timer_class order[] = { LG_TIMER_TRANSITORY, LG_TIMER_OTHER,
						     LG_TIMER_MAIL, LG_TIMER_MAIL_IDLE };
	size_t classes = lg_eng_pol(e)->overload == LG_OVERLOAD_DROP_NEW ? 1 : 4;

	for (size_t k = 0; k < classes; k++) {
		for (int tries = 0; tries < EVICT_TRIES; tries++) {
			struct lg_flow *f = lg_timers_first(tb->timers, order[k]);
			struct timing t;

			if (!f)
				break;
			t = timing_of(e, f);
			if ((int32_t)(now_s - t.due_s) >= 0) { /* already expired: not an eviction */
				end_flow(e, tb, f, now_s);
				BUMP(c, flows_expired);
				return true;
			}
			if (t.cls != order[k] || lg_timers_early(tb->timers, f, t.due_s)) {
				/* filed by an older deadline or state: file it right, look again */
				lg_timers_arm(tb->timers, f, t.cls, t.due_s);
				continue;
			}
			end_flow(e, tb, f, now_s);
			if (order[k] == LG_TIMER_TRANSITORY)
				BUMP(c, evicted_transitory);
			else if (order[k] == LG_TIMER_OTHER)
				BUMP(c, evicted_idle);
			else
				BUMP(c, evicted_mail); /* idling ones included: they come last */
			return true;
		}
	}
	return false;
}

/* With the writer lock: a new flow for the inside endpoint IA:IP and the remote RA:RP,
 * published, on its mapping and armed; NULL with *WHY when it cannot be had. */
static struct lg_flow *make_flow(struct lg_engine *e, struct lg_ctx *c, uint32_t ia, uint16_t ip,
				 uint32_t ra, uint16_t rp, uint32_t now_s, enum lg_drop_reason *why)
{
	struct lg_natmap *maps;
	struct lg_flow *f = lg_flowtab_alloc(e->t4.flows);
	enum lg_natmap_error err;

	if (!f && lg_eng_evict_one(e, c, &e->t4, now_s))
		f = lg_flowtab_alloc(e->t4.flows);
	if (!f) {
		*why = LG_DROP_TABLE_FULL;
		return NULL;
	}
	f->in_addr = ia;
	f->in_port = ip;
	f->rem_addr = ra;
	f->rem_port = rp;
	lg_flow_lock(f);
	f->flags = lg_eng_new_flags(e, rp);
	f->state = LG_TCP_CLOSED;
	f->created_s = f->last_s = now_s;
	f->track.wscale[0] = f->track.wscale[1] = -1;
	lg_flow_unlock(f);
	/* paired pooling: every mapping of an inside address on the same public address */
	maps = lg_eng_paired(e, ia)->maps;
	if (!lg_natmap_attach(maps, e->t4.flows, f, now_s, &err)) {
		lg_flowtab_abandon(e->t4.flows, f);
		*why = err == LG_NATMAP_QUOTA ? LG_DROP_QUOTA : LG_DROP_NO_PORT;
		return NULL;
	}
	if (lg_flowtab_publish(e->t4.flows, f) != LG_FLOWTAB_OK) {
		lg_natmap_detach(maps, e->t4.flows, f, now_s);
		lg_flowtab_abandon(e->t4.flows, f);
		*why = LG_DROP_INDEX_FULL;
		return NULL;
	}
	lg_eng_arm_new(e, &e->t4, f, now_s);
	BUMP(c, flows_created);
	return f;
}

uint8_t lg_eng_new_flags(const struct lg_engine *e, uint16_t rem_port)
{
	return (uint8_t)((lg_policy_is_mail_port(lg_eng_pol(e), rem_port) ? LG_FLOW_MAIL : 0) |
			 lg_policy_port_timeout(lg_eng_pol(e), rem_port) << LG_FLOW_SVC_SHIFT);
}

void lg_eng_arm_new(struct lg_engine *e, struct lg_table *tb, struct lg_flow *f, uint32_t now_s)
{
	/* an empty wheel's clock may be far behind: move it first, so that the deadline counts */
	if (lg_timers_count(tb->timers, LG_TIMER_TRANSITORY) +
		    lg_timers_count(tb->timers, LG_TIMER_OTHER) +
		    lg_timers_count(tb->timers, LG_TIMER_MAIL) +
		    lg_timers_count(tb->timers, LG_TIMER_MAIL_IDLE) == 0)
		lg_timers_run(tb->timers, now_s, 0, NULL, NULL);
	lg_timers_arm(tb->timers, f, LG_TIMER_TRANSITORY, now_s + lg_eng_pol(e)->timeout_transitory + 1);
}

void lg_eng_observe_open(struct lg_engine *e, struct lg_ctx *c, struct lg_flow *f, bool inbound)
{
	enum lg_mail_service svc =
		lg_policy_mail_service(lg_eng_pol(e), ntohs(inbound ? f->in_port : f->rem_port));
	uint32_t h;

	if (svc == LG_MAIL_NONE || !e->obs)
		return;
	h = lg_obs_open(e->obs, svc);
	if (!h) {
		BUMP(c, mail_observer_pool_full);
		return;
	}
	__atomic_store_n(&f->obs, h, __ATOMIC_RELEASE);
	BUMP(c, mail_sessions_observed);
}

void lg_eng_observe(struct lg_engine *e, struct lg_flow *f, bool from_inside, const struct lg_pkt *p,
		    uint32_t now_s)
{
	uint32_t h = __atomic_load_n(&f->obs, __ATOMIC_ACQUIRE);
	bool from_client = from_inside != ((f->flags & LG_FLOW_INBOUND) != 0), idling;

	if (!h || (!p->payload_len && !(p->tcp_flags & LG_TCP_SYN)))
		return;
	/* the verdict is already made: what is seen here changes nothing of it */
	idling = lg_obs_segment(e->obs, h, from_client, p->seq, p->tcp_flags & LG_TCP_SYN,
				p->l4 + (p->l4_len - p->payload_len), p->payload_len, now_s);
	/* sessions idling in IDLE are the last to go under overload; the timers re-file the flow
	 * when they next look at it */
	if (idling != ((__atomic_load_n(&f->flags, __ATOMIC_RELAXED) & LG_FLOW_IDLING) != 0)) {
		lg_flow_lock(f);
		if (f->flags & LG_FLOW_LIVE)
			f->flags = (uint8_t)(idling ? f->flags | LG_FLOW_IDLING
						    : f->flags & ~LG_FLOW_IDLING);
		lg_flow_unlock(f);
	}
}

void lg_engine_mail_counts(struct lg_engine *e, uint64_t by_phase[LG_MAIL_SERVICES][LG_PHASE_COUNT])
{
	lg_obs_counts(e->obs, by_phase);
}

bool lg_eng_end_refused(struct lg_engine *e, struct lg_ctx *c, struct lg_table *tb,
			struct lg_flow *f, uint8_t before, uint32_t now_s)
{
	bool end;

	if (before != LG_TCP_INIT_IN)
		return false;
	pthread_mutex_lock(&e->wlock);
	lg_flow_lock(f);
	end = (f->flags & LG_FLOW_LIVE) && f->state == LG_TCP_TRANS;
	lg_flow_unlock(f);
	if (end)
		end_flow(e, tb, f, now_s);
	pthread_mutex_unlock(&e->wlock);
	if (end)
		BUMP(c, inbound_refused_by_inside);
	return end;
}

void lg_eng_rearm_sooner(struct lg_engine *e, struct lg_table *tb, struct lg_flow *f)
{
	struct timing t;

	pthread_mutex_lock(&e->wlock);
	t = timing_of(e, f);
	if (t.live)
		lg_timers_arm(tb->timers, f, t.cls, t.due_s);
	pthread_mutex_unlock(&e->wlock);
}

/* How much of P an ICMP error about it quotes: the IP header and 8 bytes (RFC 792). A header
 * with options does not fit LG_ICMP_QUOTE_MAX: 0, and no error is sent about it. */
static size_t icmp_quote_len(const struct lg_pkt *p)
{
	return p->ihl + 8 <= LG_ICMP_QUOTE_MAX ? p->ihl + 8 : 0;
}

enum lg_verdict lg_eng_drop(struct lg_ctx *c, enum lg_drop_reason why)
{
	BUMP(c, dropped[why]);
	return LG_VERDICT_DROP;
}

bool lg_eng_track_segment(struct lg_ctx *c, struct lg_flow *f, int side, const struct lg_pkt *p,
			  uint32_t now_s)
{
	bool was_short = lg_tcp_is_transitory(f->state);

	if (p->tcp_flags & LG_TCP_RST) {
		if (!lg_tcp_rst_valid(&f->track, side, p)) {
			BUMP(c, rst_out_of_window);
			return false;
		}
	} else {
		lg_tcp_track_update(&f->track, side, p);
	}
	f->state = (uint8_t)lg_tcp_next(f->state, side == 0, p->tcp_flags);
	f->last_s = now_s;
	return !was_short && lg_tcp_is_transitory(f->state);
}

/* Queue an answer to be sent by lg_engine_due, quoting QUOTE_LEN bytes of P. */
static void queue_refusal(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
			  const struct lg_icmp_dest *to, size_t quote_len, bool prohibited)
{
	bool queued = false;

	if (quote_len > LG_SYNHOLD_QUOTE_MAX)
		quote_len = LG_SYNHOLD_QUOTE_MAX;
	if (quote_len) {
		pthread_mutex_lock(&e->aux);
		if (e->refusal_count < LG_REFUSAL_RING) {
			struct lg_pending_refusal *r = &e->refusals[e->refusal_count++];

			r->to = *to;
			/* from the public address the packet was sent to, else the sender's own */
			r->from4 = lg_eng_public(e, p->daddr) >= 0 ? p->daddr
				   : p->family == 4 ? lg_eng_paired(e, p->saddr)->addr
						    : 0;
			r->prohibited = prohibited;
			memcpy(r->quote, p->ip, quote_len);
			r->quote_len = (uint8_t)quote_len;
			queued = true;
		}
		pthread_mutex_unlock(&e->aux);
	}
	if (!queued)
		BUMP(c, icmp_refusals_suppressed);
}

enum lg_verdict lg_eng_rules(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
			     const struct lg_flow_desc *d, const struct lg_icmp_dest *to,
			     size_t quote_len)
{
	enum lg_rule_action a = lg_policy_rules_verdict(lg_eng_pol(e), d, NULL);

	if (a == LG_RULE_PASS)
		return LG_VERDICT_ACCEPT;
	if (a == LG_RULE_BLOCK_RETURN)
		queue_refusal(e, c, p, to, quote_len, true);
	return lg_eng_drop(c, LG_DROP_RULE);
}

enum lg_verdict lg_eng_refuse(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
			      const struct lg_icmp_dest *to, size_t quote_len, enum lg_drop_reason why)
{
	if (lg_eng_pol(e)->refusal == LG_REFUSAL_SILENT)
		return lg_eng_drop(c, why);
	queue_refusal(e, c, p, to, quote_len,
		      lg_eng_pol(e)->refusal == LG_REFUSAL_ADMIN_PROHIBITED);
	return lg_eng_drop(c, why);
}

static enum lg_verdict refuse(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
			      enum lg_drop_reason why)
{
	struct lg_icmp_dest to = { .family = 4, .addr4 = p->saddr };

	return lg_eng_refuse(e, c, p, &to, icmp_quote_len(p), why);
}

/* Offload pays for large packets (a verdict without the packet saves copying it back, and a
 * GSO packet's linearization); for small ones the kernel's conntrack and NAT cost more than
 * our rewrite of a few bytes (make bench: small packets). */
#define OFFLOAD_MIN_AVERAGE_BYTES 512

/* F (locked) is established and has carried enough packets, large enough on average, for its
 * translation to be done by the kernel. */
static bool offload_wanted(const struct lg_engine *e, const struct lg_flow *f)
{
	uint32_t after = lg_eng_pol(e)->offload_after;

	return e->offload_fn && after && !f->offload && f->state == LG_TCP_ESTABLISHED &&
	       f->pkts_out + f->pkts_in >= after &&
	       f->bytes_out + f->bytes_in >= (f->pkts_out + f->pkts_in) * OFFLOAD_MIN_AVERAGE_BYTES;
}

/* F (locked) just passed a segment: should it go to the kernel, or (having left ESTABLISHED:
 * closing, reset) come back, so that its end is ours alone to time? */
static bool offload_due(const struct lg_engine *e, const struct lg_flow *f)
{
	return offload_wanted(e, f) ||
	       ((f->offload & LG_OFFLOAD_ON) && f->state != LG_TCP_ESTABLISHED);
}

/* The flow of a segment an inside host sends to P's destination, found or (for a SYN) made,
 * with the segment tracked in it. ACCEPT with *OUT set (usable until the caller leaves the
 * engine), or the verdict for a refused segment. */
static enum lg_verdict inside_session(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
				      uint32_t now_s, struct lg_flow **out, bool *offload)
{
	struct lg_flow *f = lg_eng_usable(e, c, &e->t4, lg_flowtab_find_inside(e->t4.flows, p->saddr, p->sport,
								  p->daddr, p->dport), now_s, false);
	bool bare_syn = (p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK)) == LG_TCP_SYN, sooner;
	uint8_t before;

	if (!f) {
		enum lg_drop_reason why;

		struct lg_flow_desc d = { LG_RULE_OUT, LG_RULE_TCP, 4, (const uint8_t *)&p->saddr,
					  (const uint8_t *)&p->daddr, ntohs(p->dport) };
		struct lg_icmp_dest to = { .family = 4, .addr4 = p->saddr };

		if ((p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK | LG_TCP_RST)) != LG_TCP_SYN)
			return lg_eng_drop(c, LG_DROP_NO_FLOW_OUT);
		if (lg_eng_rules(e, c, p, &d, &to, icmp_quote_len(p)) != LG_VERDICT_ACCEPT)
			return LG_VERDICT_DROP;
		pthread_mutex_lock(&e->wlock);
		/* another thread may have made it since the lookup */
		f = lg_eng_usable(e, c, &e->t4, lg_flowtab_find_inside(e->t4.flows, p->saddr, p->sport, p->daddr,
							 p->dport), now_s, true);
		if (!f) {
			f = make_flow(e, c, p->saddr, p->sport, p->daddr, p->dport, now_s, &why);
			if (f) {
				lg_eng_observe_open(e, c, f, false);
				lg_flow_lock(f);
			}
		}
		pthread_mutex_unlock(&e->wlock);
		if (!f)
			return refuse(e, c, p, why);
	}
	before = f->state;
	sooner = lg_eng_track_segment(c, f, 0, p, now_s);
	f->pkts_out++;
	f->bytes_out += p->len;
	*offload = offload_due(e, f);
	lg_flow_unlock(f);
	lg_eng_observe(e, f, true, p, now_s);
	/* RFC 7857 section 7.1: the inside's RST to a connection attempt refreshes nothing */
	if (!((p->tcp_flags & LG_TCP_RST) && lg_eng_end_refused(e, c, &e->t4, f, before, now_s)) &&
	    sooner)
		lg_eng_rearm_sooner(e, &e->t4, f);
	/* N5382-R4: the inside opening the connection an unsolicited SYN asked for wins */
	if (bare_syn) {
		struct lg_synhold_key k = lg_synhold_key4(f->rem_addr, f->rem_port, f->pub_addr,
							    f->pub_port);

		lg_eng_supersede_held(e, c, &k);
	}
	BUMP(c, packets_out);
	ADD(c, bytes_out, p->len);
	*out = f;
	return LG_VERDICT_ACCEPT;
}

/* Hand F to the kernel or take it back, as offload_due found (checked again: another thread
 * may have been first). Takes the writer lock, as end_flow holds it, so a flow never ends with
 * its offload half done. */
static void change_offload(struct lg_engine *e, struct lg_ctx *c, struct lg_flow *f)
{
	bool on, off;

	pthread_mutex_lock(&e->wlock);
	lg_flow_lock(f);
	on = (f->flags & LG_FLOW_LIVE) && offload_wanted(e, f);
	off = (f->flags & LG_FLOW_LIVE) && (f->offload & LG_OFFLOAD_ON) &&
	      f->state != LG_TCP_ESTABLISHED;
	lg_flow_unlock(f);
	if (on) {
		bool taken = e->offload_fn(e->offload_arg, true, f) == 0;

		lg_flow_lock(f);
		f->offload = taken ? LG_OFFLOAD_ON : LG_OFFLOAD_REFUSED;
		lg_flow_unlock(f);
		if (taken)
			BUMP(c, flows_offloaded);
		else
			BUMP(c, offloads_refused);
	} else if (off) {
		e->offload_fn(e->offload_arg, false, f);
		lg_flow_lock(f);
		f->offload = 0;
		lg_flow_unlock(f);
	}
	pthread_mutex_unlock(&e->wlock);
}

static enum lg_verdict outbound(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p,
				uint32_t now_s, bool kernel_nat)
{
	struct lg_flow *f;
	bool offload;
	enum lg_verdict v = inside_session(e, c, p, now_s, &f, &offload);

	if (v != LG_VERDICT_ACCEPT)
		return v;
	if (kernel_nat)
		BUMP(c, packets_kernel_nat);
	else
		lg_nat_rewrite_src(p, f->pub_addr, f->pub_port);
	if (offload)
		change_offload(e, c, f);
	return v;
}

void lg_eng_supersede_held(struct lg_engine *e, struct lg_ctx *c, const struct lg_synhold_key *k)
{
	bool cancelled;

	pthread_mutex_lock(&e->aux);
	cancelled = lg_synhold_cancel(&e->synhold, k);
	pthread_mutex_unlock(&e->aux);
	if (cancelled)
		BUMP(c, syn_hold_superseded);
}

enum lg_verdict lg_eng_unsolicited(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
				   const struct lg_synhold_key *k, size_t quote, uint64_t now_ns,
				   enum lg_drop_reason why)
{
	if ((p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK | LG_TCP_RST | LG_TCP_FIN)) == LG_TCP_SYN &&
	    quote) {
		bool held;

		pthread_mutex_lock(&e->aux);
		held = lg_synhold_note(&e->synhold, k, now_ns, p->ip, quote);
		pthread_mutex_unlock(&e->aux);
		if (held)
			BUMP(c, syn_held);
	}
	return lg_eng_drop(c, why);
}

/* An inbound SYN nobody asked for (IPv4): its answer quotes the IP header and 8 bytes. */
static enum lg_verdict unsolicited(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
				   uint64_t now_ns, enum lg_drop_reason why)
{
	struct lg_synhold_key k = lg_synhold_key4(p->saddr, p->sport, p->daddr, p->dport);

	return lg_eng_unsolicited(e, c, p, &k, icmp_quote_len(p), now_ns, why);
}

/* With the writer lock: a flow for an inbound SYN to P's public port, if a mapping admits its
 * source (RFC 5382 section 4.3, N5382-R3); NULL with *WHY otherwise. */
static struct lg_flow *admit(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
			     uint32_t now_s, enum lg_drop_reason *why)
{
	uint32_t in_addr;
	uint16_t in_port;
	struct lg_flow *f;
	int pub = lg_eng_public(e, p->daddr);

	if (pub < 0 || !lg_natmap_owner(e->pub[pub].maps, p->dport, &in_addr, &in_port)) {
		*why = LG_DROP_UNSOLICITED;
		return NULL;
	}
	if (lg_eng_pol(e)->filtering == LG_FILTER_ADDRESS_DEPENDENT &&
	    !lg_natmap_sent_to(e->pub[pub].maps, e->t4.flows, p->dport, p->saddr)) {
		*why = LG_DROP_FILTERED;
		return NULL;
	}
	{
		struct lg_flow_desc d = { LG_RULE_IN, LG_RULE_TCP, 4, (const uint8_t *)&p->saddr,
					  (const uint8_t *)&in_addr, ntohs(in_port) };
		enum lg_rule_action a = lg_policy_rules_verdict(lg_eng_pol(e), &d, NULL);
		struct lg_icmp_dest to = { .family = 4, .addr4 = p->saddr };

		if (a != LG_RULE_PASS) {
			if (a == LG_RULE_BLOCK_RETURN)
				queue_refusal(e, c, p, &to, icmp_quote_len(p), true);
			*why = LG_DROP_RULE;
			return NULL;
		}
	}
	f = make_flow(e, c, in_addr, in_port, p->saddr, p->sport, now_s, why);
	if (f) {
		lg_flow_lock(f);
		f->flags |= LG_FLOW_INBOUND;
		lg_flow_unlock(f);
		lg_eng_observe_open(e, c, f, true);
	}
	return f;
}

/* The flow of a segment arriving at P's public port from P's source, found or (for a SYN a
 * mapping admits) made, with the segment tracked in it. ACCEPT with *OUT set, or the verdict
 * for a refused segment; HOLD: remember a refused SYN to answer it later (N5382-R4). Refused
 * packets refresh nothing (RFC 7857 section 7). */
static enum lg_verdict outside_session(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
				       uint64_t now_ns, bool hold, struct lg_flow **out, bool *offload)
{
	uint32_t now_s = lg_eng_seconds(now_ns);
	struct lg_flow *f = lg_eng_usable(e, c, &e->t4, lg_flowtab_find_public(e->t4.flows, p->daddr, p->dport, p->saddr,
								  p->sport), now_s, false);
	bool sooner;

	if (!f) {
		enum lg_drop_reason why = LG_DROP_UNSOLICITED;

		if ((p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK | LG_TCP_RST)) == LG_TCP_SYN) {
			pthread_mutex_lock(&e->wlock);
			f = lg_eng_usable(e, c, &e->t4, lg_flowtab_find_public(e->t4.flows, p->daddr, p->dport, p->saddr,
								 p->sport), now_s, true);
			if (!f) {
				f = admit(e, c, p, now_s, &why);
				if (f)
					lg_flow_lock(f);
			}
			pthread_mutex_unlock(&e->wlock);
		}
		if (!f) {
			if (why == LG_DROP_UNSOLICITED || why == LG_DROP_FILTERED)
				return hold ? unsolicited(e, c, p, now_ns, why) : lg_eng_drop(c, why);
			return lg_eng_drop(c, why);
		}
	}
	sooner = lg_eng_track_segment(c, f, 1, p, now_s);
	f->pkts_in++;
	f->bytes_in += p->len;
	*offload = offload_due(e, f);
	lg_flow_unlock(f);
	lg_eng_observe(e, f, false, p, now_s);
	if (sooner)
		lg_eng_rearm_sooner(e, &e->t4, f);
	BUMP(c, packets_in);
	ADD(c, bytes_in, p->len);
	*out = f;
	return LG_VERDICT_ACCEPT;
}

static enum lg_verdict inbound(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p,
			       uint64_t now_ns, bool kernel_nat)
{
	struct lg_flow *f;
	bool offload;
	enum lg_verdict v = outside_session(e, c, p, now_ns, true, &f, &offload);

	if (v != LG_VERDICT_ACCEPT)
		return v;
	if (kernel_nat)
		BUMP(c, packets_kernel_nat);
	else
		lg_nat_rewrite_dst(p, f->in_addr, f->in_port);
	if (offload)
		change_offload(e, c, f);
	return v;
}

/* Hairpinning (RFC 5382 section 7.2), first pass, before routing: an inside host sends to a
 * public port. It is an outbound session for the sender and an inbound one for the mapping's
 * owner, who must see the sender's public endpoint (N5382-R8a). Only the destination is
 * rewritten here: a source rewritten to our own address before routing would be dropped by
 * the kernel as a martian. The second pass, after routing, rewrites the source. */
static enum lg_verdict hairpin_in(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p,
				  uint64_t now_ns)
{
	struct lg_flow *from, *to;
	struct lg_pkt as_seen = *p;
	bool offload; /* hairpinned flows stay ours: both legs are rewritten here */
	enum lg_verdict v = inside_session(e, c, p, lg_eng_seconds(now_ns), &from, &offload);

	if (v != LG_VERDICT_ACCEPT)
		return v;
	as_seen.saddr = from->pub_addr;
	as_seen.sport = from->pub_port;
	/* no ICMP about a refused hairpin SYN: it would go to our own public address */
	v = outside_session(e, c, &as_seen, now_ns, false, &to, &offload);
	if (v != LG_VERDICT_ACCEPT)
		return v;
	BUMP(c, hairpinned);
	lg_nat_rewrite_dst(p, to->in_addr, to->in_port);
	return LG_VERDICT_ACCEPT;
}

/* Hairpinning, second pass, after routing: inside to inside, the source becomes the sender's
 * public endpoint. The sessions were found or made in the first pass. */
static enum lg_verdict hairpin_out(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p)
{
	uint16_t target_pub;
	bool mapped;
	struct lg_flow *from;
	struct lg_public *target = lg_eng_paired(e, p->daddr);

	pthread_mutex_lock(&e->wlock);
	mapped = lg_natmap_port_of(target->maps, p->daddr, p->dport, &target_pub);
	pthread_mutex_unlock(&e->wlock);
	if (!mapped)
		return lg_eng_drop(c, LG_DROP_NO_FLOW_OUT);
	from = lg_flowtab_find_inside(e->t4.flows, p->saddr, p->sport, target->addr, target_pub);
	if (!from)
		return lg_eng_drop(c, LG_DROP_NO_FLOW_OUT);
	lg_nat_rewrite_src(p, from->pub_addr, from->pub_port);
	return LG_VERDICT_ACCEPT;
}

/* An ICMP error about one of our flows is translated through that flow and passed on. It never
 * changes, shortens, ends or refreshes the flow (RFC 5382 REQ-10, RFC 5383 section 4.2): only
 * the flow's fixed tuple is read. */
/* An echo from inside leaves with the public address and the session's public id; its
 * reply comes back to the inside host (RFC 5508 section 3). Echo replies to the public address
 * that belong to no session are the gateway's own: passed untouched. */
static enum lg_verdict echo(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p, uint64_t now_ns,
			    bool *modified)
{
	const struct lg_policy *pol = lg_eng_pol(e);
	struct lg_echo_session s;
	bool ok, known = false;
	int pub = lg_eng_public(e, p->daddr);

	if (p->icmp.type == LG_ICMP_ECHO_REQUEST && lg_policy_is_inside(pol, p->saddr) &&
	    !lg_policy_is_inside(pol, p->daddr) && pub < 0) {
		struct lg_public *paired = lg_eng_paired(e, p->saddr);
		struct lg_flow_desc d = { LG_RULE_OUT, LG_RULE_ICMP, 4, (const uint8_t *)&p->saddr,
					  (const uint8_t *)&p->daddr, 0 };
		struct lg_icmp_dest to = { .family = 4, .addr4 = p->saddr };

		if (lg_eng_rules(e, c, p, &d, &to, icmp_quote_len(p)) != LG_VERDICT_ACCEPT)
			return LG_VERDICT_DROP;
		pthread_mutex_lock(&e->echo_lock);
		ok = lg_echomap_outbound(paired->echo, p->saddr, p->query_id, p->daddr,
					 lg_eng_seconds(now_ns), &s);
		pthread_mutex_unlock(&e->echo_lock);
		if (!ok)
			return lg_eng_drop(c, LG_DROP_NO_PORT);
		lg_nat_echo_out(p, paired->addr, s.pub_id);
		BUMP(c, icmp_echo_out);
		*modified = true;
		return LG_VERDICT_ACCEPT;
	}
	if (p->icmp.type == LG_ICMP_ECHO_REPLY && pub >= 0 && !lg_policy_is_inside(pol, p->saddr)) {
		pthread_mutex_lock(&e->echo_lock);
		ok = lg_echomap_inbound(e->pub[pub].echo, p->query_id, p->saddr,
					pol->filtering == LG_FILTER_ADDRESS_DEPENDENT, lg_eng_seconds(now_ns), &s);
		if (!ok)
			known = lg_echomap_by_public(e->pub[pub].echo, p->query_id, lg_eng_seconds(now_ns),
						     &s);
		pthread_mutex_unlock(&e->echo_lock);
		if (known)
			return lg_eng_drop(c, LG_DROP_FILTERED);
		if (ok) {
			lg_nat_echo_in(p, s.in_addr, s.in_id);
			BUMP(c, icmp_echo_in);
			*modified = true;
			return LG_VERDICT_ACCEPT;
		}
	}
	BUMP(c, passed_untranslated);
	return LG_VERDICT_ACCEPT;
}

/* An error about an echo we sent out goes back to the pinging host; the session is only read,
 * never refreshed or ended (RFC 5508 REQ-6). Inbound echo requests never reach the inside, so
 * an inside host has no echo of ours to complain about. */
static enum lg_verdict icmp_error_about_echo(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p,
					     uint64_t now_ns, bool *modified)
{
	const struct lg_icmp_error *ie = &p->icmp;
	struct lg_echo_session s;
	bool found = false;
	int pub = lg_eng_public(e, p->daddr);

	if (pub >= 0 && ie->inner_saddr == p->daddr && ie->inner_l4[0] == LG_ICMP_ECHO_REQUEST) {
		pthread_mutex_lock(&e->echo_lock);
		found = lg_echomap_by_public(e->pub[pub].echo, ie->inner_sport, lg_eng_seconds(now_ns),
					     &s);
		pthread_mutex_unlock(&e->echo_lock);
	}
	if (!found)
		return lg_eng_drop(c, LG_DROP_ICMP_NO_FLOW);
	lg_nat_icmp_to_inside(p, s.in_addr, s.in_id);
	BUMP(c, icmp_errors_in);
	lg_eng_count_icmp(c, 4, ie->type, ie->code);
	if (ie->type == 3 && ie->code == 4)
		BUMP(c, icmp_frag_needed);
	*modified = true;
	return LG_VERDICT_ACCEPT;
}

/* An inside host's error about a segment another inside host sent it through the public
 * address (RFC 5508 REQ-7), first pass, before routing: it quotes public:X -> complainer:P.
 * The complainer's session (to public:X) gives its public port; the sender's session (public
 * port X) gives the sender, who becomes the destination (REQ-7a). */
static enum lg_verdict hairpinned_icmp_error(struct lg_engine *e, struct lg_ctx *c,
					     struct lg_pkt *p, bool *modified)
{
	const struct lg_icmp_error *ie = &p->icmp;
	struct lg_flow *to, *from = NULL;

	to = lg_flowtab_find_inside(e->t4.flows, ie->inner_daddr, ie->inner_dport, ie->inner_saddr,
				    ie->inner_sport);
	if (to)
		from = lg_flowtab_find_public(e->t4.flows, ie->inner_saddr, ie->inner_sport,
					      to->pub_addr, to->pub_port);
	if (!from)
		return lg_eng_drop(c, LG_DROP_ICMP_NO_FLOW);
	lg_nat_icmp_hairpin(p, from->in_addr, from->in_port, to->pub_addr, to->pub_port);
	BUMP(c, icmp_errors_hairpinned);
	lg_eng_count_icmp(c, 4, ie->type, ie->code);
	*modified = true;
	return LG_VERDICT_ACCEPT;
}

/* The same error, second pass, after routing: it leaves from the public address, as the
 * hairpinned segments did (N5382-R8a). Before routing a source of our own would be a martian. */
static enum lg_verdict hairpinned_icmp_error_out(struct lg_engine *e, struct lg_ctx *c,
						 struct lg_pkt *p, bool *modified)
{
	const struct lg_icmp_error *ie = &p->icmp;

	if (!lg_flowtab_find_inside(e->t4.flows, ie->inner_saddr, ie->inner_sport, ie->inner_daddr,
				    ie->inner_dport))
		return lg_eng_drop(c, LG_DROP_ICMP_NO_FLOW);
	/* the complainer's public endpoint, which the quote already names */
	lg_nat_icmp_to_outside(p, ie->inner_daddr, ie->inner_dport);
	*modified = true;
	return LG_VERDICT_ACCEPT;
}

static enum lg_verdict icmp_error(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p,
				  uint64_t now_ns, bool *modified)
{
	const struct lg_icmp_error *ie = &p->icmp;
	const struct lg_policy *pol = lg_eng_pol(e);
	struct lg_flow *f;

	if (ie->inner_proto == LG_IPPROTO_ICMP)
		return icmp_error_about_echo(e, c, p, now_ns, modified);
	if (lg_eng_public(e, p->daddr) >= 0 && lg_policy_is_inside(pol, p->saddr) &&
	    lg_eng_public(e, ie->inner_saddr) >= 0 && lg_policy_is_inside(pol, ie->inner_daddr))
		return hairpinned_icmp_error(e, c, p, modified);
	if (lg_policy_is_inside(pol, p->saddr) && lg_policy_is_inside(pol, p->daddr) &&
	    lg_eng_public(e, ie->inner_daddr) >= 0 && lg_policy_is_inside(pol, ie->inner_saddr))
		return hairpinned_icmp_error_out(e, c, p, modified);
	if (lg_eng_public(e, p->daddr) >= 0) {
		/* about a segment we sent out: it quotes public:port -> remote */
		if (ie->inner_saddr != p->daddr)
			return lg_eng_drop(c, LG_DROP_ICMP_NO_FLOW);
		if (ntohs(ie->inner_sport) < pol->port_lo || ntohs(ie->inner_sport) > pol->port_hi) {
			/* the gateway's own connection, outside the NAT range: not ours to translate */
			BUMP(c, passed_untranslated);
			return LG_VERDICT_ACCEPT;
		}
		f = lg_flowtab_find_public(e->t4.flows, ie->inner_saddr, ie->inner_sport, ie->inner_daddr,
					   ie->inner_dport);
		if (!f)
			return lg_eng_drop(c, LG_DROP_ICMP_NO_FLOW);
		lg_nat_icmp_to_inside(p, f->in_addr, f->in_port);
		BUMP(c, icmp_errors_in);
	} else {
		/* from the inside, about a segment it received through us: remote -> inside */
		f = lg_flowtab_find_inside(e->t4.flows, ie->inner_daddr, ie->inner_dport, ie->inner_saddr,
					   ie->inner_sport);
		if (!f)
			return lg_eng_drop(c, LG_DROP_ICMP_NO_FLOW);
		lg_nat_icmp_to_outside(p, f->pub_addr, f->pub_port);
		BUMP(c, icmp_errors_out);
	}
	lg_eng_count_icmp(c, 4, ie->type, ie->code);
	if (ie->type == 3 && ie->code == 4)
		BUMP(c, icmp_frag_needed);
	*modified = true;
	return LG_VERDICT_ACCEPT;
}

static enum lg_verdict classify(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p,
				enum lg_pkt_status status, uint64_t now_ns, bool kernel_nat,
				bool *modified)
{
	enum lg_verdict v;
	bool to_public;

	if (status == LG_PKT_ICMP_UNSUPPORTED)
		return lg_eng_drop(c, LG_DROP_UNSUPPORTED);
	if (status != LG_PKT_OK) {
		BUMP(c, malformed[status]);
		return lg_eng_drop(c, LG_DROP_MALFORMED);
	}
	if (p->proto == LG_IPPROTO_ICMP && p->query)
		return echo(e, c, p, now_ns, modified);
	to_public = lg_eng_public(e, p->daddr) >= 0;
	if (p->proto == LG_IPPROTO_ICMP && (to_public || lg_policy_is_inside(lg_eng_pol(e), p->saddr)))
		return icmp_error(e, c, p, now_ns, modified);
	if (p->proto == LG_IPPROTO_ICMP) {
		BUMP(c, passed_untranslated);
		return LG_VERDICT_ACCEPT;
	}
	if (to_public && lg_policy_is_inside(lg_eng_pol(e), p->saddr))
		v = hairpin_in(e, c, p, now_ns);
	else if (lg_policy_is_inside(lg_eng_pol(e), p->saddr) && lg_policy_is_inside(lg_eng_pol(e), p->daddr))
		v = hairpin_out(e, c, p);
	else if (to_public)
		v = inbound(e, c, p, now_ns, kernel_nat);
	else if (lg_policy_is_inside(lg_eng_pol(e), p->saddr))
		v = outbound(e, c, p, lg_eng_seconds(now_ns), kernel_nat);
	else {
		BUMP(c, passed_untranslated);
		return LG_VERDICT_ACCEPT;
	}
	*modified = v == LG_VERDICT_ACCEPT && !kernel_nat;
	return v;
}

enum lg_verdict lg_engine_packet(struct lg_engine *e, uint8_t *buf, size_t caplen,
				 uint64_t now_ns, bool *modified, size_t *len_out)
{
	return lg_engine_packet_knat(e, buf, caplen, now_ns, false, modified, len_out);
}

enum lg_verdict lg_engine_packet_knat(struct lg_engine *e, uint8_t *buf, size_t caplen,
				      uint64_t now_ns, bool kernel_nat, bool *modified,
				      size_t *len_out)
{
	struct lg_pkt p;
	enum lg_pkt_status status = lg_pkt_parse(buf, caplen, &p);
	struct lg_ctx c;
	enum lg_verdict v;

	*modified = false;
	*len_out = caplen;
	enter(e, &c);
	if (p.family == 6)
		v = lg_eng_classify6(e, &c, &p, status, now_ns);
	else
		v = classify(e, &c, &p, status, now_ns, kernel_nat, modified);
	if (v == LG_VERDICT_ACCEPT) {
		BUMP(&c, verdict_accept_packets);
		ADD(&c, verdict_accept_bytes, caplen);
	} else {
		BUMP(&c, verdict_drop_packets);
		ADD(&c, verdict_drop_bytes, caplen);
	}
	leave(&c);
	if (*modified)
		*len_out = p.len;
	return v;
}

struct due_ctx {
	struct lg_engine *e;
	struct lg_ctx *c;
	lg_icmp_send_fn *send;
	void *arg;
};

/* A SYN held 6 s: port unreachable, ICMP 3/3 from the public address or ICMPv6 1/4 (the
 * kernel picks the gateway's source address), unless the policy says silent. */
static void answer_held_syn(const struct lg_synhold_entry *h, void *arg)
{
	struct due_ctx *d = arg;
	uint8_t pkt[8 + LG_SYNHOLD_QUOTE_MAX > LG_ICMP_ERR_LEN ? 8 + LG_SYNHOLD_QUOTE_MAX
							       : LG_ICMP_ERR_LEN];
	struct lg_icmp_dest to = { .family = h->key.family };
	size_t len;

	if (lg_eng_pol(d->e)->unsolicited_syn == LG_UNSOLICITED_SILENT) {
		BUMP(d->c, syn_hold_silent);
		return;
	}
	if (h->key.family == 6) {
		memcpy(to.addr6, h->key.rem, 16);
		len = lg_icmp6_build_error(pkt, 1, 4, h->quote, h->quote_len);
	} else {
		uint32_t from;

		memcpy(&to.addr4, h->key.rem, 4);
		memcpy(&from, h->key.local, 4); /* the public address the SYN was sent to */
		len = lg_icmp_build_error(pkt, from, to.addr4, 3, 3, h->quote, h->quote_len);
	}
	BUMP(d->c, icmp_port_unreachable_sent);
	d->send(pkt, len, &to, d->arg);
}

size_t lg_engine_due(struct lg_engine *e, uint64_t now_ns, lg_icmp_send_fn *send, void *arg)
{
	struct lg_ctx c;
	struct due_ctx d = { e, &c, send, arg };
	size_t n;

	slot_enter(e, &c);
	pthread_mutex_lock(&e->aux);
	for (size_t i = 0; i < e->refusal_count; i++) {
		const struct lg_pending_refusal *r = &e->refusals[i];
		uint8_t pkt[8 + LG_SYNHOLD_QUOTE_MAX > LG_ICMP_ERR_LEN ? 8 + LG_SYNHOLD_QUOTE_MAX
								       : LG_ICMP_ERR_LEN];
		bool prohibited = r->prohibited;
		size_t len;

		/* IPv6: 1/1 administratively prohibited, or 1/3 address unreachable, which Linux
		 * reports as EHOSTUNREACH just as it does ICMP 3/1 */
		if (r->to.family == 6)
			len = lg_icmp6_build_error(pkt, 1, prohibited ? 1 : 3, r->quote, r->quote_len);
		else
			len = lg_icmp_build_error(pkt, r->from4, r->to.addr4, 3,
						  prohibited ? 13 : 1, r->quote, r->quote_len);
		if (prohibited)
			BUMP(&c, icmp_admin_prohibited_sent);
		else
			BUMP(&c, icmp_host_unreachable_sent);
		send(pkt, len, &r->to, arg);
	}
	e->refusal_count = 0;
	n = lg_synhold_due(&e->synhold, now_ns, answer_held_syn, &d);
	pthread_mutex_unlock(&e->aux);
	slot_leave(&c);
	return n;
}

struct expire_ctx {
	struct lg_engine *e;
	struct lg_table *tb;
	struct lg_ctx *c;
	uint32_t now_s;
	size_t ended;
};

/* The timers came to F: it ends, or waits for its real deadline. */
static void on_due(struct lg_flow *f, void *arg)
{
	struct expire_ctx *x = arg;
	struct timing t = timing_of(x->e, f);

	if ((int32_t)(x->now_s - t.due_s) >= 0) {
		end_flow(x->e, x->tb, f, x->now_s);
		x->ended++;
	} else {
		lg_timers_arm(x->tb->timers, f, t.cls, t.due_s);
	}
}

size_t lg_engine_expire(struct lg_engine *e, uint64_t now_ns)
{
	struct lg_ctx c;
	struct expire_ctx x = { e, &e->t4, &c, lg_eng_seconds(now_ns), 0 };
	size_t looked;

	slot_enter(e, &c);
	for (int fam = 0; fam < 2; fam++) {
		x.tb = fam == 0 ? &e->t4 : &e->t6;
		if (!x.tb->flows)
			continue;
		do {
			pthread_mutex_lock(&e->wlock);
			looked = lg_timers_run(x.tb->timers, x.now_s, EXPIRE_BATCH, on_due, &x);
			pthread_mutex_unlock(&e->wlock);
		} while (looked == EXPIRE_BATCH);
	}
	ADD(&c, flows_expired, x.ended);
	pthread_mutex_lock(&e->echo_lock);
	for (size_t i = 0; i < e->pub_count; i++)
		ADD(&c, echo_sessions_expired, lg_echomap_expire(e->pub[i].echo, x.now_s));
	pthread_mutex_unlock(&e->echo_lock);
	slot_leave(&c);
	lg_flowtab_reclaim(e->t4.flows);
	if (e->t6.flows)
		lg_flowtab_reclaim(e->t6.flows);
	free_retired(e, false);
	return x.ended;
}

/* Walk TB's records: never unmapped, only reused, each is read under its lock, live or
 * skipped. False when FN asked to stop. */
static bool table_each(struct lg_engine *e, struct lg_table *tb, uint32_t now_s,
		       bool (*fn)(const struct lg_flow_view *v, void *arg), void *arg)
{
	size_t records = lg_flowtab_records(tb->flows);
	bool ipv6 = tb == &e->t6;

	for (uint32_t i = 0; i < records; i++) {
		struct lg_flow *f = lg_flowtab_record(tb->flows, i);
		struct lg_flow_view v;
		uint32_t idle, limit;

		lg_flow_lock(f);
		if (!(f->flags & LG_FLOW_LIVE)) {
			lg_flow_unlock(f);
			continue;
		}
		lg_flow_copy(&v.flow, f);
		if (ipv6) {
			const struct lg_flow_addr6 *a = lg_flowtab_addr6(tb->flows, f);

			memcpy(v.in6, a->in, 16);
			memcpy(v.rem6, a->rem, 16);
		}
		lg_flow_unlock(f);
		v.family = ipv6 ? 6 : 4;
		v.observed = v.flow.obs && lg_obs_view(e->obs, v.flow.obs, &v.obs);
		v.service = (uint8_t)(v.observed ? v.obs.service
				  : lg_policy_mail_service(lg_eng_pol(e),
							   ntohs((v.flow.flags & LG_FLOW_INBOUND) ? v.flow.in_port
												 : v.flow.rem_port)));
		v.pub_addr = ipv6 ? 0 : v.flow.pub_addr;
		idle = (int32_t)(now_s - v.flow.last_s) > 0 ? now_s - v.flow.last_s : 0;
		limit = idle_limit(e, v.flow.state, v.flow.flags);
		v.idle_s = idle;
		v.age_s = (int32_t)(now_s - v.flow.created_s) > 0 ? now_s - v.flow.created_s : 0;
		v.expires_in_s = idle < limit ? limit - idle : 0;
		v.timeout_s = limit;
		if (!fn(&v, arg))
			return false;
	}
	return true;
}

void lg_engine_flows_each(struct lg_engine *e, uint64_t now_ns,
			  bool (*fn)(const struct lg_flow_view *v, void *arg), void *arg)
{
	uint32_t now_s = lg_eng_seconds(now_ns);

	if (table_each(e, &e->t4, now_s, fn, arg) && e->t6.flows)
		table_each(e, &e->t6, now_s, fn, arg);
}

struct collect {
	struct lg_flow_view *out;
	size_t n, max;
};

static bool collect_one(const struct lg_flow_view *v, void *arg)
{
	struct collect *c = arg;

	if (c->n == c->max)
		return false;
	c->out[c->n++] = *v;
	return true;
}

size_t lg_engine_flows(struct lg_engine *e, uint64_t now_ns, struct lg_flow_view *out, size_t max)
{
	struct collect c = { out, 0, max };

	if (max)
		lg_engine_flows_each(e, now_ns, collect_one, &c);
	return c.n;
}

void lg_engine_stats(struct lg_engine *e, struct lg_engine_stats *out)
{
	uint64_t *sum = (uint64_t *)out;

	_Static_assert(sizeof(struct lg_engine_stats) % sizeof(uint64_t) == 0,
		       "engine counters are all 64-bit words");
	memset(out, 0, sizeof(*out));
	for (int s = 0; s < LG_QSBR_MAX_THREADS; s++) {
		const uint64_t *w = (const uint64_t *)&e->slots[s].st;

		for (size_t k = 0; k < sizeof(*out) / sizeof(uint64_t); k++)
			sum[k] += __atomic_load_n(&w[k], __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&e->aux);
	out->syn_hold_overflow = e->synhold.overflow;
	pthread_mutex_unlock(&e->aux);
	pthread_mutex_lock(&e->wlock);
	for (size_t i = 0; i < e->pub_count; i++)
		out->mappings_active += lg_natmap_count(e->pub[i].maps);
	pthread_mutex_unlock(&e->wlock);
	pthread_mutex_lock(&e->echo_lock);
	for (size_t i = 0; i < e->pub_count; i++)
		out->echo_sessions_active += lg_echomap_active(e->pub[i].echo);
	pthread_mutex_unlock(&e->echo_lock);
	out->flows_active = lg_flowtab_count(e->t4.flows);
	out->flows_capacity = lg_flowtab_capacity(e->t4.flows);
	out->table_bytes = lg_flowtab_memory(e->t4.flows);
	if (e->t6.flows) {
		out->flows6_active = lg_flowtab_count(e->t6.flows);
		out->flows6_capacity = lg_flowtab_capacity(e->t6.flows);
		out->table_bytes += lg_flowtab_memory(e->t6.flows);
	}
}

void lg_engine_set_mapping_log(struct lg_engine *e, lg_mapping_hook *fn, void *arg)
{
	pthread_mutex_lock(&e->wlock);
	for (size_t i = 0; i < e->pub_count; i++)
		lg_natmap_set_hook(e->pub[i].maps, fn, arg);
	pthread_mutex_unlock(&e->wlock);
}

void lg_engine_set_offload(struct lg_engine *e, lg_offload_hook *fn, void *arg)
{
	pthread_mutex_lock(&e->wlock);
	e->offload_fn = fn;
	e->offload_arg = arg;
	pthread_mutex_unlock(&e->wlock);
}

/* Free the replaced policies no packet thread can still hold; WAIT: until there is room. */
static void free_retired(struct lg_engine *e, bool wait)
{
	for (int tries = 0;; tries++) {
		size_t kept = 0;

		for (size_t i = 0; i < e->retired_count; i++) {
			if (lg_qsbr_passed(e->qsbr, e->retired[i].target))
				free(e->retired[i].pol);
			else
				e->retired[kept++] = e->retired[i];
		}
		e->retired_count = kept;
		if (!wait || kept < LG_RETIRED_MAX || tries > 10000)
			return;
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL); /* packet threads leave the engine between batches */
	}
}

/* Per-port facts of every flow of TB under the policy now in force. */
static void refresh_flags(struct lg_engine *e, struct lg_table *tb)
{
	size_t records = lg_flowtab_records(tb->flows);

	for (uint32_t i = 0; i < records; i++) {
		struct lg_flow *f = lg_flowtab_record(tb->flows, i);

		lg_flow_lock(f);
		if (f->flags & LG_FLOW_LIVE)
			f->flags = (uint8_t)((f->flags & ~(LG_FLOW_MAIL | LG_FLOW_SVC_MASK)) |
					     lg_eng_new_flags(e, f->rem_port));
		lg_flow_unlock(f);
	}
}

int lg_engine_reload(struct lg_engine *e, const struct lg_policy *new_pol, char *err, size_t errlen)
{
	struct lg_policy *fresh;
	struct lg_policy *old = e->pol;
	char fixed[256];

	if (lg_policy_fixed_changes(old, new_pol, fixed, sizeof(fixed))) {
		snprintf(err, errlen, "these settings need a restart: %s", fixed);
		return -1;
	}
	free_retired(e, true);
	fresh = malloc(sizeof(*fresh));
	if (!fresh) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*fresh = *new_pol;
	pthread_mutex_lock(&e->wlock);
	for (size_t i = 0; i < e->pub_count; i++)
		lg_natmap_set_limits(e->pub[i].maps, fresh->host_quota, fresh->port_rest);
	__atomic_store_n(&e->pol, fresh, __ATOMIC_RELEASE);
	refresh_flags(e, &e->t4);
	if (e->t6.flows)
		refresh_flags(e, &e->t6);
	pthread_mutex_unlock(&e->wlock);
	pthread_mutex_lock(&e->echo_lock);
	for (size_t i = 0; i < e->pub_count; i++)
		lg_echomap_set_limits(e->pub[i].echo, fresh->timeout_query, fresh->host_quota);
	pthread_mutex_unlock(&e->echo_lock);
	e->retired[e->retired_count].pol = old;
	e->retired[e->retired_count].target = lg_qsbr_advance(e->qsbr);
	e->retired_count++;
	return 0;
}

/* Would the rules in force refuse F (locked) were it new? */
static bool refused_now(const struct lg_policy *pol, const struct lg_flow *f,
			const struct lg_flow_addr6 *a6)
{
	bool in = f->flags & LG_FLOW_INBOUND;
	struct lg_flow_desc d = { in ? LG_RULE_IN : LG_RULE_OUT, LG_RULE_TCP, a6 ? 6 : 4, NULL, NULL,
				  ntohs(in ? f->in_port : f->rem_port) };

	if (a6) {
		d.from = in ? a6->rem : a6->in;
		d.to = in ? a6->in : a6->rem;
	} else {
		d.from = (const uint8_t *)(in ? &f->rem_addr : &f->in_addr);
		d.to = (const uint8_t *)(in ? &f->in_addr : &f->rem_addr);
	}
	return lg_policy_rules_verdict(pol, &d, NULL) != LG_RULE_PASS;
}

/* End every live flow, of both tables, that DOOMED (called with the flow locked) picks; with
 * the writer lock for the whole walk, as only an operator's explicit request walks so. */
static size_t end_flows_where(struct lg_engine *e, uint32_t now_s,
			      bool (*doomed)(const struct lg_policy *pol, const struct lg_flow *f,
					     const struct lg_flow_addr6 *a6),
			      const struct lg_policy *pol)
{
	size_t ended = 0;

	pthread_mutex_lock(&e->wlock);
	for (int fam = 0; fam < 2; fam++) {
		struct lg_table *tb = fam == 0 ? &e->t4 : &e->t6;
		size_t records = tb->flows ? lg_flowtab_records(tb->flows) : 0;

		for (uint32_t i = 0; i < records; i++) {
			struct lg_flow *f = lg_flowtab_record(tb->flows, i);
			bool end;

			lg_flow_lock(f);
			end = (f->flags & LG_FLOW_LIVE) &&
			      doomed(pol, f, fam ? lg_flowtab_addr6(tb->flows, f) : NULL);
			lg_flow_unlock(f);
			if (end) {
				end_flow(e, tb, f, now_s);
				ended++;
			}
		}
	}
	pthread_mutex_unlock(&e->wlock);
	return ended;
}

size_t lg_engine_reevaluate(struct lg_engine *e, uint64_t now_ns)
{
	const struct lg_policy *pol = lg_eng_pol(e);
	struct lg_ctx c;
	size_t ended;

	if (pol->rule_count == 0)
		return 0;
	ended = end_flows_where(e, lg_eng_seconds(now_ns), refused_now, pol);
	slot_enter(e, &c);
	ADD(&c, flows_ended_by_rule, ended);
	slot_leave(&c);
	return ended;
}

struct mapping_walk {
	bool (*fn)(const struct lg_mapping_view *v, void *arg);
	void *arg;
	uint32_t pub_addr, now_s;
	bool stopped;
};

static bool mapping_one(uint32_t in_addr, uint16_t in_port, uint16_t pub_port, uint32_t flows,
			void *arg)
{
	struct mapping_walk *w = arg;
	struct lg_mapping_view v = { LG_IPPROTO_TCP, in_addr, w->pub_addr, in_port, pub_port, flows, 0 };

	w->stopped = !w->fn(&v, w->arg);
	return !w->stopped;
}

static bool echo_one(const struct lg_echo_session *s, void *arg)
{
	struct mapping_walk *w = arg;
	struct lg_mapping_view v = { LG_IPPROTO_ICMP, s->in_addr, w->pub_addr, s->in_id, s->pub_id, 0,
				     (int32_t)(w->now_s - s->last_s) > 0 ? w->now_s - s->last_s : 0 };

	w->stopped = !w->fn(&v, w->arg);
	return !w->stopped;
}

void lg_engine_mappings_each(struct lg_engine *e, uint64_t now_ns,
			     bool (*fn)(const struct lg_mapping_view *v, void *arg), void *arg)
{
	struct mapping_walk w = { fn, arg, 0, lg_eng_seconds(now_ns), false };

	pthread_mutex_lock(&e->wlock);
	for (size_t i = 0; i < e->pub_count && !w.stopped; i++) {
		w.pub_addr = e->pub[i].addr;
		lg_natmap_each(e->pub[i].maps, mapping_one, &w);
	}
	pthread_mutex_unlock(&e->wlock);
	pthread_mutex_lock(&e->echo_lock);
	for (size_t i = 0; i < e->pub_count && !w.stopped; i++) {
		w.pub_addr = e->pub[i].addr;
		lg_echomap_each(e->pub[i].echo, w.now_s, echo_one, &w);
	}
	pthread_mutex_unlock(&e->echo_lock);
}

static bool any_flow(const struct lg_policy *pol, const struct lg_flow *f,
		     const struct lg_flow_addr6 *a6)
{
	(void)pol;
	(void)f;
	(void)a6;
	return true;
}

size_t lg_engine_flush(struct lg_engine *e, uint64_t now_ns, size_t *echoes)
{
	size_t ended = end_flows_where(e, lg_eng_seconds(now_ns), any_flow, NULL), echo_ended;

	echo_ended = 0;
	pthread_mutex_lock(&e->echo_lock);
	for (size_t i = 0; i < e->pub_count; i++)
		echo_ended += lg_echomap_flush(e->pub[i].echo);
	pthread_mutex_unlock(&e->echo_lock);
	if (echoes)
		*echoes = echo_ended;
	return ended;
}

const struct lg_policy *lg_engine_policy(const struct lg_engine *e)
{
	return lg_eng_pol(e);
}

void lg_engine_set_port_ledger(struct lg_engine *e, struct lg_portledger *ledger,
			       const uint32_t *rest_left, uint64_t now_ns)
{
	pthread_mutex_lock(&e->wlock);
	for (size_t i = 0; i < e->pub_count; i++)
		lg_natmap_set_ledger(e->pub[i].maps, ledger, i, rest_left + i * LG_PORTLEDGER_PORTS,
				     lg_eng_seconds(now_ns));
	pthread_mutex_unlock(&e->wlock);
}

void lg_mapping_log_format(bool created, uint32_t in_addr, uint16_t in_port, uint32_t pub_addr,
			   uint16_t pub_port, char *buf, size_t size)
{
	char in[INET_ADDRSTRLEN], pub[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &in_addr, in, sizeof(in));
	inet_ntop(AF_INET, &pub_addr, pub, sizeof(pub));
	snprintf(buf, size, "mapping %s proto=tcp inside=%s:%u public=%s:%u",
		 created ? "create" : "release", in, ntohs(in_port), pub, ntohs(pub_port));
}

const char *lg_drop_reason_name(enum lg_drop_reason reason)
{
	static const char *const names[LG_DROP_REASON_COUNT] = {
		[LG_DROP_MALFORMED] = "malformed",
		[LG_DROP_NO_FLOW_OUT] = "no_flow_outbound",
		[LG_DROP_UNSOLICITED] = "unsolicited_inbound",
		[LG_DROP_FILTERED] = "filtered_inbound",
		[LG_DROP_ICMP_NO_FLOW] = "icmp_error_without_flow",
		[LG_DROP_UNSUPPORTED] = "unsupported",
		[LG_DROP_TABLE_FULL] = "table_full",
		[LG_DROP_NO_PORT] = "no_public_port",
		[LG_DROP_QUOTA] = "host_quota",
		[LG_DROP_INDEX_FULL] = "index_full",
		[LG_DROP_RULE] = "blocked_by_rule",
	};

	return (unsigned)reason < LG_DROP_REASON_COUNT ? names[reason] : "unknown";
}
