#include "dataplane/flowquery.h"
#include "dataplane/tcpstate.h"
#include "lgtest.h"

#include <arpa/inet.h>

static struct lg_flow_view view(uint32_t id, const char *in, uint16_t in_port, const char *rem,
				uint16_t rem_port, uint16_t pub_port, int state, uint64_t idle,
				uint64_t age, uint64_t bytes)
{
	struct lg_flow_view v;

	memset(&v, 0, sizeof(v));
	v.flow.id = id;
	v.family = 4;
	v.flow.in_addr = inet_addr(in);
	v.flow.in_port = htons(in_port);
	v.flow.rem_addr = inet_addr(rem);
	v.flow.rem_port = htons(rem_port);
	v.pub_addr = inet_addr("198.51.100.1");
	v.flow.pub_port = htons(pub_port);
	v.flow.state = (uint8_t)state;
	v.flow.bytes_out = bytes;
	v.idle_s = idle;
	v.age_s = age;
	return v;
}

static size_t query(const char *text, struct lg_flow_view *out, char *err)
{
	struct lg_flow_view all[6] = {
		view(1, "10.77.0.2", 40000, "198.51.100.2", 143, 20001, LG_TCP_ESTABLISHED, 5000, 9000, 10),
		view(2, "10.77.0.2", 40001, "198.51.100.2", 2587, 20002, LG_TCP_INIT, 10, 10, 0),
		view(3, "10.77.0.3", 40000, "203.0.113.9", 993, 20003, LG_TCP_ESTABLISHED, 7000, 7000, 500),
		view(4, "10.77.1.3", 5000, "198.51.100.2", 143, 20004, LG_TCP_TRANS, 100, 8000, 70),
		view(5, "10.77.0.9", 143, "198.51.100.7", 6000, 20005, LG_TCP_ESTABLISHED, 3601, 3601, 70),
		view(6, "0.0.0.0", 41000, "0.0.0.0", 143, 41000, LG_TCP_ESTABLISHED, 1, 1, 1),
	};
	char buf[256], *words[16], *save = NULL, *w;
	size_t n = 0;
	struct lg_flow_query q;

	snprintf(buf, sizeof(buf), "%s", text);
	for (w = strtok_r(buf, " ", &save); w && n < 16; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	all[4].flow.flags = LG_FLOW_INBOUND; /* opened from outside to an inside IMAP server */
	/* the policy's observed ports: Submission on 2587, and 143 followed as SMTP on that server */
	all[1].service = LG_MAIL_SUBMISSION;
	all[3].service = LG_MAIL_SMTP;
	all[5].family = 6;
	inet_pton(AF_INET6, "2001:db8:77::2", all[5].in6);
	inet_pton(AF_INET6, "2001:db8:100::2", all[5].rem6);
	if (lg_flow_query_parse(words, n, &q, err, 160) < 0)
		return (size_t)-1;
	memcpy(out, all, sizeof(all));
	return lg_flow_query_apply(&q, out, 6);
}

static void expect_ids(const char *text, const char *want)
{
	struct lg_flow_view v[6];
	char err[160] = "", got[64] = "";
	size_t n = query(text, v, err);

	if (n == (size_t)-1) {
		CHECK(0, "'%s' refused: %s", text, err);
		return;
	}
	for (size_t i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%u", i ? "," : "", v[i].flow.id);
	CHECK_EQ_STR(got, want, text);
}

static void expect_error(const char *text, const char *want)
{
	struct lg_flow_view v[6];
	char err[160] = "";

	CHECK(query(text, v, err) == (size_t)-1, "'%s' should be refused", text);
	CHECK(strstr(err, want) != NULL, "'%s': error '%s' lacks '%s'", text, err, want);
}

int main(void)
{
	expect_ids("", "1,2,3,4,5,6");
	expect_ids("inside=2001:db8:77::/64", "6");
	expect_ids("service=imap", "1,5,6");
	expect_ids("service=submission", "2");
	expect_ids("service=imaps", "3");
	expect_ids("service=smtp", "4");
	expect_error("service=gopher", "unknown service 'gopher'");
	expect_ids("inside=[2001:db8:77::2]:41000", "6");
	expect_ids("inside=[2001:db8:77::2]:41001", "");
	expect_ids("remote=2001:db8:100::2", "6");
	expect_ids("remote=2001:db8:100::/48", "6");
	expect_ids("inside=2001:db8:78::/64", "");
	expect_ids("inside=0.0.0.0/0", "1,2,3,4,5");
	expect_error("inside=[2001:db8::2", "inside '[2001:db8::2'");
	expect_error("inside=[2001:db8::/64]:5", "not ADDR");
	expect_error("inside=2001:db8::1/64", "inside '2001:db8::1/64'");
	expect_ids("inside=10.77.0.2", "1,2");
	expect_ids("inside=10.77.0.0/24", "1,2,3,5");
	expect_ids("inside=10.77.0.2:40001", "2");
	expect_ids("remote=198.51.100.2:143", "1,4");
	expect_ids("port=143", "1,4,5,6");
	expect_ids("port=20003", "3");
	expect_ids("state=established", "1,3,5,6");
	expect_ids("idle_over=1h", "1,3,5");
	expect_ids("idle_over=1h1s", "1,3");
	expect_ids("proto=tcp state=trans", "4");
	expect_ids("proto=udp", "");
	expect_ids("sort=idle", "3,1,5,4,2,6");
	expect_ids("sort=age", "1,4,3,5,2,6");
	expect_ids("sort=bytes", "3,4,5,1,6,2");
	expect_ids("sort=bytes limit=2", "3,4");
	expect_ids("state=established sort=idle limit=1", "3");
	expect_error("inside=10.77.0.1/24", "inside '10.77.0.1/24'");
	expect_error("inside=10.77.0.0/24:5", "not ADDR");
	expect_error("remote=nowhere", "remote 'nowhere'");
	expect_error("port=0", "port '0'");
	expect_error("port=70000", "port '70000'");
	expect_error("state=open", "unknown state 'open'");
	expect_error("idle_over=soon", "not a duration");
	expect_error("sort=name", "sort 'name'");
	expect_error("limit=0", "limit '0'");
	expect_error("limit=-3", "limit '-3'");
	expect_error("proto=sctp", "unknown protocol");
	expect_error("colour=red", "unknown filter 'colour'");
	expect_error("inside", "not key=value");
	expect_error("inside=", "not key=value");
	expect_error("=x", "not key=value");
	return lgtest_finish();
}
