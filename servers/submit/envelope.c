/* MAIL FROM / RCPT TO parsing (RFC 5321 4.1.2, RFC 1870, RFC 6152, RFC 3030, RFC 3461,
 * RFC 4954). */
#include "servers/submit/envelope.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(const char **err, const char *reply)
{
	*err = reply;
	return -1;
}

bool smtp_xtext_valid(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '+') {
			if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]) ||
			    islower((unsigned char)s[1]) || islower((unsigned char)s[2]))
				return false;
			s += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}

bool smtp_split_address(const char *addr, char *local, size_t lsize, char *domain, size_t dsize)
{
	const char *at = strrchr(addr, '@');

	if (!at || at == addr || !at[1] || (size_t)(at - addr) >= lsize || strlen(at + 1) >= dsize)
		return false;
	memcpy(local, addr, (size_t)(at - addr));
	local[at - addr] = '\0';
	strcpy(domain, at + 1);
	return true;
}

/* "<" [source route ":"] mailbox ">" into OUT; *REST after it. An empty path only when
 * NULL_OK. The mailbox must be local@domain, printable, no spaces, quoted local parts kept. */
static int parse_path(const char *s, char *out, bool null_ok, const char **rest, const char **err)
{
	const char *p = s, *end;
	size_t n;

	if (*p != '<')
		return fail(err, "501 5.5.4 syntax: the address goes between < and >");
	p++;
	if (*p == '@') { /* a source route is ignored (RFC 5321 4.1.2) */
		const char *colon = strchr(p, ':');

		if (!colon)
			return fail(err, "501 5.1.3 bad source route");
		p = colon + 1;
	}
	bool quoted = false;

	for (end = p; *end && (quoted || *end != '>'); end++) {
		if (*end == '"')
			quoted = !quoted;
		else if (*end == '\\' && quoted && end[1])
			end++;
		else if ((unsigned char)*end <= 32 && !(quoted && *end == ' '))
			return fail(err, "501 5.1.3 bad character in the address");
		else if ((unsigned char)*end >= 127)
			return fail(err, "501 5.1.3 non-ASCII address (SMTPUTF8 is not offered)");
	}
	if (*end != '>')
		return fail(err, "501 5.5.4 syntax: the address goes between < and >");
	n = (size_t)(end - p);
	if (n == 0) {
		if (!null_ok)
			return fail(err, "501 5.1.3 an empty address is not a recipient");
	} else {
		char local[SMTP_ADDR_MAX + 1], domain[SMTP_ADDR_MAX + 1];

		if (n > SMTP_ADDR_MAX)
			return fail(err, "501 5.1.3 address too long");
		memcpy(out, p, n);
		out[n] = '\0';
		if (!smtp_split_address(out, local, sizeof(local), domain, sizeof(domain)) ||
		    strchr(domain, '"') || domain[0] == '.' || strstr(domain, ".."))
			return fail(err, "501 5.1.3 the address must be local-part@domain");
	}
	out[n] = '\0';
	*rest = end + 1;
	return 0;
}

/* The next " KEY=VALUE" (or " KEY") parameter; 0 at the end, 1 with one, -1 on bad syntax. */
static int next_param(const char **s, char *key, size_t ksize, char *value, size_t vsize)
{
	const char *p = *s, *k, *eq;
	size_t kl, vl;

	if (!*p)
		return 0;
	if (*p != ' ')
		return -1;
	while (*p == ' ')
		p++;
	if (!*p)
		return 0;
	k = p;
	while (*p && *p != ' ')
		p++;
	eq = memchr(k, '=', (size_t)(p - k));
	kl = (size_t)((eq ? eq : p) - k);
	vl = eq ? (size_t)(p - eq - 1) : 0;
	if (kl == 0 || kl >= ksize || vl >= vsize || (eq && vl == 0))
		return -1;
	memcpy(key, k, kl);
	key[kl] = '\0';
	if (eq)
		memcpy(value, eq + 1, vl);
	value[vl] = '\0';
	*s = p;
	return eq ? 1 : 2;
}

int smtp_parse_mail(const char *args, struct smtp_mail *m, const char **err)
{
	char key[32], value[SMTP_XTEXT_MAX + 1];
	bool seen_size = false, seen_body = false;
	int r;

	memset(m, 0, sizeof(*m));
	if (parse_path(args, m->from, true, &args, err) < 0)
		return -1;
	while ((r = next_param(&args, key, sizeof(key), value, sizeof(value))) != 0) {
		if (r < 0)
			return fail(err, "501 5.5.4 bad MAIL parameter syntax");
		if (strcasecmp(key, "SIZE") == 0 && r == 1 && !seen_size) {
			char *end;
			unsigned long long n = strtoull(value, &end, 10);

			if (*end || !isdigit((unsigned char)value[0]) || strlen(value) > 20)
				return fail(err, "501 5.5.4 bad SIZE");
			if (n > SMTP_SIZE_MAX)
				return fail(err, "552 5.3.4 message larger than the limit (64 MiB)");
			m->size = n;
			seen_size = true;
		} else if (strcasecmp(key, "BODY") == 0 && r == 1 && !seen_body) {
			if (strcasecmp(value, "7BIT") == 0)
				m->body = BODY_7BIT;
			else if (strcasecmp(value, "8BITMIME") == 0)
				m->body = BODY_8BITMIME;
			else if (strcasecmp(value, "BINARYMIME") == 0)
				m->body = BODY_BINARYMIME;
			else
				return fail(err, "501 5.5.4 BODY is 7BIT, 8BITMIME or BINARYMIME");
			seen_body = true;
		} else if (strcasecmp(key, "RET") == 0 && r == 1 && m->ret == RET_UNSET) {
			if (strcasecmp(value, "FULL") == 0)
				m->ret = RET_FULL;
			else if (strcasecmp(value, "HDRS") == 0)
				m->ret = RET_HDRS;
			else
				return fail(err, "501 5.5.4 RET is FULL or HDRS");
		} else if (strcasecmp(key, "ENVID") == 0 && r == 1 && !m->envid[0]) {
			if (strlen(value) > 100 || !smtp_xtext_valid(value))
				return fail(err, "501 5.5.4 bad ENVID (xtext, at most 100 characters)");
			strcpy(m->envid, value);
		} else if (strcasecmp(key, "AUTH") == 0 && r == 1 && !m->auth[0]) {
			if (strcmp(value, "<>") != 0 && !smtp_xtext_valid(value))
				return fail(err, "501 5.5.4 bad AUTH parameter");
			strcpy(m->auth, value);
		} else {
			return fail(err, "555 5.5.4 unknown or repeated MAIL parameter");
		}
	}
	return 0;
}

static int parse_notify(const char *v, unsigned *out)
{
	char buf[64], *save = NULL;

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	*out = 0;
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		unsigned bit = strcasecmp(w, "NEVER") == 0 ? NOTIFY_NEVER :
			       strcasecmp(w, "SUCCESS") == 0 ? NOTIFY_SUCCESS :
			       strcasecmp(w, "FAILURE") == 0 ? NOTIFY_FAILURE :
			       strcasecmp(w, "DELAY") == 0 ? NOTIFY_DELAY : 0;

		if (!bit || (*out & bit))
			return -1;
		*out |= bit;
	}
	/* NEVER stands alone (RFC 3461 4.1) */
	return *out && (!(*out & NOTIFY_NEVER) || *out == NOTIFY_NEVER) ? 0 : -1;
}

int smtp_parse_rcpt(const char *args, struct smtp_rcpt *r, const char **err)
{
	char key[32], value[SMTP_XTEXT_MAX + 1];
	int k;

	memset(r, 0, sizeof(*r));
	if (parse_path(args, r->to, false, &args, err) < 0)
		return -1;
	while ((k = next_param(&args, key, sizeof(key), value, sizeof(value))) != 0) {
		if (k < 0)
			return fail(err, "501 5.5.4 bad RCPT parameter syntax");
		if (strcasecmp(key, "NOTIFY") == 0 && k == 1 && !r->notify) {
			if (parse_notify(value, &r->notify) < 0)
				return fail(err, "501 5.5.4 NOTIFY is NEVER or SUCCESS,FAILURE,DELAY");
		} else if (strcasecmp(key, "ORCPT") == 0 && k == 1 && !r->orcpt[0]) {
			const char *semi = strchr(value, ';');

			if (!semi || semi == value || !semi[1] || !smtp_xtext_valid(semi + 1))
				return fail(err, "501 5.5.4 ORCPT is addr-type;xtext");
			strcpy(r->orcpt, value);
		} else {
			return fail(err, "555 5.5.4 unknown or repeated RCPT parameter");
		}
	}
	return 0;
}
