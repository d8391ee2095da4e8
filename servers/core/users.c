#include "servers/core/users.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERS_MAX      1024
#define USER_NAME_MAX  64
#define USERS_FILE_MAX (1u << 20)

struct srv_user {
	char name[USER_NAME_MAX];
	unsigned char digest[32];
};

struct srv_users {
	struct srv_user *items;
	size_t count;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_line(char *line, struct srv_user *u)
{
	char *c1 = strchr(line, ':'), *c2;

	if (!c1 || c1 == line || (size_t)(c1 - line) >= USER_NAME_MAX)
		return -1;
	c2 = strchr(c1 + 1, ':');
	if (!c2 || (size_t)(c2 - c1 - 1) != 6 || strncmp(c1 + 1, "sha256", 6) != 0)
		return -1;
	if (strlen(c2 + 1) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(c2[1 + 2 * i]), lo = hexval(c2[2 + 2 * i]);

		if (hi < 0 || lo < 0)
			return -1;
		u->digest[i] = (unsigned char)(hi * 16 + lo);
	}
	memcpy(u->name, line, (size_t)(c1 - line));
	u->name[c1 - line] = '\0';
	return 0;
}

struct srv_users *srv_users_parse(const char *name, const char *text, char *err, size_t errlen)
{
	struct srv_users *u = calloc(1, sizeof(*u));
	char *copy = strdup(text), *line, *save = NULL;
	unsigned lineno = 0;

	if (!u || !copy || !(u->items = calloc(USERS_MAX, sizeof(*u->items)))) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	/* strtok_r would skip empty lines and lose the numbering, so split by hand */
	for (line = copy; line; line = save) {
		char *nl = strchr(line, '\n');

		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		if (*line == '\0' && !save)
			break;
		if (line[strlen(line) > 0 ? strlen(line) - 1 : 0] == '\r')
			line[strlen(line) - 1] = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if (u->count >= USERS_MAX) {
			snprintf(err, errlen, "%s:%u: more than %d users", name, lineno, USERS_MAX);
			goto fail;
		}
		if (parse_line(line, &u->items[u->count]) < 0) {
			snprintf(err, errlen, "%s:%u: expected NAME:sha256:64-HEX-DIGITS", name, lineno);
			goto fail;
		}
		u->count++;
	}
	free(copy);
	return u;
fail:
	free(copy);
	srv_users_free(u);
	return NULL;
}

struct srv_users *srv_users_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;
	struct srv_users *u;

	if (!f) {
		snprintf(err, errlen, "%s: cannot open", path);
		return NULL;
	}
	buf = malloc(USERS_FILE_MAX + 1);
	n = buf ? fread(buf, 1, USERS_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!buf || n > USERS_FILE_MAX || memchr(buf, '\0', n)) {
		snprintf(err, errlen, "%s: unreadable, too large or binary", path);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	u = srv_users_parse(path, buf, err, errlen);
	free(buf);
	return u;
}

bool srv_users_check(const struct srv_users *u, const char *user, const char *pass)
{
	unsigned char digest[32];
	unsigned int dlen = 0;

	if (!u || EVP_Digest(pass, strlen(pass), digest, &dlen, EVP_sha256(), NULL) != 1)
		return false;
	for (size_t i = 0; i < u->count; i++)
		if (strcmp(u->items[i].name, user) == 0)
			return CRYPTO_memcmp(digest, u->items[i].digest, 32) == 0;
	return false;
}

bool srv_users_exists(const struct srv_users *u, const char *user)
{
	for (size_t i = 0; u && i < u->count; i++)
		if (strcmp(u->items[i].name, user) == 0)
			return true;
	return false;
}

void srv_users_free(struct srv_users *u)
{
	if (!u)
		return;
	free(u->items);
	free(u);
}
