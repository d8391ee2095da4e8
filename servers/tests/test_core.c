#include "lgtest.h"
#include "servers/core/users.h"
#include "servers/core/words.h"

#include <stdlib.h>

#define SECRET_SHA256 "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"

static void test_astrings(void)
{
	const char *p = "alice \"se cr\\\"et\"";
	char w[16];

	CHECK_EQ_INT(srv_next_astring(&p, w, sizeof(w)), 0, "atom");
	CHECK_EQ_STR(w, "alice", "atom value");
	CHECK_EQ_INT(srv_next_astring(&p, w, sizeof(w)), 0, "quoted");
	CHECK_EQ_STR(w, "se cr\"et", "quoted value unescaped");
	CHECK_EQ_INT(*p, '\0', "consumed");

	p = "\"unterminated";
	CHECK_EQ_INT(srv_next_astring(&p, w, sizeof(w)), -1, "unterminated quote");
	p = "{5}";
	CHECK_EQ_INT(srv_next_astring(&p, w, sizeof(w)), -1, "literal refused");
	p = "\"bad\\x\"";
	CHECK_EQ_INT(srv_next_astring(&p, w, sizeof(w)), -1, "bad escape");
	p = "waytoolongforthebuffer";
	CHECK_EQ_INT(srv_next_astring(&p, w, sizeof(w)), -1, "too long");
	p = "";
	CHECK_EQ_INT(srv_next_astring(&p, w, sizeof(w)), -1, "empty");
	p = "a(b";
	CHECK_EQ_INT(srv_next_astring(&p, w, sizeof(w)), -1, "atom-special inside");
}

/* Thousands of users (the IDLE benchmark's 10,000), found by name whatever their order. */
static void test_many_users(void)
{
	char err[256] = "", line[128], name[32];
	size_t cap = 20000 * 96, len = 0;
	char *text = malloc(cap);
	struct srv_users *u;
	bool all = true;

	for (int i = 19999; i >= 0 && text; i--) {
		snprintf(line, sizeof(line), "user%d:sha256:%s\n", i, SECRET_SHA256);
		memcpy(text + len, line, strlen(line) + 1);
		len += strlen(line);
	}
	u = text ? srv_users_parse("many", text, err, sizeof(err)) : NULL;
	CHECK(u != NULL, "20,000 users load: %s", err);
	for (int i = 0; u && i < 20000; i += 997) {
		snprintf(name, sizeof(name), "user%d", i);
		all = all && srv_users_check(u, name, "secret") && !srv_users_check(u, name, "wrong");
	}
	CHECK(all, "each of them logs in with their password, not another");
	CHECK(u && !srv_users_exists(u, "user20000") && srv_users_exists(u, "user0"), "lookup by name");
	srv_users_free(u);
	free(text);
}

static void test_users(void)
{
	char err[256];
	struct srv_users *u = srv_users_parse("u", "# c\n\nalice:sha256:" SECRET_SHA256 "\r\n"
					      "bob:sha256:" SECRET_SHA256, err, sizeof(err));

	CHECK(u != NULL, "parse users: %s", err);
	if (!u)
		return;
	CHECK(srv_users_check(u, "alice", "secret"), "alice/secret");
	CHECK(srv_users_check(u, "bob", "secret"), "bob/secret (last line without newline)");
	CHECK(!srv_users_check(u, "alice", "Secret"), "wrong password");
	CHECK(!srv_users_check(u, "carol", "secret"), "unknown user");
	CHECK(!srv_users_check(u, "alice", ""), "empty password");
	srv_users_free(u);

	u = srv_users_parse("u", "alice:sha256:abc\n", err, sizeof(err));
	CHECK(u == NULL && strstr(err, "u:1:") != NULL, "short digest refused: %s", err);
	srv_users_free(u);
	u = srv_users_parse("u", "\n\nalice:plain:secret\n", err, sizeof(err));
	CHECK(u == NULL && strstr(err, "u:3:") != NULL, "line number counts blank lines: %s", err);
	srv_users_free(u);
	u = srv_users_parse("u", ":sha256:" SECRET_SHA256 "\n", err, sizeof(err));
	CHECK(u == NULL, "empty name refused");
	srv_users_free(u);
	CHECK(!srv_users_check(NULL, "alice", "secret"), "no users file: nobody logs in");
	u = srv_users_parse("u", "alice:sha256:" SECRET_SHA256 "\nbob:sha256:" SECRET_SHA256
			    "\nalice:sha256:" SECRET_SHA256 "\n", err, sizeof(err));
	CHECK(u == NULL && strcmp(err, "u:3: user alice already listed on line 1") == 0,
	      "a user listed twice is an error naming both lines: %s", err);
	test_many_users();
}

static void test_comma_lists(void)
{
	char out[3][8];

	CHECK_EQ_INT(srv_comma_list("a,bb,ccc", out[0], sizeof(out[0]), 3), 3, "three entries");
	CHECK(strcmp(out[0], "a") == 0 && strcmp(out[1], "bb") == 0 && strcmp(out[2], "ccc") == 0,
	      "entries in order");
	CHECK_EQ_INT(srv_comma_list("", out[0], sizeof(out[0]), 3), 0, "empty list");
	CHECK_EQ_INT(srv_comma_list("a,,b", out[0], sizeof(out[0]), 3), -1, "empty entry refused");
	CHECK_EQ_INT(srv_comma_list("a,b,c,d", out[0], sizeof(out[0]), 3), -1, "too many refused");
	CHECK_EQ_INT(srv_comma_list("12345678", out[0], sizeof(out[0]), 3), -1, "too long refused");
}

int main(void)
{
	test_comma_lists();
	test_astrings();
	test_users();
	return lgtest_finish();
}
