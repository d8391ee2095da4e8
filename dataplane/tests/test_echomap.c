/* ICMP echo sessions: one public id per inside (address, id), the whole id space usable,
 * exhaustion refused without harm, expiry giving ids back. */
#include "dataplane/echomap.h"
#include "lgtest.h"

#include <arpa/inet.h>
#include <stdlib.h>

static uint32_t host(unsigned n)
{
	return htonl(0x0a000000u + n); /* 10.x.y.z */
}

static void test_fill_and_exhaust(void)
{
	struct lg_echomap *m = lg_echomap_create(60, 42);
	static uint8_t used[65536];
	struct lg_echo_session s;
	unsigned made = 0, dup = 0, zero = 0, wrong = 0;

	for (unsigned i = 0; i < 65535; i++) {
		if (!lg_echomap_outbound(m, host(i / 1000), htons((uint16_t)(i % 1000)), host(0xffffff), 100,
					 &s))
			break;
		made++;
		if (!s.pub_id)
			zero++;
		else if (used[ntohs(s.pub_id)]++)
			dup++;
	}
	CHECK_EQ_INT(made, 65535, "every public id but 0 can be handed out");
	CHECK_EQ_INT(zero, 0, "id 0 is never handed out");
	CHECK_EQ_INT(dup, 0, "no public id is handed out twice");
	CHECK(!lg_echomap_outbound(m, host(999), htons(7), host(1), 100, &s),
	      "with every id taken, a new session is refused");
	/* the refusal harmed no existing session: each finds its own again */
	for (unsigned i = 0; i < 65535; i += 997) {
		struct lg_echo_session again;

		if (!lg_echomap_outbound(m, host(i / 1000), htons((uint16_t)(i % 1000)), host(5), 120,
					 &again) ||
		    !lg_echomap_by_public(m, again.pub_id, 120, &s) || s.in_addr != host(i / 1000) ||
		    s.in_id != htons((uint16_t)(i % 1000)))
			wrong++;
	}
	CHECK_EQ_INT(wrong, 0, "existing sessions are found by both keys after the refusal");
	CHECK_EQ_INT(lg_echomap_active(m), 65535, "all sessions still counted");
	/* 66 sessions were used again at 120 s */
	CHECK_EQ_INT(lg_echomap_expire(m, 165), 65535 - 66, "sessions idle 65 s end, the others stay");
	CHECK(lg_echomap_outbound(m, host(999), htons(7), host(1), 165, &s),
	      "after expiry a new session gets an id");
	CHECK_EQ_INT(lg_echomap_expire(m, 1000), 67, "the rest end later");
	CHECK_EQ_INT(lg_echomap_active(m), 0, "nothing left");
	lg_echomap_destroy(m);
}

static void test_filtering_memory(void)
{
	struct lg_echomap *m = lg_echomap_create(60, 1);
	struct lg_echo_session s, r;

	CHECK(lg_echomap_outbound(m, host(2), htons(1), host(100), 0, &s), "session made");
	for (unsigned i = 101; i < 105; i++)
		lg_echomap_outbound(m, host(2), htons(1), host(i), 1, &r);
	CHECK(!lg_echomap_inbound(m, s.pub_id, host(100), true, 2, &r),
	      "address-dependent: only the last 4 pinged hosts are remembered");
	CHECK(lg_echomap_inbound(m, s.pub_id, host(104), true, 2, &r), "the latest is admitted");
	CHECK(lg_echomap_inbound(m, s.pub_id, host(100), false, 2, &r),
	      "endpoint-independent: any host is admitted");
	CHECK(!lg_echomap_inbound(m, htons(0), host(100), false, 2, &r), "public id 0 is no session");
	lg_echomap_destroy(m);
}

int main(void)
{
	test_fill_and_exhaust();
	test_filtering_memory();
	return lgtest_finish();
}
