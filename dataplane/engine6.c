/* IPv6: stateful filtering of TCP without translation (there is no address shortage to hide),
 * with the IPv4 path's state machine, timers, RST checks, filtering mode and 6 s hold of
 * unsolicited SYNs. An inside
 * endpoint with a live flow plays the part of a NAT mapping: endpoint-independent filtering
 * admits a SYN from anywhere to it, address-dependent only from addresses it has sent to.
 * ICMPv6 errors about a tracked flow pass, unchanged, and never touch the flow. */
#include "dataplane/engine_impl.h"

#include <arpa/inet.h>
#include <string.h>

/* The flow's key, from the inside's point of view. */
struct key6 {
	const uint8_t *in, *rem;
	uint16_t in_port, rem_port;
};

/* With the writer lock: a new flow for K, published and armed; NULL with *WHY. */
static struct lg_flow *make_flow6(struct lg_engine *e, struct lg_ctx *c, const struct key6 *k,
				  uint32_t now_s, enum lg_drop_reason *why)
{
	struct lg_table *tb = &e->t6;
	struct lg_flow *f = lg_flowtab_alloc(tb->flows);
	struct lg_flow_addr6 *a;

	if (!f && lg_eng_evict_one(e, c, tb, now_s))
		f = lg_flowtab_alloc(tb->flows);
	if (!f) {
		*why = LG_DROP_TABLE_FULL;
		return NULL;
	}
	a = lg_flowtab_addr6(tb->flows, f);
	memcpy(a->in, k->in, 16);
	memcpy(a->rem, k->rem, 16);
	f->in_addr = lg_flowtab_fold6(k->in);
	f->rem_addr = lg_flowtab_fold6(k->rem);
	f->in_port = k->in_port;
	f->pub_port = k->in_port;
	f->rem_port = k->rem_port;
	lg_flow_lock(f);
	f->flags = lg_eng_new_flags(e, k->rem_port);
	f->state = LG_TCP_CLOSED;
	f->created_s = f->last_s = now_s;
	f->track.wscale[0] = f->track.wscale[1] = -1;
	lg_flow_unlock(f);
	if (lg_flowtab_publish(tb->flows, f) != LG_FLOWTAB_OK) {
		lg_flowtab_abandon(tb->flows, f);
		*why = LG_DROP_INDEX_FULL;
		return NULL;
	}
	lg_eng_arm_new(e, tb, f, now_s);
	BUMP(c, flows_created);
	return f;
}

/* May an inbound SYN from K's remote open a flow to K's inside endpoint? (RFC 5382 REQ-3,
 * with the endpoint's live flows standing for the mapping.) */
static enum lg_drop_reason admission(struct lg_engine *e, const struct key6 *k)
{
	struct lg_flowtab *t = e->t6.flows;

	if (!lg_flowtab_find_endpoint6(t, k->in, k->in_port, NULL))
		return LG_DROP_UNSOLICITED;
	if (lg_eng_pol(e)->filtering == LG_FILTER_ADDRESS_DEPENDENT &&
	    !lg_flowtab_find_endpoint6(t, k->in, k->in_port, k->rem))
		return LG_DROP_FILTERED;
	return LG_DROP_REASON_COUNT;
}

/* An inbound SYN nobody asked for: dropped, held 6 s and then answered with ICMPv6 port
 * unreachable quoting its start, unless the inside opens the connection first (N5382-R4). */
static enum lg_verdict unsolicited6(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
				    uint64_t now_ns, enum lg_drop_reason why)
{
	struct lg_synhold_key k = lg_synhold_key6(p->saddr6, p->sport, p->daddr6, p->dport);
	size_t quote = p->len < LG_SYNHOLD_QUOTE_MAX ? p->len : LG_SYNHOLD_QUOTE_MAX;

	return lg_eng_unsolicited(e, c, p, &k, quote, now_ns, why);
}

static enum lg_verdict tcp6(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p,
			    int side, uint64_t now_ns)
{
	uint32_t now_s = lg_eng_seconds(now_ns);
	struct key6 k = side == 0 ? (struct key6){ p->saddr6, p->daddr6, p->sport, p->dport }
				  : (struct key6){ p->daddr6, p->saddr6, p->dport, p->sport };
	struct lg_table *tb = &e->t6;
	struct lg_flow *f = lg_eng_usable(e, c, tb,
					  lg_flowtab_find6(tb->flows, k.in, k.in_port, k.rem, k.rem_port),
					  now_s, false);
	bool sooner;
	uint8_t before;

	if (!f) {
		enum lg_drop_reason why;

		struct lg_flow_desc d = { side == 0 ? LG_RULE_OUT : LG_RULE_IN, LG_RULE_TCP, 6,
					  p->saddr6, p->daddr6, ntohs(p->dport) };
		struct lg_icmp_dest sender = { .family = 6 };

		if ((p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK | LG_TCP_RST)) != LG_TCP_SYN)
			return lg_eng_drop(c, side == 0 ? LG_DROP_NO_FLOW_OUT : LG_DROP_UNSOLICITED);
		memcpy(sender.addr6, p->saddr6, 16);
		why = side == 0 ? LG_DROP_REASON_COUNT : admission(e, &k);
		if (why == LG_DROP_REASON_COUNT &&
		    lg_eng_rules(e, c, p, &d, &sender, p->len) != LG_VERDICT_ACCEPT)
			return LG_VERDICT_DROP;
		pthread_mutex_lock(&e->wlock);
		/* another thread may have made it since the lookup */
		f = lg_eng_usable(e, c, tb, lg_flowtab_find6(tb->flows, k.in, k.in_port, k.rem, k.rem_port),
				  now_s, true);
		if (!f && why == LG_DROP_REASON_COUNT) {
			f = make_flow6(e, c, &k, now_s, &why);
			if (f) {
				lg_eng_observe_open(e, c, f, side == 1);
				lg_flow_lock(f);
				if (side == 1)
					f->flags |= LG_FLOW_INBOUND;
			}
		}
		pthread_mutex_unlock(&e->wlock);
		if (!f && side == 1 && (why == LG_DROP_UNSOLICITED || why == LG_DROP_FILTERED))
			return unsolicited6(e, c, p, now_ns, why);
		if (!f && side == 0) {
			struct lg_icmp_dest to = { .family = 6 };

			memcpy(to.addr6, p->saddr6, 16);
			return lg_eng_refuse(e, c, p, &to, p->len, why);
		}
		if (!f)
			return lg_eng_drop(c, why);
	}
	before = f->state;
	sooner = lg_eng_track_segment(c, f, side, p, now_s);
	if (side == 0) {
		f->pkts_out++;
		f->bytes_out += p->len;
	} else {
		f->pkts_in++;
		f->bytes_in += p->len;
	}
	lg_flow_unlock(f);
	lg_eng_observe(e, f, side == 0, p, now_s);
	/* RFC 7857 section 7.1: the inside's RST to a connection attempt refreshes nothing */
	if (!(side == 0 && (p->tcp_flags & LG_TCP_RST) &&
	      lg_eng_end_refused(e, c, tb, f, before, now_s)) &&
	    sooner)
		lg_eng_rearm_sooner(e, tb, f);
	if (side == 0 && (p->tcp_flags & (LG_TCP_SYN | LG_TCP_ACK)) == LG_TCP_SYN) {
		struct lg_synhold_key held = lg_synhold_key6(k.rem, k.rem_port, k.in, k.in_port);

		lg_eng_supersede_held(e, c, &held);
	}
	if (side == 0) {
		BUMP(c, packets_out);
		ADD(c, bytes_out, p->len);
	} else {
		BUMP(c, packets_in);
		ADD(c, bytes_in, p->len);
	}
	return LG_VERDICT_ACCEPT;
}

/* An ICMPv6 error goes to the source of the packet it quotes; it passes when that packet
 * belongs to a tracked flow, and only the flow's fixed tuple is read (RFC 5382 REQ-10). */
static enum lg_verdict icmp6_error(struct lg_engine *e, struct lg_ctx *c, const struct lg_pkt *p)
{
	const struct lg_icmp_error *ie = &p->icmp;
	bool toward_inside = lg_policy_is_inside6(lg_eng_pol(e), p->daddr6);
	struct lg_flow *f;

	if (memcmp(p->daddr6, ie->inner_saddr6, 16) != 0)
		return lg_eng_drop(c, LG_DROP_ICMP_NO_FLOW);
	if (toward_inside) /* about a segment the inside host sent */
		f = lg_flowtab_find6(e->t6.flows, ie->inner_saddr6, ie->inner_sport, ie->inner_daddr6,
				     ie->inner_dport);
	else /* about a segment sent to the inside host */
		f = lg_flowtab_find6(e->t6.flows, ie->inner_daddr6, ie->inner_dport, ie->inner_saddr6,
				     ie->inner_sport);
	if (!f || !(__atomic_load_n(&f->flags, __ATOMIC_ACQUIRE) & LG_FLOW_LIVE))
		return lg_eng_drop(c, LG_DROP_ICMP_NO_FLOW);
	if (toward_inside)
		BUMP(c, icmp_errors_in);
	else
		BUMP(c, icmp_errors_out);
	lg_eng_count_icmp(c, 6, ie->type, ie->code);
	if (ie->type == LG_ICMPV6_PACKET_TOO_BIG)
		BUMP(c, icmp_frag_needed);
	return LG_VERDICT_ACCEPT;
}

enum lg_verdict lg_eng_classify6(struct lg_engine *e, struct lg_ctx *c, struct lg_pkt *p,
				 enum lg_pkt_status status, uint64_t now_ns)
{
	bool from_inside, to_inside;

	if (status == LG_PKT_ICMP_UNSUPPORTED)
		return lg_eng_drop(c, LG_DROP_UNSUPPORTED);
	if (status != LG_PKT_OK) {
		BUMP(c, malformed[status]);
		return lg_eng_drop(c, LG_DROP_MALFORMED);
	}
	if (!e->t6.flows) { /* no IPv6 prefix is ours to filter */
		BUMP(c, passed_untranslated);
		return LG_VERDICT_ACCEPT;
	}
	if (p->proto == LG_IPPROTO_ICMPV6)
		return icmp6_error(e, c, p);
	from_inside = lg_policy_is_inside6(lg_eng_pol(e), p->saddr6);
	to_inside = lg_policy_is_inside6(lg_eng_pol(e), p->daddr6);
	if (from_inside != to_inside)
		return tcp6(e, c, p, from_inside ? 0 : 1, now_ns);
	BUMP(c, passed_untranslated);
	return LG_VERDICT_ACCEPT;
}
