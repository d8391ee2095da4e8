/* IMAP URL parsing (RFC 5092 imessagepart, RFC 4467 iurlauth). */
#include "servers/mail/imapurl.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int fail(const char **err, const char *why)
{
	*err = why;
	return -1;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode S (LEN bytes) into OUT; no control characters allowed in the result. */
static int pct_decode(const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return -1;
			c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || o + 1 >= size)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static bool number(const char *s, size_t len, uint32_t *out, bool nonzero)
{
	uint64_t n = 0;

	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (n > 0xffffffffu || (nonzero && n == 0))
		return false;
	*out = (uint32_t)n;
	return true;
}

int imapurl_utf8_to_mutf7(const char *in, size_t len, char *out, size_t size)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
	size_t o = 0, i = 0;

#define PUT(ch) do { if (o + 1 >= size) return -1; out[o++] = (ch); } while (0)
	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x20 && c < 0x7f) {
			if (c == '&') {
				PUT('&');
				PUT('-');
			} else {
				PUT((char)c);
			}
			i++;
			continue;
		}
		/* a run of non-ASCII characters: UTF-16, base64 with ',' for '/' */
		uint32_t bits = 0;
		int nbits = 0;

		PUT('&');
		while (i < len && ((unsigned char)in[i] < 0x20 || (unsigned char)in[i] >= 0x7f)) {
			unsigned char b = (unsigned char)in[i];
			uint32_t cp;
			int more;

			if (b < 0x80)
				return -1; /* control characters are not allowed in names */
			else if ((b & 0xe0) == 0xc0)
				cp = b & 0x1f, more = 1;
			else if ((b & 0xf0) == 0xe0)
				cp = b & 0x0f, more = 2;
			else if ((b & 0xf8) == 0xf0)
				cp = b & 0x07, more = 3;
			else
				return -1;
			if (i + (size_t)more >= len)
				return -1;
			for (int k = 1; k <= more; k++) {
				unsigned char cb = (unsigned char)in[i + (size_t)k];

				if ((cb & 0xc0) != 0x80)
					return -1;
				cp = cp << 6 | (cb & 0x3f);
			}
			if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) ||
			    (more == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
				return -1; /* overlong forms and surrogates are not UTF-8 */
			i += (size_t)more + 1;
			uint16_t units[2];
			int nu = 0;

			if (cp >= 0x10000) {
				cp -= 0x10000;
				units[nu++] = (uint16_t)(0xd800 | (cp >> 10));
				units[nu++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
			} else {
				units[nu++] = (uint16_t)cp;
			}
			for (int k = 0; k < nu; k++) {
				bits = bits << 16 | units[k];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					PUT(b64[(bits >> nbits) & 0x3f]);
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits)
			PUT(b64[(bits << (6 - nbits)) & 0x3f]);
		PUT('-');
	}
	out[o] = '\0';
	return 0;
#undef PUT
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
static int parse_expire(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, n = 0, zh = 0, zm = 0;
	struct tm tm = { 0 };
	int64_t t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
		return -1;
	s += n;
	if (*s == '.')
		for (s++; isdigit((unsigned char)*s); s++)
			;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s == '-' ? -1 : 1;

		if (sscanf(s + 1, "%2d:%2d%n", &zh, &zm, &n) != 2 || n != 5 || zh > 23 || zm > 59)
			return -1;
		zh *= sign;
		zm *= sign;
		s += 6;
	} else {
		return -1;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm);
	*out = t - (int64_t)zh * 3600 - (int64_t)zm * 60;
	return *out > 0 ? 0 : -1;
}

static bool prefix_is(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len >= n && strncasecmp(s, word, n) == 0;
}

/* ";NAME=value" parameters after the mailbox; each value ends at the next ';' (a '/'
 * just before it separates path segments) */
static int parse_params(const char *s, size_t len, const char *url, struct imapurl *u,
			const char **err)
{
	size_t i = 0;
	bool have_uid = false;
	int order = 0; /* UIDVALIDITY < UID < SECTION < PARTIAL < EXPIRE < URLAUTH */

	while (i < len) {
		bool slash = false;

		if (s[i] == '/') {
			slash = true;
			i++;
		}
		if (i >= len || s[i] != ';')
			return fail(err, "expected ;NAME= in the URL");
		i++;
		size_t start = i;

		while (i < len && s[i] != ';' && !(s[i] == '/' && i + 1 < len && s[i + 1] == ';'))
			i++;
		const char *v = s + start;
		size_t vl = i - start;
		char buf[IMAPURL_SECTION_MAX];

		if (prefix_is(v, vl, "UIDVALIDITY=") && order < 1 && !slash) {
			if (!number(v + 12, vl - 12, &u->uidvalidity, true))
				return fail(err, "bad UIDVALIDITY in the URL");
			order = 1;
		} else if (prefix_is(v, vl, "UID=") && order < 2 && slash) {
			if (!number(v + 4, vl - 4, &u->uid, true))
				return fail(err, "bad UID in the URL");
			order = 2;
			have_uid = true;
		} else if (prefix_is(v, vl, "SECTION=") && order == 2 && slash) {
			if (pct_decode(v + 8, vl - 8, u->section, sizeof(u->section)) < 0 || !u->section[0])
				return fail(err, "bad SECTION in the URL");
			order = 3;
		} else if (prefix_is(v, vl, "PARTIAL=") && order >= 2 && order < 4 && slash) {
			const char *dot = memchr(v + 8, '.', vl - 8);
			size_t ol = dot ? (size_t)(dot - (v + 8)) : vl - 8;

			if (!number(v + 8, ol, &u->partial_offset, false) ||
			    (dot && !number(dot + 1, (size_t)(v + vl - dot - 1), &u->partial_length, true)))
				return fail(err, "bad PARTIAL in the URL");
			u->partial = true;
			order = 4;
		} else if (prefix_is(v, vl, "EXPIRE=") && order >= 2 && order < 5 && !slash) {
			if (pct_decode(v + 7, vl - 7, buf, sizeof(buf)) < 0 || parse_expire(buf, &u->expire) < 0)
				return fail(err, "bad EXPIRE in the URL");
			order = 5;
		} else if (prefix_is(v, vl, "URLAUTH=") && order >= 2 && order < 6 && !slash) {
			const char *a = v + 8, *colon = memchr(a, ':', vl - 8);
			size_t al = colon ? (size_t)(colon - a) : vl - 8;
			const char *who = NULL;

			if (prefix_is(a, al, "submit+"))
				u->access = URLAUTH_SUBMIT, who = a + 7;
			else if (prefix_is(a, al, "user+"))
				u->access = URLAUTH_USER, who = a + 5;
			else if (al == 8 && prefix_is(a, al, "authuser"))
				u->access = URLAUTH_AUTHUSER;
			else if (al == 9 && prefix_is(a, al, "anonymous"))
				u->access = URLAUTH_ANONYMOUS;
			else
				return fail(err, "unknown URLAUTH access identifier");
			if (who && (pct_decode(who, (size_t)(a + al - who), u->access_user,
					       sizeof(u->access_user)) < 0 || !u->access_user[0]))
				return fail(err, "bad user in the URLAUTH access identifier");
			u->rump_len = (size_t)(a + al - url);
			if (colon) {
				const char *mech = colon + 1, *c2 = memchr(mech, ':', (size_t)(v + vl - mech));
				size_t tl;

				if (!c2 || (size_t)(c2 - mech) >= sizeof(u->mechanism) || c2 == mech)
					return fail(err, "bad URLAUTH verifier");
				memcpy(u->mechanism, mech, (size_t)(c2 - mech));
				u->mechanism[c2 - mech] = '\0';
				tl = (size_t)(v + vl - c2 - 1);
				if (tl < 32 || tl >= sizeof(u->token))
					return fail(err, "URLAUTH token too short or too long");
				for (size_t k = 0; k < tl; k++)
					if (hexval(c2[1 + k]) < 0)
						return fail(err, "URLAUTH token is not hex");
				memcpy(u->token, c2 + 1, tl);
				u->token[tl] = '\0';
			}
			order = 6;
			if (i != len)
				return fail(err, "nothing may follow URLAUTH");
		} else {
			return fail(err, "unknown or misplaced URL parameter");
		}
	}
	if (!have_uid)
		return fail(err, "the URL names no message (;UID=)");
	if (u->expire && u->access == URLAUTH_NONE)
		return fail(err, "EXPIRE without URLAUTH");
	return 0;
}

int imapurl_parse(const char *url, size_t len, struct imapurl *u, const char **err)
{
	const char *p = url, *end = url + len, *path, *semi;
	char name[IMAPURL_NAME_MAX];
	size_t nl;

	memset(u, 0, sizeof(*u));
	if (memchr(url, '\0', len))
		return fail(err, "NUL in the URL");
	if (prefix_is(p, len, "imap://")) {
		const char *server = p + 7, *at, *colon;

		path = memchr(server, '/', (size_t)(end - server));
		if (!path)
			path = end;
		at = NULL;
		for (const char *q = server; q < path; q++)
			if (*q == '@')
				at = q;
		if (at) {
			const char *auth = NULL;

			for (const char *q = server; q < at; q++)
				if (*q == ';') {
					auth = q;
					break;
				}
			if (auth && !prefix_is(auth, (size_t)(at - auth), ";AUTH="))
				return fail(err, "bad user part of the URL");
			if (pct_decode(server, (size_t)((auth ? auth : at) - server), u->user,
				       sizeof(u->user)) < 0)
				return fail(err, "bad user in the URL");
			server = at + 1;
		}
		colon = memchr(server, ':', (size_t)(path - server));
		if ((size_t)((colon ? colon : path) - server) > IMAPURL_HOST_MAX || server == (colon ? colon : path))
			return fail(err, "bad host in the URL");
		memcpy(u->host, server, (size_t)((colon ? colon : path) - server));
		u->host[(colon ? colon : path) - server] = '\0';
		for (char *h = u->host; *h; h++)
			if (!(isalnum((unsigned char)*h) || *h == '.' || *h == '-' || *h == '[' || *h == ']'))
				return fail(err, "bad host in the URL");
		if (colon) {
			uint32_t port;

			if (!number(colon + 1, (size_t)(path - colon - 1), &port, true) || port > 65535)
				return fail(err, "bad port in the URL");
			u->port = port;
		}
		if (path == end)
			return fail(err, "the URL names no mailbox");
		p = path + 1;
	} else if (len > 1 && url[0] == '/' && url[1] != '/') {
		u->relative = true;
		p = url + 1;
	} else {
		return fail(err, "not an IMAP URL");
	}
	semi = memchr(p, ';', (size_t)(end - p));
	if (!semi)
		return fail(err, "the URL names no message (;UID=)");
	nl = (size_t)(semi - p);
	if (nl && p[nl - 1] == '/')
		nl--; /* the separator before ";UID=" */
	if (nl == 0 || pct_decode(p, nl, name, sizeof(name)) < 0 ||
	    imapurl_utf8_to_mutf7(name, strlen(name), u->mailbox, sizeof(u->mailbox)) < 0)
		return fail(err, "bad mailbox name in the URL");
	return parse_params(p + nl, (size_t)(end - p - nl), url, u, err);
}
