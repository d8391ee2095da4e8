/* ENVELOPE and BODYSTRUCTURE / BODY (RFC 3501 7.4.2) from the parsed message. Header
 * values are given as they are stored (encoded-words stay encoded, as RFC 3501 asks). */
#include "servers/imap/envelope.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ADDRESSES_MAX 1000

static void put_value(struct imap_session *s, const char *v)
{
	imap_put_nstring(s, v, v ? strlen(v) : 0);
}

static void put_header(struct imap_session *s, const char *hdr, size_t len, const char *name)
{
	char *v = mime_header(hdr, len, name);

	put_value(s, v);
	free(v);
}

static char *trim(char *a, char *b)
{
	while (a < b && isspace((unsigned char)*a))
		a++;
	while (b > a && isspace((unsigned char)b[-1]))
		b--;
	*b = '\0';
	return a;
}

/* Remove (comments) outside quotes; unquote a quoted phrase. */
static void clean_phrase(char *s)
{
	char *w = s;
	int depth = 0;
	bool quoted = false;

	for (char *r = s; *r; r++) {
		if (quoted) {
			if (*r == '\\' && r[1]) {
				*w++ = *++r;
				continue;
			}
			if (*r == '"') {
				quoted = false;
				continue;
			}
			*w++ = *r;
		} else if (*r == '(') {
			depth++;
		} else if (*r == ')' && depth) {
			depth--;
		} else if (!depth) {
			if (*r == '"')
				quoted = true;
			else
				*w++ = *r;
		}
	}
	*w = '\0';
	char *t = trim(s, w);

	memmove(s, t, strlen(t) + 1);
}

static void put_address(struct imap_session *s, char *name, char *addr)
{
	char *at;

	clean_phrase(addr);
	at = strrchr(addr, '@');
	srv_write(s->conn, "(", 1);
	put_value(s, name && *name ? name : NULL);
	srv_write(s->conn, " NIL ", 5);
	if (at) {
		*at = '\0';
		put_value(s, addr);
		srv_write(s->conn, " ", 1);
		put_value(s, at + 1);
	} else {
		put_value(s, *addr ? addr : NULL);
		srv_write(s->conn, " NIL", 4);
	}
	srv_write(s->conn, ")", 1);
}

/* One mailbox of an address list: "Name <a@b>", "a@b (Name)" or "a@b". */
static void put_mailbox(struct imap_session *s, char *item)
{
	char *lt = strchr(item, '<'), *gt;

	if (lt && (gt = strchr(lt, '>'))) {
		*lt = '\0';
		*gt = '\0';
		clean_phrase(item);
		put_address(s, item, lt + 1);
		return;
	}
	put_address(s, NULL, item);
}

/* An address list, groups included; NIL when empty. */
static void put_addresses(struct imap_session *s, const char *hdr, size_t len, const char *field,
			  const char *fallback)
{
	char *v = mime_header(hdr, len, field);
	size_t count = 0;
	bool any = false;

	if (!v && fallback)
		v = mime_header(hdr, len, fallback);
	if (!v) {
		srv_write(s->conn, "NIL", 3);
		return;
	}
	char *p = v, *start = v;
	int depth = 0, angle = 0;
	bool quoted = false, in_group = false;

	for (;; p++) {
		char c = *p;

		if (quoted && c) {
			if (c == '\\' && p[1])
				p++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (c == '"' && !depth) {
			quoted = true;
			continue;
		}
		if (c == '(')
			depth++;
		else if (c == ')' && depth)
			depth--;
		else if (c == '<' && !depth)
			angle++;
		else if (c == '>' && !depth && angle)
			angle--;
		if ((depth || angle) && c)
			continue; /* an unclosed comment or bracket ends with the value */
		if (c == ':' && !in_group) {
			/* group start: (NIL NIL "name" NIL) */
			*p = '\0';
			clean_phrase(start);
			if (!any)
				srv_write(s->conn, "(", 1);
			any = true;
			srv_write(s->conn, "(NIL NIL ", 9);
			put_value(s, start);
			srv_write(s->conn, " NIL)", 5);
			in_group = true;
			start = p + 1;
			continue;
		}
		if (c == ',' || c == ';' || c == '\0') {
			char *item = trim(start, p);

			if (*item && count++ < ADDRESSES_MAX) {
				if (!any)
					srv_write(s->conn, "(", 1);
				any = true;
				put_mailbox(s, item);
			}
			if (c == ';' && in_group) {
				srv_write(s->conn, "(NIL NIL NIL NIL)", 17);
				in_group = false;
			}
			if (!c)
				break;
			start = p + 1;
		}
	}
	srv_write(s->conn, any ? ")" : "NIL", any ? 1 : 3);
	free(v);
}

void imap_put_envelope(struct imap_session *s, const char *hdr, size_t len)
{
	srv_write(s->conn, "(", 1);
	put_header(s, hdr, len, "Date");
	srv_write(s->conn, " ", 1);
	put_header(s, hdr, len, "Subject");
	srv_write(s->conn, " ", 1);
	put_addresses(s, hdr, len, "From", NULL);
	srv_write(s->conn, " ", 1);
	put_addresses(s, hdr, len, "Sender", "From");
	srv_write(s->conn, " ", 1);
	put_addresses(s, hdr, len, "Reply-To", "From");
	srv_write(s->conn, " ", 1);
	put_addresses(s, hdr, len, "To", NULL);
	srv_write(s->conn, " ", 1);
	put_addresses(s, hdr, len, "Cc", NULL);
	srv_write(s->conn, " ", 1);
	put_addresses(s, hdr, len, "Bcc", NULL);
	srv_write(s->conn, " ", 1);
	put_header(s, hdr, len, "In-Reply-To");
	srv_write(s->conn, " ", 1);
	put_header(s, hdr, len, "Message-ID");
	srv_write(s->conn, ")", 1);
}

static void put_upper(struct imap_session *s, const char *v)
{
	char buf[64];
	size_t n = strlen(v) < sizeof(buf) - 1 ? strlen(v) : sizeof(buf) - 1;

	for (size_t i = 0; i < n; i++)
		buf[i] = (char)toupper((unsigned char)v[i]);
	imap_put_string(s, buf, n);
}

/* ("name" "value" ...) from the parameters after the first ';' of a field, or NIL. */
static void put_params(struct imap_session *s, const char *value, const char *default_charset)
{
	const char *p = value ? strchr(value, ';') : NULL;
	bool any = false;

	while (p) {
		const char *name = p + 1, *eq;

		while (*name == ' ' || *name == '\t')
			name++;
		eq = strchr(name, '=');
		p = strchr(name, ';');
		if (!eq || (p && eq > p))
			continue;
		const char *ne = eq;

		while (ne > name && (ne[-1] == ' ' || ne[-1] == '\t'))
			ne--;
		if (ne == name)
			continue;
		char key[128];
		size_t kl = (size_t)(ne - name) < sizeof(key) - 1 ? (size_t)(ne - name) : sizeof(key) - 1;

		memcpy(key, name, kl);
		key[kl] = '\0';
		char *pv = mime_param(value, key);

		if (!pv)
			continue;
		srv_write(s->conn, any ? " " : "(", 1);
		any = true;
		put_upper(s, key);
		srv_write(s->conn, " ", 1);
		imap_put_string(s, pv, strlen(pv));
		free(pv);
	}
	if (!any && default_charset) {
		srv_write(s->conn, "(\"CHARSET\" ", 11);
		imap_put_string(s, default_charset, strlen(default_charset));
		any = true;
	}
	srv_write(s->conn, any ? ")" : "NIL", any ? 1 : 3);
}

static void put_disposition(struct imap_session *s, const char *hdr, size_t len)
{
	char *v = mime_header(hdr, len, "Content-Disposition");
	size_t n;

	if (!v) {
		srv_write(s->conn, "NIL", 3);
		return;
	}
	n = strcspn(v, "; \t");
	char saved = v[n];

	v[n] = '\0';
	srv_write(s->conn, "(", 1);
	put_upper(s, v);
	v[n] = saved;
	srv_write(s->conn, " ", 1);
	put_params(s, v, NULL);
	srv_write(s->conn, ")", 1);
	free(v);
}

static size_t count_lines(const char *p, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += p[i] == '\n';
	if (len && p[len - 1] != '\n')
		n++;
	return n;
}

/* The extension data every part ends with: disposition, language, location. */
static void put_extension_tail(struct imap_session *s, const char *hdr, size_t hl)
{
	srv_write(s->conn, " ", 1);
	put_disposition(s, hdr, hl);
	srv_write(s->conn, " ", 1);
	put_header(s, hdr, hl, "Content-Language");
	srv_write(s->conn, " ", 1);
	put_header(s, hdr, hl, "Content-Location");
}

void imap_put_body(struct imap_session *s, const char *msg, const struct mime_part *part,
		   bool extended, int depth)
{
	const char *hdr = msg + part->header_off;
	size_t hl = part->header_len;
	char *ct = mime_header(hdr, hl, "Content-Type");

	srv_write(s->conn, "(", 1);
	if (part->multipart && part->child_count && depth < MIME_MAX_DEPTH) {
		for (size_t i = 0; i < part->child_count; i++)
			imap_put_body(s, msg, &part->children[i], extended, depth + 1);
		srv_write(s->conn, " ", 1);
		put_upper(s, part->subtype);
		if (extended) {
			srv_write(s->conn, " ", 1);
			put_params(s, ct, NULL);
			put_extension_tail(s, hdr, hl);
		}
		srv_write(s->conn, ")", 1);
		free(ct);
		return;
	}
	bool text = strcmp(part->type, "text") == 0;
	char *enc = mime_header(hdr, hl, "Content-Transfer-Encoding");

	put_upper(s, part->multipart ? "text" : part->type);
	srv_write(s->conn, " ", 1);
	put_upper(s, part->multipart ? "plain" : part->subtype);
	srv_write(s->conn, " ", 1);
	put_params(s, ct, text ? "us-ascii" : NULL);
	srv_write(s->conn, " ", 1);
	put_header(s, hdr, hl, "Content-ID");
	srv_write(s->conn, " ", 1);
	put_header(s, hdr, hl, "Content-Description");
	srv_write(s->conn, " ", 1);
	if (enc) {
		enc[strcspn(enc, " \t;")] = '\0';
		put_upper(s, enc);
	} else {
		srv_write(s->conn, "\"7BIT\"", 6);
	}
	srv_printf(s->conn, " %zu", part->body_len);
	if (part->message && part->child_count && depth < MIME_MAX_DEPTH) {
		const struct mime_part *inner = &part->children[0];

		srv_write(s->conn, " ", 1);
		imap_put_envelope(s, msg + inner->header_off, inner->header_len);
		srv_write(s->conn, " ", 1);
		imap_put_body(s, msg, inner, extended, depth + 1);
		srv_printf(s->conn, " %zu", count_lines(msg + part->body_off, part->body_len));
	} else if (text) {
		srv_printf(s->conn, " %zu", count_lines(msg + part->body_off, part->body_len));
	}
	if (extended) {
		srv_write(s->conn, " ", 1);
		put_header(s, hdr, hl, "Content-MD5");
		put_extension_tail(s, hdr, hl);
	}
	srv_write(s->conn, ")", 1);
	free(enc);
	free(ct);
}
