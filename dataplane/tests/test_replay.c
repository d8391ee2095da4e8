#include "dataplane/replay.h"
#include "lgtest.h"
#include "pktbuild.h"
#include "testpolicy.h"

#include <pcap/pcap.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_FRAMES 16
#define SEED       42

struct frame {
	uint8_t data[256];
	size_t len;
	uint64_t ts_ns;
};

static char dir[] = "/tmp/lg-replay-test.XXXXXX"; /* mkdtemp fills it in */

static char *path(const char *name)
{
	static char buf[4][128];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static const uint8_t eth_hdr[14] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00 };

/* An Ethernet frame around an IPv4 TCP packet. */
static void eth_tcp(struct frame *f, uint64_t ts_s, const char *src, uint16_t sport,
		    const char *dst, uint16_t dport, uint8_t flags, const char *payload)
{
	memcpy(f->data, eth_hdr, 14);
	f->len = 14 + build_tcp4(f->data + 14, src, sport, dst, dport, flags, payload);
	f->ts_ns = ts_s * 1000000000ull;
}

static void write_pcap(const char *file, int linktype, const struct frame *frames, size_t n,
		       size_t truncate_last_to)
{
	pcap_t *h = pcap_open_dead_with_tstamp_precision(linktype, 65535, PCAP_TSTAMP_PRECISION_NANO);
	pcap_dumper_t *d = pcap_dump_open(h, file);

	for (size_t i = 0; i < n; i++) {
		struct pcap_pkthdr ph = { 0 };

		ph.ts.tv_sec = (time_t)(frames[i].ts_ns / 1000000000ull);
		ph.ts.tv_usec = (suseconds_t)(frames[i].ts_ns % 1000000000ull);
		ph.len = (bpf_u_int32)frames[i].len;
		ph.caplen = (i == n - 1 && truncate_last_to) ? (bpf_u_int32)truncate_last_to : ph.len;
		pcap_dump((u_char *)d, &ph, frames[i].data);
	}
	pcap_dump_close(d);
	pcap_close(h);
}

static size_t read_pcap(const char *file, struct frame *frames, size_t max)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *h = pcap_open_offline(file, err);
	struct pcap_pkthdr *ph;
	const u_char *data;
	size_t n = 0;

	if (!h)
		return 0;
	while (n < max && pcap_next_ex(h, &ph, &data) == 1) {
		frames[n].len = ph->caplen < sizeof(frames[n].data) ? ph->caplen : sizeof(frames[n].data);
		memcpy(frames[n].data, data, frames[n].len);
		n++;
	}
	pcap_close(h);
	return n;
}

static struct lg_engine *engine(void)
{
	struct lg_policy pol;

	test_policy(&pol);
	lg_prefix6_parse("2001:db8:77::/64", &pol.inside6[0]);
	pol.inside6_count = 1;
	pol.port_lo = 20000;
	pol.port_hi = 59999;
	return lg_engine_create(&pol, SEED);
}

static uint16_t port_at(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int replay(const char *in, const char *out, struct lg_replay_stats *st, char *err)
{
	struct lg_engine *e = engine();
	int rc = lg_replay_run(e, in, out, st, err, 256);

	lg_engine_destroy(e);
	return rc;
}

/* The public port the seeded engine gives the first flow. */
static uint16_t learn_public_port(void)
{
	struct frame f[1], out[1];
	struct lg_replay_stats st;
	char err[256];

	eth_tcp(&f[0], 1000, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	write_pcap(path("syn.pcap"), DLT_EN10MB, f, 1, 0);
	CHECK_EQ_INT(replay(path("syn.pcap"), path("syn.out.pcap"), &st, err), 0, "replay SYN");
	CHECK_EQ_INT(read_pcap(path("syn.out.pcap"), out, 1), 1, "one packet written");
	CHECK(memcmp(out[0].data, eth_hdr, 14) == 0, "Ethernet header kept");
	return port_at(out[0].data + 14 + 20);
}

static void test_session(uint16_t pub)
{
	struct frame in[MAX_FRAMES], out[MAX_FRAMES];
	struct lg_replay_stats st;
	char err[256];
	size_t n = 0, got;

	eth_tcp(&in[n++], 1000, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	eth_tcp(&in[n++], 1000, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_SYN | LG_TCP_ACK, NULL);
	eth_tcp(&in[n++], 1001, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK, "a1 NOOP\r\n");
	eth_tcp(&in[n++], 1001, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_ACK, "a1 OK\r\n");
	/* unsolicited: to a public port no mapping holds */
	eth_tcp(&in[n++], 1002, "198.51.100.9", 143, "198.51.100.1", (uint16_t)(pub == 59999 ? pub - 1 : pub + 1),
		LG_TCP_SYN, NULL);
	memcpy(in[n].data, eth_hdr, 12);                                                     /* ARP */
	in[n].data[12] = 0x08, in[n].data[13] = 0x06;
	memset(in[n].data + 14, 0, 28);
	in[n].len = 42, in[n].ts_ns = 1002000000000ull, n++;
	eth_tcp(&in[n], 1002, "10.77.0.2", 5353, "224.0.0.251", 5353, 0, "udp"); /* UDP */
	in[n].data[14 + 9] = 17, n++;
	/* 802.1Q-tagged data on the same flow */
	memcpy(in[n].data, eth_hdr, 12);
	in[n].data[12] = 0x81, in[n].data[13] = 0x00, in[n].data[14] = 0, in[n].data[15] = 7;
	in[n].data[16] = 0x08, in[n].data[17] = 0x00;
	in[n].len = 18 + build_tcp4(in[n].data + 18, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK,
				    "a2 NOOP\r\n");
	in[n].ts_ns = 1003000000000ull, n++;
	eth_tcp(&in[n++], 1003, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK, "truncated");
	write_pcap(path("session.pcap"), DLT_EN10MB, in, n, 14 + 30);

	CHECK_EQ_INT(replay(path("session.pcap"), path("session.out.pcap"), &st, err), 0, "replay session");
	CHECK_EQ_INT(st.read, 9, "records read");
	CHECK_EQ_INT(st.not_steered, 2, "ARP and UDP not steered");
	CHECK_EQ_INT(st.accepted, 5, "accepted");
	CHECK_EQ_INT(st.modified, 5, "all accepted packets translated");
	CHECK_EQ_INT(st.dropped, 2, "unsolicited SYN and truncated capture dropped");
	got = read_pcap(path("session.out.pcap"), out, MAX_FRAMES);
	CHECK_EQ_INT(got, 5, "five packets written");
	for (size_t i = 0; i < got; i++) {
		size_t l3 = out[i].data[12] == 0x81 ? 18 : 14;

		CHECK(checksums_ok(out[i].data + l3, out[i].len - l3), "packet %zu checksums", i);
	}
	if (got == 5) {
		CHECK_EQ_INT(port_at(out[0].data + 14 + 20), pub, "seeded port reproduced");
		CHECK(memcmp(out[1].data + 14 + 16, "\x0a\x4d\x00\x02", 4) == 0, "SYN-ACK to 10.77.0.2");
		CHECK_EQ_INT(port_at(out[1].data + 14 + 22), 40000, "SYN-ACK to the inside port");
		CHECK(memcmp(out[2].data + 14 + 40, "a1 NOOP\r\n", 9) == 0, "client payload intact");
		CHECK(memcmp(out[3].data + 14 + 40, "a1 OK\r\n", 7) == 0, "server payload intact");
		CHECK(out[4].data[12] == 0x81 && port_at(out[4].data + 18 + 20) == pub,
		      "VLAN frame translated, tag kept");
	}
}

static void test_timers_follow_capture_clock(uint16_t pub)
{
	struct frame in[4];
	struct lg_replay_stats st;
	char err[256];

	eth_tcp(&in[0], 1000, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_SYN, NULL);
	eth_tcp(&in[1], 1000, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_SYN | LG_TCP_ACK, NULL);
	eth_tcp(&in[2], 1000 + 7439, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_ACK, "* 1 EXISTS\r\n");
	eth_tcp(&in[3], 1000 + 7439 + 7441, "198.51.100.2", 143, "198.51.100.1", pub, LG_TCP_ACK, "late");
	write_pcap(path("idle.pcap"), DLT_EN10MB, in, 4, 0);
	CHECK_EQ_INT(replay(path("idle.pcap"), NULL, &st, err), 0, "replay idle capture");
	CHECK_EQ_INT(st.accepted, 3, "N5382-R5: data after 7439 s idle passes");
	CHECK_EQ_INT(st.dropped, 1, "data after 7441 s idle is dropped: flow expired");
}

static void test_raw_ip(void)
{
	struct frame in[1], out[1];
	struct lg_replay_stats st;
	char err[256];

	in[0].len = build_tcp4(in[0].data, "10.77.0.5", 41000, "198.51.100.2", 587, LG_TCP_SYN, NULL);
	in[0].ts_ns = 5;
	write_pcap(path("raw.pcap"), DLT_RAW, in, 1, 0);
	CHECK_EQ_INT(replay(path("raw.pcap"), path("raw.out.pcap"), &st, err), 0, "replay raw IP");
	CHECK_EQ_INT(read_pcap(path("raw.out.pcap"), out, 1), 1, "raw packet written");
	CHECK(memcmp(out[0].data + 12, "\xc6\x33\x64\x01", 4) == 0, "raw IP source translated");
	CHECK(checksums_ok(out[0].data, out[0].len), "raw IP checksums");
}

/* IPv6 in Ethernet frames: filtered, written out unchanged; an unsolicited SYN dropped; ICMPv6
 * neighbour discovery is not steered. */
static void test_ipv6(void)
{
	struct frame in[4], out[4];
	struct lg_replay_stats st;
	char err[256];
	size_t n;

	for (int i = 0; i < 4; i++) {
		memcpy(in[i].data, eth_hdr, 14);
		in[i].data[12] = 0x86;
		in[i].data[13] = 0xdd;
		in[i].ts_ns = (uint64_t)i * 1000;
	}
	in[0].len = 14 + build_tcp6(in[0].data + 14, "2001:db8:77::2", 41000, "2001:db8:100::2", 143,
				    LG_TCP_SYN, NULL);
	in[1].len = 14 + build_tcp6(in[1].data + 14, "2001:db8:100::2", 143, "2001:db8:77::2", 41000,
				    LG_TCP_SYN | LG_TCP_ACK, NULL);
	in[2].len = 14 + build_tcp6(in[2].data + 14, "2001:db8:100::9", 5000, "2001:db8:77::2", 22,
				    LG_TCP_SYN, NULL);
	in[3].len = 14 + build_icmp6(in[3].data + 14, "2001:db8:100::9", "2001:db8:77::2", 135, 0,
				     in[0].data + 14, 40);
	write_pcap(path("v6.pcap"), DLT_EN10MB, in, 4, 0);
	CHECK_EQ_INT(replay(path("v6.pcap"), path("v6.out.pcap"), &st, err), 0, "replay IPv6");
	CHECK_EQ_INT(st.accepted, 2, "IPv6 SYN and SYN-ACK pass");
	CHECK_EQ_INT(st.dropped, 1, "unsolicited IPv6 SYN dropped");
	CHECK_EQ_INT(st.not_steered, 1, "neighbour solicitation not steered");
	n = read_pcap(path("v6.out.pcap"), out, 4);
	CHECK_EQ_INT(n, 2, "two IPv6 frames written");
	CHECK(n == 2 && out[0].len == in[0].len && memcmp(out[0].data, in[0].data, in[0].len) == 0,
	      "IPv6 written byte for byte");
}

static void test_bad_files(void)
{
	struct lg_replay_stats st;
	char err[256];
	FILE *f;
	struct frame one[1];

	CHECK_EQ_INT(replay(path("missing.pcap"), NULL, &st, err), -1, "missing file");
	CHECK(strstr(err, "missing.pcap") != NULL, "error names the file: %s", err);
	f = fopen(path("garbage.pcap"), "w");
	fputs("this is not a capture file at all, not even close", f);
	fclose(f);
	CHECK_EQ_INT(replay(path("garbage.pcap"), NULL, &st, err), -1, "garbage file refused");
	one[0].len = 20;
	memset(one[0].data, 0, 20);
	one[0].ts_ns = 0;
	write_pcap(path("wifi.pcap"), DLT_IEEE802_11, one, 1, 0);
	CHECK_EQ_INT(replay(path("wifi.pcap"), NULL, &st, err), -1, "unsupported link type");
	CHECK(strstr(err, "not supported") != NULL, "link type error: %s", err);
	CHECK_EQ_INT(replay(path("raw.pcap"), "/nonexistent-dir/out.pcap", &st, err), -1,
		     "unwritable output");
	/* a capture cut off in the middle of a record */
	f = fopen(path("raw.pcap"), "r+");
	if (f) {
		fseek(f, 0, SEEK_END);
		long size = ftell(f);

		fclose(f);
		CHECK(truncate(path("raw.pcap"), size - 10) == 0, "truncate capture");
		CHECK_EQ_INT(replay(path("raw.pcap"), NULL, &st, err), -1, "cut-off capture reported");
	}
}

int main(void)
{
	uint16_t pub;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	pub = learn_public_port();
	CHECK(pub >= 20000 && pub <= 59999, "public port %u in range", pub);
	CHECK_EQ_INT(learn_public_port(), pub, "same seed, same port");
	test_session(pub);
	test_timers_follow_capture_clock(pub);
	test_raw_ip();
	test_ipv6();
	test_bad_files();
	{
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cleanup of %s failed\n", dir);
	}
	return lgtest_finish();
}
