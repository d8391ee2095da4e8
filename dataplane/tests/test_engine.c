#include "dataplane/engine.h"
#include "dataplane/synhold.h"
#include "dataplane/tcpstate.h"
#include "lgtest.h"
#include "pktbuild.h"
#include "testpolicy.h"

#define S (1000000000ull)
#define REFUSAL_TEST_STORM 400

static struct lg_engine *make_engine_filtering(uint32_t max_flows, uint16_t lo, uint16_t hi,
					       enum lg_filtering filtering)
{
	struct lg_policy pol;

	test_policy(&pol);
	pol.max_flows = max_flows;
	pol.port_lo = lo;
	pol.port_hi = hi;
	pol.filtering = filtering;
	return lg_engine_create(&pol, 0);
}

static struct lg_engine *make_engine(uint32_t max_flows, uint16_t lo, uint16_t hi)
{
	return make_engine_filtering(max_flows, lo, hi, LG_FILTER_ENDPOINT_INDEPENDENT);
}

static enum lg_verdict run(struct lg_engine *e, uint8_t *buf, size_t len, uint64_t now,
			   bool *mod)
{
	size_t out_len;

	return lg_engine_packet(e, buf, len, now, mod, &out_len);
}

static uint16_t rd_port(const uint8_t *buf, size_t off)
{
	uint16_t v;

	memcpy(&v, buf + off, 2);
	return ntohs(v);
}

static uint32_t rd_addr(const uint8_t *buf, size_t off)
{
	uint32_t v;

	memcpy(&v, buf + off, 4);
	return v;
}

static void test_nat_both_ways(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub;
	struct lg_flow_view views[4];

	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 1 * S, &mod), LG_VERDICT_ACCEPT, "outbound SYN accepted");
	CHECK(mod, "outbound SYN rewritten");
	CHECK_EQ_INT(rd_addr(buf, 12), inet_addr("198.51.100.1"), "source is the public address");
	pub = rd_port(buf, 20);
	CHECK(pub >= 20000 && pub <= 29999, "public port %u in range", pub);
	CHECK_EQ_INT(rd_addr(buf, 16), inet_addr("198.51.100.2"), "destination untouched");
	CHECK_EQ_INT(rd_port(buf, 22), 143, "destination port untouched");
	CHECK(checksums_ok(buf, len), "outbound checksums valid");

	len = build_tcp4(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_SYN | LG_TCP_ACK, NULL);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT, "SYN-ACK accepted");
	CHECK_EQ_INT(rd_addr(buf, 16), inet_addr("10.77.0.2"), "reply to the inside host");
	CHECK_EQ_INT(rd_port(buf, 22), 40000, "reply to the inside port");
	CHECK(checksums_ok(buf, len), "inbound checksums valid");

	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK, "a1 NOOP\r\n");
	CHECK_EQ_INT(run(e, buf, len, 3 * S, &mod), LG_VERDICT_ACCEPT, "data accepted");
	CHECK_EQ_INT(rd_port(buf, 20), pub, "same mapping for later packets");
	CHECK(memcmp(buf + 40, "a1 NOOP\r\n", 9) == 0, "payload untouched");

	CHECK_EQ_INT(lg_engine_flows(e, 10 * S, views, 4), 1, "one flow listed");
	CHECK_EQ_INT(views[0].flow.state, LG_TCP_ESTABLISHED, "flow established");
	CHECK_EQ_INT(views[0].idle_s, 7, "idle seconds");
	CHECK_EQ_INT(views[0].age_s, 9, "age seconds");
	CHECK_EQ_INT(views[0].flow.pkts_out, 2, "packets out");
	CHECK_EQ_INT(views[0].flow.pkts_in, 1, "packets in");
	CHECK_EQ_INT(ntohs(views[0].flow.in_port), 40000, "inside port");
	CHECK_EQ_INT(ntohs(views[0].flow.rem_port), 143, "remote port");

	/* a second connection from another inside port gets another public port */
	len = build_tcp4(buf, "10.77.0.2", 40001, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	run(e, buf, len, 4 * S, &mod);
	CHECK(rd_port(buf, 20) != pub, "distinct public ports for distinct inside endpoints (N5382-R7)");
	lg_engine_destroy(e);
}

static void test_drops(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 20001);
	struct lg_engine_stats st;
	uint8_t buf[128];
	size_t len;
	bool mod;

	len = build_tcp4(buf, "198.51.100.2", 143, "198.51.100.1", 20000, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_DROP, "unsolicited inbound dropped");
	CHECK(!mod, "dropped packet not modified");
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK, "x");
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_DROP, "outbound ACK without flow dropped");
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	buf[10] ^= 0xff;
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_DROP, "bad IP checksum dropped");
	CHECK_EQ_INT(run(e, buf, 10, S, &mod), LG_VERDICT_DROP, "truncated dropped");
	len = build_tcp4(buf, "192.0.2.9", 5000, "203.0.113.1", 80, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_ACCEPT, "foreign traffic passed");
	CHECK(!mod, "foreign traffic not rewritten");

	/* a two-port range: the third connection finds no port, and nothing existing is lost */
	for (int i = 0; i < 3; i++) {
		len = build_tcp4(buf, "10.77.0.2", (uint16_t)(41000 + i), "198.51.100.2", 143, LG_TCP_SYN, NULL);
		CHECK_EQ_INT(run(e, buf, len, S, &mod), i < 2 ? LG_VERDICT_ACCEPT : LG_VERDICT_DROP,
			     "port exhaustion");
	}
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_UNSOLICITED], 1, "unsolicited counted");
	CHECK_EQ_INT(st.dropped[LG_DROP_NO_FLOW_OUT], 1, "no-flow counted");
	CHECK_EQ_INT(st.dropped[LG_DROP_MALFORMED], 2, "malformed counted");
	CHECK_EQ_INT(st.malformed[LG_PKT_BAD_IP_CSUM], 1, "bad checksum detail");
	CHECK_EQ_INT(st.malformed[LG_PKT_TRUNCATED], 1, "truncated detail");
	CHECK_EQ_INT(st.dropped[LG_DROP_NO_PORT], 1, "no-port counted");
	CHECK_EQ_INT(st.passed_untranslated, 1, "foreign counted");
	CHECK_EQ_INT(st.flows_active, 2, "both existing flows kept");
	lg_engine_destroy(e);

	e = make_engine(16, 20000, 29999);
	for (int i = 0; i < 17; i++) {
		len = build_tcp4(buf, "10.77.0.3", (uint16_t)(42000 + i), "198.51.100.2", 587, LG_TCP_SYN, NULL);
		run(e, buf, len, S, &mod);
	}
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.flows_active, 16, "table holds its capacity");
	CHECK_EQ_INT(st.evicted_transitory, 1, "a full table of half-open flows makes room");
	CHECK_EQ_INT(st.dropped[LG_DROP_TABLE_FULL], 0, "no refusal while one can be evicted");
	lg_engine_destroy(e);
}

static uint16_t open_flow_from(struct lg_engine *e, const char *inside, uint16_t inside_port,
			       uint64_t now)
{
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub;

	len = build_tcp4(buf, inside, inside_port, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	run(e, buf, len, now, &mod);
	pub = rd_port(buf, 20);
	len = build_tcp4(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_SYN | LG_TCP_ACK, NULL);
	run(e, buf, len, now, &mod);
	return pub;
}

static uint16_t open_flow(struct lg_engine *e, uint16_t inside_port, uint64_t now)
{
	return open_flow_from(e, "10.77.0.2", inside_port, now);
}

static void test_timers(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub = open_flow(e, 40000, 0);

	/* N5382-R5: established idle for 7439 s, the next packet still crosses */
	CHECK_EQ_INT(lg_engine_expire(e, 7439 * S), 0, "N5382-R5: nothing expires before 2h4m");
	len = build_tcp4(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_ACK, "* OK\r\n");
	CHECK_EQ_INT(run(e, buf, len, 7439 * S, &mod), LG_VERDICT_ACCEPT, "N5382-R5: after 7439 s idle");
	/* L5383-4.1a: never ended for its age; keep it busy for 30 days */
	for (uint64_t t = 7439; t < 30 * 86400; t += 7200) {
		len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK, "a NOOP\r\n");
		if (run(e, buf, len, t * S, &mod) != LG_VERDICT_ACCEPT) {
			CHECK(0, "L5383-4.1a: flow lost at %llu s", (unsigned long long)t);
			break;
		}
	}
	CHECK_EQ_INT(lg_engine_expire(e, 30ull * 86400 * S), 0, "L5383-4.1a: alive after 30 days");
	CHECK_EQ_INT(lg_engine_expire(e, (30ull * 86400 + 7441) * S), 1, "expires after 2h4m idle");
	len = build_tcp4(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_ACK, "late");
	CHECK_EQ_INT(run(e, buf, len, (31ull * 86400) * S, &mod), LG_VERDICT_DROP, "expired flow gone");

	/* transitory: a SYN alone is kept 4 minutes, then goes */
	uint64_t t0 = 32ull * 86400;

	len = build_tcp4(buf, "10.77.0.2", 40100, "198.51.100.2", 587, LG_TCP_SYN, NULL);
	run(e, buf, len, t0 * S, &mod);
	CHECK_EQ_INT(lg_engine_expire(e, (t0 + 239) * S), 0, "N5382-R5: half-open kept 239 s");
	CHECK_EQ_INT(lg_engine_expire(e, (t0 + 241) * S), 1, "half-open expires after 4 min");
	lg_engine_destroy(e);
}

static void test_state_machine(void)
{
	enum lg_tcp_state s = LG_TCP_CLOSED;

	s = lg_tcp_next(s, true, LG_TCP_SYN);
	CHECK_EQ_INT(s, LG_TCP_INIT, "N7857-S2: SYN out -> INIT");
	s = lg_tcp_next(s, false, LG_TCP_SYN);
	CHECK_EQ_INT(s, LG_TCP_ESTABLISHED, "N5382-R2a: simultaneous open SYN in -> ESTABLISHED");
	s = lg_tcp_next(s, true, LG_TCP_ACK | LG_TCP_FIN);
	CHECK_EQ_INT(s, LG_TCP_C_FIN_RCV, "client FIN");
	CHECK(!lg_tcp_is_transitory(s), "half-closed keeps the established timer");
	s = lg_tcp_next(s, true, LG_TCP_ACK);
	CHECK_EQ_INT(s, LG_TCP_C_FIN_RCV, "N5382-R2: data after a half-close is a valid sequence");
	s = lg_tcp_next(s, false, LG_TCP_ACK | LG_TCP_FIN);
	CHECK_EQ_INT(s, LG_TCP_CS_FIN_RCV, "server FIN");
	CHECK(lg_tcp_is_transitory(s), "both FINs: transitory");
	s = lg_tcp_next(LG_TCP_ESTABLISHED, false, LG_TCP_FIN | LG_TCP_ACK);
	CHECK_EQ_INT(s, LG_TCP_S_FIN_RCV, "server FIN first");
	s = lg_tcp_next(s, true, LG_TCP_FIN | LG_TCP_ACK);
	CHECK_EQ_INT(s, LG_TCP_CS_FIN_RCV, "then client FIN");
	s = lg_tcp_next(LG_TCP_ESTABLISHED, false, LG_TCP_RST);
	CHECK_EQ_INT(s, LG_TCP_TRANS, "N7857-S2.2: RST -> TRANS");
	s = lg_tcp_next(s, true, LG_TCP_ACK);
	CHECK_EQ_INT(s, LG_TCP_ESTABLISHED, "N7857-S2.2: traffic after RST -> ESTABLISHED");
	CHECK_EQ_INT(lg_tcp_next(LG_TCP_CLOSED, false, LG_TCP_SYN), LG_TCP_INIT_IN,
		     "inbound SYN (admitted by a mapping) -> INIT_IN");
	CHECK_EQ_INT(lg_tcp_next(LG_TCP_INIT_IN, true, LG_TCP_SYN | LG_TCP_ACK), LG_TCP_ESTABLISHED,
		     "inside SYN-ACK -> ESTABLISHED");
	CHECK_EQ_INT(lg_tcp_next(LG_TCP_INIT_IN, false, LG_TCP_SYN), LG_TCP_INIT_IN,
		     "retransmitted inbound SYN stays INIT_IN");
	CHECK(lg_tcp_is_transitory(LG_TCP_INIT_IN), "INIT_IN is transitory");
	CHECK_EQ_INT(lg_tcp_next(LG_TCP_CLOSED, false, LG_TCP_ACK), LG_TCP_CLOSED, "ACK does not open");
	for (int i = 0; i < LG_TCP_STATE_COUNT; i++)
		CHECK(strcmp(lg_tcp_state_name((enum lg_tcp_state)i), "unknown") != 0, "state name %d", i);
}

/* A handshake with window scaling: client ISN 1000, server ISN 5000, both scale 7. */
/* A handshake from 10.77.0.2:CPORT to the server's port SPORT at NOW: the public port. */
static uint16_t handshake_to(struct lg_engine *e, uint16_t cport, uint16_t sport, uint64_t now)
{
	static const uint8_t ws7[] = { 1, 3, 3, 7 };
	struct tcp_spec syn = { 1000, 0, 65535, ws7, 4 }, synack = { 5000, 1001, 65535, ws7, 4 };
	struct tcp_spec ack = { 1001, 5001, 500, NULL, 0 };
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub;

	len = build_tcp4_spec(buf, "10.77.0.2", cport, "198.51.100.2", sport, LG_TCP_SYN, &syn, NULL);
	run(e, buf, len, now, &mod);
	pub = rd_port(buf, 20);
	len = build_tcp4_spec(buf, "198.51.100.2", sport, "198.51.100.1", pub, LG_TCP_SYN | LG_TCP_ACK,
			      &synack, NULL);
	run(e, buf, len, now, &mod);
	len = build_tcp4_spec(buf, "10.77.0.2", cport, "198.51.100.2", sport, LG_TCP_ACK, &ack, NULL);
	run(e, buf, len, now, &mod);
	return pub;
}

static uint16_t handshake(struct lg_engine *e, uint16_t cport, uint64_t now)
{
	return handshake_to(e, cport, 143, now);
}

static int flow_state(struct lg_engine *e, uint64_t now)
{
	struct lg_flow_view v[2];

	return lg_engine_flows(e, now, v, 2) == 1 ? v[0].flow.state : -1;
}

static void test_rst_validation(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	struct lg_engine_stats st;
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub = handshake(e, 40000, 10 * S);
	/* the client advertised 500 << 7 = 64000 bytes from 5001 */
	struct tcp_spec far = { 5001 + 64000, 0, 0, NULL, 0 }, edge = { 5001 + 63999, 0, 0, NULL, 0 };
	struct tcp_spec data = { 1001, 5001, 500, NULL, 0 };

	CHECK_EQ_INT(flow_state(e, 10 * S), LG_TCP_ESTABLISHED, "handshake established");
	len = build_tcp4_spec(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_RST, &far, NULL);
	CHECK_EQ_INT(run(e, buf, len, 20 * S, &mod), LG_VERDICT_ACCEPT, "out-of-window RST passed on");
	CHECK_EQ_INT(flow_state(e, 20 * S), LG_TCP_ESTABLISHED,
		     "N7857-S2.2: out-of-window RST does not change the state");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.rst_out_of_window, 1, "out-of-window RST counted");
	/* last real traffic at 10 s, the bogus RST at 20 s: expiry counts from 10 s */
	CHECK_EQ_INT(lg_engine_expire(e, (10 + 7441) * S), 1,
		     "N7857-S7: an unbelieved RST does not refresh the idle timer");

	e = (lg_engine_destroy(e), make_engine(1024, 20000, 29999));
	pub = handshake(e, 40000, 10 * S);
	len = build_tcp4_spec(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_RST, &edge, NULL);
	run(e, buf, len, 20 * S, &mod);
	CHECK_EQ_INT(flow_state(e, 20 * S), LG_TCP_TRANS, "N7857-S2.2: in-window RST -> TRANS (window scaled)");
	CHECK(rd_port(buf, 22) == 40000 && mod, "N7857-S2.2a: RST translated with the mapping");
	len = build_tcp4_spec(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK, &data, "a NOOP\r\n");
	CHECK_EQ_INT(run(e, buf, len, 30 * S, &mod), LG_VERDICT_ACCEPT, "traffic after RST passes");
	CHECK_EQ_INT(flow_state(e, 30 * S), LG_TCP_ESTABLISHED,
		     "N7857-S2.2b: traffic after a (lost) RST returns the flow to ESTABLISHED");
	len = build_tcp4_spec(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_RST | LG_TCP_ACK,
			      &(struct tcp_spec){ 5001, 1010, 0, NULL, 0 }, NULL);
	run(e, buf, len, 40 * S, &mod);
	CHECK_EQ_INT(flow_state(e, 40 * S), LG_TCP_TRANS, "RST at the expected sequence number");
	CHECK_EQ_INT(lg_engine_expire(e, (40 + 239) * S), 0, "N7857-S2.2b: kept 4 minutes after RST");
	CHECK_EQ_INT(lg_engine_expire(e, (40 + 241) * S), 1, "gone after 4 quiet minutes");
	lg_engine_destroy(e);

	/* A RST answering the SYN must acknowledge it. */
	e = make_engine(1024, 20000, 29999);
	len = build_tcp4_spec(buf, "10.77.0.2", 40001, "198.51.100.2", 143, LG_TCP_SYN,
			      &(struct tcp_spec){ 1000, 0, 65535, NULL, 0 }, NULL);
	run(e, buf, len, S, &mod);
	pub = rd_port(buf, 20);
	len = build_tcp4_spec(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_RST | LG_TCP_ACK,
			      &(struct tcp_spec){ 0, 999, 0, NULL, 0 }, NULL);
	run(e, buf, len, S, &mod);
	CHECK_EQ_INT(flow_state(e, S), LG_TCP_INIT, "RST not acknowledging the SYN ignored");
	len = build_tcp4_spec(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_RST | LG_TCP_ACK,
			      &(struct tcp_spec){ 0, 1001, 0, NULL, 0 }, NULL);
	run(e, buf, len, S, &mod);
	CHECK_EQ_INT(flow_state(e, S), LG_TCP_TRANS, "RST acknowledging the SYN believed");
	lg_engine_destroy(e);
}

static void test_endpoint_independent_mapping(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	struct lg_engine_stats st;
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t p143, p587, other;

	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	run(e, buf, len, S, &mod);
	p143 = rd_port(buf, 20);
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 587, LG_TCP_SYN, NULL);
	run(e, buf, len, S, &mod);
	p587 = rd_port(buf, 20);
	len = build_tcp4(buf, "10.77.0.2", 40000, "203.0.113.7", 143, LG_TCP_SYN, NULL);
	run(e, buf, len, S, &mod);
	CHECK_EQ_INT(p587, p143, "N5382-R1: same inside endpoint, another port, same mapping");
	CHECK_EQ_INT(rd_port(buf, 20), p143, "N5382-R1: same inside endpoint, another host, same mapping");
	len = build_tcp4(buf, "10.77.0.3", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	run(e, buf, len, S, &mod);
	other = rd_port(buf, 20);
	CHECK(other != p143, "N5382-R7: another inside host never shares the mapping");

	/* replies to each flow of the shared mapping reach the right inside socket */
	len = build_tcp4(buf, "198.51.100.2", 587, "198.51.100.1", p143, LG_TCP_SYN | LG_TCP_ACK, NULL);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_ACCEPT, "reply on the 587 flow");
	CHECK_EQ_INT(rd_port(buf, 22), 40000, "to the inside port");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.flows_active, 4, "four flows");
	CHECK_EQ_INT(st.mappings_active, 2, "two mappings");

	/* the mapping lives while any of its flows does (half-open flows expire after 4 min) */
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 587, LG_TCP_ACK, "x");
	run(e, buf, len, 200 * S, &mod);
	CHECK_EQ_INT(lg_engine_expire(e, 300 * S), 3, "the three half-open flows expire");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.mappings_active, 1, "the shared mapping stays with its established flow");
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.9", 993, LG_TCP_SYN, NULL);
	run(e, buf, len, 300 * S, &mod);
	CHECK_EQ_INT(rd_port(buf, 20), p143, "new flow reuses the surviving mapping");
	lg_engine_destroy(e);
}

static void test_filtering(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	struct lg_engine_stats st;
	struct lg_flow_view v[4];
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub = open_flow(e, 40000, S);

	/* endpoint-independent (the default): any remote endpoint may open to the mapping */
	len = build_tcp4(buf, "203.0.113.5", 5555, "198.51.100.1", pub, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT,
		     "N5382-R3: EIF admits a SYN from another host to the mapping");
	CHECK(rd_addr(buf, 16) == inet_addr("10.77.0.2") && rd_port(buf, 22) == 40000,
	      "delivered to the mapping's inside endpoint");
	CHECK(checksums_ok(buf, len), "checksums after inbound open");
	len = build_tcp4(buf, "10.77.0.2", 40000, "203.0.113.5", 5555, LG_TCP_SYN | LG_TCP_ACK, NULL);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT, "inside answers");
	CHECK_EQ_INT(rd_port(buf, 20), pub, "the answer leaves from the same mapping");
	CHECK_EQ_INT(lg_engine_flows(e, 2 * S, v, 4), 2, "two flows on the mapping");
	len = build_tcp4(buf, "203.0.113.5", 5555, "198.51.100.1", pub + 1, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP, "SYN to an unmapped port dropped");
	len = build_tcp4(buf, "203.0.113.6", 80, "198.51.100.1", pub, LG_TCP_ACK, "x");
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP, "non-SYN without a flow dropped");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_UNSOLICITED], 2, "both counted as unsolicited");
	lg_engine_destroy(e);

	/* address-dependent: only addresses the mapping has sent to */
	e = make_engine_filtering(1024, 20000, 29999, LG_FILTER_ADDRESS_DEPENDENT);
	pub = open_flow(e, 40000, S);
	len = build_tcp4(buf, "203.0.113.5", 5555, "198.51.100.1", pub, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP,
		     "N5382-R3: ADF refuses a SYN from a host the mapping never sent to");
	len = build_tcp4(buf, "198.51.100.2", 2525, "198.51.100.1", pub, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT,
		     "N5382-R3: ADF admits the same host from another port");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_FILTERED], 1, "filtered counted");
	/* N7857-S7: refused inbound packets do not keep the mapping alive */
	for (uint64_t t = 60; t < 7440 + 300; t += 60) {
		len = build_tcp4(buf, "203.0.113.5", 5555, "198.51.100.1", pub, LG_TCP_SYN, NULL);
		run(e, buf, len, t * S, &mod);
	}
	CHECK_EQ_INT(lg_engine_expire(e, (7440 + 300) * S), 2,
		     "N7857-S7: refused SYNs every minute do not refresh; both flows expire");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.mappings_active, 0, "mapping released with its last flow");
	lg_engine_destroy(e);
}

struct sent {
	uint8_t pkt[64];
	size_t len, count;
	uint32_t dst;
};

static void capture_send(const uint8_t *pkt, size_t len, const struct lg_icmp_dest *to, void *arg)
{
	struct sent *s = arg;

	s->count++;
	s->len = len < sizeof(s->pkt) ? len : sizeof(s->pkt);
	memcpy(s->pkt, pkt, s->len);
	s->dst = to->family == 4 ? to->addr4 : 0;
}

static void test_unsolicited_syn(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	struct lg_engine_stats st;
	struct sent sent = { 0 };
	uint8_t buf[128], orig[128];
	size_t len;
	bool mod;

	len = build_tcp4(buf, "198.51.100.2", 5555, "198.51.100.1", 25000, LG_TCP_SYN, NULL);
	memcpy(orig, buf, len);
	CHECK_EQ_INT(run(e, buf, len, 1 * S, &mod), LG_VERDICT_DROP,
		     "N5382-R4: an unsolicited SYN is never delivered");
	memcpy(buf, orig, len);
	run(e, buf, len, 2 * S, &mod); /* retransmissions: still one held SYN */
	memcpy(buf, orig, len);
	run(e, buf, len, 4 * S, &mod);
	CHECK_EQ_INT(lg_engine_due(e, 7 * S - 1, capture_send, &sent), 0,
		     "N5382-R4: nothing answered before 6 s");
	CHECK_EQ_INT(lg_engine_due(e, 7 * S, capture_send, &sent), 1, "answered at 6 s");
	CHECK_EQ_INT(sent.count, 1, "one ICMP for three SYNs");
	CHECK_EQ_INT(lg_engine_due(e, 20 * S, capture_send, &sent), 0, "and never again");
	CHECK_EQ_INT(sent.dst, inet_addr("198.51.100.2"), "ICMP goes to the SYN's source");
	CHECK_EQ_INT(sent.len, 20 + 8 + 28, "IP + ICMP header + quoted header and 8 bytes");
	CHECK(sent.pkt[9] == 1 && sent.pkt[20] == 3 && sent.pkt[21] == 3,
	      "N5382-R4: ICMP type 3 code 3 (port unreachable)");
	CHECK_EQ_INT(rd_addr(sent.pkt, 12), inet_addr("198.51.100.1"), "from the public address");
	CHECK(lg_csum_ipv4_header(sent.pkt, 20) == 0, "outer IP checksum");
	CHECK(lg_csum_finish(lg_csum_add(0, sent.pkt + 20, sent.len - 20)) == 0, "ICMP checksum");
	CHECK(memcmp(sent.pkt + 28, orig, 28) == 0, "quotes the SYN's IP header and ports as received");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.syn_held, 1, "held once");
	CHECK_EQ_INT(st.icmp_port_unreachable_sent, 1, "ICMP counted");
	CHECK_EQ_INT(st.dropped[LG_DROP_UNSOLICITED], 3, "all three SYNs dropped");
	lg_engine_destroy(e);
}

static void test_unsolicited_syn_superseded(void)
{
	struct lg_engine *e = make_engine_filtering(1024, 20000, 29999, LG_FILTER_ADDRESS_DEPENDENT);
	struct lg_engine_stats st;
	struct sent sent = { 0 };
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub = open_flow(e, 40000, S);
	struct lg_flow_view v[4];

	/* R4(b): the outside's SYN is filtered and held; the inside opens the same connection */
	len = build_tcp4(buf, "203.0.113.5", 5555, "198.51.100.1", pub, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 10 * S, &mod), LG_VERDICT_DROP, "filtered SYN held, not delivered");
	len = build_tcp4(buf, "10.77.0.2", 40000, "203.0.113.5", 5555, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 12 * S, &mod), LG_VERDICT_ACCEPT, "inside SYN to it passes");
	CHECK_EQ_INT(rd_port(buf, 20), pub, "through the same mapping");
	CHECK_EQ_INT(lg_engine_due(e, 20 * S, capture_send, &sent), 0,
		     "N5382-R4: the inside's SYN within 6 s wins: the held SYN is dropped silently");
	CHECK_EQ_INT(sent.count, 0, "no ICMP");
	/* the outside retransmits its SYN: now a simultaneous open (N5382-R2a) */
	len = build_tcp4(buf, "203.0.113.5", 5555, "198.51.100.1", pub, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 13 * S, &mod), LG_VERDICT_ACCEPT, "N5382-R2a: crossing SYN passes");
	CHECK_EQ_INT(lg_engine_flows(e, 13 * S, v, 4), 2, "two flows");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.syn_hold_superseded, 1, "superseded counted");
	lg_engine_destroy(e);

	/* R4a: silent policy */
	{
		struct lg_policy pol;

		test_policy(&pol);
		pol.unsolicited_syn = LG_UNSOLICITED_SILENT;
		e = lg_engine_create(&pol, 0);
	}
	len = build_tcp4(buf, "198.51.100.2", 5555, "198.51.100.1", 30000, LG_TCP_SYN, NULL);
	run(e, buf, len, S, &mod);
	CHECK_EQ_INT(lg_engine_due(e, 60 * S, capture_send, &sent), 1, "silent: the held SYN falls due");
	CHECK_EQ_INT(sent.count, 0, "N5382-R4a: silent: nothing sent");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.syn_hold_silent, 1, "silent drop counted");
	/* a flood beyond the table: the oldest are forgotten unanswered, nothing breaks */
	for (uint32_t i = 0; i < LG_SYNHOLD_SLOTS + 10; i++) {
		char src[32];

		snprintf(src, sizeof(src), "203.0.%u.%u", (i >> 8) & 255, i & 255);
		len = build_tcp4(buf, src, 7000, "198.51.100.1", 31000, LG_TCP_SYN, NULL);
		run(e, buf, len, 70 * S, &mod);
	}
	lg_engine_due(e, 80 * S, capture_send, &sent);
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.syn_hold_overflow, 10, "overflow counted");
	CHECK_EQ_INT(st.syn_hold_silent, 1 + LG_SYNHOLD_SLOTS, "the rest fell due");
	lg_engine_destroy(e);
}

struct maplog {
	char lines[8][128];
	int n;
};

static void collect_mapping(bool created, uint32_t in_addr, uint16_t in_port, uint32_t pub_addr,
			    uint16_t pub_port, void *arg)
{
	struct maplog *l = arg;

	if (l->n < 8)
		lg_mapping_log_format(created, in_addr, in_port, pub_addr, pub_port, l->lines[l->n++],
				      sizeof(l->lines[0]));
}

static void test_mapping_log(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	struct maplog log = { .n = 0 };
	uint8_t buf[128];
	size_t len;
	bool mod;
	char want[128];
	uint16_t pub;

	lg_engine_set_mapping_log(e, collect_mapping, &log);
	pub = open_flow(e, 40000, S);
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 587, LG_TCP_SYN, NULL);
	run(e, buf, len, S, &mod);
	CHECK_EQ_INT(log.n, 1, "C6888-LOG: one line per mapping, not per flow");
	snprintf(want, sizeof(want), "mapping create proto=tcp inside=10.77.0.2:40000 public=198.51.100.1:%u", pub);
	CHECK_EQ_STR(log.lines[0], want, "C6888-LOG: protocol, inside and public endpoints");
	lg_engine_expire(e, 100000 * S);
	CHECK_EQ_INT(log.n, 2, "release logged once, with the last flow");
	snprintf(want, sizeof(want), "mapping release proto=tcp inside=10.77.0.2:40000 public=198.51.100.1:%u", pub);
	CHECK_EQ_STR(log.lines[1], want, "release line");
	for (int i = 0; i < log.n; i++)
		CHECK(strstr(log.lines[i], "198.51.100.2") == NULL, "C6888-R12: no destination logged");
	lg_engine_destroy(e);
}

static void test_host_quota(void)
{
	struct lg_policy pol;
	struct lg_engine *e;
	struct lg_engine_stats st;
	struct sent sent = { 0 };
	uint8_t buf[128], orig[128];
	size_t len;
	bool mod;

	test_policy(&pol);
	pol.host_quota = 2;
	e = lg_engine_create(&pol, 0);
	for (int i = 0; i < 2; i++) {
		len = build_tcp4(buf, "10.77.0.2", (uint16_t)(40000 + i), "198.51.100.2", 143, LG_TCP_SYN, NULL);
		CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_ACCEPT, "within the quota");
	}
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 587, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_ACCEPT,
		     "another flow on an existing mapping costs no port");
	len = build_tcp4(buf, "10.77.0.2", 40002, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	memcpy(orig, buf, len);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_DROP, "C6888-R4: a third port refused");
	len = build_tcp4(buf, "10.77.0.3", 40002, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_ACCEPT, "another host is not affected");
	lg_engine_due(e, S, capture_send, &sent);
	CHECK_EQ_INT(sent.count, 1, "C6888-R11: one ICMP for the refusal");
	CHECK(sent.pkt[20] == 3 && sent.pkt[21] == 1, "C6888-R11: host unreachable (3/1)");
	CHECK_EQ_INT(sent.dst, inet_addr("10.77.0.2"), "sent to the inside host");
	CHECK(memcmp(sent.pkt + 28, orig, 28) == 0, "quoting its SYN as it sent it");
	CHECK(lg_csum_finish(lg_csum_add(0, sent.pkt + 20, sent.len - 20)) == 0, "ICMP checksum");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_QUOTA], 1, "quota refusal counted");
	CHECK_EQ_INT(st.flows_active, 4, "C6888-R4: no existing mapping deleted to make room");
	/* the quota frees up with the mappings */
	lg_engine_expire(e, 1000 * S);
	len = build_tcp4(buf, "10.77.0.2", 40002, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 1000 * S, &mod), LG_VERDICT_ACCEPT, "quota back after expiry");
	/* a storm of refusals: a bounded number answered per tick */
	for (int i = 0; i < REFUSAL_TEST_STORM; i++) {
		len = build_tcp4(buf, "10.77.0.2", (uint16_t)(41000 + i), "198.51.100.2", 143, LG_TCP_SYN, NULL);
		run(e, buf, len, 1000 * S, &mod);
	}
	sent.count = 0;
	lg_engine_due(e, 1000 * S, capture_send, &sent);
	lg_engine_stats(e, &st);
	CHECK(sent.count < REFUSAL_TEST_STORM && sent.count + st.icmp_refusals_suppressed ==
	      REFUSAL_TEST_STORM - 1, "%zu answered, %llu suppressed", sent.count,
	      (unsigned long long)st.icmp_refusals_suppressed);
	lg_engine_destroy(e);
}

/* I5508-R8: the refusal's ICMP code is the operator's choice: 3/13 (RFC 5508), or none. */
static void test_refusal_code(void)
{
	static const enum lg_refusal modes[] = { LG_REFUSAL_ADMIN_PROHIBITED, LG_REFUSAL_SILENT };
	struct lg_policy pol;
	struct lg_engine *e;
	struct lg_engine_stats st;
	uint8_t buf[128];
	size_t len;
	bool mod;

	for (size_t m = 0; m < 2; m++) {
		struct sent sent = { 0 };

		test_policy(&pol);
		pol.host_quota = 1;
		pol.refusal = modes[m];
		e = lg_engine_create(&pol, 0);
		len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
		run(e, buf, len, S, &mod);
		len = build_tcp4(buf, "10.77.0.2", 40001, "198.51.100.2", 143, LG_TCP_SYN, NULL);
		CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_DROP,
			     "I5508-R8: the SYN that gets no session is not forwarded");
		lg_engine_due(e, S, capture_send, &sent);
		lg_engine_stats(e, &st);
		if (modes[m] == LG_REFUSAL_ADMIN_PROHIBITED) {
			CHECK_EQ_INT(sent.count, 1, "I5508-R8: one ICMP for the refusal");
			CHECK(sent.count == 1 && sent.pkt[20] == 3 && sent.pkt[21] == 13,
			      "I5508-R8: administratively prohibited (3/13)");
			CHECK_EQ_INT(st.icmp_admin_prohibited_sent, 1, "3/13 counted");
			CHECK_EQ_INT(st.icmp_host_unreachable_sent, 0, "no 3/1");
		} else {
			CHECK_EQ_INT(sent.count, 0, "refusal silent: no ICMP");
			CHECK_EQ_INT(st.dropped[LG_DROP_QUOTA], 1, "silent refusal still counted");
		}
		lg_engine_destroy(e);
	}
}

/* Both passes of a hairpinned segment; returns the verdict of the last pass that ran. */
static enum lg_verdict hairpin(struct lg_engine *e, uint8_t *buf, size_t len, uint64_t now)
{
	bool mod;
	enum lg_verdict v = run(e, buf, len, now, &mod);

	if (v != LG_VERDICT_ACCEPT)
		return v;
	return run(e, buf, len, now, &mod);
}

static void test_hairpin(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	struct lg_engine_stats st;
	struct lg_flow_view v[4];
	uint8_t buf[128];
	size_t len;
	uint16_t x, y;

	/* cli2 (10.77.0.3:41100) has a mapping X from talking to the server */
	x = open_flow_from(e, "10.77.0.3", 41100, S);
	/* cli (10.77.0.2:40000) connects to 198.51.100.1:X */
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.1", x, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(hairpin(e, buf, len, 2 * S), LG_VERDICT_ACCEPT, "N5382-R8: hairpinned SYN passes");
	CHECK_EQ_INT(rd_addr(buf, 16), inet_addr("10.77.0.3"), "delivered to cli2");
	CHECK_EQ_INT(rd_port(buf, 22), 41100, "on its mapped port");
	CHECK_EQ_INT(rd_addr(buf, 12), inet_addr("198.51.100.1"),
		     "N5382-R8a: cli2 sees the public address as the source");
	y = rd_port(buf, 20);
	CHECK(y >= 20000 && y <= 29999 && y != x, "N5382-R8a: and cli's own mapping as the port");
	CHECK(checksums_ok(buf, len), "checksums after both passes");
	/* cli2 answers to what it saw: 198.51.100.1:Y */
	len = build_tcp4(buf, "10.77.0.3", 41100, "198.51.100.1", y, LG_TCP_SYN | LG_TCP_ACK, NULL);
	CHECK_EQ_INT(hairpin(e, buf, len, 2 * S), LG_VERDICT_ACCEPT, "the answer is hairpinned back");
	CHECK(rd_addr(buf, 16) == inet_addr("10.77.0.2") && rd_port(buf, 22) == 40000, "to cli");
	CHECK(rd_addr(buf, 12) == inet_addr("198.51.100.1") && rd_port(buf, 20) == x,
	      "from cli2's public endpoint");
	CHECK(checksums_ok(buf, len), "checksums of the answer");
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.1", x, LG_TCP_ACK, "hello");
	CHECK_EQ_INT(hairpin(e, buf, len, 3 * S), LG_VERDICT_ACCEPT, "data hairpinned");
	CHECK(memcmp(buf + 40, "hello", 5) == 0, "payload intact");
	CHECK_EQ_INT(lg_engine_flows(e, 3 * S, v, 4), 3, "cli2's server flow and the two hairpin sessions");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.hairpinned, 3, "hairpinned counted");
	/* to a public port nobody holds: dropped, and no ICMP to our own address */
	/* (just below the range: a port drawn at random for the SYN's own mapping cannot be it) */
	len = build_tcp4(buf, "10.77.0.2", 40001, "198.51.100.1", 19999, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(hairpin(e, buf, len, 4 * S), LG_VERDICT_DROP, "hairpin to an unheld port dropped");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.syn_held, 0, "and not held for an ICMP answer");
	lg_engine_destroy(e);
}

static void test_port_randomness(void)
{
	struct lg_engine *e = make_engine(4096, 1024, 65535);
	static uint16_t ports[1000];
	uint8_t buf[128];
	size_t len, ascending = 0, near = 0, buckets[16] = { 0 };
	bool mod;

	for (int i = 0; i < 1000; i++) {
		char src[32];

		snprintf(src, sizeof(src), "10.77.0.%d", 1 + i % 200);
		len = build_tcp4(buf, src, (uint16_t)(30000 + i), "198.51.100.2", 143, LG_TCP_SYN, NULL);
		run(e, buf, len, S, &mod);
		ports[i] = rd_port(buf, 20);
		buckets[(ports[i] - 1024) * 16 / (65536 - 1024)]++;
	}
	for (int i = 1; i < 1000; i++) {
		int d = (int)ports[i] - (int)ports[i - 1];

		ascending += d > 0;
		near += d > -64 && d < 64;
	}
	/* independent uniform draws: about half go up; a step under 64 is rare (about 0.2%) */
	CHECK(ascending > 400 && ascending < 600, "N7857-S9: %zu of 999 steps ascending", ascending);
	CHECK(near < 20, "N7857-S9: %zu of 999 steps shorter than 64 ports", near);
	for (int b = 0; b < 16; b++)
		if (buckets[b] < 20 || buckets[b] > 110) /* mean 62.5, sd 7.7: over 5 sd out */
			CHECK(0, "N7857-S9: 1/16 of the range holds %zu of 1000 ports", buckets[b]);
	CHECK(1, "N7857-S9: ports spread over the whole range");
	lg_engine_destroy(e);
}

static uint16_t open_to(struct lg_engine *e, uint16_t inside_port, uint16_t remote_port,
		       uint64_t now)
{
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub;

	len = build_tcp4(buf, "10.77.0.2", inside_port, "198.51.100.2", remote_port, LG_TCP_SYN, NULL);
	run(e, buf, len, now, &mod);
	pub = rd_port(buf, 20);
	len = build_tcp4(buf, "198.51.100.2", remote_port, "198.51.100.1", pub,
			 LG_TCP_SYN | LG_TCP_ACK, NULL);
	run(e, buf, len, now, &mod);
	return pub;
}

static bool passes_in(struct lg_engine *e, uint16_t remote_port, uint16_t pub, uint64_t now)
{
	uint8_t buf[128];
	size_t len = build_tcp4(buf, "198.51.100.2", remote_port, "198.51.100.1", pub, LG_TCP_ACK,
				"x");
	bool mod;

	return run(e, buf, len, now, &mod) == LG_VERDICT_ACCEPT;
}

static struct lg_engine *make_overload_engine(enum lg_overload overload)
{
	struct lg_policy pol;

	test_policy(&pol);
	pol.max_flows = 16;
	pol.port_lo = 20000;
	pol.port_hi = 29999;
	pol.overload = overload;
	return lg_engine_create(&pol, 0);
}

/* C6888-R8: a released public port is not drawn again before it has rested. */
static void test_port_rest(void)
{
	struct lg_engine *e = make_engine(64, 20000, 20000);
	struct lg_engine_stats st;
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint64_t t = 1000;

	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, t * S, &mod), LG_VERDICT_ACCEPT, "the only port taken");
	CHECK_EQ_INT(lg_engine_expire(e, (t + 241) * S), 1, "its half-open flow ends, port released");
	len = build_tcp4(buf, "10.77.0.3", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, (t + 242) * S, &mod), LG_VERDICT_DROP,
		     "C6888-R8: not reused while resting");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_NO_PORT], 1, "counted as no port");
	len = build_tcp4(buf, "10.77.0.3", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, (t + 241 + 120) * S, &mod), LG_VERDICT_ACCEPT,
		     "C6888-R8: reused after 120 s");
	lg_engine_destroy(e);
}

static void test_service_timeouts(void)
{
	struct lg_policy pol;
	struct lg_engine *e;
	uint16_t imap, web;

	test_policy(&pol);
	pol.port_timeouts[0] = (struct lg_port_timeout){ .port = 143, .secs = 3 * 3600 };
	pol.port_timeout_count = 1;
	e = lg_engine_create(&pol, 0);
	imap = open_to(e, 40000, 143, 10 * S);
	web = open_to(e, 40001, 80, 10 * S);
	CHECK_EQ_INT(lg_engine_expire(e, (10 + 7441) * S), 1, "the default timer ends the web flow");
	CHECK(!passes_in(e, 80, web, (10 + 7441) * S), "web flow gone after 2h4m idle");
	CHECK(passes_in(e, 143, imap, (10 + 3 * 3600) * S), "the IMAP flow's own 3h timer keeps it");
	CHECK_EQ_INT(lg_engine_expire(e, (10 + 2 * 3 * 3600 + 1) * S), 1, "and ends it after 3h idle");
	lg_engine_destroy(e);
}

static void test_overload(void)
{
	struct lg_engine *e = make_overload_engine(LG_OVERLOAD_EVICT);
	uint16_t other[8], mail[8];
	struct lg_engine_stats st;
	uint8_t buf[128];
	size_t len;
	bool mod;

	for (int i = 0; i < 8; i++) {
		other[i] = open_to(e, (uint16_t)(30000 + i), 80, (uint64_t)(1 + i) * S);
		mail[i] = open_to(e, (uint16_t)(31000 + i), 143, (uint64_t)(1 + i) * S);
	}
	len = build_tcp4(buf, "10.77.0.2", 32000, "198.51.100.2", 80, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 100 * S, &mod), LG_VERDICT_ACCEPT, "full table admits by evicting");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.evicted_idle, 1, "the longest-idle non-mail flow made room");
	CHECK(!passes_in(e, 80, other[0], 100 * S), "the longest-idle web flow is the one gone");
	CHECK(passes_in(e, 80, other[1], 100 * S), "the next web flow stays");
	CHECK(passes_in(e, 143, mail[0], 100 * S), "the longest-idle mail flow stays");
	len = build_tcp4(buf, "10.77.0.2", 32001, "198.51.100.2", 80, LG_TCP_SYN, NULL);
	run(e, buf, len, 101 * S, &mod);
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.evicted_transitory, 1, "a half-open flow goes before any established one");
	CHECK_EQ_INT(st.evicted_idle, 1, "no second established flow evicted");
	/* the web flows go first, however recent; mail only when nothing else is left */
	for (int i = 0; i < 8; i++)
		open_to(e, (uint16_t)(33000 + i), 80, (uint64_t)(200 + i) * S);
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.evicted_mail, 0, "no mail flow evicted while others remain");
	for (int i = 0; i < 8; i++)
		CHECK(passes_in(e, 143, mail[i], 300 * S), "mail flow %d kept", i);
	lg_engine_destroy(e);

	e = make_overload_engine(LG_OVERLOAD_EVICT);
	for (int i = 0; i < 16; i++)
		mail[i % 8] = open_to(e, (uint16_t)(30000 + i), 587, (uint64_t)(1 + i) * S);
	len = build_tcp4(buf, "10.77.0.2", 32000, "198.51.100.2", 80, LG_TCP_SYN, NULL);
	run(e, buf, len, 100 * S, &mod);
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.evicted_mail, 1, "with only mail flows left, the longest idle of them goes");
	lg_engine_destroy(e);

	e = make_overload_engine(LG_OVERLOAD_DROP_NEW);
	for (int i = 0; i < 16; i++)
		other[i % 8] = open_to(e, (uint16_t)(30000 + i), 80, (uint64_t)(1 + i) * S);
	len = build_tcp4(buf, "10.77.0.2", 32000, "198.51.100.2", 80, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 100 * S, &mod), LG_VERDICT_DROP, "drop-new: new flow refused");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_TABLE_FULL], 1, "drop-new: refusal counted");
	CHECK_EQ_INT(st.evicted_idle + st.evicted_mail + st.evicted_transitory, 0,
		     "drop-new: no established flow evicted");
	CHECK_EQ_INT(st.flows_active, 16, "drop-new: all kept");
	lg_engine_destroy(e);
}

/* A reload keeps every flow and mapping and applies at once; settings it cannot take are
 * refused with their names, and then nothing changes. */
static void test_reload(void)
{
	struct lg_policy pol, next;
	struct lg_engine *e;
	struct lg_flow_view v[4];
	struct lg_engine_stats st;
	char err[256];
	uint8_t buf[128];
	size_t len, n;
	bool mod;
	uint16_t pub;

	test_policy(&pol);
	pol.port_timeouts[0] = (struct lg_port_timeout){ 993, 86400 };
	pol.port_timeouts[1] = (struct lg_port_timeout){ 143, 2 * 86400 };
	pol.port_timeout_count = 2;
	e = lg_engine_create(&pol, 0);
	pub = open_to(e, 40000, 143, 10 * S);
	n = lg_engine_flows(e, 10 * S, v, 4);
	CHECK(n == 1 && v[0].timeout_s == 2 * 86400 && (v[0].flow.flags & LG_FLOW_MAIL),
	      "before: the 143 flow has its service timer and is a mail flow");

	next = pol;
	next.port_timeouts[0] = (struct lg_port_timeout){ 143, 5 * 3600 };
	next.port_timeout_count = 1;
	next.mail_ports[0] = 2525;
	next.mail_port_count = 1;
	next.filtering = LG_FILTER_ADDRESS_DEPENDENT;
	CHECK_EQ_INT(lg_engine_reload(e, &next, err, sizeof(err)), 0, "reload accepted");
	n = lg_engine_flows(e, 20 * S, v, 4);
	CHECK_EQ_INT(n, 1, "the flow survives the reload");
	CHECK_EQ_INT(v[0].timeout_s, 5 * 3600, "its service timer is the new policy's (the index moved)");
	CHECK(!(v[0].flow.flags & LG_FLOW_MAIL), "143 is no longer a mail port");
	CHECK(passes_in(e, 143, pub, 30 * S), "traffic continues through the same mapping");
	len = build_tcp4(buf, "198.51.100.9", 5000, "198.51.100.1", pub, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 31 * S, &mod), LG_VERDICT_DROP,
		     "the new filtering mode applies at once (address-dependent refuses a stranger)");

	next.nat_public = inet_addr("198.51.100.99");
	next.max_flows = 77;
	next.timeout_established = 99999;
	CHECK_EQ_INT(lg_engine_reload(e, &next, err, sizeof(err)), -1, "a new public address is refused");
	CHECK(strstr(err, "nat public") && strstr(err, "max-flows"), "the error names them: %s", err);
	n = lg_engine_flows(e, 40 * S, v, 4);
	CHECK(n == 1 && v[0].timeout_s == 5 * 3600, "and nothing changed");
	for (int i = 0; i < 20; i++) { /* more reloads than retired slots: old policies are freed */
		next = pol;
		next.timeout_transitory = 240 + (uint32_t)i;
		if (lg_engine_reload(e, &next, err, sizeof(err)) < 0)
			break;
		lg_engine_expire(e, (41 + (uint64_t)i) * S);
	}
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.flows_active, 1, "twenty reloads later the flow is still there");
	lg_engine_destroy(e);
}

static void add_rule(struct lg_policy *pol, enum lg_rule_action a, enum lg_rule_dir dir,
		     enum lg_rule_proto proto, const char *to_prefix, uint16_t port)
{
	struct lg_rule *r = &pol->rules[pol->rule_count++];
	struct lg_prefix4 p;

	memset(r, 0, sizeof(*r));
	r->action = a;
	r->dir = dir;
	r->proto = proto;
	if (to_prefix) {
		lg_prefix4_parse(to_prefix, &p);
		r->to[0].family = 4;
		r->to[0].len = p.len;
		memcpy(r->to[0].addr, &p.addr, 4);
		r->to_count = 1;
	}
	if (port) {
		r->port_lo[0] = r->port_hi[0] = port;
		r->port_count = 1;
	}
	r->line = (unsigned)pol->rule_count;
}

/* Rules decide on new flows and echo sessions, both ways; reevaluation ends the flows rules
 * added by a reload refuse, and only those. */
static void test_rules(void)
{
	struct lg_policy pol, next;
	struct lg_engine *e;
	struct lg_engine_stats st;
	struct sent sent = { 0 };
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub;
	char err[128];

	test_policy(&pol);
	add_rule(&pol, LG_RULE_BLOCK_RETURN, LG_RULE_OUT, LG_RULE_TCP, NULL, 25);
	add_rule(&pol, LG_RULE_BLOCK, LG_RULE_OUT, LG_RULE_ANY, "203.0.113.0/24", 0);
	add_rule(&pol, LG_RULE_BLOCK, LG_RULE_IN, LG_RULE_TCP, "10.77.0.2/32", 22);
	e = lg_engine_create(&pol, 0);
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 25, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_DROP, "block return out port 25: dropped");
	lg_engine_due(e, S, capture_send, &sent);
	CHECK(sent.count == 1 && sent.pkt[20] == 3 && sent.pkt[21] == 13 &&
	      sent.dst == inet_addr("10.77.0.2"), "and answered 3/13 to the inside host at once");
	len = build_tcp4(buf, "10.77.0.2", 40001, "203.0.113.5", 443, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_DROP, "block out to a network");
	len = build_echo4(buf, "10.77.0.2", "203.0.113.5", 8, 77, 1);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_DROP, "echo to the blocked network too");
	sent.count = 0;
	lg_engine_due(e, S, capture_send, &sent);
	CHECK_EQ_INT(sent.count, 0, "plain block: no answer");
	pub = open_to(e, 22, 143, S); /* the inside host's port 22 gets a mapping */
	CHECK(passes_in(e, 143, pub, S), "L5383-3: IMAP untouched by the rules");
	len = build_tcp4(buf, "198.51.100.9", 5000, "198.51.100.1", pub, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP,
		     "block in to the inside host's port 22, even through its mapping");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.dropped[LG_DROP_RULE], 4, "counted as blocked_by_rule");
	CHECK(st.verdict_drop_packets >= 4 && st.verdict_drop_bytes >= 4 * 40 &&
	      st.verdict_accept_packets >= 3, "packets and bytes by verdict");
	CHECK_EQ_INT(st.icmp_admin_prohibited_sent, 1, "one 3/13");

	/* reevaluation: a rule added by reload ends the flows it refuses, keeps the others */
	open_to(e, 41000, 993, 3 * S);
	next = pol;
	add_rule(&next, LG_RULE_BLOCK, LG_RULE_OUT, LG_RULE_TCP, NULL, 993);
	CHECK_EQ_INT(lg_engine_reload(e, &next, err, sizeof(err)), 0, "reload with a new rule");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.flows_active, 2, "a reload alone ends nothing");
	CHECK_EQ_INT(lg_engine_reevaluate(e, 4 * S), 1, "reevaluate ends the 993 flow");
	CHECK(passes_in(e, 143, pub, 5 * S), "the IMAP flow stays");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.flows_active, 1, "one flow left");
	CHECK_EQ_INT(st.flows_ended_by_rule, 1, "counted");
	lg_engine_destroy(e);
}

/* Several public addresses: each inside address always uses the same one (paired pooling),
 * both are used, and replies, ICMP errors, echoes and hairpinning follow each flow's own. */
static void test_public_pool(void)
{
	struct lg_policy pol;
	struct lg_engine *e;
	struct lg_flow_view v[256];
	uint8_t buf[256], inner[128];
	size_t len, n;
	bool mod;
	unsigned unpaired = 0, on_a = 0, on_b = 0;
	uint32_t a = inet_addr("198.51.100.1"), b = inet_addr("198.51.100.3");
	uint32_t host_pub[40] = { 0 };

	test_policy(&pol);
	pol.nat_pool[0] = a;
	pol.nat_pool[1] = b;
	pol.nat_pool_count = 2;
	e = lg_engine_create(&pol, 0);
	for (unsigned h = 0; h < 40; h++) {
		char host[32];

		snprintf(host, sizeof(host), "10.77.0.%u", 10 + h);
		for (unsigned k = 0; k < 3; k++) {
			uint32_t src;

			len = build_tcp4(buf, host, (uint16_t)(40000 + k), "198.51.100.2", 143, LG_TCP_SYN, NULL);
			run(e, buf, len, S, &mod);
			src = rd_addr(buf, 12);
			if (host_pub[h] && host_pub[h] != src)
				unpaired++;
			host_pub[h] = src;
			/* the reply to that public endpoint reaches that host */
			len = build_tcp4(buf, "198.51.100.2", 143, "0.0.0.0", rd_port(buf, 20),
					 LG_TCP_SYN | LG_TCP_ACK, NULL);
			memcpy(buf + 16, &src, 4);
			buf[10] = buf[11] = 0;
			{
				uint16_t c = lg_csum_ipv4_header(buf, 20);

				memcpy(buf + 10, &c, 2);
			}
			if (run(e, buf, len, S, &mod) != LG_VERDICT_ACCEPT || rd_addr(buf, 16) != inet_addr(host))
				unpaired++;
		}
		on_a += host_pub[h] == a;
		on_b += host_pub[h] == b;
	}
	CHECK_EQ_INT(unpaired, 0, "paired pooling: all of a host's flows on one public address, replies back");
	CHECK(on_a > 5 && on_b > 5 && on_a + on_b == 40, "both public addresses in use (%u, %u)", on_a, on_b);
	n = lg_engine_flows(e, S, v, 256);
	CHECK_EQ_INT(n, 120, "120 flows");

	/* an ICMP error to address B about a flow on B */
	for (unsigned h = 0; h < 40; h++) {
		char host[32];
		uint16_t pub = 0;

		if (host_pub[h] != b)
			continue;
		snprintf(host, sizeof(host), "10.77.0.%u", 10 + h);
		for (size_t i = 0; i < n; i++)
			if (v[i].flow.in_addr == inet_addr(host) && v[i].pub_addr == b)
				pub = ntohs(v[i].flow.pub_port);
		len = build_tcp4(inner, "198.51.100.3", pub, "198.51.100.2", 143, LG_TCP_ACK, NULL);
		len = build_icmp4(buf, "198.51.100.9", "198.51.100.3", 3, 4,
				  (const uint8_t[4]){ 0, 0, 5, 0 }, inner, 28, NULL, 0);
		CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT,
			     "an error to the second public address is translated");
		CHECK_EQ_INT(rd_addr(buf, 16), inet_addr(host), "to the host behind it");
		/* the same port on the first address is another mapping or none */
		len = build_tcp4(inner, "198.51.100.1", pub, "198.51.100.2", 143, LG_TCP_ACK, NULL);
		len = build_icmp4(buf, "198.51.100.9", "198.51.100.1", 3, 4,
				  (const uint8_t[4]){ 0, 0, 5, 0 }, inner, 28, NULL, 0);
		if (run(e, buf, len, 2 * S, &mod) == LG_VERDICT_ACCEPT)
			CHECK(rd_addr(buf, 16) != inet_addr(host), "address A's port is not B's mapping");
		/* an echo from that host leaves from B */
		len = build_echo4(buf, host, "198.51.100.2", 8, 77, 1);
		run(e, buf, len, 3 * S, &mod);
		CHECK_EQ_INT(rd_addr(buf, 12), b, "its echo leaves from its public address");
		break;
	}
	lg_engine_destroy(e);
}

/* N7857-S7.1: probes through a mapping, each refused by the inside host with a RST, do not
 * keep the mapping alive: it expires on its own flow's schedule. */
static void test_refused_probes(void)
{
	struct lg_engine *e = make_engine(1024, 20000, 29999);
	struct lg_engine_stats st;
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub = handshake(e, 40000, 0);
	unsigned refused = 0;

	for (uint64_t t = 60; t < 7400; t += 60) {
		struct tcp_spec probe = { (uint32_t)(77000 + t), 0, 65535, NULL, 0 };
		struct tcp_spec rst = { 0, (uint32_t)(77000 + t + 1), 0, NULL, 0 };

		len = build_tcp4_spec(buf, "203.0.113.9", (uint16_t)(5000 + t / 60), "198.51.100.1", pub,
				      LG_TCP_SYN, &probe, NULL);
		if (run(e, buf, len, t * S, &mod) != LG_VERDICT_ACCEPT)
			continue;
		/* the inside host has nothing listening on that connection: RST/ACK */
		len = build_tcp4_spec(buf, "10.77.0.2", 40000, "203.0.113.9", (uint16_t)(5000 + t / 60),
				      LG_TCP_RST | LG_TCP_ACK, &rst, NULL);
		if (run(e, buf, len, t * S, &mod) == LG_VERDICT_ACCEPT && rd_port(buf, 20) == pub)
			refused++;
	}
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(refused, 7400 / 60 - 1 + (7400 % 60 != 0), "every probe admitted (EIF), every RST passed out translated");
	CHECK_EQ_INT(st.inbound_refused_by_inside, refused, "N7857-S7.1: each refused attempt ended at once");
	CHECK_EQ_INT(st.flows_active, 1, "only the session's flow is left");
	CHECK_EQ_INT(lg_engine_expire(e, 7441 * S), 1,
		     "N7857-S7.1: the mapping expires on its own schedule, refused probes did not move it");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.mappings_active, 0, "mapping released");
	lg_engine_destroy(e);
}

/* An IMAP session from inside port CPORT to server port SPORT: handshake at NOW and the
 * server's greeting. */
static uint16_t imap_session_to(struct lg_engine *e, uint16_t cport, uint16_t sport, uint64_t now)
{
	struct tcp_spec greet = { 5001, 1001, 65535, NULL, 0 };
	uint8_t buf[256];
	size_t len;
	bool mod;
	uint16_t pub = handshake_to(e, cport, sport, now);

	len = build_tcp4_spec(buf, "198.51.100.2", sport, "198.51.100.1", pub, LG_TCP_ACK | LG_TCP_PSH,
			      &greet, "* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n");
	run(e, buf, len, now, &mod);
	return pub;
}

static uint16_t imap_session(struct lg_engine *e, uint16_t cport, uint64_t now)
{
	return imap_session_to(e, cport, 143, now);
}

/* The observed view of the one flow from inside port CPORT: its phase, or -1 if not observed. */
static int observed_phase(struct lg_engine *e, uint16_t cport, uint64_t now)
{
	struct lg_flow_view v[8];
	size_t n = lg_engine_flows(e, now, v, 8);

	for (size_t i = 0; i < n; i++)
		if (v[i].flow.in_port == htons(cport))
			return v[i].observed ? (int)v[i].obs.phase : -1;
	return -2;
}

/* Issue 8: the observed ports and the pool size come from the policy; ports change live. */
static void test_observe_config(void)
{
	struct lg_policy pol, next;
	struct lg_engine *e;
	char err[256];

	test_policy(&pol);
	pol.observed_count = 1;
	pol.observed[0] = (struct lg_observed_port){ 1143, LG_MAIL_IMAP };
	e = lg_engine_create(&pol, 0);
	imap_session_to(e, 41000, 143, 1 * S);
	imap_session_to(e, 41001, 1143, 1 * S);
	CHECK_EQ_INT(observed_phase(e, 41000, 2 * S), -1, "143 is no longer observed");
	CHECK_EQ_INT(observed_phase(e, 41001, 2 * S), LG_PHASE_PLAINTEXT, "1143 is followed as IMAP");
	next = pol;
	next.observed[0].port = 143;
	CHECK_EQ_INT(lg_engine_reload(e, &next, err, sizeof(err)), 0, "observed ports change live");
	imap_session_to(e, 41002, 143, 3 * S);
	CHECK_EQ_INT(observed_phase(e, 41002, 4 * S), LG_PHASE_PLAINTEXT, "after reload: 143 followed");
	CHECK_EQ_INT(observed_phase(e, 41001, 4 * S), LG_PHASE_PLAINTEXT, "a session followed goes on");
	next.observe_sessions = 10;
	CHECK_EQ_INT(lg_engine_reload(e, &next, err, sizeof(err)), -1, "the pool size needs a restart");
	CHECK(strstr(err, "observe sessions") != NULL, "and the refusal names it: %s", err);
	lg_engine_destroy(e);

	test_policy(&pol);
	pol.observe_sessions = 0;
	e = lg_engine_create(&pol, 0);
	CHECK(e != NULL, "observe sessions 0: the engine runs");
	if (!e)
		return;
	imap_session(e, 41003, 1 * S);
	CHECK_EQ_INT(observed_phase(e, 41003, 2 * S), -1, "and observes nothing");
	lg_engine_destroy(e);
}

/* Issue 8: mail sessions seen idling in IDLE are the last flows evicted under overload. */
static void test_idle_evicted_last(void)
{
	struct lg_policy pol;
	struct lg_engine *e;
	struct lg_engine_stats st;
	struct lg_flow_view v[4];
	uint8_t buf[256];
	size_t len, n;
	bool mod;
	uint16_t pub_a;
	struct tcp_spec idle_cmd = { 1001, 5038, 65535, NULL, 0 }, cont = { 5038, 1010, 65535, NULL, 0 };

	test_policy(&pol);
	pol.max_flows = 3;
	e = lg_engine_create(&pol, 0);
	pub_a = imap_session(e, 40000, 1 * S); /* the oldest, and it goes into IDLE */
	len = build_tcp4_spec(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK | LG_TCP_PSH,
			      &idle_cmd, "a1 IDLE\r\n");
	run(e, buf, len, 2 * S, &mod);
	len = build_tcp4_spec(buf, "198.51.100.2", 143, "198.51.100.1", pub_a, LG_TCP_ACK | LG_TCP_PSH,
			      &cont, "+ idling\r\n");
	run(e, buf, len, 2 * S, &mod);
	n = lg_engine_flows(e, 3 * S, v, 4);
	CHECK(n == 1 && v[0].observed && v[0].obs.phase == LG_PHASE_IDLE && (v[0].flow.flags & LG_FLOW_IDLING),
	      "the session is seen in IDLE");
	imap_session(e, 40001, 10 * S);
	imap_session(e, 40002, 20 * S);
	/* a fourth: the table is full; the longest-idle flow is the one in IDLE, but it stays */
	len = build_tcp4(buf, "10.77.0.2", 40003, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, 30 * S, &mod), LG_VERDICT_ACCEPT, "room is made");
	n = lg_engine_flows(e, 30 * S, v, 4);
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.evicted_mail, 1, "one mail flow evicted");
	for (size_t i = 0; i < n; i++)
		if (v[i].flow.in_port == htons(40001))
			CHECK(0, "the longest-idle session not in IDLE should have gone");
	{
		bool idle_kept = false;

		for (size_t i = 0; i < n; i++)
			idle_kept |= v[i].flow.in_port == htons(40000);
		CHECK(idle_kept, "the session in IDLE, though idle longest, is kept");
	}
	lg_engine_destroy(e);
}

int main(void)
{
	test_observe_config();
	test_idle_evicted_last();
	test_refused_probes();
	test_public_pool();
	test_rules();
	test_reload();
	test_nat_both_ways();
	test_drops();
	test_timers();
	test_state_machine();
	test_rst_validation();
	test_endpoint_independent_mapping();
	test_filtering();
	test_unsolicited_syn();
	test_unsolicited_syn_superseded();
	test_mapping_log();
	test_port_randomness();
	test_host_quota();
	test_refusal_code();
	test_hairpin();
	test_overload();
	test_service_timeouts();
	test_port_rest();
	return lgtest_finish();
}
