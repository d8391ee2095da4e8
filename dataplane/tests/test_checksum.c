/* The Internet checksum: the word-at-a-time sum against a plain 16-bit reference, and the
 * whole-segment fill used for packets whose checksum the kernel left partial (GSO). */
#include "lgtest.h"
#include "dataplane/packet.h"
#include "pktbuild.h"

#include <stdlib.h>

/* RFC 1071 as written: 16-bit words, carries folded at the end. */
static uint16_t reference_csum(const uint8_t *p, size_t len)
{
	uint64_t acc = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		acc += (uint16_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		acc += (uint16_t)(p[len - 1] << 8);
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return htons((uint16_t)~acc);
}

static void test_sum_matches_reference(void)
{
	static uint8_t data[70000];
	unsigned bad = 0;

	srand(7);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)rand();
	/* every length up to 300 at every alignment up to 8, then large ones */
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 300; len++)
			if (lg_csum_finish(lg_csum_add(0, data + off, len)) !=
			    reference_csum(data + off, len))
				bad++;
	for (size_t len = 1400; len < sizeof(data) - 8; len += 4093)
		if (lg_csum_finish(lg_csum_add(0, data + 3, len)) != reference_csum(data + 3, len))
			bad++;
	CHECK_EQ_INT(bad, 0, "word-at-a-time sum equals the 16-bit reference");

	memset(data, 0xff, 65536);
	CHECK(lg_csum_finish(lg_csum_add(0, data, 65536)) == reference_csum(data, 65536),
	      "all-ones 64 KB: the carries are not lost");
	CHECK(lg_csum_finish(lg_csum_add(lg_csum_add(0, data, 1000), data + 1000, 64536)) ==
		      reference_csum(data, 65536),
	      "a sum carried over from one call into the next gives the same result");
}

static void test_fill_tcp4(void)
{
	uint8_t pkt[1600];
	size_t len = build_tcp4(pkt, "10.77.0.2", 40000, "198.51.100.2", 143, LG_TCP_ACK | LG_TCP_PSH,
				"a001 IDLE\r\n");

	CHECK(checksums_ok(pkt, len), "the built packet starts valid");
	/* what a partial checksum looks like: the field holds something else */
	pkt[36] ^= 0x5a;
	pkt[37] ^= 0xa5;
	CHECK(!checksums_ok(pkt, len), "a partial checksum does not verify");
	CHECK_EQ_INT(lg_csum_fill_tcp4(pkt, len), 0, "fill accepts a whole TCP segment");
	CHECK(checksums_ok(pkt, len), "after the fill the TCP checksum verifies");

	CHECK_EQ_INT(lg_csum_fill_tcp4(pkt, 30), -1, "a capture shorter than the packet is refused");
	pkt[9] = 17;
	CHECK_EQ_INT(lg_csum_fill_tcp4(pkt, len), -1, "not TCP: refused");
	pkt[9] = 6;
	pkt[0] = 0x44;
	CHECK_EQ_INT(lg_csum_fill_tcp4(pkt, len), -1, "an IHL below 5 is refused");
	pkt[0] = 0x65;
	CHECK_EQ_INT(lg_csum_fill_tcp4(pkt, len), -1, "not IPv4: refused");
}

int main(void)
{
	test_sum_matches_reference();
	test_fill_tcp4();
	return lgtest_finish();
}
