/* The engine's side of the kernel NAT offload: when it hands a flow to the kernel, when it
 * takes it back, and that a packet the kernel translates is judged but left alone. The kernel
 * side is tested in the testbed (testbed/tests/test_offload.sh). */
#include "dataplane/engine.h"
#include "dataplane/tcpstate.h"
#include "lgtest.h"
#include "pktbuild.h"
#include "testpolicy.h"

#include <errno.h>

#define S (1000000000ull)

struct hook_log {
	int on, off, result;
	struct lg_flow last;
};

static int record(void *arg, bool on, const struct lg_flow *f)
{
	struct hook_log *h = arg;

	if (on)
		h->on++;
	else
		h->off++;
	h->last = *f;
	return on ? h->result : 0;
}

static struct lg_engine *make(uint32_t offload_after, struct hook_log *h)
{
	struct lg_policy pol;
	struct lg_engine *e;

	test_policy(&pol);
	pol.max_flows = 64;
	pol.offload_after = offload_after;
	e = lg_engine_create(&pol, 0);
	if (e && h)
		lg_engine_set_offload(e, record, h);
	return e;
}

static enum lg_verdict run(struct lg_engine *e, uint8_t *buf, size_t len, uint64_t now,
			   bool kernel_nat, bool *mod)
{
	size_t out_len;

	return lg_engine_packet_knat(e, buf, len, now, kernel_nat, mod, &out_len);
}

static uint16_t public_port(const uint8_t *buf)
{
	uint16_t v;

	memcpy(&v, buf + 20, 2);
	return ntohs(v);
}

/* A handshake from 10.77.0.2:CPORT to 198.51.100.2:443: the public port. */
static uint16_t handshake(struct lg_engine *e, uint16_t cport, uint64_t now)
{
	struct tcp_spec syn = { 1000, 0, 65535, NULL, 0 }, synack = { 5000, 1001, 65535, NULL, 0 };
	struct tcp_spec ack = { 1001, 5001, 65535, NULL, 0 };
	uint8_t buf[128];
	size_t len;
	bool mod;
	uint16_t pub;

	len = build_tcp4_spec(buf, "10.77.0.2", cport, "198.51.100.2", 443, LG_TCP_SYN, &syn, NULL);
	run(e, buf, len, now, false, &mod);
	pub = public_port(buf);
	len = build_tcp4_spec(buf, "198.51.100.2", 443, "198.51.100.1", pub, LG_TCP_SYN | LG_TCP_ACK,
			      &synack, NULL);
	run(e, buf, len, now, false, &mod);
	len = build_tcp4_spec(buf, "10.77.0.2", cport, "198.51.100.2", 443, LG_TCP_ACK, &ack, NULL);
	run(e, buf, len, now, false, &mod);
	return pub;
}

static char big[1201];

/* One data segment of BYTES payload (at most 1200) from the client, sequence SEQ. */
static size_t client_data(uint8_t *buf, uint16_t cport, uint32_t seq, size_t bytes, uint8_t flags)
{
	struct tcp_spec spec = { seq, 5001, 65535, NULL, 0 };

	memset(big, 'x', sizeof(big) - 1);
	big[bytes] = '\0';
	return build_tcp4_spec(buf, "10.77.0.2", cport, "198.51.100.2", 443, flags, &spec, big);
}

static void test_bulk_flow_offloaded(void)
{
	struct hook_log h = { 0 };
	struct lg_engine *e = make(4, &h);
	uint8_t buf[1400], copy[1400];
	size_t len;
	bool mod;
	uint16_t pub = handshake(e, 40000, S);
	struct lg_engine_stats st;

	CHECK_EQ_INT(h.on, 0, "not offloaded during the handshake");
	len = client_data(buf, 40000, 1001, 1200, LG_TCP_ACK | LG_TCP_PSH);
	run(e, buf, len, 2 * S, false, &mod);
	CHECK_EQ_INT(h.on, 0, "four packets, averaging under 512 bytes: not yet");
	len = client_data(buf, 40000, 2201, 1200, LG_TCP_ACK | LG_TCP_PSH);
	CHECK_EQ_INT(run(e, buf, len, 2 * S, false, &mod), LG_VERDICT_ACCEPT, "data accepted");
	CHECK(mod, "the packet that tipped it was still translated here");
	CHECK_EQ_INT(h.on, 1, "five packets averaging over 512 bytes: offloaded");
	CHECK_EQ_INT(h.last.in_addr, inet_addr("10.77.0.2"), "hook given the inside address");
	CHECK_EQ_INT(ntohs(h.last.in_port), 40000, "hook given the inside port");
	CHECK_EQ_INT(h.last.rem_addr, inet_addr("198.51.100.2"), "hook given the remote address");
	CHECK_EQ_INT(ntohs(h.last.rem_port), 443, "hook given the remote port");
	CHECK_EQ_INT(h.last.pub_addr, inet_addr("198.51.100.1"), "hook given the public address");
	CHECK_EQ_INT(ntohs(h.last.pub_port), pub, "hook given the public port");

	len = client_data(buf, 40000, 3401, 1200, LG_TCP_ACK);
	memcpy(copy, buf, len);
	CHECK_EQ_INT(run(e, buf, len, 3 * S, true, &mod), LG_VERDICT_ACCEPT,
		     "a packet the kernel translates is accepted");
	CHECK(!mod && memcmp(buf, copy, len) == 0, "and left untouched");
	{
		struct tcp_spec spec = { 5001, 4601, 65535, NULL, 0 };

		len = build_tcp4_spec(buf, "198.51.100.2", 443, "198.51.100.1", pub, LG_TCP_ACK, &spec,
				      NULL);
	}
	memcpy(copy, buf, len);
	CHECK_EQ_INT(run(e, buf, len, 3 * S, true, &mod), LG_VERDICT_ACCEPT,
		     "an inbound packet the kernel translates is accepted");
	CHECK(!mod && memcmp(buf, copy, len) == 0, "and left untouched (public destination)");
	len = client_data(buf, 40000, 4601, 1200, LG_TCP_ACK);
	run(e, buf, len, 3 * S, false, &mod);
	CHECK(mod, "an unmarked packet of an offloaded flow is translated here");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.packets_kernel_nat, 2, "packets_kernel_nat counts the two");
	CHECK_EQ_INT(st.flows_offloaded, 1, "flows_offloaded 1");
	CHECK_EQ_INT(h.on, 1, "offloaded once only");

	len = client_data(buf, 40000, 5801, 10, LG_TCP_ACK | LG_TCP_FIN);
	run(e, buf, len, 4 * S, true, &mod);
	CHECK_EQ_INT(h.off, 1, "a FIN takes the flow back from the kernel");
	{
		struct lg_flow_view v[2];

		CHECK_EQ_INT(lg_engine_flows(e, 4 * S, v, 2), 1, "the closing flow is still ours");
		CHECK(v[0].flow.state != LG_TCP_ESTABLISHED, "and no longer established");
	}
	lg_engine_expire(e, 4000 * S);
	CHECK_EQ_INT(h.off, 1, "an expired flow already taken back is not taken back twice");
	lg_engine_destroy(e);
}

static void test_expiry_takes_back(void)
{
	struct hook_log h = { 0 };
	struct lg_engine *e = make(1, &h);
	uint8_t buf[1400];
	size_t len;
	bool mod;
	struct lg_engine_stats st;

	handshake(e, 40001, S);
	for (uint32_t i = 0; i < 2; i++) {
		len = client_data(buf, 40001, 1001 + i * 1200, 1200, LG_TCP_ACK);
		run(e, buf, len, S, false, &mod);
	}
	CHECK_EQ_INT(h.on, 1, "offload after 1: offloaded once its packets average 512 bytes");
	lg_engine_expire(e, (1 + 7441) * S);
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.flows_active, 0, "the idle flow expired");
	CHECK_EQ_INT(h.off, 1, "its expiry took it back from the kernel");
	lg_engine_destroy(e);
}

static void test_not_offloaded(void)
{
	struct hook_log h = { 0 };
	struct lg_engine *e = make(4, &h);
	uint8_t buf[1400];
	size_t len;
	bool mod;
	struct lg_engine_stats st;

	handshake(e, 40002, S);
	for (uint32_t i = 0; i < 40; i++) {
		len = client_data(buf, 40002, 1001 + i * 16, 16, LG_TCP_ACK | LG_TCP_PSH);
		run(e, buf, len, S, false, &mod);
	}
	CHECK_EQ_INT(h.on, 0, "a flow of small packets stays with us");

	h.result = -EEXIST;
	handshake(e, 40003, S);
	for (uint32_t i = 0; i < 6; i++) {
		len = client_data(buf, 40003, 1001 + i * 1200, 1200, LG_TCP_ACK);
		run(e, buf, len, S, false, &mod);
		CHECK(mod, "a flow the kernel refused is translated here (packet %u)", i);
	}
	CHECK_EQ_INT(h.on, 1, "a refused flow is not offered again");
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.offloads_refused, 1, "offloads_refused counts it");
	CHECK_EQ_INT(st.flows_offloaded, 0, "and flows_offloaded does not");
	lg_engine_expire(e, 9000 * S);
	CHECK_EQ_INT(h.off, 0, "ending flows never offloaded takes nothing back");
	lg_engine_destroy(e);

	h = (struct hook_log){ 0 };
	e = make(0, &h);
	handshake(e, 40004, S);
	for (uint32_t i = 0; i < 8; i++) {
		len = client_data(buf, 40004, 1001 + i * 1200, 1200, LG_TCP_ACK);
		run(e, buf, len, S, false, &mod);
	}
	CHECK_EQ_INT(h.on, 0, "offload off: never offered");
	lg_engine_destroy(e);

	e = make(4, NULL);
	handshake(e, 40005, S);
	for (uint32_t i = 0; i < 8; i++) {
		len = client_data(buf, 40005, 1001 + i * 1200, 1200, LG_TCP_ACK);
		CHECK_EQ_INT(run(e, buf, len, S, false, &mod), LG_VERDICT_ACCEPT,
			     "without a hook (the kernel could not) packets pass");
	}
	lg_engine_stats(e, &st);
	CHECK_EQ_INT(st.flows_offloaded, 0, "without a hook nothing is offloaded");
	lg_engine_destroy(e);
}

int main(void)
{
	test_bulk_flow_offloaded();
	test_expiry_takes_back();
	test_not_offloaded();
	return lgtest_finish();
}
