/* libFuzzer target: arbitrary bytes as a packet handed to us by NFQUEUE. The parser must
 * refuse what is malformed, and the whole engine (flow lookup, NAT, ICMP translation, echo
 * sessions) must never read or write outside the packet, whatever it is told. The seed corpus
 * (fuzz/corpus/packet) holds packets between the testbed's inside and public addresses, IPv4
 * and IPv6. */
#include "dataplane/engine.h"
#include "dataplane/packet.h"
#include "policy/policy.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lg_engine *engine;
static uint64_t clock_ns = 1000000000ull;

static struct lg_engine *make_engine(void)
{
	struct lg_policy pol;

	lg_policy_defaults(&pol);
	lg_prefix4_parse("10.77.0.0/24", &pol.nat_inside[0]);
	pol.nat_inside_count = 1;
	pol.nat_public = inet_addr("198.51.100.1");
	pol.max_flows = 4096;
	lg_prefix6_parse("2001:db8:77::/64", &pol.inside6[0]);
	pol.inside6_count = 1;
	pol.max_flows6 = 1024;
	return lg_engine_create(&pol, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	struct lg_pkt pkt;
	bool modified;
	size_t out_len;

	if (!engine)
		engine = make_engine();
	if (size > 65535)
		return 0;
	/* an exact-size copy, so that ASan sees any read past the end */
	buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	lg_pkt_parse(buf, size, &pkt);
	memcpy(buf, data, size);
	lg_engine_packet(engine, buf, size, clock_ns, &modified, &out_len);
	if (modified && out_len > size)
		abort(); /* a rewrite may never claim more bytes than it was given */
	clock_ns += 100000000ull; /* time moves, so timers and expiry are exercised too */
	if (clock_ns % (60 * 1000000000ull) == 0)
		lg_engine_expire(engine, clock_ns);
	free(buf);
	return 0;
}
