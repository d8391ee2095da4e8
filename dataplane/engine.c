#include "dataplane/engine.h"

#include "dataplane/icmpgen.h"
#include "dataplane/nat.h"
#include "dataplane/synhold.h"
#include "dataplane/tcpstate.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000ull

#define REFUSAL_RING 256 /* ICMP 3/1 answers queued between two due() calls; more are dropped */

struct refusal {
	uint32_t dst;
	uint8_t quote[LG_ICMP_QUOTE_MAX];
	uint8_t quote_len;
};

/* One lock serialises the table for now; the flow-table issue replaces it with a
 * lock-free table. Counters live under the same lock. */
struct lg_engine {
	pthread_mutex_t lock;
	struct lg_policy pol;
	struct lg_flowtab *flows;
	struct lg_synhold synhold;
	struct refusal refusals[REFUSAL_RING];
	size_t refusal_count;
	struct lg_engine_stats st;
};

struct lg_engine *lg_engine_create(const struct lg_policy *pol, uint64_t seed)
{
	struct lg_engine *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->pol = *pol;
	e->flows = lg_flowtab_create(pol->max_flows, pol->nat_public, pol->port_lo, pol->port_hi,
				     pol->host_quota, seed);
	lg_synhold_init(&e->synhold, seed ^ 0x5eed5eedull);
	if (!e->flows || pthread_mutex_init(&e->lock, NULL) != 0) {
		lg_flowtab_destroy(e->flows);
		free(e);
		return NULL;
	}
	return e;
}

void lg_engine_destroy(struct lg_engine *e)
{
	if (!e)
		return;
	lg_flowtab_destroy(e->flows);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static uint64_t idle_limit_ns(const struct lg_engine *e, const struct lg_flow *f)
{
	uint32_t s = lg_tcp_is_transitory(f->state) ? e->pol.timeout_transitory
						    : e->pol.timeout_established;
	return (uint64_t)s * NS_PER_S;
}

static bool expired(const struct lg_engine *e, const struct lg_flow *f, uint64_t now_ns)
{
	return now_ns > f->last_ns && now_ns - f->last_ns > idle_limit_ns(e, f);
}

/* F, unless it has been idle past its deadline: then it goes now rather than at the sweep. */
static struct lg_flow *unexpired(struct lg_engine *e, struct lg_flow *f, uint64_t now_ns)
{
	if (f && expired(e, f, now_ns)) {
		lg_flowtab_remove(e->flows, f);
		e->st.flows_expired++;
		return NULL;
	}
	return f;
}

/* How much of P an ICMP error about it quotes: the IP header and 8 bytes (RFC 792). A header
 * with options does not fit LG_ICMP_QUOTE_MAX: 0, and no error is sent about it. */
static size_t icmp_quote_len(const struct lg_pkt *p)
{
	return p->ihl + 8 <= LG_ICMP_QUOTE_MAX ? p->ihl + 8 : 0;
}

static enum lg_verdict drop(struct lg_engine *e, enum lg_drop_reason why)
{
	e->st.dropped[why]++;
	return LG_VERDICT_DROP;
}

/* Move FLOW's state and timers for a segment from SIDE (0 inside, 1 outside), unless it is
 * a RST that does not belong to the connection: that one is passed on unbelieved. */
static void track_segment(struct lg_engine *e, struct lg_flow *f, int side, const struct lg_pkt *p,
			  uint64_t now_ns)
{
	if (p->tcp_flags & LG_TCP_RST) {
		if (!lg_tcp_rst_valid(&f->track, side, p)) {
			e->st.rst_out_of_window++;
			return;
		}
	} else {
		lg_tcp_track_update(&f->track, side, p);
	}
	f->state = (uint8_t)lg_tcp_next(f->state, side == 0, p->tcp_flags);
	f->last_ns = now_ns;
}

static enum lg_drop_reason refusal_reason(enum lg_flowtab_error err)
{
	switch (err) {
	case LG_FLOWTAB_FULL: return LG_DROP_TABLE_FULL;
	case LG_FLOWTAB_QUOTA: return LG_DROP_QUOTA;
	default: return LG_DROP_NO_PORT;
	}
}

/* A new outbound flow that cannot be had: dropped, no existing mapping given up for it, and the
 * inside host told at once with host unreachable (RFC 6888 REQ-4, REQ-11). */
static enum lg_verdict refuse(struct lg_engine *e, const struct lg_pkt *p, enum lg_flowtab_error err)
{
	size_t quote = icmp_quote_len(p);

	if (quote && e->refusal_count < REFUSAL_RING) {
		struct refusal *r = &e->refusals[e->refusal_count++];

		r->dst = p->saddr;
		memcpy(r->quote, p->ip, quote);
		r->quote_len = (uint8_t)quote;
	} else {
		e->st.icmp_refusals_suppressed++;
	}
	return drop(e, refusal_reason(err));
}

/* The flow of a segment an inside host sends to P's destination, found or (for a SYN) made,
 * with the segment tracked in it. ACCEPT with *OUT set, or the verdict for a refused segment. */
static enum lg_verdict inside_session(struct lg_engine *e, const struct lg_pkt *p, uint64_t now_ns,
				      struct lg_flow **out)
{
	struct lg_flow *f = unexpired(e, lg_flowtab_find_inside(e->flows, p->saddr, p->sport, p->daddr,
								p->dport), now_ns);

	if (!f) {
		enum lg_flowtab_error err;

		if ((p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK | LG_TCP_RST)) != LG_TCP_SYN)
			return drop(e, LG_DROP_NO_FLOW_OUT);
		f = lg_flowtab_insert(e->flows, p->saddr, p->sport, p->daddr, p->dport, now_ns, &err);
		if (!f)
			return refuse(e, p, err);
		e->st.flows_created++;
	}
	/* N5382-R4: the inside opening the connection an unsolicited SYN asked for wins */
	if ((p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK)) == LG_TCP_SYN &&
	    lg_synhold_cancel(&e->synhold, f->rem_addr, f->rem_port, f->pub_port))
		e->st.syn_hold_superseded++;
	track_segment(e, f, 0, p, now_ns);
	f->pkts_out++;
	f->bytes_out += p->len;
	e->st.packets_out++;
	e->st.bytes_out += p->len;
	*out = f;
	return LG_VERDICT_ACCEPT;
}

static enum lg_verdict outbound(struct lg_engine *e, struct lg_pkt *p, uint64_t now_ns)
{
	struct lg_flow *f;
	enum lg_verdict v = inside_session(e, p, now_ns, &f);

	if (v == LG_VERDICT_ACCEPT)
		lg_nat_rewrite_src(p, f->pub_addr, f->pub_port);
	return v;
}

/* An inbound SYN nobody asked for: dropped now, and remembered so that it can be answered
 * after 6 s (N5382-R4), unless the inside opens the same connection first. */
static enum lg_verdict unsolicited(struct lg_engine *e, const struct lg_pkt *p, uint64_t now_ns,
				   enum lg_drop_reason why)
{
	if ((p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK | LG_TCP_RST | LG_TCP_FIN)) == LG_TCP_SYN) {
		size_t quote = icmp_quote_len(p);

		if (quote && lg_synhold_note(&e->synhold, p->saddr, p->sport, p->dport, now_ns,
					     p->ip, quote))
			e->st.syn_held++;
	}
	return drop(e, why);
}

/* The flow of a segment arriving at P's public port from P's source, found or (for a SYN a
 * mapping admits) made, with the segment tracked in it. ACCEPT with *OUT set, or the verdict
 * for a refused segment; HOLD: remember a refused SYN to answer it later (N5382-R4). */
static enum lg_verdict outside_session(struct lg_engine *e, const struct lg_pkt *p, uint64_t now_ns,
				       bool hold, struct lg_flow **out)
{
	struct lg_flow *f = unexpired(e, lg_flowtab_find_public(e->flows, p->dport, p->saddr, p->sport),
				      now_ns);

	if (!f) {
		uint32_t in_addr;
		uint16_t in_port;
		enum lg_flowtab_error err;

		/* Only a SYN opens a flow from outside, and only through an existing mapping
		 * that admits its source (RFC 5382 section 4.3, N5382-R3). Refused packets
		 * refresh nothing (RFC 7857 section 7). */
		if ((p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK | LG_TCP_RST)) != LG_TCP_SYN ||
		    !lg_flowtab_mapping_of_port(e->flows, p->dport, &in_addr, &in_port))
			return hold ? unsolicited(e, p, now_ns, LG_DROP_UNSOLICITED)
				    : drop(e, LG_DROP_UNSOLICITED);
		if (e->pol.filtering == LG_FILTER_ADDRESS_DEPENDENT &&
		    !lg_flowtab_mapping_sent_to(e->flows, p->dport, p->saddr))
			return hold ? unsolicited(e, p, now_ns, LG_DROP_FILTERED)
				    : drop(e, LG_DROP_FILTERED);
		f = lg_flowtab_insert(e->flows, in_addr, in_port, p->saddr, p->sport, now_ns, &err);
		if (!f)
			return drop(e, refusal_reason(err));
		e->st.flows_created++;
	}
	track_segment(e, f, 1, p, now_ns);
	f->pkts_in++;
	f->bytes_in += p->len;
	e->st.packets_in++;
	e->st.bytes_in += p->len;
	*out = f;
	return LG_VERDICT_ACCEPT;
}

static enum lg_verdict inbound(struct lg_engine *e, struct lg_pkt *p, uint64_t now_ns)
{
	struct lg_flow *f;
	enum lg_verdict v = outside_session(e, p, now_ns, true, &f);

	if (v == LG_VERDICT_ACCEPT)
		lg_nat_rewrite_dst(p, f->in_addr, f->in_port);
	return v;
}

/* Hairpinning (RFC 5382 section 7.2), first pass, before routing: an inside host sends to a
 * public port. It is an outbound session for the sender and an inbound one for the mapping's
 * owner, who must see the sender's public endpoint (N5382-R8a). Only the destination is
 * rewritten here: a source rewritten to our own address before routing would be dropped by
 * the kernel as a martian. The second pass, after routing, rewrites the source. */
static enum lg_verdict hairpin_in(struct lg_engine *e, struct lg_pkt *p, uint64_t now_ns)
{
	struct lg_flow *from, *to;
	struct lg_pkt as_seen = *p;
	enum lg_verdict v = inside_session(e, p, now_ns, &from);

	if (v != LG_VERDICT_ACCEPT)
		return v;
	as_seen.saddr = from->pub_addr;
	as_seen.sport = from->pub_port;
	/* no ICMP about a refused hairpin SYN: it would go to our own public address */
	v = outside_session(e, &as_seen, now_ns, false, &to);
	if (v != LG_VERDICT_ACCEPT)
		return v;
	e->st.hairpinned++;
	lg_nat_rewrite_dst(p, to->in_addr, to->in_port);
	return LG_VERDICT_ACCEPT;
}

/* Hairpinning, second pass, after routing: inside to inside, the source becomes the sender's
 * public endpoint. The sessions were found or made in the first pass. */
static enum lg_verdict hairpin_out(struct lg_engine *e, struct lg_pkt *p)
{
	uint16_t target_pub;
	struct lg_flow *from;

	if (!lg_flowtab_port_of_mapping(e->flows, p->daddr, p->dport, &target_pub))
		return drop(e, LG_DROP_NO_FLOW_OUT);
	from = lg_flowtab_find_inside(e->flows, p->saddr, p->sport, e->pol.nat_public, target_pub);
	if (!from)
		return drop(e, LG_DROP_NO_FLOW_OUT);
	lg_nat_rewrite_src(p, from->pub_addr, from->pub_port);
	return LG_VERDICT_ACCEPT;
}

/* An ICMP error about one of our flows is translated through that flow and passed on. It never
 * changes, shortens, ends or refreshes the flow (RFC 5382 REQ-10, RFC 5383 section 4.2). */
static enum lg_verdict icmp_error(struct lg_engine *e, struct lg_pkt *p, bool *modified)
{
	const struct lg_icmp_error *ie = &p->icmp;
	struct lg_flow *f;

	if (p->daddr == e->pol.nat_public) {
		/* about a segment we sent out: it quotes public:port -> remote */
		if (ie->inner_saddr != e->pol.nat_public)
			return drop(e, LG_DROP_ICMP_NO_FLOW);
		if (ntohs(ie->inner_sport) < e->pol.port_lo || ntohs(ie->inner_sport) > e->pol.port_hi) {
			/* the gateway's own connection, outside the NAT range: not ours to translate */
			e->st.passed_untranslated++;
			return LG_VERDICT_ACCEPT;
		}
		f = lg_flowtab_find_public(e->flows, ie->inner_sport, ie->inner_daddr, ie->inner_dport);
		if (!f)
			return drop(e, LG_DROP_ICMP_NO_FLOW);
		lg_nat_icmp_to_inside(p, f->in_addr, f->in_port);
		e->st.icmp_errors_in++;
	} else {
		/* from the inside, about a segment it received through us: remote -> inside */
		f = lg_flowtab_find_inside(e->flows, ie->inner_daddr, ie->inner_dport, ie->inner_saddr,
					   ie->inner_sport);
		if (!f)
			return drop(e, LG_DROP_ICMP_NO_FLOW);
		lg_nat_icmp_to_outside(p, f->pub_addr, f->pub_port);
		e->st.icmp_errors_out++;
	}
	if (ie->type == 3 && ie->code == 4)
		e->st.icmp_frag_needed++;
	*modified = true;
	return LG_VERDICT_ACCEPT;
}

enum lg_verdict lg_engine_packet(struct lg_engine *e, uint8_t *buf, size_t caplen,
				 uint64_t now_ns, bool *modified, size_t *len_out)
{
	struct lg_pkt p;
	enum lg_pkt_status status = lg_pkt_parse(buf, caplen, &p);
	enum lg_verdict v;

	*modified = false;
	*len_out = caplen;
	pthread_mutex_lock(&e->lock);
	if (status == LG_PKT_ICMP_UNSUPPORTED) {
		v = drop(e, LG_DROP_UNSUPPORTED);
	} else if (status != LG_PKT_OK) {
		e->st.malformed[status]++;
		v = drop(e, LG_DROP_MALFORMED);
	} else if (p.proto == LG_IPPROTO_ICMP &&
		   (p.daddr == e->pol.nat_public || lg_policy_is_inside(&e->pol, p.saddr))) {
		v = icmp_error(e, &p, modified);
	} else if (p.proto == LG_IPPROTO_ICMP) {
		e->st.passed_untranslated++;
		v = LG_VERDICT_ACCEPT;
	} else if (p.daddr == e->pol.nat_public && lg_policy_is_inside(&e->pol, p.saddr)) {
		v = hairpin_in(e, &p, now_ns);
		*modified = v == LG_VERDICT_ACCEPT;
	} else if (lg_policy_is_inside(&e->pol, p.saddr) && lg_policy_is_inside(&e->pol, p.daddr)) {
		v = hairpin_out(e, &p);
		*modified = v == LG_VERDICT_ACCEPT;
	} else if (p.daddr == e->pol.nat_public) {
		v = inbound(e, &p, now_ns);
		*modified = v == LG_VERDICT_ACCEPT;
	} else if (lg_policy_is_inside(&e->pol, p.saddr)) {
		v = outbound(e, &p, now_ns);
		*modified = v == LG_VERDICT_ACCEPT;
	} else {
		e->st.passed_untranslated++;
		v = LG_VERDICT_ACCEPT;
	}
	pthread_mutex_unlock(&e->lock);
	if (*modified)
		*len_out = p.len;
	return v;
}

struct due_ctx {
	struct lg_engine *e;
	void (*send)(const uint8_t *pkt, size_t len, uint32_t dst, void *arg);
	void *arg;
};

static void answer_held_syn(const struct lg_synhold_entry *h, void *arg)
{
	struct due_ctx *c = arg;
	uint8_t pkt[LG_ICMP_ERR_LEN];
	size_t len;

	if (c->e->pol.unsolicited_syn == LG_UNSOLICITED_SILENT) {
		c->e->st.syn_hold_silent++;
		return;
	}
	len = lg_icmp_build_error(pkt, c->e->pol.nat_public, h->rem_addr, 3, 3, h->quote,
				  h->quote_len);
	c->e->st.icmp_port_unreachable_sent++;
	c->send(pkt, len, h->rem_addr, c->arg);
}

size_t lg_engine_due(struct lg_engine *e, uint64_t now_ns,
		     void (*send)(const uint8_t *pkt, size_t len, uint32_t dst, void *arg), void *arg)
{
	struct due_ctx c = { e, send, arg };
	size_t n;

	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->refusal_count; i++) {
		const struct refusal *r = &e->refusals[i];
		uint8_t pkt[LG_ICMP_ERR_LEN];
		size_t len = lg_icmp_build_error(pkt, e->pol.nat_public, r->dst, 3, 1, r->quote,
						 r->quote_len);

		e->st.icmp_host_unreachable_sent++;
		send(pkt, len, r->dst, arg);
	}
	e->refusal_count = 0;
	n = lg_synhold_due(&e->synhold, now_ns, answer_held_syn, &c);
	e->st.syn_hold_overflow = e->synhold.overflow;
	pthread_mutex_unlock(&e->lock);
	return n;
}

struct expire_ctx {
	struct lg_engine *e;
	uint64_t now_ns;
	size_t removed;
};

static bool expire_one(struct lg_flow *f, void *arg)
{
	struct expire_ctx *c = arg;

	if (!expired(c->e, f, c->now_ns))
		return false;
	c->removed++;
	return true;
}

size_t lg_engine_expire(struct lg_engine *e, uint64_t now_ns)
{
	struct expire_ctx c = { e, now_ns, 0 };

	pthread_mutex_lock(&e->lock);
	lg_flowtab_walk(e->flows, expire_one, &c);
	e->st.flows_expired += c.removed;
	pthread_mutex_unlock(&e->lock);
	return c.removed;
}

struct snap_ctx {
	const struct lg_engine *e;
	uint64_t now_ns;
	struct lg_flow_view *out;
	size_t n, max;
};

static bool snap_one(struct lg_flow *f, void *arg)
{
	struct snap_ctx *c = arg;
	struct lg_flow_view *v;
	uint64_t idle, limit;

	if (c->n >= c->max)
		return false;
	v = &c->out[c->n++];
	v->flow = *f;
	idle = c->now_ns > f->last_ns ? c->now_ns - f->last_ns : 0;
	limit = idle_limit_ns(c->e, f);
	v->idle_s = idle / NS_PER_S;
	v->age_s = c->now_ns > f->created_ns ? (c->now_ns - f->created_ns) / NS_PER_S : 0;
	v->expires_in_s = idle < limit ? (limit - idle) / NS_PER_S : 0;
	v->timeout_s = limit / NS_PER_S;
	return false;
}

size_t lg_engine_flows(struct lg_engine *e, uint64_t now_ns, struct lg_flow_view *out, size_t max)
{
	struct snap_ctx c = { e, now_ns, out, 0, max };

	pthread_mutex_lock(&e->lock);
	lg_flowtab_walk(e->flows, snap_one, &c);
	pthread_mutex_unlock(&e->lock);
	return c.n;
}

void lg_engine_stats(struct lg_engine *e, struct lg_engine_stats *out)
{
	pthread_mutex_lock(&e->lock);
	*out = e->st;
	out->flows_active = lg_flowtab_count(e->flows);
	out->flows_capacity = lg_flowtab_capacity(e->flows);
	out->mappings_active = lg_flowtab_mappings(e->flows);
	pthread_mutex_unlock(&e->lock);
}

void lg_engine_set_mapping_log(struct lg_engine *e, lg_mapping_hook *fn, void *arg)
{
	pthread_mutex_lock(&e->lock);
	lg_flowtab_set_mapping_hook(e->flows, fn, arg);
	pthread_mutex_unlock(&e->lock);
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
	};

	return (unsigned)reason < LG_DROP_REASON_COUNT ? names[reason] : "unknown";
}
