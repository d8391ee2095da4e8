/* IPv6 through the engine: stateful filtering without translation, the IPv4 path's state
 * machine and timers, filtering modes, ICMPv6 errors passed without touching the flow. */
#include "dataplane/engine.h"
#include "dataplane/tcpstate.h"
#include "lgtest.h"
#include "pktbuild.h"
#include "testpolicy.h"

#define S (1000000000ull)
#define CLIENT "2001:db8:77::2"
#define CLIENT2 "2001:db8:77::3"
#define SERVER "2001:db8:100::2"
#define OTHER "2001:db8:100::7"
#define ROUTER "2001:db8:100::9"

static struct lg_engine *make_engine6(enum lg_filtering filtering, uint32_t max_flows6)
{
	struct lg_policy pol;

	test_policy(&pol);
	lg_prefix6_parse("2001:db8:77::/64", &pol.inside6[0]);
	pol.inside6_count = 1;
	pol.max_flows6 = max_flows6;
	pol.filtering = filtering;
	return lg_engine_create(&pol, 0);
}

static enum lg_verdict run(struct lg_engine *e, uint8_t *buf, size_t len, uint64_t now)
{
	uint8_t before[256];
	size_t out_len;
	bool mod;
	enum lg_verdict v;

	memcpy(before, buf, len);
	v = lg_engine_packet(e, buf, len, now, &mod, &out_len);
	/* nothing in an IPv6 packet is ever rewritten */
	CHECK(!mod && memcmp(before, buf, len) == 0, "IPv6 packet left untouched");
	return v;
}

static enum lg_verdict seg(struct lg_engine *e, const char *src, uint16_t sport, const char *dst,
			   uint16_t dport, uint8_t flags, const char *payload, uint64_t now)
{
	uint8_t buf[256];
	size_t len = build_tcp6(buf, src, sport, dst, dport, flags, payload);

	return run(e, buf, len, now);
}

static void handshake(struct lg_engine *e, const char *client, uint16_t cport, uint64_t now)
{
	seg(e, client, cport, SERVER, 143, LG_TCP_SYN, NULL, now);
	seg(e, SERVER, 143, client, cport, LG_TCP_SYN | LG_TCP_ACK, NULL, now);
	seg(e, client, cport, SERVER, 143, LG_TCP_ACK, NULL, now);
}

static struct lg_flow_view only_flow(struct lg_engine *e, uint64_t now, size_t *count)
{
	struct lg_flow_view views[8] = { 0 };

	*count = lg_engine_flows(e, now, views, 8);
	return views[0];
}

static void test_flow_both_ways(void)
{
	struct lg_engine *e = make_engine6(LG_FILTER_ENDPOINT_INDEPENDENT, 1024);
	struct lg_engine_stats st;
	struct lg_flow_view v;
	uint8_t want[16];
	size_t n;

	CHECK(e != NULL, "engine with an IPv6 table");
	handshake(e, CLIENT, 41000, 0);
	v = only_flow(e, 0, &n);
	CHECK_EQ_INT(n, 1, "one IPv6 flow");
	CHECK_EQ_INT(v.family, 6, "listed as IPv6");
	CHECK_EQ_INT(v.flow.state, LG_TCP_ESTABLISHED, "N7857-S2: IPv6 handshake reaches established");
	inet_pton(AF_INET6, CLIENT, want);
	CHECK(memcmp(v.in6, want, 16) == 0, "inside address in the view");
	inet_pton(AF_INET6, SERVER, want);
	CHECK(memcmp(v.rem6, want, 16) == 0, "remote address in the view");
	CHECK_EQ_INT(ntohs(v.flow.pub_port), 41000, "public port is the inside port: no translation");
	CHECK_EQ_INT(seg(e, SERVER, 143, CLIENT, 41000, LG_TCP_ACK | LG_TCP_PSH, "* OK\r\n", S),
		     LG_VERDICT_ACCEPT, "reply passes");
	CHECK_EQ_INT(seg(e, CLIENT, 41001, SERVER, 143, LG_TCP_ACK, NULL, S), LG_VERDICT_DROP,
		     "outbound non-SYN without a flow dropped");
	CHECK_EQ_INT(seg(e, SERVER, 143, CLIENT, 41001, LG_TCP_ACK, NULL, S), LG_VERDICT_DROP,
		     "inbound non-SYN without a flow dropped");
	CHECK_EQ_INT(seg(e, OTHER, 80, CLIENT, 22, LG_TCP_SYN, NULL, S), LG_VERDICT_DROP,
		     "N5382-R4 (IPv6): unsolicited SYN to a port with no flow dropped");
	CHECK_EQ_INT(seg(e, OTHER, 80, SERVER, 22, LG_TCP_SYN, NULL, S), LG_VERDICT_ACCEPT,
		     "neither end inside: not ours, passed");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_NO_FLOW_OUT], 1, "counted: no flow outbound");
	CHECK_EQ_INT(st.dropped[LG_DROP_UNSOLICITED], 2, "counted: unsolicited");
	CHECK_EQ_INT(st.flows6_active, 1, "flows6_active");
	CHECK_EQ_INT(st.flows6_capacity, 1024, "flows6_capacity");
	CHECK_EQ_INT(st.flows_active, 0, "no IPv4 flow");
	lg_engine_destroy(e);
}

static void test_timers6(void)
{
	struct lg_engine *e = make_engine6(LG_FILTER_ENDPOINT_INDEPENDENT, 1024);
	size_t n;

	handshake(e, CLIENT, 41000, 0);
	CHECK_EQ_INT(lg_engine_expire(e, 7439 * S), 0, "N5382-R5 (IPv6): nothing expires before 2h4m");
	CHECK_EQ_INT(seg(e, SERVER, 143, CLIENT, 41000, LG_TCP_ACK, "* 1 EXISTS\r\n", 7439 * S),
		     LG_VERDICT_ACCEPT, "N5382-R5 (IPv6): passes after 7439 s idle");
	for (uint64_t t = 7439; t < 30 * 86400; t += 7200)
		if (seg(e, CLIENT, 41000, SERVER, 143, LG_TCP_ACK, "a NOOP\r\n", t * S) != LG_VERDICT_ACCEPT) {
			CHECK(0, "L5383-4.1a (IPv6): flow lost at %llu s", (unsigned long long)t);
			break;
		}
	CHECK_EQ_INT(lg_engine_expire(e, 30ull * 86400 * S), 0, "L5383-4.1a (IPv6): alive after 30 days");
	CHECK_EQ_INT(lg_engine_expire(e, (30ull * 86400 + 7441) * S), 1, "IPv6 flow expires after 2h4m idle");
	CHECK_EQ_INT(seg(e, SERVER, 143, CLIENT, 41000, LG_TCP_ACK, "late", 31ull * 86400 * S),
		     LG_VERDICT_DROP, "expired IPv6 flow gone");

	/* FIN both ways: transitory, 4 minutes */
	uint64_t t0 = 32ull * 86400;

	handshake(e, CLIENT, 42000, t0 * S);
	seg(e, CLIENT, 42000, SERVER, 143, LG_TCP_FIN | LG_TCP_ACK, NULL, t0 * S);
	seg(e, SERVER, 143, CLIENT, 42000, LG_TCP_FIN | LG_TCP_ACK, NULL, t0 * S);
	only_flow(e, t0 * S, &n);
	CHECK_EQ_INT(lg_engine_expire(e, (t0 + 239) * S), 0, "L5383-7 (IPv6): closing flow kept 4 min");
	CHECK_EQ_INT(lg_engine_expire(e, (t0 + 241) * S), 1, "closing IPv6 flow ends after 4 min");
	lg_engine_destroy(e);
}

static void test_rst6(void)
{
	struct lg_engine *e = make_engine6(LG_FILTER_ENDPOINT_INDEPENDENT, 1024);
	uint8_t buf[256];
	struct lg_engine_stats st;
	struct lg_flow_view v;
	size_t len, n;
	uint32_t bad_seq = htonl(1000 + 3000000);

	handshake(e, CLIENT, 41000, 0);
	len = build_tcp6(buf, SERVER, 143, CLIENT, 41000, LG_TCP_RST, NULL);
	memcpy(buf + 40 + 4, &bad_seq, 4); /* checksum no longer matters to us */
	run(e, buf, len, S);
	v = only_flow(e, S, &n);
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(v.flow.state, LG_TCP_ESTABLISHED, "N7857-S2.2 (IPv6): out-of-window RST not believed");
	CHECK_EQ_INT(st.rst_out_of_window, 1, "counted");
	/* the server's SYN-ACK took sequence number 1000: its RST comes at 1001 */
	len = build_tcp6(buf, SERVER, 143, CLIENT, 41000, LG_TCP_RST, NULL);
	bad_seq = htonl(1001);
	memcpy(buf + 40 + 4, &bad_seq, 4);
	run(e, buf, len, 2 * S);
	v = only_flow(e, 2 * S, &n);
	CHECK_EQ_INT(lg_tcp_is_transitory(v.flow.state), 1, "N7857-S2.2 (IPv6): valid RST: transitory");
	seg(e, CLIENT, 41000, SERVER, 143, LG_TCP_ACK, "a NOOP\r\n", 3 * S);
	seg(e, SERVER, 143, CLIENT, 41000, LG_TCP_ACK, "a OK\r\n", 3 * S);
	v = only_flow(e, 3 * S, &n);
	CHECK_EQ_INT(v.flow.state, LG_TCP_ESTABLISHED, "N7857-S2.2 (IPv6): traffic after RST: established again");
	lg_engine_destroy(e);
}

static void test_filtering6(void)
{
	struct lg_engine *eif = make_engine6(LG_FILTER_ENDPOINT_INDEPENDENT, 1024);
	struct lg_engine *adf = make_engine6(LG_FILTER_ADDRESS_DEPENDENT, 1024);
	struct lg_engine_stats st;

	handshake(eif, CLIENT, 41000, 0);
	handshake(adf, CLIENT, 41000, 0);
	CHECK_EQ_INT(seg(eif, OTHER, 5000, CLIENT, 41000, LG_TCP_SYN, NULL, S), LG_VERDICT_ACCEPT,
		     "N5382-R3 (IPv6): endpoint-independent filtering admits any remote to a live endpoint");
	CHECK_EQ_INT(seg(adf, OTHER, 5000, CLIENT, 41000, LG_TCP_SYN, NULL, S), LG_VERDICT_DROP,
		     "N5382-R3 (IPv6): address-dependent filtering refuses an address never sent to");
	CHECK_EQ_INT(seg(adf, SERVER, 5000, CLIENT, 41000, LG_TCP_SYN, NULL, S), LG_VERDICT_ACCEPT,
		     "N5382-R3 (IPv6): address-dependent admits the address it sent to, another port");
	CHECK_EQ_INT(seg(adf, SERVER, 143, CLIENT2, 41000, LG_TCP_SYN, NULL, S), LG_VERDICT_DROP,
		     "the same port on another inside host has no flow: refused");
	lg_engine_stats(adf, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_FILTERED], 1, "counted: filtered");
	CHECK_EQ_INT(st.dropped[LG_DROP_UNSOLICITED], 1, "counted: unsolicited");
	lg_engine_destroy(eif);
	lg_engine_destroy(adf);
}

static void test_icmp6(void)
{
	struct lg_engine *e = make_engine6(LG_FILTER_ENDPOINT_INDEPENDENT, 1024);
	uint8_t inner[128], buf[256];
	struct lg_engine_stats st;
	struct lg_flow_view before, after;
	size_t ilen, len, n;

	handshake(e, CLIENT, 41000, 0);
	before = only_flow(e, 10 * S, &n);
	/* packet too big, from a router, about a segment the client sent */
	ilen = build_tcp6(inner, CLIENT, 41000, SERVER, 143, LG_TCP_ACK, "a NOOP\r\n");
	len = build_icmp6(buf, ROUTER, CLIENT, 2, 0, inner, ilen);
	CHECK_EQ_INT(run(e, buf, len, 100 * S), LG_VERDICT_ACCEPT, "N5382-R9 (IPv6): packet too big passes");
	/* unreachable, from the client, about a segment it received */
	ilen = build_tcp6(inner, SERVER, 143, CLIENT, 41000, LG_TCP_ACK, "* OK\r\n");
	len = build_icmp6(buf, CLIENT, SERVER, 1, 4, inner, ilen);
	CHECK_EQ_INT(run(e, buf, len, 100 * S), LG_VERDICT_ACCEPT, "ICMPv6 error from inside passes");
	/* destination unreachable toward the client, every code: the flow stays as it was */
	for (uint8_t code = 0; code <= 6; code++) {
		ilen = build_tcp6(inner, CLIENT, 41000, SERVER, 143, LG_TCP_ACK, "a NOOP\r\n");
		len = build_icmp6(buf, ROUTER, CLIENT, 1, code, inner, ilen);
		run(e, buf, len, 100 * S);
	}
	after = only_flow(e, 100 * S, &n);
	CHECK_EQ_INT(n, 1, "N5382-R10 (IPv6): the flow survives every ICMPv6 error");
	CHECK_EQ_INT(after.flow.state, before.flow.state, "N5382-R10 (IPv6): state unchanged");
	CHECK_EQ_INT(after.flow.last_s, before.flow.last_s, "N7857-S7 (IPv6): ICMPv6 never refreshes");
	/* about no flow of ours, or misaddressed: dropped */
	ilen = build_tcp6(inner, CLIENT, 49999, SERVER, 143, LG_TCP_ACK, NULL);
	len = build_icmp6(buf, ROUTER, CLIENT, 1, 0, inner, ilen);
	CHECK_EQ_INT(run(e, buf, len, 100 * S), LG_VERDICT_DROP, "I5508-R4 (IPv6): error about no flow dropped");
	ilen = build_tcp6(inner, CLIENT, 41000, SERVER, 143, LG_TCP_ACK, NULL);
	len = build_icmp6(buf, ROUTER, CLIENT2, 1, 0, inner, ilen);
	CHECK_EQ_INT(run(e, buf, len, 100 * S), LG_VERDICT_DROP,
		     "error not addressed to the quoted packet's source dropped");
	len = build_icmp6(buf, ROUTER, CLIENT, 1, 0, inner, ilen);
	buf[len - 1] ^= 1;
	CHECK_EQ_INT(run(e, buf, len, 100 * S), LG_VERDICT_DROP, "I5508-R3 (IPv6): bad checksum dropped");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.icmp_errors_in, 8, "translated-in count: errors toward inside");
	CHECK_EQ_INT(st.icmp_errors_out, 1, "errors toward outside");
	CHECK_EQ_INT(st.icmp_frag_needed, 1, "packet too big counted with frag-needed");
	CHECK_EQ_INT(st.dropped[LG_DROP_ICMP_NO_FLOW], 2, "counted: error without flow");
	CHECK_EQ_INT(st.malformed[LG_PKT_BAD_ICMP_CSUM], 1, "counted: bad ICMPv6 checksum");
	lg_engine_destroy(e);
}

static void test_overload6(void)
{
	struct lg_engine *e = make_engine6(LG_FILTER_ENDPOINT_INDEPENDENT, 4);
	struct lg_engine_stats st;

	for (uint16_t p = 0; p < 4; p++)
		handshake(e, CLIENT, (uint16_t)(41000 + p), p * S);
	/* a fifth: the longest idle non-mail flow would go, but all are mail; mail goes last */
	CHECK_EQ_INT(seg(e, CLIENT, 42000, SERVER, 143, LG_TCP_SYN, NULL, 10 * S), LG_VERDICT_ACCEPT,
		     "full IPv6 table makes room");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.flows6_active, 4, "still at capacity");
	CHECK_EQ_INT(st.evicted_mail, 1, "the longest-idle mail flow went");
	CHECK_EQ_INT(seg(e, SERVER, 143, CLIENT, 41000, LG_TCP_ACK, NULL, 11 * S), LG_VERDICT_DROP,
		     "the evicted flow was the oldest");
	CHECK_EQ_INT(seg(e, SERVER, 143, CLIENT, 41001, LG_TCP_ACK, NULL, 11 * S), LG_VERDICT_ACCEPT,
		     "the others remain");
	lg_engine_destroy(e);
}

struct sent6 {
	uint8_t msg[128];
	size_t len, count;
	struct lg_icmp_dest to;
};

static void capture6(const uint8_t *pkt, size_t len, const struct lg_icmp_dest *to, void *arg)
{
	struct sent6 *s = arg;

	s->count++;
	s->len = len < sizeof(s->msg) ? len : sizeof(s->msg);
	memcpy(s->msg, pkt, s->len);
	s->to = *to;
}

/* N5382-R4 for IPv6: an unsolicited SYN is dropped, held 6 s, then answered with ICMPv6 port
 * unreachable quoting it; the inside opening the same connection within 6 s wins. */
static void test_unsolicited_syn6(void)
{
	struct lg_engine *e = make_engine6(LG_FILTER_ENDPOINT_INDEPENDENT, 1024);
	struct lg_engine_stats st;
	struct sent6 sent = { 0 };
	uint8_t syn[256], want[16];
	size_t len = build_tcp6(syn, OTHER, 5555, CLIENT, 22, LG_TCP_SYN, NULL);

	CHECK_EQ_INT(run(e, syn, len, S), LG_VERDICT_DROP, "N5382-R4 (IPv6): unsolicited SYN dropped at once");
	CHECK_EQ_INT(lg_engine_due(e, 7 * S - 1, capture6, &sent), 0, "N5382-R4 (IPv6): no answer before 6 s");
	CHECK_EQ_INT(lg_engine_due(e, 7 * S, capture6, &sent), 1, "answered at 6 s");
	CHECK_EQ_INT(sent.count, 1, "one ICMPv6 message");
	CHECK_EQ_INT(sent.to.family, 6, "over IPv6");
	inet_pton(AF_INET6, OTHER, want);
	CHECK(memcmp(sent.to.addr6, want, 16) == 0, "to the SYN's source");
	CHECK(sent.msg[0] == 1 && sent.msg[1] == 4, "N5382-R4 (IPv6): ICMPv6 port unreachable (1/4)");
	CHECK_EQ_INT(sent.len, 8 + 60, "quoting the whole SYN (IPv6 + TCP headers)");
	CHECK(memcmp(sent.msg + 8, syn, 60) == 0, "quoted as it arrived");
	CHECK_EQ_INT(lg_engine_due(e, 20 * S, capture6, &sent), 0, "and never again");

	/* superseded: the inside opens the same connection within 6 s */
	sent.count = 0;
	len = build_tcp6(syn, OTHER, 5556, CLIENT, 23, LG_TCP_SYN, NULL);
	run(e, syn, len, 30 * S);
	CHECK_EQ_INT(seg(e, CLIENT, 23, OTHER, 5556, LG_TCP_SYN, NULL, 32 * S), LG_VERDICT_ACCEPT,
		     "N5382-R4 (IPv6): the inside's own SYN passes");
	lg_engine_due(e, 40 * S, capture6, &sent);
	CHECK_EQ_INT(sent.count, 0, "N5382-R4 (IPv6): the held SYN is forgotten, unanswered");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.syn_held, 2, "two held");
	CHECK_EQ_INT(st.syn_hold_superseded, 1, "one superseded");
	CHECK_EQ_INT(st.icmp_port_unreachable_sent, 1, "one answered");
	lg_engine_destroy(e);

	/* silent by policy */
	struct lg_policy pol;

	test_policy(&pol);
	lg_prefix6_parse("2001:db8:77::/64", &pol.inside6[0]);
	pol.inside6_count = 1;
	pol.unsolicited_syn = LG_UNSOLICITED_SILENT;
	e = lg_engine_create(&pol, 0);
	len = build_tcp6(syn, OTHER, 5555, CLIENT, 22, LG_TCP_SYN, NULL);
	run(e, syn, len, S);
	sent.count = 0;
	lg_engine_due(e, 10 * S, capture6, &sent);
	CHECK_EQ_INT(sent.count, 0, "N5382-R4a (IPv6): silent by policy");
	lg_engine_destroy(e);
}

/* A new IPv6 flow the full table cannot take: dropped, the inside host told at once, with
 * ICMPv6 1/3 (address unreachable, like IPv4's 3/1) or 1/1 (administratively prohibited). */
static void test_refusal6(void)
{
	static const enum lg_refusal modes[] = { LG_REFUSAL_HOST_UNREACHABLE,
						 LG_REFUSAL_ADMIN_PROHIBITED };

	for (size_t m = 0; m < 2; m++) {
		struct lg_policy pol;
		struct lg_engine *e;
		struct sent6 sent = { 0 };
		uint8_t syn[256], want[16];
		size_t len;

		test_policy(&pol);
		lg_prefix6_parse("2001:db8:77::/64", &pol.inside6[0]);
		pol.inside6_count = 1;
		pol.max_flows6 = 2;
		pol.overload = LG_OVERLOAD_DROP_NEW;
		pol.refusal = modes[m];
		e = lg_engine_create(&pol, 0);
		handshake(e, CLIENT, 41000, S);
		handshake(e, CLIENT, 41001, S);
		len = build_tcp6(syn, CLIENT, 41002, SERVER, 143, LG_TCP_SYN, NULL);
		CHECK_EQ_INT(run(e, syn, len, 2 * S), LG_VERDICT_DROP,
			     "C6888-R4 (IPv6): no established flow given up for a new one");
		lg_engine_due(e, 2 * S, capture6, &sent);
		CHECK_EQ_INT(sent.count, 1, "C6888-R11 (IPv6): the inside host is told at once");
		inet_pton(AF_INET6, CLIENT, want);
		CHECK(sent.to.family == 6 && memcmp(sent.to.addr6, want, 16) == 0, "told over IPv6");
		CHECK(sent.msg[0] == 1 && sent.msg[1] == (m == 0 ? 3 : 1),
		      "I5508-R8 (IPv6): address unreachable, or administratively prohibited by policy");
		CHECK(sent.len == 8 + 60 && memcmp(sent.msg + 8, syn, 60) == 0, "quoting its SYN");
		lg_engine_destroy(e);
	}
}

static void test_rules6(void)
{
	struct lg_policy pol;
	struct lg_engine *e;
	struct sent6 sent = { 0 };
	struct lg_rule *r;
	uint8_t in[16];

	test_policy(&pol);
	lg_prefix6_parse("2001:db8:77::/64", &pol.inside6[0]);
	pol.inside6_count = 1;
	r = &pol.rules[pol.rule_count++];
	memset(r, 0, sizeof(*r));
	r->action = LG_RULE_BLOCK_RETURN;
	r->dir = LG_RULE_OUT;
	r->proto = LG_RULE_TCP;
	r->port_lo[0] = r->port_hi[0] = 80;
	r->port_count = 1;
	r = &pol.rules[pol.rule_count++];
	memset(r, 0, sizeof(*r));
	r->action = LG_RULE_BLOCK;
	r->dir = LG_RULE_IN;
	r->proto = LG_RULE_ANY;
	inet_pton(AF_INET6, CLIENT, in);
	r->to[0].family = 6;
	r->to[0].len = 128;
	memcpy(r->to[0].addr, in, 16);
	r->to_count = 1;
	e = lg_engine_create(&pol, 0);
	CHECK_EQ_INT(seg(e, CLIENT, 41000, SERVER, 80, LG_TCP_SYN, NULL, S), LG_VERDICT_DROP,
		     "IPv6 rule: block return out port 80");
	lg_engine_due(e, S, capture6, &sent);
	CHECK(sent.count == 1 && sent.msg[0] == 1 && sent.msg[1] == 1,
	      "answered ICMPv6 administratively prohibited (1/1)");
	handshake(e, CLIENT, 41001, S);
	CHECK_EQ_INT(seg(e, OTHER, 5000, CLIENT, 41001, LG_TCP_SYN, NULL, 2 * S), LG_VERDICT_DROP,
		     "IPv6 rule: block in to the client, even to its live endpoint");
	CHECK_EQ_INT(seg(e, SERVER, 143, CLIENT, 41001, LG_TCP_ACK, NULL, 2 * S), LG_VERDICT_ACCEPT,
		     "L5383-3 (IPv6): its IMAP session is untouched");
	lg_engine_destroy(e);
}

static void test_without_ipv6(void)
{
	struct lg_policy pol;
	struct lg_engine *e;
	struct lg_engine_stats st;
	uint8_t buf[256];
	size_t len;

	test_policy(&pol);
	e = lg_engine_create(&pol, 0);
	len = build_tcp6(buf, CLIENT, 41000, SERVER, 143, LG_TCP_ACK, NULL);
	CHECK_EQ_INT(run(e, buf, len, 0), LG_VERDICT_ACCEPT, "no 'ipv6 inside': IPv6 is not ours, passed");
	buf[40 + 12] = 1 << 4; /* TCP data offset 4 bytes */
	CHECK_EQ_INT(run(e, buf, len, 0), LG_VERDICT_DROP, "malformed IPv6 still dropped");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.passed_untranslated, 1, "counted as passed");
	CHECK_EQ_INT(st.malformed[LG_PKT_BAD_TCP_OFFSET], 1, "counted as malformed");
	CHECK_EQ_INT(st.flows6_capacity, 0, "no IPv6 table allocated");
	lg_engine_destroy(e);
}

int main(void)
{
	test_flow_both_ways();
	test_timers6();
	test_rst6();
	test_filtering6();
	test_icmp6();
	test_overload6();
	test_unsolicited_syn6();
	test_refusal6();
	test_rules6();
	test_without_ipv6();
	return lgtest_finish();
}
