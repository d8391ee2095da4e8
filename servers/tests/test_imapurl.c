#include "lgtest.h"
#include "servers/mail/imapurl.h"

static int parse(const char *url, struct imapurl *u, const char **err)
{
	*err = NULL;
	return imapurl_parse(url, strlen(url), u, err);
}

static void test_full_url(void)
{
	struct imapurl u;
	const char *err;
	const char *url = "imap://alice@server.lg.test:143/INBOX;UIDVALIDITY=785799047/;UID=113330/"
			  ";SECTION=1.5.9/;PARTIAL=10.20;EXPIRE=2026-12-01T10:00:00Z"
			  ";URLAUTH=submit+alice:INTERNAL:0123456789abcdef0123456789ABCDEF";

	CHECK(parse(url, &u, &err) == 0, "RFC 4467 style URL parses");
	CHECK(strcmp(u.user, "alice") == 0 && strcmp(u.host, "server.lg.test") == 0 && u.port == 143,
	      "server part");
	CHECK(strcmp(u.mailbox, "INBOX") == 0 && u.uidvalidity == 785799047 && u.uid == 113330,
	      "mailbox, UIDVALIDITY, UID");
	CHECK(strcmp(u.section, "1.5.9") == 0 && u.partial && u.partial_offset == 10 &&
	      u.partial_length == 20, "section and partial");
	CHECK(u.expire == 1796119200, "EXPIRE in seconds since the epoch (%lld)", (long long)u.expire);
	CHECK(u.access == URLAUTH_SUBMIT && strcmp(u.access_user, "alice") == 0, "submit+alice");
	CHECK(strcmp(u.mechanism, "INTERNAL") == 0 && strlen(u.token) == 32, "verifier");
	CHECK(u.rump_len == strlen(url) - strlen(":INTERNAL:0123456789abcdef0123456789ABCDEF"),
	      "the rump ends before the verifier");
}

static void test_forms(void)
{
	struct imapurl u;
	const char *err;

	CHECK(parse("imap://bob@h/Drafts/;UID=7", &u, &err) == 0 && u.uid == 7 &&
	      strcmp(u.mailbox, "Drafts") == 0 && u.access == URLAUTH_NONE && !u.port,
	      "no UIDVALIDITY, no URLAUTH");
	CHECK(parse("/Sent%20Items/;uid=3;urlauth=user+bob", &u, &err) == 0 && u.relative &&
	      strcmp(u.mailbox, "Sent Items") == 0 && u.access == URLAUTH_USER &&
	      strcmp(u.access_user, "bob") == 0 && !u.token[0], "relative, percent-encoded, rump only");
	CHECK(parse("imap://a@h/f%C3%B6o/bar/;UID=1;URLAUTH=anonymous", &u, &err) == 0 &&
	      strcmp(u.mailbox, "f&APY-o/bar") == 0 && u.access == URLAUTH_ANONYMOUS,
	      "UTF-8 mailbox name to modified UTF-7 (%s)", u.mailbox);
	CHECK(parse("imap://a;AUTH=*@h/A&B/;UID=1;URLAUTH=authuser", &u, &err) == 0 &&
	      strcmp(u.user, "a") == 0 && strcmp(u.mailbox, "A&-B") == 0 && u.access == URLAUTH_AUTHUSER,
	      ";AUTH= and '&' in a name");
	CHECK(parse("imap://a@h/INBOX/;UID=1;EXPIRE=2026-12-01T11:00:00+01:00;URLAUTH=anonymous", &u,
		    &err) == 0 && u.expire == 1796119200, "EXPIRE with a zone offset");
}

static void test_bad_urls(void)
{
	static const char *const bad[] = {
		"http://h/INBOX/;UID=1",
		"imap://h/INBOX",
		"imap://h/INBOX/;UID=0",
		"imap://h/INBOX/;UID=99999999999",
		"imap://h/INBOX/;UID=1/;SECTION=",
		"imap://h/INBOX/;UID=1;URLAUTH=root",
		"imap://h/INBOX/;UID=1;URLAUTH=submit+",
		"imap://h/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:abc",
		"imap://h/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:zz23456789abcdef0123456789abcdef",
		"imap://h/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL",
		"imap://h/INBOX/;UID=1;URLAUTH=anonymous;UID=2",
		"imap://h/INBOX/;UID=1;EXPIRE=tomorrow;URLAUTH=anonymous",
		"imap://h/INBOX/;UID=1;EXPIRE=2026-12-01T10:00:00Z",
		"imap://h/INBOX/;PARTIAL=1/;UID=1",
		"imap://h/IN%0ABOX/;UID=1",
		"imap://h/IN%zzBOX/;UID=1",
		"imap://h/f%C3/;UID=1",
		"imap://h/f%ED%A0%80/;UID=1",
		"imap://h:99999/INBOX/;UID=1",
		"imap://h h/INBOX/;UID=1",
		"imap:///INBOX/;UID=1",
		"//h/INBOX/;UID=1",
		"imap://h/;UID=1",
	};
	struct imapurl u;
	const char *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(parse(bad[i], &u, &err) < 0 && err, "refused with a reason: %s", bad[i]);
	CHECK(imapurl_parse("imap://h/IN\0BOX/;UID=1", 21, &u, &err) < 0, "NUL refused");
}

static void test_mutf7(void)
{
	char out[64];

	CHECK(imapurl_utf8_to_mutf7("Entw\xc3\xbcrfe", 9, out, sizeof(out)) == 0 &&
	      strcmp(out, "Entw&APw-rfe") == 0, "umlaut (%s)", out);
	CHECK(imapurl_utf8_to_mutf7("\xe5\x8f\xb0\xe5\x8c\x97", 6, out, sizeof(out)) == 0 &&
	      strcmp(out, "&U,BTFw-") == 0, "two CJK characters use ',' (%s)", out);
	CHECK(imapurl_utf8_to_mutf7("\xf0\x9f\x98\x80", 4, out, sizeof(out)) == 0 &&
	      strcmp(out, "&2D3eAA-") == 0, "astral plane: a surrogate pair (%s)", out);
	CHECK(imapurl_utf8_to_mutf7("\xc0\x80", 2, out, sizeof(out)) < 0, "overlong form refused");
	CHECK(imapurl_utf8_to_mutf7("abcdef", 6, out, 4) < 0, "too small an output refused");
}

int main(void)
{
	test_full_url();
	test_forms();
	test_bad_urls();
	test_mutf7();
	return lgtest_finish();
}
