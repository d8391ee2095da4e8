/* URLAUTH: keys, tokens, and URL resolution (RFC 4467, RFC 5092). */
#include "servers/imap/urlauth.h"

#include "servers/core/server.h"
#include "servers/core/words.h"
#include "servers/imap/session.h"
#include "servers/mail/store.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define KEYS_FILE "urlauth.keys"
#define KEY_LEN 32
#define SUBMIT_USERS_MAX 16

static char submit_users[SUBMIT_USERS_MAX][IMAPURL_USER_MAX + 1];
static size_t submit_user_count;

int urlauth_set_submit_users(const char *list)
{
	int n = srv_comma_list(list, submit_users[submit_user_count], sizeof(submit_users[0]),
			       SUBMIT_USERS_MAX - submit_user_count);

	if (n < 0)
		return -1;
	submit_user_count += (size_t)n; /* the option may be given more than once */
	return 0;
}

bool urlauth_is_submit_user(const char *user)
{
	for (size_t i = 0; i < submit_user_count; i++)
		if (strcmp(submit_users[i], user) == 0)
			return true;
	return false;
}

/* ---- keys: one line per mailbox, "HEX NAME" ---- */

struct key_entry {
	char name[MB_NAME_MAX];
	unsigned char key[KEY_LEN];
};

struct keyring {
	struct key_entry *e;
	size_t n;
};

static int load_keys(const char *user, struct keyring *k)
{
	size_t len;
	char *data = store_user_file_read(user, KEYS_FILE, &len), *line, *save = NULL;

	k->e = NULL;
	k->n = 0;
	if (!data)
		return errno == ENOENT ? 0 : -1;
	for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct key_entry *e = realloc(k->e, (k->n + 1) * sizeof(*e));
		const char *name = line + KEY_LEN * 2 + 1;

		if (!e)
			goto fail;
		k->e = e;
		if (strlen(line) < KEY_LEN * 2 + 2 || line[KEY_LEN * 2] != ' ' ||
		    strlen(name) >= MB_NAME_MAX)
			continue; /* a damaged line: that mailbox's URLs stop working, the others do not */
		bool ok = true;

		for (int i = 0; i < KEY_LEN; i++) {
			unsigned v;

			ok &= sscanf(line + 2 * i, "%2x", &v) == 1;
			e[k->n].key[i] = (unsigned char)v;
		}
		if (!ok)
			continue;
		snprintf(e[k->n].name, sizeof(e[k->n].name), "%s", name);
		k->n++;
	}
	free(data);
	return 0;
fail:
	free(data);
	free(k->e);
	return -1;
}

static int save_keys(const char *user, const struct keyring *k)
{
	size_t cap = k->n * (KEY_LEN * 2 + MB_NAME_MAX + 2) + 1, o = 0;
	char *out = malloc(cap);
	int rc;

	if (!out)
		return -1;
	for (size_t i = 0; i < k->n; i++) {
		for (int b = 0; b < KEY_LEN; b++)
			o += (size_t)snprintf(out + o, cap - o, "%02x", k->e[i].key[b]);
		o += (size_t)snprintf(out + o, cap - o, " %s\n", k->e[i].name);
	}
	rc = store_user_file_write(user, KEYS_FILE, out, o);
	explicit_bzero(out, o);
	free(out);
	return rc;
}

static int mailbox_key(const char *user, const char *mailbox, bool create, unsigned char *key)
{
	struct keyring k;
	int rc = -1;

	if (load_keys(user, &k) < 0)
		return -1;
	for (size_t i = 0; i < k.n; i++)
		if (strcmp(k.e[i].name, mailbox) == 0) {
			memcpy(key, k.e[i].key, KEY_LEN);
			rc = 0;
			goto out;
		}
	if (!create) {
		errno = ENOENT;
		goto out;
	}
	struct key_entry *e = realloc(k.e, (k.n + 1) * sizeof(*e));

	if (!e)
		goto out;
	k.e = e;
	snprintf(e[k.n].name, sizeof(e[k.n].name), "%s", mailbox);
	if (RAND_bytes(e[k.n].key, KEY_LEN) != 1) {
		errno = EIO;
		goto out;
	}
	memcpy(key, e[k.n].key, KEY_LEN);
	k.n++;
	rc = save_keys(user, &k);
out:
	if (k.e)
		explicit_bzero(k.e, k.n * sizeof(*k.e));
	free(k.e);
	return rc;
}

int urlauth_reset(const char *user, const char *mailbox)
{
	struct keyring k;
	size_t kept = 0;
	int rc;

	if (load_keys(user, &k) < 0)
		return -1;
	for (size_t i = 0; i < k.n; i++)
		if (mailbox && strcmp(k.e[i].name, mailbox) != 0)
			k.e[kept++] = k.e[i];
	k.n = kept;
	rc = save_keys(user, &k); /* a mailbox without a key gets a fresh one when next needed */
	free(k.e);
	return rc;
}

static void token_of(const unsigned char *key, const char *rump, size_t len, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	HMAC(EVP_sha256(), key, KEY_LEN, (const unsigned char *)rump, len, md, &mdlen);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* The URL names this server: its configured host name, any port. */
static bool our_host(const struct imapurl *u)
{
	return u->relative || strcasecmp(u->host, srv_config()->hostname) == 0;
}

int urlauth_generate(const char *user, const char *url, size_t len, char *out, size_t size,
		     const char **err)
{
	struct imapurl u;
	unsigned char key[KEY_LEN];
	char token[2 * EVP_MAX_MD_SIZE + 1];

	if (imapurl_parse(url, len, &u, err) < 0)
		return -1;
	if (u.relative || !our_host(&u)) {
		*err = "the URL must be absolute and name this server";
		return -1;
	}
	if (u.access == URLAUTH_NONE || u.mechanism[0] || u.rump_len != len) {
		*err = "the URL must end with ;URLAUTH=access and carry no verifier";
		return -1;
	}
	if (strcmp(u.user, user) != 0) {
		*err = "only the mailbox owner may authorize URLs to it";
		return -1;
	}
	store_name_canonical(u.mailbox);
	if (!store_exists(user, u.mailbox)) {
		*err = "no such mailbox";
		return -1;
	}
	if (mailbox_key(user, u.mailbox, true, key) < 0) {
		*err = "cannot keep the mailbox access key";
		return -1;
	}
	token_of(key, url, len, token);
	explicit_bzero(key, sizeof(key));
	if ((size_t)snprintf(out, size, "%.*s:INTERNAL:%s", (int)len, url, token) >= size) {
		*err = "URL too long";
		return -1;
	}
	return 0;
}

static bool access_ok(const struct imapurl *u, const char *session_user)
{
	switch (u->access) {
	case URLAUTH_SUBMIT: return urlauth_is_submit_user(session_user);
	case URLAUTH_USER: return strcmp(u->access_user, session_user) == 0;
	case URLAUTH_AUTHUSER:
	case URLAUTH_ANONYMOUS: return true;
	case URLAUTH_NONE: break;
	}
	return false;
}

static bool verified(const struct imapurl *u, const char *url, const char **err)
{
	unsigned char key[KEY_LEN];
	char token[2 * EVP_MAX_MD_SIZE + 1], given[sizeof(u->token)];
	bool ok;

	if (strcasecmp(u->mechanism, "INTERNAL") != 0) {
		*err = "URL without a verifier this server issued";
		return false;
	}
	if (mailbox_key(u->user, u->mailbox, false, key) < 0) {
		*err = "no access key for that mailbox (never issued, or reset)";
		return false;
	}
	token_of(key, url, u->rump_len, token);
	explicit_bzero(key, sizeof(key));
	for (size_t i = 0; i <= strlen(u->token); i++)
		given[i] = (char)(u->token[i] >= 'A' && u->token[i] <= 'F' ? u->token[i] + 32 : u->token[i]);
	ok = strlen(given) == strlen(token) && CRYPTO_memcmp(given, token, strlen(token)) == 0;
	if (!ok)
		*err = "URLAUTH verifier does not match";
	return ok;
}

int urlauth_fetch(const char *session_user, const char *url, size_t len, bool authorized_only,
		  char **data, size_t *dlen, const char **err)
{
	struct imapurl u;
	struct mbox *mb;
	struct mbox_view v;
	char *msg = NULL, *part = NULL;
	size_t msglen, partlen;
	int i;

	*data = NULL;
	if (imapurl_parse(url, len, &u, err) < 0)
		return -1;
	if (!our_host(&u)) {
		*err = "the URL names another server";
		return -1;
	}
	if (u.relative)
		snprintf(u.user, sizeof(u.user), "%s", session_user);
	store_name_canonical(u.mailbox);
	if (u.access != URLAUTH_NONE || authorized_only) {
		if (u.access == URLAUTH_NONE || !u.user[0]) {
			*err = "the URL carries no URLAUTH (or no owner)";
			return -1;
		}
		if (!verified(&u, url, err))
			return -1;
		if (u.expire && u.expire <= (int64_t)time(NULL)) {
			*err = "the URL has expired";
			return -1;
		}
		if (!access_ok(&u, session_user)) {
			*err = "the URL's access identifier does not allow this user";
			return -1;
		}
	} else if (strcmp(u.user, session_user) != 0) {
		*err = "a URL to another user's mailbox needs URLAUTH";
		return -1;
	}
	if (!(mb = mbox_open(u.user, u.mailbox))) {
		*err = "no such mailbox";
		return -1;
	}
	mbox_view(mb, &v);
	i = mbox_index_of_uid(mb, u.uid);
	if ((u.uidvalidity && u.uidvalidity != v.uidvalidity) || i < 0) {
		mbox_close(mb);
		*err = u.uidvalidity && u.uidvalidity != v.uidvalidity ? "UIDVALIDITY has changed"
									: "no such message";
		return -1;
	}
	if (mbox_read(mb, &v.msgs[i], &msg, &msglen) < 0) {
		mbox_close(mb);
		*err = "message unreadable";
		return -1;
	}
	mbox_close(mb);
	if (imap_message_section(u.section, msg, msglen, &part, &partlen) < 0 || !part) {
		free(msg);
		free(part);
		*err = "no such section";
		return -1;
	}
	free(msg);
	if (u.partial) {
		size_t off = u.partial_offset < partlen ? u.partial_offset : partlen;
		size_t n = partlen - off;

		if (u.partial_length && n > u.partial_length)
			n = u.partial_length;
		memmove(part, part + off, n);
		partlen = n;
	}
	*data = part;
	*dlen = partlen;
	return 0;
}
