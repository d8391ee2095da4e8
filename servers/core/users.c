#include "servers/core/users.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_NAME_MAX  64
#define USERS_FILE_MAX (64u << 20) /* about 700,000 users */

struct srv_user {
	char name[USER_NAME_MAX];
	unsigned char digest[32];
	unsigned lineno;
};

/* Sorted by name once loaded: a login looks its user up by binary search. */
struct srv_users {
	struct srv_user *items;
	size_t count, cap;
};

static int cmp_user(const void *a, const void *b)
{
	return strcmp(((const struct srv_user *)a)->name, ((const struct srv_user *)b)->name);
}

static const struct srv_user *find(const struct srv_users *u, const char *name)
{
	struct srv_user key;

	if (!u || strlen(name) >= sizeof(key.name))
		return NULL;
	strcpy(key.name, name);
	return bsearch(&key, u->items, u->count, sizeof(*u->items), cmp_user);
}

static int grow(struct srv_users *u)
{
	size_t cap = u->cap ? u->cap * 2 : 64;
	struct srv_user *items = realloc(u->items, cap * sizeof(*items));

	if (!items)
		return -1;
	u->items = items;
	u->cap = cap;
	return 0;
}

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

	if (!u || !copy) {
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
		if (u->count == u->cap && grow(u) < 0) {
			snprintf(err, errlen, "%s:%u: out of memory", name, lineno);
			goto fail;
		}
		u->items[u->count].lineno = lineno;
		if (parse_line(line, &u->items[u->count]) < 0) {
			snprintf(err, errlen, "%s:%u: expected NAME:sha256:64-HEX-DIGITS", name, lineno);
			goto fail;
		}
		u->count++;
	}
	qsort(u->items, u->count, sizeof(*u->items), cmp_user);
	for (size_t i = 1; i < u->count; i++)
		if (strcmp(u->items[i - 1].name, u->items[i].name) == 0) {
			const struct srv_user *a = &u->items[i - 1], *b = &u->items[i];

			snprintf(err, errlen, "%s:%u: user %s already listed on line %u", name,
				 a->lineno > b->lineno ? a->lineno : b->lineno, a->name,
				 a->lineno < b->lineno ? a->lineno : b->lineno);
			goto fail;
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
	const struct srv_user *found;

	if (!u || EVP_Digest(pass, strlen(pass), digest, &dlen, EVP_sha256(), NULL) != 1)
		return false;
	found = find(u, user);
	return found && CRYPTO_memcmp(digest, found->digest, 32) == 0;
}

bool srv_users_exists(const struct srv_users *u, const char *user)
{
	return find(u, user) != NULL;
}

void srv_users_free(struct srv_users *u)
{
	if (!u)
		return;
	free(u->items);
	free(u);
}
