#include "dataplane/clock.h"
#include "dataplane/control.h"
#include "lgtest.h"
#include "pktbuild.h"
#include "testpolicy.h"

#include <stdlib.h>

static char *answer_as(const char *req, const struct lg_control_ctx *ctx, bool read_only)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	lg_control_answer(req, ctx, read_only, f);
	fclose(f);
	return buf;
}

static char *answer(const char *req, const struct lg_control_ctx *ctx)
{
	return answer_as(req, ctx, false);
}

static void expect_read_only(const char *req, const struct lg_control_ctx *ctx, bool allowed)
{
	char *r = answer_as(req, ctx, true);

	CHECK((strstr(r, "permission denied") == NULL) == allowed, "read-only '%s' -> '%s'", req, r);
	free(r);
}

static void expect(const char *req, const struct lg_control_ctx *ctx, const char *want_prefix,
		   const char *want_sub)
{
	char *r = answer(req, ctx);

	CHECK(strncmp(r, want_prefix, strlen(want_prefix)) == 0, "'%s' -> '%s'", req, r);
	if (want_sub)
		CHECK(strstr(r, want_sub) != NULL, "'%s' reply lacks '%s': %s", req, want_sub, r);
	free(r);
}

static int reload_calls;

static int stub_reload(void *arg, char *msg, size_t msglen)
{
	reload_calls++;
	if (arg)
		return 0;
	snprintf(msg, msglen, "f.conf:3:1: error: unknown statement 'x'");
	return -1;
}

int main(void)
{
	struct lg_policy pol;
	struct lg_control_ctx ctx = { 0 };
	uint8_t buf[128];
	size_t len, out_len;
	bool mod;
	char big[3000];

	test_policy(&pol);
	ctx.engine = lg_engine_create(&pol, 0);
	lg_clock_init(false);
	len = build_tcp4(buf, "10.77.0.2", 40000, "198.51.100.2", 143, 0x02, NULL);
	lg_engine_packet(ctx.engine, buf, len, lg_clock_now_ns(), &mod, &out_len);

	expect("lemongate-ctl/1 ping", &ctx, "ok\ndaemon pid=", "flows=1");
	expect("lemongate-ctl/1 flows", &ctx, "ok\nflow id=1 proto=tcp inside=10.77.0.2:40000",
	       "remote=198.51.100.2:143 state=init");
	expect("lemongate-ctl/1 stats", &ctx, "ok\n", "stat name=flows_created value=1");
	expect("lemongate-ctl/1 clock advance 1h", &ctx, "error the test clock is off", NULL);
	expect("lemongate-ctl/1 policy reload", &ctx, "error this daemon cannot reload", NULL);
	ctx.reload = stub_reload;
	expect("lemongate-ctl/1 policy reload", &ctx, "error f.conf:3:1: error: unknown statement", NULL);
	ctx.reload_arg = &ctx;
	expect("lemongate-ctl/1 policy reload", &ctx, "ok\nreload result=applied", NULL);
	expect("lemongate-ctl/1 policy reload now", &ctx, "error unknown command", NULL);
	CHECK_EQ_INT(reload_calls, 2, "the reload callback runs once per valid request");
	expect("lemongate-ctl/1 mappings", &ctx, "ok\nmapping proto=tcp inside=10.77.0.2:40000 public=198.51.100.1:",
	       "flows=1");
	expect("lemongate-ctl/1 mappings all", &ctx, "error unknown command", NULL);
	expect("lemongate-ctl/1 policy show", &ctx, "ok\nsetting name=interface_inside value=in",
	       "setting name=nat_public value=198.51.100.1");
	expect("lemongate-ctl/1 policy show", &ctx, "ok\n", "setting name=timeout_established value=7440");
	expect("lemongate-ctl/1 flush", &ctx, "error unknown command", NULL);
	expect_read_only("lemongate-ctl/1 flows", &ctx, true);
	expect_read_only("lemongate-ctl/1 stats", &ctx, true);
	expect_read_only("lemongate-ctl/1 mappings", &ctx, true);
	expect_read_only("lemongate-ctl/1 policy show", &ctx, true);
	expect_read_only("lemongate-ctl/1 flush preview", &ctx, true);
	expect_read_only("lemongate-ctl/1 flush confirm", &ctx, false);
	expect_read_only("lemongate-ctl/1 policy reload", &ctx, false);
	expect_read_only("lemongate-ctl/1 clock advance 1h", &ctx, false);
	expect("lemongate-ctl/1 flush now", &ctx, "error usage: flush preview|confirm", NULL);
	expect("lemongate-ctl/2 ping", &ctx, "error unsupported protocol", NULL);
	expect("lemongate-ctl/1", &ctx, "error empty request", NULL);
	expect("lemongate-ctl/1 ", &ctx, "error empty request", NULL);
	expect("lemongate-ctl/1ping", &ctx, "error unsupported protocol", NULL);
	expect("lemongate-ctl/1 fly", &ctx, "error unknown command 'fly'", NULL);
	expect("lemongate-ctl/1 flows extra", &ctx, "error filter 'extra' is not key=value", NULL);
	expect("lemongate-ctl/1 flows state=init inside=10.77.0.2:40000", &ctx, "ok\nflow id=1 ", NULL);
	expect("lemongate-ctl/1 flows state=established", &ctx, "ok\n", NULL);
	expect("lemongate-ctl/1 flows state=bogus", &ctx, "error unknown state 'bogus'", NULL);
	expect("lemongate-ctl/1 flow 1", &ctx, "ok\nflow id=1 proto=tcp", "timer=transitory");
	expect("lemongate-ctl/1 flow 1", &ctx, "ok\n", "service=imap opened_from=inside");
	expect("lemongate-ctl/1 flow 2", &ctx, "error no flow with id 2", NULL);
	expect("lemongate-ctl/1 flow x1", &ctx, "error flow id 'x1'", NULL);
	expect("lemongate-ctl/1 flow 99999999999", &ctx, "error flow id", NULL);
	expect("lemongate-ctl/1 a b c d e f g h i j k l m n o p q", &ctx, "error too many arguments", NULL);
	expect("lemongate-ctl/1 ping\x1b[2J", &ctx, "error request contains control", NULL);
	expect("GET / HTTP/1.0", &ctx, "error unsupported protocol", NULL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect(big, &ctx, "error request too long", NULL);

	lg_clock_init(true);
	expect("lemongate-ctl/1 clock advance 2h3m", &ctx, "ok\nclock advanced=7380", "expired=1");
	expect("lemongate-ctl/1 clock advance soon", &ctx, "error 'soon' is not a duration", NULL);
	expect("lemongate-ctl/1 clock rewind 1h", &ctx, "error usage", NULL);
	expect("lemongate-ctl/1 flows", &ctx, "ok\n", NULL);
	len = build_tcp4(buf, "10.77.0.2", 40001, "198.51.100.2", 587, 0x02, NULL);
	lg_engine_packet(ctx.engine, buf, len, lg_clock_now_ns(), &mod, &out_len);
	expect("lemongate-ctl/1 flush preview", &ctx, "ok\nflush flows=1 flows6=0 mappings=1", NULL);
	expect("lemongate-ctl/1 ping", &ctx, "ok\n", "flows=1");
	expect("lemongate-ctl/1 flush confirm", &ctx, "ok\nflush flows_ended=1 echo_sessions_ended=0", NULL);
	expect("lemongate-ctl/1 ping", &ctx, "ok\n", "flows=0");
	expect("lemongate-ctl/1 mappings", &ctx, "ok\n", NULL);
	lg_engine_destroy(ctx.engine);
	return lgtest_finish();
}
