#include "ctl/reply.h"
#include "lgtest.h"

#include <stdlib.h>

static int parse(const char *text, struct lg_reply *r)
{
	return lg_reply_parse(strdup(text), r);
}

static char *render(void (*fn)(const struct lg_reply *, FILE *), const struct lg_reply *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(r, f);
	fclose(f);
	return buf;
}

static void render_flows_json(const struct lg_reply *r, FILE *out)
{
	lg_render_json_array(r, "flow", out);
}

static void test_ok_reply(void)
{
	struct lg_reply r;
	char *text;

	CHECK_EQ_INT(parse("ok\nflow id=7 inside=10.77.0.2:5000 state=established idle=0 age=12\n"
			   "flow id=8 inside=10.77.0.3:5001 state=init idle=3 age=3\nstat name=x value=1\n",
			   &r), 0, "parse ok reply");
	CHECK(r.ok, "ok flag");
	CHECK_EQ_INT(r.count, 3, "three records");
	CHECK_EQ_STR(r.records[0].kind, "flow", "kind");
	CHECK_EQ_STR(lg_record_get(&r.records[1], "inside"), "10.77.0.3:5001", "field");
	CHECK(lg_record_get(&r.records[1], "nope") == NULL, "missing field");

	text = render(render_flows_json, &r);
	CHECK(strstr(text, "\"id\": 7") != NULL, "numbers unquoted: %s", text);
	CHECK(strstr(text, "\"idle\": 0") != NULL, "zero is a number: %s", text);
	CHECK(strstr(text, "\"state\": \"established\"") != NULL, "strings quoted");
	CHECK(strstr(text, "\"name\"") == NULL, "other kinds left out");
	CHECK(text[0] == '[' && strstr(text, "},\n  {") != NULL, "array of two objects");
	free(text);

	text = render(lg_render_flows_text, &r);
	CHECK(strstr(text, "10.77.0.2:5000") != NULL && strstr(text, "2 flows") != NULL,
	      "text table: %s", text);
	free(text);
	lg_reply_free(&r);
}

/* An observed mail flow: its service, phase, time in IDLE and each side's extensions. */
static void test_flows_mail_columns(void)
{
	struct lg_reply r;
	char *text;

	CHECK_EQ_INT(parse("ok\nflow id=9 proto=tcp inside=10.77.0.2:5000 state=established idle=5 "
			   "age=9 mail=imap phase=idle in_idle=4 server_extensions=STARTTLS,IDLE "
			   "client_extensions=IDLE\nflow id=10 proto=tcp inside=10.77.0.2:5001 "
			   "state=established idle=1 age=1\n",
			   &r), 0, "parse");
	text = render(lg_render_flows_text, &r);
	CHECK(strstr(text, "SERVER-EXTENSIONS CLIENT-EXTENSIONS\n") != NULL, "headed: %s", text);
	CHECK(strstr(text, " imap        idle          4       STARTTLS,IDLE IDLE\n") != NULL,
	      "service, phase, in IDLE, then the extensions of each side: %s", text);
	CHECK(strstr(text, " -           -             -       - -\n") != NULL,
	      "a flow not observed: dashes: %s", text);
	free(text);
	lg_reply_free(&r);
}

static void test_error_and_garbage(void)
{
	struct lg_reply r;

	CHECK_EQ_INT(parse("error the test clock is off\n", &r), 0, "error reply parses");
	CHECK(!r.ok && strcmp(r.error, "the test clock is off") == 0, "error message");
	lg_reply_free(&r);
	CHECK_EQ_INT(parse("", &r), -1, "empty reply rejected");
	lg_reply_free(&r);
	CHECK_EQ_INT(parse("HTTP/1.0 200 OK\n", &r), -1, "foreign reply rejected");
	lg_reply_free(&r);
	CHECK_EQ_INT(parse("ok\nflow noequals\n", &r), -1, "record without key=value rejected");
	lg_reply_free(&r);
	CHECK_EQ_INT(parse("ok\nflow =v\n", &r), -1, "empty key rejected");
	lg_reply_free(&r);
	CHECK_EQ_INT(parse("ok\n", &r), 0, "empty ok reply");
	CHECK_EQ_INT(r.count, 0, "no records");
	lg_reply_free(&r);
}

static void test_json_escaping(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	lg_json_string("a\"b\\c\x01", f);
	fclose(f);
	CHECK_EQ_STR(buf, "\"a\\\"b\\\\c\\u0001\"", "escaped");
	free(buf);
}

static void test_policy_and_mappings(void)
{
	struct lg_reply r, prev, cur;
	char *text, *buf = NULL;
	size_t len = 0;
	FILE *f;

	CHECK_EQ_INT(parse("ok\nsetting name=nat_public value=198.51.100.1\n"
			   "setting name=timeout_established value=7440\n"
			   "rule line=18 text=pass+out+proto+tcp+port+{+143+587+}\n", &r), 0, "policy reply");
	text = render(lg_render_policy_json, &r);
	CHECK_EQ_STR(text, "{\n  \"nat_public\": \"198.51.100.1\",\n  \"timeout_established\": 7440,\n"
			   "  \"rules\": [\n    {\"line\": 18, \"text\": \"pass out proto tcp port { 143 587 }\"}\n  ]\n}\n",
		     "policy as one JSON object, rule text with its blanks back");
	free(text);
	text = render(lg_render_policy_text, &r);
	CHECK(strstr(text, "nat_public               198.51.100.1\n") &&
	      strstr(text, "pass out proto tcp port { 143 587 }"), "policy as text: %s", text);
	free(text);
	lg_reply_free(&r);

	CHECK_EQ_INT(parse("ok\nmapping proto=tcp inside=10.77.0.2:40000 public=198.51.100.1:20001 flows=2\n"
			   "mapping proto=icmp inside=10.77.0.2:7 public=198.51.100.1:999 idle=3\n", &r),
		     0, "mappings reply");
	text = render(lg_render_mappings_text, &r);
	CHECK(strstr(text, "tcp   10.77.0.2:40000       198.51.100.1:20001    2 flows\n") &&
	      strstr(text, "3 s idle") && strstr(text, "2 mappings\n"), "mappings as text: %s", text);
	free(text);
	lg_reply_free(&r);

	parse("ok\nstat name=packets_in value=100\nstat name=flows_active value=5\n", &prev);
	parse("ok\nstat name=packets_in value=130\nstat name=flows_active value=5\n", &cur);
	f = open_memstream(&buf, &len);
	lg_render_stats_watch(&cur, &prev, 2.0, f);
	fclose(f);
	CHECK(strstr(buf, "packets_in") && strstr(buf, "+15.0/s") && !strstr(buf, "5  +"),
	      "a rate for what moved, none for what did not: %s", buf);
	free(buf);
	lg_reply_free(&prev);
	lg_reply_free(&cur);
}

int main(void)
{
	test_flows_mail_columns();
	test_policy_and_mappings();
	test_ok_reply();
	test_error_and_garbage();
	test_json_escaping();
	return lgtest_finish();
}
