#include "dataplane/checksum.h"
#include "dataplane/nat.h"
#include "dataplane/packet.h"
#include "lgtest.h"
#include "pktbuild.h"

static void test_checksum_known_vector(void)
{
	/* RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d. */
	const uint8_t data[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	uint16_t c = lg_csum_finish(lg_csum_add(0, data, sizeof(data)));
	uint8_t be[2];

	memcpy(be, &c, 2);
	CHECK(be[0] == 0x22 && be[1] == 0x0d, "RFC 1071 vector: got %02x%02x", be[0], be[1]);
	/* odd length: the last byte is padded with zero on the right */
	const uint8_t odd[] = { 0x00, 0x01, 0xf2 };
	c = lg_csum_finish(lg_csum_add(0, odd, sizeof(odd)));
	memcpy(be, &c, 2);
	CHECK(be[0] == 0x0d && be[1] == 0xfe, "odd length: got %02x%02x", be[0], be[1]);
}

static void test_incremental_matches_full(void)
{
	uint8_t buf[128];
	uint32_t seed = 12345;

	/* Rewrite many address/port pairs; incremental results must equal a full recompute. */
	for (int i = 0; i < 2000; i++) {
		size_t len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK,
					(i & 1) ? "a1 NOOP\r\n" : "odd");
		struct lg_pkt p;
		uint32_t addr;
		uint16_t port;

		seed = seed * 1103515245u + 12345u;
		addr = seed;
		port = (uint16_t)(seed >> 7);
		if (lg_pkt_parse(buf, len, &p) != LG_PKT_OK) {
			CHECK(0, "built packet %d does not parse", i);
			return;
		}
		if (i % 2)
			lg_nat_rewrite_src(&p, addr, port);
		else
			lg_nat_rewrite_dst(&p, addr, port);
		if (!checksums_ok(buf, len)) {
			CHECK(0, "checksums invalid after rewrite %d", i);
			return;
		}
	}
	CHECK(1, "2000 rewrites kept checksums valid");
}

static void test_parse_valid(void)
{
	uint8_t buf[128];
	size_t len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	struct lg_pkt p;

	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_OK, "valid SYN");
	CHECK_EQ_INT(ntohs(p.sport), 40000, "sport");
	CHECK_EQ_INT(ntohs(p.dport), 143, "dport");
	CHECK_EQ_INT(p.saddr, inet_addr("10.77.0.2"), "saddr");
	CHECK_EQ_INT(p.tcp_flags, LG_TCP_SYN, "flags");
	CHECK_EQ_INT(p.payload_len, 0, "payload");
	CHECK_EQ_INT(p.seq, 1000, "seq");

	/* trailing bytes beyond the total length are ignored, not parsed */
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK, "xyz");
	CHECK_EQ_INT(lg_pkt_parse(buf, len + 6, &p), LG_PKT_OK, "padded packet");
	CHECK_EQ_INT(p.len, len, "length from header");
	CHECK_EQ_INT(p.payload_len, 3, "payload length");
}

static void set16(uint8_t *buf, size_t off, uint16_t v)
{
	v = htons(v);
	memcpy(buf + off, &v, 2);
}

static void fix_ip_csum(uint8_t *buf)
{
	uint16_t c;

	memset(buf + 10, 0, 2);
	c = lg_csum_ipv4_header(buf, (size_t)(buf[0] & 0x0f) * 4);
	memcpy(buf + 10, &c, 2);
}

static void test_parse_malformed(void)
{
	uint8_t buf[128], base[128];
	size_t len = build_tcp4(base, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK, "hello");
	struct lg_pkt p;

	for (size_t cut = 0; cut < len; cut++) {
		memcpy(buf, base, len);
		if (lg_pkt_parse(buf, cut, &p) == LG_PKT_OK) {
			CHECK(0, "truncated to %zu bytes accepted", cut);
			break;
		}
	}
	CHECK_EQ_INT(lg_pkt_parse(base, 0, &p), LG_PKT_TRUNCATED, "empty");
	CHECK_EQ_INT(lg_pkt_parse(base, 19, &p), LG_PKT_TRUNCATED, "19 bytes");

	memcpy(buf, base, len);
	buf[0] = 0x55;
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_VERSION, "version 5");

	memcpy(buf, base, len);
	buf[0] = 0x44;
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_IHL, "ihl 4");

	memcpy(buf, base, len);
	buf[0] = 0x4f; /* 60-byte header claimed, packet is 45 bytes */
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_LENGTH, "ihl beyond total length");

	memcpy(buf, base, len);
	set16(buf, 2, 12);
	fix_ip_csum(buf);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_LENGTH, "total length < header");

	memcpy(buf, base, len);
	set16(buf, 2, (uint16_t)(len + 100));
	fix_ip_csum(buf);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_TRUNCATED, "total length > captured");

	memcpy(buf, base, len);
	set16(buf, 2, 30); /* room for only 10 bytes of TCP */
	fix_ip_csum(buf);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_TRUNCATED, "short TCP header");

	memcpy(buf, base, len);
	buf[12] ^= 0x01;
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_IP_CSUM, "bad IP checksum");

	memcpy(buf, base, len);
	set16(buf, 6, 0x2000);
	fix_ip_csum(buf);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_FRAGMENT, "first fragment (MF)");
	set16(buf, 6, 0x0010);
	fix_ip_csum(buf);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_FRAGMENT, "later fragment");

	memcpy(buf, base, len);
	buf[9] = 17;
	fix_ip_csum(buf);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_NOT_TCP, "UDP");

	memcpy(buf, base, len);
	buf[32] = 4 << 4;
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_TCP_OFFSET, "data offset 4");
	buf[32] = 7 << 4; /* 28-byte header, only 25 bytes of TCP */
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_TCP_OFFSET, "data offset past end");

	/* every status has a name */
	for (int s = 0; s < LG_PKT_STATUS_COUNT; s++)
		CHECK(strcmp(lg_pkt_status_name((enum lg_pkt_status)s), "unknown") != 0, "name %d", s);
}

static void test_options(void)
{
	static const uint8_t ws7[] = { 1, 3, 3, 7 };          /* NOP, window scale 7 */
	static const uint8_t ws_big[] = { 3, 3, 20, 0 };      /* scale 20, capped to 14; EOL */
	static const uint8_t mss_ws[] = { 2, 4, 5, 0xb4, 1, 3, 3, 2 };
	static const uint8_t zero_len[] = { 2, 0, 0, 0 };     /* length 0 would loop forever */
	static const uint8_t past_end[] = { 1, 1, 8, 10 };    /* length 10 in a 4-byte area */
	static const uint8_t dangling[] = { 1, 1, 1, 8 };     /* kind with no length byte */
	struct tcp_spec spec = { 1, 0, 1000, ws7, sizeof(ws7) };
	uint8_t buf[128];
	struct lg_pkt p;
	size_t len;

	len = build_tcp4_spec(buf, "10.77.0.2", 1, "198.51.100.2", 2, LG_TCP_SYN, &spec, NULL);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_OK, "SYN with window scale");
	CHECK_EQ_INT(p.wscale, 7, "window scale 7");
	CHECK_EQ_INT(p.window, 1000, "window field");
	spec.options = ws_big;
	len = build_tcp4_spec(buf, "10.77.0.2", 1, "198.51.100.2", 2, LG_TCP_SYN, &spec, NULL);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_OK, "SYN with scale 20");
	CHECK_EQ_INT(p.wscale, 14, "scale capped at 14 (RFC 7323)");
	spec.options = mss_ws;
	spec.options_len = sizeof(mss_ws);
	len = build_tcp4_spec(buf, "10.77.0.2", 1, "198.51.100.2", 2, LG_TCP_SYN, &spec, NULL);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_OK, "MSS then window scale");
	CHECK_EQ_INT(p.wscale, 2, "scale after MSS");
	spec.options_len = 0;
	len = build_tcp4_spec(buf, "10.77.0.2", 1, "198.51.100.2", 2, LG_TCP_SYN, &spec, NULL);
	lg_pkt_parse(buf, len, &p);
	CHECK_EQ_INT(p.wscale, -1, "no option, no scale");

	spec.options_len = 4;
	spec.options = zero_len;
	len = build_tcp4_spec(buf, "10.77.0.2", 1, "198.51.100.2", 2, LG_TCP_SYN, &spec, NULL);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_TCP_OPTIONS, "option length 0");
	spec.options = past_end;
	len = build_tcp4_spec(buf, "10.77.0.2", 1, "198.51.100.2", 2, LG_TCP_SYN, &spec, NULL);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_TCP_OPTIONS, "option past the header");
	spec.options = dangling;
	len = build_tcp4_spec(buf, "10.77.0.2", 1, "198.51.100.2", 2, LG_TCP_SYN, &spec, NULL);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_TCP_OPTIONS, "option without length");
}

static void test_random_garbage(void)
{
	uint8_t buf[256];
	uint32_t seed = 99;
	struct lg_pkt p;
	int accepted = 0;

	/* Random bytes must never crash the parser; an accepted one must be self-consistent. */
	for (int i = 0; i < 100000; i++) {
		size_t len;

		seed = seed * 1664525u + 1013904223u;
		len = seed % sizeof(buf);
		for (size_t k = 0; k < len; k++) {
			seed = seed * 1664525u + 1013904223u;
			buf[k] = (uint8_t)(seed >> 24);
		}
		if (i & 1)
			buf[0] = 0x45; /* more interesting: valid version and IHL */
		if (lg_pkt_parse(buf, len, &p) == LG_PKT_OK) {
			accepted++;
			size_t l4_min = p.proto == LG_IPPROTO_TCP ? 20 : 8;

			if (!(p.len <= len && p.ihl + l4_min <= p.len && p.l4 + p.l4_len == buf + p.len)) {
				CHECK(0, "inconsistent accepted packet");
				return;
			}
		}
	}
	CHECK(1, "100000 random packets parsed safely (%d accepted)", accepted);
}

/* IPv6: TCP found behind extension headers; ICMPv6 errors about TCP with their quoted tuple;
 * everything malformed refused with its reason. */
static void test_ipv6(void)
{
	uint8_t buf[512], inner[128], bad[512];
	struct lg_pkt p;
	size_t len, ilen;
	uint8_t want_src[16];

	inet_pton(AF_INET6, "2001:db8:77::2", want_src);
	len = build_tcp6(buf, "2001:db8:77::2", 41000, "2001:db8:100::2", 143, LG_TCP_SYN, NULL);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_OK, "IPv6 SYN parses");
	CHECK_EQ_INT(p.family, 6, "family 6");
	CHECK_EQ_INT(p.proto, LG_IPPROTO_TCP, "TCP");
	CHECK_EQ_INT(ntohs(p.sport), 41000, "source port");
	CHECK_EQ_INT(ntohs(p.dport), 143, "destination port");
	CHECK(memcmp(p.saddr6, want_src, 16) == 0, "source address points into the packet");
	CHECK_EQ_INT(p.ihl, 40, "no extension header");

	len = build_tcp6_ext(buf, "2001:db8:77::2", 41000, "2001:db8:100::2", 143, LG_TCP_ACK, "a1 NOOP\r\n", 16);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_OK, "TCP behind destination options");
	CHECK_EQ_INT(p.ihl, 56, "TCP after 16 bytes of options");
	CHECK_EQ_INT(p.payload_len, 9, "payload length");
	for (size_t cut = 0; cut < len; cut++)
		if (lg_pkt_parse(buf, cut, &p) == LG_PKT_OK) {
			CHECK(0, "IPv6 truncated to %zu bytes accepted", cut);
			break;
		}
	memcpy(bad, buf, len);
	bad[41] = 20; /* options header claims 168 bytes */
	CHECK_EQ_INT(lg_pkt_parse(bad, len, &p), LG_PKT_BAD_EXT_HEADER, "extension header past the end");
	memcpy(bad, buf, len);
	bad[40] = 44; /* a fragment header follows */
	CHECK_EQ_INT(lg_pkt_parse(bad, len, &p), LG_PKT_FRAGMENT, "IPv6 fragment");
	memcpy(bad, buf, len);
	bad[40] = 17; /* UDP */
	CHECK_EQ_INT(lg_pkt_parse(bad, len, &p), LG_PKT_NOT_TCP, "IPv6 UDP");
	memcpy(bad, buf, len);
	bad[4] = 0;
	bad[5] = 0;
	bad[6] = 0; /* payload length 0 with hop-by-hop: a jumbogram */
	CHECK_EQ_INT(lg_pkt_parse(bad, len, &p), LG_PKT_BAD_LENGTH, "jumbogram");
	/* a chain of nine destination-options headers */
	build_ipv6_header(bad, "2001:db8:77::2", "2001:db8:100::2", 60, 9 * 8 + 20);
	for (int i = 0; i < 9; i++) {
		memset(bad + 40 + i * 8, 0, 8);
		bad[40 + i * 8] = i == 8 ? 6 : 60;
		bad[40 + i * 8 + 2] = 1;
		bad[40 + i * 8 + 3] = 4;
	}
	memset(bad + 40 + 72, 0, 20);
	bad[40 + 72 + 12] = 5 << 4;
	CHECK_EQ_INT(lg_pkt_parse(bad, 40 + 72 + 20, &p), LG_PKT_BAD_EXT_HEADER, "nine extension headers");

	/* an ICMPv6 packet too big about a segment the inside host sent */
	ilen = build_tcp6(inner, "2001:db8:77::2", 41000, "2001:db8:100::2", 143, LG_TCP_ACK, "x");
	len = build_icmp6(buf, "2001:db8:100::9", "2001:db8:77::2", 2, 0, inner, ilen);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_OK, "ICMPv6 packet too big parses");
	CHECK_EQ_INT(p.proto, LG_IPPROTO_ICMPV6, "ICMPv6");
	CHECK_EQ_INT(p.icmp.type, 2, "type 2");
	CHECK_EQ_INT(ntohs(p.icmp.inner_sport), 41000, "quoted source port");
	CHECK_EQ_INT(ntohs(p.icmp.inner_dport), 143, "quoted destination port");
	CHECK(memcmp(p.icmp.inner_saddr6, want_src, 16) == 0, "quoted source address");
	memcpy(bad, buf, len);
	bad[len - 1] ^= 0x40;
	CHECK_EQ_INT(lg_pkt_parse(bad, len, &p), LG_PKT_BAD_ICMP_CSUM, "ICMPv6 checksum");
	len = build_icmp6(buf, "2001:db8:100::9", "2001:db8:77::2", 1, 4, inner, 44);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_ICMP_UNSUPPORTED, "quote too short for the ports");
	len = build_icmp6(buf, "2001:db8:100::9", "2001:db8:77::2", 1, 4, inner, 30);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_BAD_INNER, "quote shorter than an IPv6 header");
	len = build_icmp6(buf, "2001:db8:100::9", "2001:db8:77::2", 135, 0, inner, ilen);
	CHECK_EQ_INT(lg_pkt_parse(buf, len, &p), LG_PKT_ICMP_UNSUPPORTED, "neighbour solicitation is not ours");
}

int main(void)
{
	test_ipv6();
	test_checksum_known_vector();
	test_incremental_matches_full();
	test_parse_valid();
	test_parse_malformed();
	test_options();
	test_random_garbage();
	return lgtest_finish();
}
