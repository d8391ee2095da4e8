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
	struct lg_echomap *m = lg_echomap_create(60, 0, 42);
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
	struct lg_echomap *m = lg_echomap_create(60, 0, 1);
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

/* One inside host cannot take every public id: a quota per address, given back as its
 * sessions end, with the host counts right through many hosts coming and going. */
static void test_host_quota(void)
{
	struct lg_echomap *m = lg_echomap_create(60, 3, 7);
	struct lg_echo_session s;
	unsigned refused = 0, made = 0;

	for (unsigned id = 1; id <= 5; id++)
		if (!lg_echomap_outbound(m, host(2), htons((uint16_t)id), host(100), 0, &s))
			refused++;
	CHECK_EQ_INT(refused, 2, "C6888-R4: a host beyond its quota of echo sessions is refused");
	CHECK(lg_echomap_outbound(m, host(2), htons(1), host(101), 1, &s),
	      "an existing session of the host at quota still works");
	CHECK(lg_echomap_outbound(m, host(3), htons(1), host(100), 1, &s), "another host is not affected");
	lg_echomap_expire(m, 100);
	CHECK(lg_echomap_outbound(m, host(2), htons(9), host(100), 100, &s),
	      "the quota comes back as the host's sessions end");
	/* 20000 hosts, 3 sessions each, twice over: the per-host counts never leak */
	for (int round = 0; round < 2; round++) {
		uint32_t t = 1000 + (uint32_t)round * 1000;

		for (unsigned h = 10; h < 20010; h++)
			for (unsigned id = 1; id <= 3; id++)
				made += lg_echomap_outbound(m, host(h), htons((uint16_t)id), host(1), t, &s);
		lg_echomap_expire(m, t + 100);
	}
	CHECK_EQ_INT(made, 2 * 20000 * 3, "every host gets its full quota, round after round");
	CHECK_EQ_INT(lg_echomap_active(m), 0, "all ended");
	lg_echomap_destroy(m);
}

int main(void)
{
	test_host_quota();
	test_fill_and_exhaust();
	test_filtering_memory();
	return lgtest_finish();
}
