#include "dataplane/engine.h"
#include "dataplane/tcpstate.h"
#include "lgtest.h"
#include "pktbuild.h"
#include "testpolicy.h"

#define S (1000000000ull)

static const uint8_t no_rest[4] = { 0, 0, 0, 0 };
static const uint8_t mtu1280[4] = { 0, 0, 0x05, 0x00 };

static struct lg_engine *engine(void)
{
	struct lg_policy pol;

	test_policy(&pol);
	pol.port_lo = 20000;
	pol.port_hi = 29999;
	return lg_engine_create(&pol, 0);
}

static enum lg_verdict run(struct lg_engine *e, uint8_t *buf, size_t len, uint64_t now, bool *mod)
{
	size_t out_len;

	return lg_engine_packet(e, buf, len, now, mod, &out_len);
}

static uint16_t rd16be(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd_addr(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static bool icmp_checksums_ok(const uint8_t *buf, size_t len, size_t inner_ihl)
{
	return lg_csum_ipv4_header(buf, 20) == 0 &&
	       lg_csum_finish(lg_csum_add(0, buf + 20, len - 20)) == 0 &&
	       lg_csum_ipv4_header(buf + 28, inner_ihl) == 0;
}

/* Establish 10.77.0.2:40000 <-> 198.51.100.2:143; returns the public port. */
static uint16_t establish(struct lg_engine *e)
{
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub;

	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	run(e, buf, len, S, &mod);
	pub = rd16be(buf + 20);
	len = build_tcp4(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_SYN | LG_TCP_ACK, NULL);
	run(e, buf, len, S, &mod);
	return pub;
}

/* The segment as the server saw it (already translated), to be quoted by an error. */
static size_t outside_segment(uint8_t *buf, uint16_t pub)
{
	return build_tcp4(buf, "198.51.100.1", pub, "198.51.100.2", 143, LG_TCP_ACK, "a1 NOOP\r\n");
}

static void test_frag_needed(void)
{
	struct lg_engine *e = engine();
	uint16_t pub = establish(e);
	uint8_t seg[128], buf[256], tcp_csum[2];
	size_t seg_len = outside_segment(seg, pub), len;
	struct lg_flow_view v[2];
	struct lg_engine_stats st;
	bool mod;

	memcpy(tcp_csum, seg + 36, 2);
	/* from a router on the way, not the server: not filtered by source (RFC 4787 REQ-12a) */
	len = build_icmp4(buf, "198.51.100.77", "198.51.100.1", 3, 4, mtu1280, seg, seg_len, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 5 * S, &mod), LG_VERDICT_ACCEPT, "N5382-R9: 3/4 about a flow passes");
	CHECK(mod, "and is rewritten");
	CHECK_EQ_INT(rd_addr(buf + 16), inet_addr("10.77.0.2"), "I5508-R4c: outer destination is the inside host");
	CHECK_EQ_INT(rd_addr(buf + 12), inet_addr("198.51.100.77"), "outer source kept");
	CHECK(buf[20] == 3 && buf[21] == 4, "I5508-R4b: type and code unchanged");
	CHECK(memcmp(buf + 24, mtu1280, 4) == 0, "next-hop MTU unchanged");
	CHECK_EQ_INT(rd_addr(buf + 28 + 12), inet_addr("10.77.0.2"), "I5508-R4a: quoted source reverted");
	CHECK_EQ_INT(rd16be(buf + 48), 40000, "quoted source port reverted");
	CHECK_EQ_INT(rd_addr(buf + 28 + 16), inet_addr("198.51.100.2"), "quoted destination kept");
	CHECK(icmp_checksums_ok(buf, len, 20), "I5508-3022: outer IP, ICMP and quoted IP checksums valid");
	CHECK(memcmp(buf + 28 + 36, tcp_csum, 2) == 0, "quoted TCP checksum left as it was");
	CHECK(memcmp(buf + 28 + 40, "a1 NOOP\r\n", 9) == 0, "quoted payload untouched");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.icmp_errors_in, 1, "counted");
	CHECK_EQ_INT(st.icmp_frag_needed, 1, "frag-needed counted");
	CHECK_EQ_INT(lg_engine_flows(e, 5 * S, v, 2), 1, "flow still there");
	CHECK_EQ_INT(v[0].idle_s, 4, "the ICMP error did not refresh the flow");
	lg_engine_destroy(e);
}

static void test_no_icmp_ends_a_flow(void)
{
	static const uint8_t kinds[][2] = { { 3, 0 }, { 3, 1 }, { 3, 5 }, { 3, 3 }, { 3, 13 },
					    { 11, 0 }, { 12, 0 }, { 3, 2 }, { 4, 0 }, { 5, 1 } };
	struct lg_engine *e = engine();
	uint16_t pub = establish(e);
	uint8_t seg[128], buf[256];
	size_t len;
	struct lg_flow_view v[2];
	bool mod;

	outside_segment(seg, pub);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", kinds[i][0], kinds[i][1], no_rest,
				  seg, 28, NULL, 0);
		if (run(e, buf, len, 2 * S, &mod) != LG_VERDICT_ACCEPT)
			CHECK(0, "ICMP %u/%u not passed", kinds[i][0], kinds[i][1]);
		if (lg_engine_flows(e, 2 * S, v, 2) != 1 || v[0].flow.state != LG_TCP_ESTABLISHED)
			CHECK(0, "N5382-R10: ICMP %u/%u changed the flow", kinds[i][0], kinds[i][1]);
	}
	CHECK(1, "N5382-R10, L5383-4.2b: ten kinds of ICMP error, the flow stays established");
	len = build_tcp4(buf, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_ACK, "a1 OK\r\n");
	CHECK_EQ_INT(run(e, buf, len, 3 * S, &mod), LG_VERDICT_ACCEPT, "data still flows after them");
	lg_engine_destroy(e);
}

static void test_bad_and_unknown(void)
{
	struct lg_engine *e = engine();
	uint16_t pub = establish(e);
	uint8_t seg[128], buf[256];
	size_t seg_len = outside_segment(seg, pub), len;
	struct lg_engine_stats st;
	bool mod;

	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 1, no_rest, seg, seg_len, NULL, 0);
	buf[30] ^= 0x40; /* a quoted byte changes, the ICMP checksum no longer matches */
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP, "I5508-R3: bad ICMP checksum dropped");
	seg[10] ^= 0xff; /* the quoted IP header checksum */
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 1, no_rest, seg, seg_len, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP,
		     "I5508-R3a: bad quoted IP checksum dropped");
	seg[10] ^= 0xff;
	seg[36] ^= 0xff; /* the quoted TCP checksum: not ours to judge */
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 1, no_rest, seg, seg_len, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT,
		     "I5508-R3c: wrong quoted TCP checksum still forwarded");
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 1, no_rest, seg, 28, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT,
		     "I5508-R3c: only 8 bytes of TCP quoted, still forwarded");
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 1, no_rest, seg, 24, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP, "ports not quoted: dropped");
	outside_segment(seg, (uint16_t)(pub == 29999 ? 20000 : pub + 1));
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 1, no_rest, seg, seg_len, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP,
		     "I5508-R4: an error about no flow is dropped silently");
	/* about the gateway's own connection from a port outside the NAT range: left alone */
	build_tcp4(seg, "198.51.100.1", 22, "198.51.100.2", 5000, LG_TCP_ACK, "x");
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 1, no_rest, seg, 28, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT, "error about the gateway's own port passes");
	CHECK(!mod, "untranslated");
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 13, 0, no_rest, (const uint8_t *)"stamp.......", 12,
			  NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP, "timestamp query: not translated, dropped");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.malformed[LG_PKT_BAD_ICMP_CSUM], 1, "bad ICMP checksum counted");
	CHECK_EQ_INT(st.malformed[LG_PKT_BAD_INNER_CSUM], 1, "bad inner checksum counted");
	CHECK_EQ_INT(st.dropped[LG_DROP_ICMP_NO_FLOW], 1, "error without flow counted");
	CHECK_EQ_INT(st.dropped[LG_DROP_UNSUPPORTED], 2, "unsupported counted");
	lg_engine_destroy(e);
}

static void test_options_and_extensions(void)
{
	struct lg_engine *e = engine();
	uint16_t pub = establish(e);
	uint8_t seg[160], opt_seg[160], buf[400], ext[12], quote[128];
	size_t seg_len = outside_segment(seg, pub), len;
	uint8_t rest[4] = { 0, 32, 0, 0 }; /* RFC 4884: 32 words = 128 bytes of datagram */
	bool mod;
	uint16_t c;

	/* I5508-R3b: a quoted IP header with options (IHL 6) */
	memcpy(opt_seg, seg, 20);
	opt_seg[0] = 0x46;
	memcpy(opt_seg + 20, "\x01\x01\x01\x00", 4); /* NOP NOP NOP EOL */
	memcpy(opt_seg + 24, seg + 20, seg_len - 20);
	memset(opt_seg + 10, 0, 2);
	c = lg_csum_ipv4_header(opt_seg, 24);
	memcpy(opt_seg + 10, &c, 2);
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 1, no_rest, opt_seg, seg_len + 4, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT, "I5508-R3b: quoted IP options walked past");
	CHECK_EQ_INT(rd16be(buf + 28 + 24), 40000, "port found after the options");
	CHECK(icmp_checksums_ok(buf, len, 24), "checksums with quoted options");

	/* I5508-R3d: RFC 4884 length and an extension structure after the padded datagram */
	memset(quote, 0, sizeof(quote));
	memcpy(quote, seg, seg_len);
	memcpy(ext, "\x20\x00\x00\x00\x00\x08\x01\x01\xde\xad\xbe\xef", 12);
	len = build_icmp4(buf, "198.51.100.2", "198.51.100.1", 3, 0, rest, quote, 128, ext, 12);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT, "I5508-R3d: RFC 4884 extension passes");
	CHECK(memcmp(buf + 28 + 128, ext, 12) == 0, "extension untouched");
	CHECK(buf[25] == 32, "RFC 4884 length kept");
	CHECK(icmp_checksums_ok(buf, len, 20), "checksums with the extension");
	CHECK_EQ_INT(rd16be(buf + 48), 40000, "quoted port reverted");
	lg_engine_destroy(e);
}

static void test_private_realm_error(void)
{
	struct lg_engine *e = engine();
	uint16_t pub = establish(e);
	uint8_t seg[128], buf[256];
	size_t len;
	bool mod;

	/* what the client received: the server's segment after translation */
	len = build_tcp4(seg, "198.51.100.2", 143, "10.77.0.2", 40000, LG_TCP_ACK, "* OK\r\n");
	len = build_icmp4(buf, "10.77.0.2", "198.51.100.2", 3, 3, no_rest, seg, 28, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT, "I5508-R5: inside error about a flow passes");
	CHECK_EQ_INT(rd_addr(buf + 12), inet_addr("198.51.100.1"), "I5508-R5: outer source is the public address");
	CHECK_EQ_INT(rd_addr(buf + 28 + 16), inet_addr("198.51.100.1"), "quoted destination is the public address");
	CHECK_EQ_INT(rd16be(buf + 28 + 22), pub, "quoted destination port is the public port");
	CHECK(buf[20] == 3 && buf[21] == 3, "type and code unchanged");
	CHECK(icmp_checksums_ok(buf, len, 20), "checksums valid");
	len = build_tcp4(seg, "198.51.100.9", 143, "10.77.0.2", 40000, LG_TCP_ACK, "x");
	len = build_icmp4(buf, "10.77.0.2", "198.51.100.9", 3, 3, no_rest, seg, 28, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP, "inside error about no flow dropped");
	lg_engine_destroy(e);
}

/* An echo request or reply; ID and SEQ in host order. */

static bool echo_checksums_ok(const uint8_t *buf, size_t len)
{
	return lg_csum_ipv4_header(buf, 20) == 0 &&
	       lg_csum_finish(lg_csum_add(0, buf + 20, len - 20)) == 0;
}

/* Send an echo request from SRC (id 0x1234) at NOW; returns the public id it left with. */
static uint16_t ping_out(struct lg_engine *e, const char *src, const char *dst, uint64_t now)
{
	uint8_t buf[128];
	size_t len = build_echo4(buf, src, dst, 8, 0x1234, 1);
	bool mod;

	if (run(e, buf, len, now, &mod) != LG_VERDICT_ACCEPT || !mod)
		return 0;
	return rd16be(buf + 24);
}

/* A reply from SRC to the public id at NOW: 1 if translated to 10.77.0.2 id 0x1234, 0 if passed
 * untouched, -1 if dropped. */
static int reply_in(struct lg_engine *e, const char *src, uint16_t pub_id, uint64_t now)
{
	uint8_t buf[128];
	size_t len = build_echo4(buf, src, "198.51.100.1", 0, pub_id, 1);
	bool mod;

	if (run(e, buf, len, now, &mod) != LG_VERDICT_ACCEPT)
		return -1;
	if (!mod)
		return 0;
	return rd_addr(buf + 16) == inet_addr("10.77.0.2") && rd16be(buf + 24) == 0x1234 &&
	       echo_checksums_ok(buf, len);
}

static void test_echo_sessions(void)
{
	struct lg_engine *e = engine();
	struct lg_engine_stats st;
	uint8_t buf[128];
	size_t len = build_echo4(buf, "10.77.0.2", "198.51.100.2", 8, 0x1234, 1);
	uint16_t pub, pub2, other;
	bool mod;

	CHECK_EQ_INT(run(e, buf, len, 10 * S, &mod), LG_VERDICT_ACCEPT, "I5508-R1: inside echo request passes");
	CHECK(mod, "I5508-R1: and is translated");
	pub = rd16be(buf + 24);
	CHECK_EQ_INT(rd_addr(buf + 12), inet_addr("198.51.100.1"), "I5508-R1: from the public address");
	CHECK(pub != 0, "a public id is never 0");
	CHECK(echo_checksums_ok(buf, len), "I5508-R1: IP and ICMP checksums valid after translation");
	CHECK_EQ_INT(rd16be(buf + 26), 1, "sequence number unchanged");

	pub2 = ping_out(e, "10.77.0.2", "198.51.100.3", 10 * S);
	CHECK_EQ_INT(pub2, pub, "I5508-R1: the same id towards another host: the same public id (EIM)");
	other = ping_out(e, "10.77.0.3", "198.51.100.2", 10 * S);
	CHECK(other != 0 && other != pub, "another inside host with the same id gets its own public id");

	CHECK_EQ_INT(reply_in(e, "198.51.100.2", pub, 11 * S), 1,
		     "I5508-R1: the reply reaches the pinging host with its own id, checksums valid");
	CHECK_EQ_INT(reply_in(e, "198.51.100.7", pub, 11 * S), 1,
		     "endpoint-independent filtering: a reply from any host is admitted");
	CHECK_EQ_INT(reply_in(e, "198.51.100.2", (uint16_t)(pub ^ 0x5555), 11 * S), 0,
		     "a reply to no session is the gateway's own: passed untouched");

	/* RFC 5508 REQ-2: at least 60 s; the last packet was at 11 s */
	CHECK_EQ_INT(reply_in(e, "198.51.100.2", pub, 70 * S), 1,
		     "I5508-R2: 59 s idle, the reply is still translated");
	CHECK_EQ_INT(reply_in(e, "198.51.100.2", pub, 131 * S), 0,
		     "I5508-R2: 61 s idle, the session is gone");
	lg_engine_expire(e, 200 * S);
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.echo_sessions_active, 0, "expired sessions are removed");
	CHECK_EQ_INT(st.echo_sessions_expired, 2, "and counted");
	CHECK_EQ_INT(st.icmp_echo_out, 3, "echo requests translated counted");
	CHECK_EQ_INT(st.icmp_echo_in, 3, "echo replies translated counted");
	lg_engine_destroy(e);
}

static void test_echo_errors_and_filtering(void)
{
	struct lg_policy pol;
	struct lg_engine *e;
	uint8_t echo_seen[64], buf[256];
	size_t len, elen;
	uint16_t pub;
	bool mod;

	test_policy(&pol);
	pol.filtering = LG_FILTER_ADDRESS_DEPENDENT;
	e = lg_engine_create(&pol, 0);
	elen = build_echo4(echo_seen, "10.77.0.2", "198.51.100.2", 8, 0x1234, 1);
	CHECK_EQ_INT(run(e, echo_seen, elen, 10 * S, &mod), LG_VERDICT_ACCEPT, "echo out");
	pub = rd16be(echo_seen + 24);
	CHECK_EQ_INT(reply_in(e, "198.51.100.9", pub, 11 * S), -1,
		     "N5382-R3: address-dependent filtering drops a reply from a host never pinged");
	CHECK_EQ_INT(reply_in(e, "198.51.100.2", pub, 11 * S), 1, "the pinged host's reply passes");

	/* a router says the echo (as it left us) could not be delivered: traceroute -I, or 3/1 */
	len = build_icmp4(buf, "198.51.100.254", "198.51.100.1", 11, 0, no_rest, echo_seen, 28, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 40 * S, &mod), LG_VERDICT_ACCEPT,
		     "I5508-R4: a time-exceeded about an echo session passes");
	CHECK(mod, "translated");
	CHECK_EQ_INT(rd_addr(buf + 16), inet_addr("10.77.0.2"), "I5508-R4: outer destination is the pinging host");
	CHECK_EQ_INT(rd_addr(buf + 28 + 12), inet_addr("10.77.0.2"), "quoted source is the pinging host");
	CHECK_EQ_INT(rd16be(buf + 28 + 24), 0x1234, "quoted echo id is the host's own");
	CHECK(icmp_checksums_ok(buf, len, 20), "outer, ICMP and quoted IP checksums valid");
	{
		uint8_t sent[64];

		build_echo4(sent, "10.77.0.2", "198.51.100.2", 8, 0x1234, 1);
		CHECK_EQ_INT(rd16be(buf + 28 + 22), rd16be(sent + 22),
			     "the quoted echo checksum is again the one the host sent");
	}
	/* RFC 5508 REQ-6: the error did not refresh the session (last use at 11 s) */
	CHECK_EQ_INT(reply_in(e, "198.51.100.2", pub, 72 * S), 0,
		     "I5508-R6: an error about an echo session does not refresh it");

	len = build_icmp4(buf, "198.51.100.254", "198.51.100.1", 3, 1, no_rest, echo_seen, 28, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 80 * S, &mod), LG_VERDICT_DROP,
		     "I5508-R4: an error about an expired echo session is dropped");
	lg_engine_destroy(e);
}

/* I5508-R7: cli2 (10.77.0.3:41100) answers a hairpinned SYN from cli (10.77.0.2:40000) with
 * port unreachable, sent to the public address it came from; cli must get it, addressed to
 * itself and quoting the packet as cli sent it (to cli2's public endpoint). */
static void test_hairpinned_error(void)
{
	struct lg_engine *e = engine();
	uint8_t buf[256], seg[128];
	size_t len, seg_len;
	uint16_t cli2_pub, cli_pub;
	struct lg_engine_stats st;
	bool mod;

	len = build_tcp4(buf, "10.77.0.3", 41100, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	run(e, buf, len, S, &mod);
	cli2_pub = rd16be(buf + 20);
	/* cli's SYN to cli2's public endpoint: both passes of the hairpin */
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.1", cli2_pub, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_ACCEPT, "hairpin, first pass");
	CHECK_EQ_INT(run(e, buf, len, S, &mod), LG_VERDICT_ACCEPT, "hairpin, second pass");
	cli_pub = rd16be(buf + 20);
	CHECK(rd_addr(buf + 12) == inet_addr("198.51.100.1") && rd_addr(buf + 16) == inet_addr("10.77.0.3"),
	      "cli2 sees the SYN from the public address");
	/* cli2's port unreachable about exactly that segment */
	seg_len = build_tcp4(seg, "198.51.100.1", cli_pub, "10.77.0.3", 41100, LG_TCP_SYN, NULL);
	len = build_icmp4(buf, "10.77.0.3", "198.51.100.1", 3, 3, no_rest, seg, 28, NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT, "I5508-R7: hairpinned error passes");
	CHECK(mod, "and is translated");
	CHECK_EQ_INT(rd_addr(buf + 16), inet_addr("10.77.0.2"),
		     "I5508-R7a: outer destination is the embedded source after translation");
	CHECK_EQ_INT(rd_addr(buf + 28 + 12), inet_addr("10.77.0.2"), "quoted source: cli itself");
	CHECK_EQ_INT(rd16be(buf + 48), 40000, "quoted source port: cli's own");
	CHECK_EQ_INT(rd_addr(buf + 28 + 16), inet_addr("198.51.100.1"), "quoted destination: public");
	CHECK_EQ_INT(rd16be(buf + 50), cli2_pub, "quoted destination port: cli2's public port");
	CHECK(icmp_checksums_ok(buf, len, 20), "every checksum right");
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_ACCEPT, "second pass, after routing");
	CHECK_EQ_INT(rd_addr(buf + 12), inet_addr("198.51.100.1"),
		     "N5382-R8a: it leaves from the public address, as the hairpinned segments did");
	CHECK_EQ_INT(rd_addr(buf + 16), inet_addr("10.77.0.2"), "still to cli");
	CHECK_EQ_INT(rd16be(buf + 50), cli2_pub, "the quote unchanged by the second pass");
	CHECK(icmp_checksums_ok(buf, len, 20), "every checksum right after the second pass");
	/* an error quoting a public port no session of cli2 talks to: dropped */
	seg_len = build_tcp4(seg, "198.51.100.1", (uint16_t)(cli_pub + 1), "10.77.0.3", 41100, LG_TCP_SYN, NULL);
	len = build_icmp4(buf, "10.77.0.3", "198.51.100.1", 3, 3, no_rest, seg, seg_len < 28 ? seg_len : 28,
			  NULL, 0);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, &mod), LG_VERDICT_DROP, "I5508-R4: hairpinned error about no session dropped");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.icmp_errors_hairpinned, 1, "counted as hairpinned");
	CHECK_EQ_INT(st.icmp_by_kind[lg_icmp_kind_index(4, 3, 3)], 1, "and by type and code: 3/3, once");
	lg_engine_destroy(e);
}

/* Every kind has one index and back; what is not listed lands in its family's bucket. */
static void test_icmp_kinds(void)
{
	unsigned bad = 0, others = 0;

	for (unsigned i = 0; i < LG_ICMP_KINDS; i++) {
		struct lg_icmp_kind k = lg_icmp_kind_of(i);

		others += k.other;
		if (!k.other && lg_icmp_kind_index(k.family, k.type, k.code) != i)
			bad++;
	}
	CHECK_EQ_INT(bad, 0, "each listed kind maps back to its own index");
	CHECK_EQ_INT(others, 2, "one other bucket per family");
	CHECK(lg_icmp_kind_of(lg_icmp_kind_index(4, 3, 99)).other &&
	      lg_icmp_kind_of(lg_icmp_kind_index(4, 3, 99)).family == 4, "an unlisted IPv4 code: IPv4 other");
	CHECK(lg_icmp_kind_of(lg_icmp_kind_index(6, 200, 0)).other &&
	      lg_icmp_kind_of(lg_icmp_kind_index(6, 200, 0)).family == 6, "an unlisted IPv6 type: IPv6 other");
	CHECK(lg_icmp_kind_index(4, 3, 4) != lg_icmp_kind_index(6, 2, 0), "frag needed and packet too big apart");
}

int main(void)
{
	test_icmp_kinds();
	test_hairpinned_error();
	test_echo_sessions();
	test_echo_errors_and_filtering();
	test_frag_needed();
	test_no_icmp_ends_a_flow();
	test_bad_and_unknown();
	test_options_and_extensions();
	test_private_realm_error();
	return lgtest_finish();
}
