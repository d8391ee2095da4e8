#include "lgtest.h"
#include "servers/imap/mime.h"
#include "servers/imap/parse.h"

#include <stdlib.h>

static void init(struct imap_parser *p, char *buf)
{
	imap_p_init(p, buf, strlen(buf));
}

static void test_strings(void)
{
	char buf[] = "atom \"q \\\"x\\\\\" {5}\r\nhe\"lo NIL rest]";
	struct imap_parser p;
	struct imap_str s;

	init(&p, buf);
	CHECK(imap_astring(&p, &s) == 0 && s.len == 4 && memcmp(s.s, "atom", 4) == 0, "atom");
	CHECK(imap_sp(&p) == 0, "space");
	CHECK(imap_astring(&p, &s) == 0 && s.len == 5 && memcmp(s.s, "q \"x\\", 5) == 0,
	      "quoted string unescaped in place");
	imap_sp(&p);
	CHECK(imap_astring(&p, &s) == 0 && s.literal && s.len == 5 && memcmp(s.s, "he\"lo", 5) == 0,
	      "literal taken as counted bytes");
	imap_sp(&p);
	CHECK(imap_nstring(&p, &s) == 0 && s.s == NULL, "NIL");
	imap_sp(&p);
	CHECK(imap_astring(&p, &s) == 0 && s.len == 5, "ASTRING-CHAR includes ']'");
	CHECK(imap_end(&p) == 0, "consumed");

	char short_lit[] = "{10}\r\nabc";
	init(&p, short_lit);
	CHECK(imap_astring(&p, &s) < 0 && p.err, "literal shorter than announced refused");
	char nul_lit[] = "{3}\r\na\0b";
	imap_p_init(&p, nul_lit, 9);
	CHECK(imap_string(&p, &s) < 0, "NUL in a text literal refused");
	char bad_q[] = "\"a\\b\"";
	init(&p, bad_q);
	CHECK(imap_string(&p, &s) < 0, "bad escape refused");
	char open_q[] = "\"abc";
	init(&p, open_q);
	CHECK(imap_string(&p, &s) < 0, "unterminated quote refused");
	char huge[] = "{99999999999}\r\n";
	init(&p, huge);
	CHECK(imap_string(&p, &s) < 0, "absurd literal size refused");
}

static void test_seqsets(void)
{
	char buf[] = "1:3,7,*,10:8";
	struct imap_parser p;
	struct imap_seqset set;

	init(&p, buf);
	CHECK(imap_seqset(&p, &set) == 0 && set.n == 4, "four ranges");
	imap_seqset_resolve(&set, 20);
	CHECK(imap_seqset_has(&set, 2) && imap_seqset_has(&set, 7) && imap_seqset_has(&set, 20) &&
	      imap_seqset_has(&set, 9) && !imap_seqset_has(&set, 5) && !imap_seqset_has(&set, 11),
	      "membership after resolving '*' and a reversed range");
	imap_seqset_free(&set);

	const char *bad[] = { "0", "1:", ":2", "1,,2", "a", "4294967296" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char copy[32];

		snprintf(copy, sizeof(copy), "%s", bad[i]);
		init(&p, copy);
		CHECK(imap_seqset(&p, &set) < 0 || !imap_at_end(&p), "bad set '%s' refused", bad[i]);
		imap_seqset_free(&set);
	}
}

static void test_dates(void)
{
	char d1[] = "\"25-Nov-2026 10:30:00 +0100\"", d2[] = "1-Jan-1970", d3[] = "30-Feb-2024";
	char d4[] = "\" 5-Mar-2025 00:00:00 -0030\"";
	struct imap_parser p;
	int64_t when, days;
	int zone;

	init(&p, d1);
	CHECK(imap_date_time(&p, &when, &zone) == 0 && zone == 60 && when == 1795599000,
	      "date-time with a zone: %lld", (long long)when);
	init(&p, d2);
	CHECK(imap_date(&p, &days) == 0 && days == 0, "the epoch is day 0");
	init(&p, d3);
	CHECK(imap_date(&p, &days) < 0, "30 February refused");
	init(&p, d4);
	CHECK(imap_date_time(&p, &when, &zone) == 0 && zone == -30, "space-padded day, negative zone");
}

static void test_literal_lines(void)
{
	uint64_t n;
	bool sync;

	CHECK(imap_line_literal("a APPEND x {12}", 15, &n, &sync) == 1 && n == 12 && sync, "{12}");
	CHECK(imap_line_literal("a APPEND x {7+}", 15, &n, &sync) == 1 && n == 7 && !sync, "{7+}");
	CHECK(imap_line_literal("a APPEND x ~{3}", 15, &n, &sync) == 1 && n == 3, "~{3}");
	CHECK(imap_line_literal("a NOOP", 6, &n, &sync) == 0, "no literal");
	CHECK(imap_line_literal("a x {}", 6, &n, &sync) == 0, "{} is not a literal");
	CHECK(imap_line_literal("a x {99999999999999999999}", 26, &n, &sync) < 0, "overflow refused");
}

static void test_mutf7(void)
{
	CHECK(imap_mutf7_valid("INBOX", 5), "ASCII");
	CHECK(imap_mutf7_valid("&AOk-t&AOk-", 11), "été");
	CHECK(imap_mutf7_valid("a&-b", 4), "&- is '&'");
	CHECK(!imap_mutf7_valid("a&b", 3), "unterminated shift");
	CHECK(!imap_mutf7_valid("&AGE-", 5), "encoded printable ASCII refused");
	CHECK(!imap_mutf7_valid("&2D0-", 5), "lone high surrogate refused");
	CHECK(!imap_mutf7_valid("caf\xc3\xa9", 5), "raw 8-bit refused");
	CHECK(!imap_mutf7_valid("&-&", 3), "trailing '&'");
}

static void test_mime(void)
{
	const char *msg =
		"From: a@example.org\r\nSubject: multi\r\n part\r\n"
		"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
		"preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
		"--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n"
		"--XX--\r\nepilogue\r\n";
	struct mime_part *root = mime_parse(msg, strlen(msg));
	uint32_t p1[] = { 1 }, p2[] = { 2 }, p3[] = { 3 }, p21[] = { 2, 1 };
	const struct mime_part *part;
	char *v;

	CHECK(root && root->multipart && root->child_count == 2, "two parts");
	part = mime_find(root, p1, 1);
	CHECK(part && part->body_len == 5 && memcmp(msg + part->body_off, "first", 5) == 0,
	      "part 1 body without the delimiter's CRLF");
	part = mime_find(root, p2, 1);
	CHECK(part && part->message && part->child_count == 1, "part 2 is a message");
	part = mime_find(root, p21, 2);
	CHECK(part && strcmp(part->type, "text") == 0, "2.1 is the inner message's body");
	CHECK(mime_find(root, p3, 1) == NULL, "no part 3");
	v = mime_header(msg, root->header_len, "subject");
	CHECK_EQ_STR(v, "multi part", "unfolded header value");
	free(v);

	const char *names[] = { "SUBJECT" };
	char *out;
	size_t len;

	CHECK(mime_header_fields(msg + root->header_off, root->header_len, names, 1, false, &out,
				 &len) == 0 &&
	      len == strlen("Subject: multi\r\n part\r\n\r\n") &&
	      memcmp(out, "Subject: multi\r\n part\r\n\r\n", len) == 0,
	      "HEADER.FIELDS keeps continuation lines");
	free(out);
	mime_free(root);

	const char *unterminated = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx";
	root = mime_parse(unterminated, strlen(unterminated));
	CHECK(root && root->child_count == 1, "a part whose boundary never closes runs to the end");
	mime_free(root);
	root = mime_parse("", 0);
	CHECK(root && root->body_len == 0, "empty message");
	mime_free(root);
}

int main(void)
{
	test_strings();
	test_seqsets();
	test_dates();
	test_literal_lines();
	test_mutf7();
	test_mime();
	return lgtest_finish();
}
