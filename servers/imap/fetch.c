/* FETCH and STORE (RFC 3501 6.4.5, 6.4.6; RFC 4315 UID forms; RFC 7162 CHANGEDSINCE,
 * VANISHED and UNCHANGEDSINCE). */
#include "servers/imap/envelope.h"
#include "servers/imap/mime.h"
#include "servers/imap/session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FETCH_ATTS_MAX   64
#define SECTION_FIELDS_MAX 64
#define SECTION_PATH_MAX 16

enum att_kind {
	ATT_FLAGS, ATT_UID, ATT_INTERNALDATE, ATT_SIZE, ATT_SECTION, ATT_RFC822, ATT_RFC822_HEADER,
	ATT_RFC822_TEXT, ATT_MODSEQ, ATT_ENVELOPE, ATT_BODY, ATT_BODYSTRUCTURE,
};

enum section_spec { SPEC_NONE, SPEC_HEADER, SPEC_FIELDS, SPEC_FIELDS_NOT, SPEC_TEXT, SPEC_MIME };

struct fetch_att {
	enum att_kind kind;
	bool peek;
	const char *spec_text; /* the section as the client wrote it, echoed back */
	size_t spec_len;
	uint32_t path[SECTION_PATH_MAX];
	size_t depth;
	enum section_spec spec;
	char *fields[SECTION_FIELDS_MAX];
	size_t field_count;
	bool partial;
	uint32_t origin, count;
};

struct fetch_req {
	struct fetch_att atts[FETCH_ATTS_MAX];
	size_t count;
	bool needs_body;
	bool changedsince, vanished;
	uint64_t since;
};

static void req_free(struct fetch_req *r)
{
	for (size_t i = 0; i < r->count; i++)
		for (size_t k = 0; k < r->atts[i].field_count; k++)
			free(r->atts[i].fields[k]);
}

static struct fetch_att *add_att(struct fetch_req *r, struct imap_parser *p, enum att_kind kind)
{
	if (r->count >= FETCH_ATTS_MAX) {
		p->err = "too many FETCH items";
		return NULL;
	}
	r->atts[r->count] = (struct fetch_att){ .kind = kind };
	return &r->atts[r->count++];
}

static int parse_section(struct imap_parser *p, struct fetch_att *a)
{
	char *start = p->p;

	while (isdigit(imap_peek(p))) {
		if (a->depth >= SECTION_PATH_MAX || imap_nz_number(p, &a->path[a->depth++]) < 0) {
			p->err = "bad section part number";
			return -1;
		}
		if (imap_peek(p) != '.')
			break;
		p->p++;
		if (!isdigit(imap_peek(p)) && imap_peek(p) != -1)
			break;
	}
	if (imap_peek(p) == ']') {
		if (a->depth && p->p[-1] == '.') {
			p->err = "bad section";
			return -1;
		}
	} else if (imap_word_is(p, "HEADER.FIELDS.NOT") || imap_word_is(p, "HEADER.FIELDS")) {
		struct imap_str f;

		a->spec = imap_word_is(p, "HEADER.FIELDS.NOT") ? SPEC_FIELDS_NOT : SPEC_FIELDS;
		p->p += a->spec == SPEC_FIELDS_NOT ? 17 : 13;
		if (imap_sp(p) < 0 || imap_expect(p, '(') < 0)
			return -1;
		do {
			if (imap_astring(p, &f) < 0 || a->field_count >= SECTION_FIELDS_MAX ||
			    memchr(f.s, 0, f.len) || memchr(f.s, ':', f.len)) {
				p->err = "bad header field list";
				return -1;
			}
			a->fields[a->field_count] = strndup(f.s, f.len);
			if (!a->fields[a->field_count++])
				return -1;
		} while (imap_peek(p) == ' ' && (p->p++, 1));
		if (imap_expect(p, ')') < 0)
			return -1;
	} else if (imap_take_word(p, "HEADER") == 0) {
		a->spec = SPEC_HEADER;
	} else if (imap_take_word(p, "TEXT") == 0) {
		a->spec = SPEC_TEXT;
	} else if (a->depth && imap_take_word(p, "MIME") == 0) {
		a->spec = SPEC_MIME;
	} else {
		p->err = "bad section";
		return -1;
	}
	p->err = NULL;
	a->spec_text = start;
	a->spec_len = (size_t)(p->p - start);
	if (imap_expect(p, ']') < 0)
		return -1;
	if (imap_peek(p) == '<') {
		p->p++;
		if (imap_number(p, &a->origin) < 0 || imap_expect(p, '.') < 0 ||
		    imap_nz_number(p, &a->count) < 0 || imap_expect(p, '>') < 0) {
			p->err = "bad partial <origin.count>";
			return -1;
		}
		a->partial = true;
	}
	return 0;
}

static int parse_att(struct imap_parser *p, struct fetch_req *r)
{
	static const struct {
		const char *name;
		enum att_kind kind;
	} simple[] = {
		{ "FLAGS", ATT_FLAGS },           { "UID", ATT_UID },
		{ "INTERNALDATE", ATT_INTERNALDATE }, { "RFC822.SIZE", ATT_SIZE },
		{ "RFC822.HEADER", ATT_RFC822_HEADER }, { "RFC822.TEXT", ATT_RFC822_TEXT },
		{ "RFC822", ATT_RFC822 },         { "MODSEQ", ATT_MODSEQ },
		{ "ENVELOPE", ATT_ENVELOPE },     { "BODYSTRUCTURE", ATT_BODYSTRUCTURE },
	};
	struct fetch_att *a;

	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
		if (imap_word_is(p, simple[i].name)) {
			p->p += strlen(simple[i].name);
			if (!(a = add_att(r, p, simple[i].kind)))
				return -1;
			r->needs_body |= a->kind >= ATT_SECTION && a->kind != ATT_MODSEQ;
			return 0;
		}
	if (imap_word_is(p, "BODY.PEEK") || imap_word_is(p, "BODY")) {
		bool peek = imap_word_is(p, "BODY.PEEK");

		p->p += peek ? 9 : 4;
		if (imap_peek(p) != '[') {
			if (peek) {
				p->err = "BODY.PEEK needs a section";
				return -1;
			}
			r->needs_body = true;
			return add_att(r, p, ATT_BODY) ? 0 : -1;
		}
		p->p++;
		if (!(a = add_att(r, p, ATT_SECTION)))
			return -1;
		a->peek = peek;
		r->needs_body = true;
		return parse_section(p, a);
	}
	p->err = "unknown or unsupported FETCH item";
	return -1;
}

static int parse_request(struct imap_parser *p, struct fetch_req *r)
{
	static const struct {
		const char *name;
		bool envelope, body;
	} macros[] = { { "ALL", true, false }, { "FAST", false, false }, { "FULL", true, true } };

	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
		if (imap_word_is(p, macros[i].name)) {
			p->p += strlen(macros[i].name);
			add_att(r, p, ATT_FLAGS);
			add_att(r, p, ATT_INTERNALDATE);
			add_att(r, p, ATT_SIZE);
			if (macros[i].envelope)
				add_att(r, p, ATT_ENVELOPE);
			if (macros[i].body)
				add_att(r, p, ATT_BODY);
			r->needs_body = macros[i].envelope;
			return 0;
		}
	if (imap_peek(p) != '(')
		return parse_att(p, r);
	p->p++;
	for (;;) {
		if (parse_att(p, r) < 0)
			return -1;
		if (imap_peek(p) == ')') {
			p->p++;
			return 0;
		}
		if (imap_sp(p) < 0)
			return -1;
	}
}

static void put_internaldate(struct imap_session *s, const struct mb_msg *m)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t local = (time_t)(m->internaldate + (int64_t)m->zone_minutes * 60);
	struct tm tm;
	int z = m->zone_minutes < 0 ? -m->zone_minutes : m->zone_minutes;

	gmtime_r(&local, &tm);
	srv_printf(s->conn, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d %c%02d%02d\"", tm.tm_mday,
		   months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		   m->zone_minutes < 0 ? '-' : '+', z / 60, z % 60);
}

/* The bytes of a section; FREE_ME set when they were built (header fields). */
static int section_bytes(const struct fetch_att *a, const char *msg, size_t len,
			 const struct mime_part *root, const char **out, size_t *out_len,
			 char **free_me)
{
	const struct mime_part *part = mime_find(root, a->path, a->depth);

	*free_me = NULL;
	if (!part) {
		*out = NULL; /* a part that does not exist is empty (RFC 3501 is silent; as Dovecot) */
		*out_len = 0;
		return 0;
	}
	if (a->depth == 0 && a->spec == SPEC_NONE) {
		*out = msg;
		*out_len = len;
		return 0;
	}
	if (a->spec == SPEC_MIME || (a->spec == SPEC_NONE)) {
		if (a->spec == SPEC_MIME) {
			*out = msg + part->header_off;
			*out_len = part->header_len;
		} else {
			*out = msg + part->body_off;
			*out_len = part->body_len;
		}
		return 0;
	}
	/* HEADER, HEADER.FIELDS, TEXT apply to a message: the root or an encapsulated one */
	if (a->depth > 0) {
		if (!part->message || !part->child_count) {
			*out = NULL;
			*out_len = 0;
			return 0;
		}
		part = &part->children[0];
	}
	switch (a->spec) {
	case SPEC_HEADER:
		*out = msg + part->header_off;
		*out_len = part->header_len;
		return 0;
	case SPEC_TEXT:
		*out = msg + part->body_off;
		*out_len = part->body_len;
		return 0;
	default:
		if (mime_header_fields(msg + part->header_off, part->header_len,
				       (const char *const *)a->fields, a->field_count,
				       a->spec == SPEC_FIELDS_NOT, free_me, out_len) < 0)
			return -1;
		*out = *free_me;
		return 0;
	}
}

int imap_message_section(const char *section, const char *msg, size_t len, char **data,
			 size_t *dlen)
{
	size_t n = strlen(section);
	char *text = malloc(n + 2);
	struct fetch_att a = { .kind = ATT_SECTION };
	struct imap_parser p;
	struct mime_part *root = NULL;
	const char *out;
	char *built = NULL;
	int rc = -1;

	*data = NULL;
	*dlen = 0;
	if (!text)
		return -1;
	memcpy(text, section, n);
	memcpy(text + n, "]", 2);
	imap_p_init(&p, text, n + 1);
	if (parse_section(&p, &a) < 0 || !imap_at_end(&p) || a.partial ||
	    !(root = mime_parse(msg, len)) ||
	    section_bytes(&a, msg, len, root, &out, dlen, &built) < 0)
		goto out;
	rc = 0;
	if (out && !(*data = malloc(*dlen + 1)))
		rc = -1;
	else if (out)
		memcpy(*data, out, *dlen);
out:
	for (size_t k = 0; k < a.field_count; k++)
		free(a.fields[k]);
	free(built);
	mime_free(root);
	free(text);
	return rc;
}

static void put_section(struct imap_session *s, const struct fetch_att *a, const char *data,
			size_t len)
{
	srv_printf(s->conn, "BODY[%.*s]", (int)a->spec_len, a->spec_text);
	if (a->partial) {
		srv_printf(s->conn, "<%u>", a->origin);
		if (a->origin >= len) {
			data = "";
			len = 0;
		} else {
			data += a->origin;
			len -= a->origin;
			if (len > a->count)
				len = a->count;
		}
	}
	srv_write(s->conn, " ", 1);
	if (!data && !a->partial) {
		srv_write(s->conn, "NIL", 3);
		return;
	}
	srv_printf(s->conn, "{%zu}\r\n", len);
	srv_write(s->conn, data ? data : "", len);
}

static int fetch_one(struct imap_session *s, const struct fetch_req *r, uint32_t seq, bool use_uid)
{
	const struct mb_msg *m = imap_msg_at(s, seq);
	char *msg = NULL;
	size_t len = 0;
	struct mime_part *root = NULL;
	bool sets_seen = false, first = true, uid_sent = false, flags_sent = false, modseq_sent = false;
	int index;

	if (!m)
		return 0; /* expunged by another session: nothing to say until it is reported */
	if (r->needs_body) {
		if (mbox_read(s->mb, m, &msg, &len) < 0)
			return -1;
		root = mime_parse(msg, len);
		if (!root) {
			free(msg);
			return -1;
		}
	}
	for (size_t i = 0; i < r->count; i++) {
		enum att_kind k = r->atts[i].kind;

		sets_seen |= (k == ATT_SECTION && !r->atts[i].peek) || k == ATT_RFC822 ||
			     k == ATT_RFC822_TEXT;
	}
	index = mbox_index_of_uid(s->mb, m->uid);
	if (sets_seen && !s->readonly && !(m->flags & MB_SEEN)) {
		mbox_set_flags(s->mb, (size_t)index, m->flags | MB_SEEN, m->keywords);
		m = imap_msg_at(s, seq);
	} else {
		sets_seen = false;
	}
	srv_printf(s->conn, "* %u FETCH (", seq);
	if (use_uid) {
		srv_printf(s->conn, "UID %u", m->uid);
		uid_sent = true;
		first = false;
	}
	for (size_t i = 0; i < r->count; i++) {
		const struct fetch_att *a = &r->atts[i];
		const char *data;
		size_t dlen;
		char *built;

		if ((a->kind == ATT_UID && uid_sent) || (a->kind == ATT_FLAGS && flags_sent) ||
		    (a->kind == ATT_MODSEQ && modseq_sent))
			continue;
		if (!first)
			srv_write(s->conn, " ", 1);
		first = false;
		switch (a->kind) {
		case ATT_FLAGS:
			srv_write(s->conn, "FLAGS ", 6);
			imap_put_flags(s, m);
			flags_sent = true;
			break;
		case ATT_UID:
			srv_printf(s->conn, "UID %u", m->uid);
			uid_sent = true;
			break;
		case ATT_INTERNALDATE:
			put_internaldate(s, m);
			break;
		case ATT_SIZE:
			srv_printf(s->conn, "RFC822.SIZE %llu", (unsigned long long)m->size);
			break;
		case ATT_MODSEQ:
			srv_printf(s->conn, "MODSEQ (%llu)", (unsigned long long)m->modseq);
			modseq_sent = true;
			break;
		case ATT_RFC822:
			srv_printf(s->conn, "RFC822 {%zu}\r\n", len);
			srv_write(s->conn, msg, len);
			break;
		case ATT_RFC822_HEADER:
			srv_printf(s->conn, "RFC822.HEADER {%zu}\r\n", root->header_len);
			srv_write(s->conn, msg + root->header_off, root->header_len);
			break;
		case ATT_RFC822_TEXT:
			srv_printf(s->conn, "RFC822.TEXT {%zu}\r\n", root->body_len);
			srv_write(s->conn, msg + root->body_off, root->body_len);
			break;
		case ATT_ENVELOPE:
			srv_write(s->conn, "ENVELOPE ", 9);
			imap_put_envelope(s, msg + root->header_off, root->header_len);
			break;
		case ATT_BODY:
		case ATT_BODYSTRUCTURE:
			srv_printf(s->conn, "%s ", a->kind == ATT_BODY ? "BODY" : "BODYSTRUCTURE");
			imap_put_body(s, msg, root, a->kind == ATT_BODYSTRUCTURE, 0);
			break;
		case ATT_SECTION:
			if (section_bytes(a, msg, len, root, &data, &dlen, &built) < 0) {
				data = NULL;
				dlen = 0;
			}
			put_section(s, a, data, dlen);
			free(built);
			break;
		}
	}
	if (sets_seen && !flags_sent) {
		srv_write(s->conn, first ? "FLAGS " : " FLAGS ", first ? 6 : 7);
		imap_put_flags(s, m);
		first = false;
	}
	/* RFC 7162 3.1: with CONDSTORE on, every FETCH response carries the MODSEQ */
	if (s->condstore && !modseq_sent)
		srv_printf(s->conn, "%sMODSEQ (%llu)", first ? "" : " ", (unsigned long long)m->modseq);
	srv_write(s->conn, ")\r\n", 3);
	mime_free(root);
	free(msg);
	return 0;
}

/* A sequence set by number must name messages that exist (RFC 3501 9: BAD otherwise);
 * by UID, absent UIDs are simply skipped. */
static bool seqset_in_range(const struct imap_seqset *set, size_t count)
{
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo, hi = set->r[i].hi;

		if ((lo != IMAP_SEQ_STAR && lo > count) || (hi != IMAP_SEQ_STAR && hi > count))
			return false;
		if (count == 0)
			return false;
	}
	return true;
}

/* The set and the space after it, resolved to sequence numbers; KEEP (when not NULL) gets
 * the set as written, '*' unresolved. */
static int parse_set(struct imap_session *s, const char *tag, struct imap_parser *p, bool use_uid,
		     const char *cmd, uint32_t **seqs, size_t *n, struct imap_seqset *keep)
{
	struct imap_seqset set;

	if (keep)
		*keep = (struct imap_seqset){ 0 };
	if (imap_seqset(p, &set) < 0 || set.searchres || imap_sp(p) < 0) {
		imap_seqset_free(&set);
		srv_printf(s->conn, "%s BAD syntax: %s%s set ...\r\n", tag, use_uid ? "UID " : "", cmd);
		return -1;
	}
	if (!use_uid && !seqset_in_range(&set, s->view_count)) {
		imap_seqset_free(&set);
		srv_printf(s->conn, "%s BAD no such message (the mailbox has %zu)\r\n", tag,
			   s->view_count);
		return -1;
	}
	if (keep) {
		keep->r = malloc((set.n + 1) * sizeof(*keep->r));
		if (keep->r) {
			memcpy(keep->r, set.r, set.n * sizeof(*keep->r));
			keep->n = set.n;
		}
	}
	if ((keep && !keep->r) || imap_resolve_set(s, &set, use_uid, seqs, n) < 0) {
		imap_seqset_free(&set);
		if (keep)
			imap_seqset_free(keep);
		srv_printf(s->conn, "%s NO [SERVERBUG] out of memory\r\n", tag);
		return -1;
	}
	imap_seqset_free(&set);
	return 0;
}

/* FETCH modifiers (RFC 7162 3.1.4, 3.2.6): SP "(" CHANGEDSINCE modseq [SP VANISHED] ")" in
 * either order */
static int parse_fetch_modifiers(struct imap_parser *p, struct fetch_req *r)
{
	int more = imap_paren_begin(p);

	if (more <= 0)
		return more;
	for (bool first = true; (more = imap_paren_next(p, &first)) > 0;) {
		if (imap_take_word(p, "CHANGEDSINCE") == 0 && !r->changedsince) {
			if (imap_sp(p) < 0 || imap_number64(p, &r->since) < 0)
				return -1;
			r->changedsince = true;
		} else if (imap_take_word(p, "VANISHED") == 0 && !r->vanished) {
			r->vanished = true;
		} else {
			p->err = "unknown or repeated FETCH modifier";
			return -1;
		}
	}
	return more;
}

void imap_cmd_fetch(struct imap_session *s, const char *tag, struct imap_parser *p, bool use_uid)
{
	struct fetch_req *r = calloc(1, sizeof(*r));
	struct imap_seqset written;
	uint32_t *seqs;
	size_t n;

	if (!r) {
		srv_printf(s->conn, "%s NO [SERVERBUG] out of memory\r\n", tag);
		return;
	}
	if (parse_set(s, tag, p, use_uid, "FETCH", &seqs, &n, &written) < 0) {
		free(r);
		return;
	}
	if (parse_request(p, r) < 0 || parse_fetch_modifiers(p, r) < 0 || imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD %s\r\n", tag, p->err ? p->err : "bad FETCH items");
		goto out;
	}
	if (r->vanished && (!use_uid || !s->qresync || !r->changedsince)) {
		srv_printf(s->conn, "%s BAD VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC\r\n",
			   tag);
		goto out;
	}
	bool enables = r->changedsince;

	for (size_t i = 0; i < r->count; i++)
		enables |= r->atts[i].kind == ATT_MODSEQ;
	if (enables)
		imap_condstore_on(s); /* a CONDSTORE enabling command (RFC 7162 3.1) */
	if (r->vanished)
		imap_vanished_earlier(s, r->since, &written);
	for (size_t i = 0; i < n; i++) {
		const struct mb_msg *m = imap_msg_at(s, seqs[i]);

		if (r->changedsince && (!m || m->modseq <= r->since))
			continue;
		if (fetch_one(s, r, seqs[i], use_uid) < 0) {
			srv_printf(s->conn, "%s NO [SERVERBUG] message %u unreadable\r\n", tag, seqs[i]);
			goto out;
		}
	}
	/* \Seen set by the FETCH was reported in it */
	struct mbox_view v;

	mbox_view(s->mb, &v);
	s->reported_modseq = v.highestmodseq;
	mbox_commit(s->mb);
	mbox_notify(s->mb);
	imap_hold_modseq(s);
	srv_printf(s->conn, "%s OK %sFETCH completed\r\n", tag, use_uid ? "UID " : "");
out:
	imap_seqset_free(&written);
	free(seqs);
	req_free(r);
	free(r);
}

void imap_cmd_store(struct imap_session *s, const char *tag, struct imap_parser *p, bool use_uid)
{
	struct imap_str op;
	uint32_t *seqs, flags = 0;
	uint64_t kw = 0;
	size_t n;
	int mode;
	bool silent, parens, conditional = false;
	uint64_t unchangedsince = 0;
	struct mbox_view v;
	struct imap_uid_writer w;
	char prefix[IMAP_TAG_MAX + 32];
	uint32_t *modified = NULL;
	size_t modified_count = 0;

	if (parse_set(s, tag, p, use_uid, "STORE", &seqs, &n, NULL) < 0)
		return;
	if (imap_peek(p) == '(') {
		/* RFC 7162 3.1.3: only messages whose MODSEQ is still at most the given one change */
		p->p++;
		if (imap_take_word(p, "UNCHANGEDSINCE") < 0 || imap_sp(p) < 0 ||
		    imap_number64(p, &unchangedsince) < 0 || imap_expect(p, ')') < 0 || imap_sp(p) < 0) {
			srv_printf(s->conn, "%s BAD syntax: STORE set [(UNCHANGEDSINCE modseq)] op flags\r\n",
				   tag);
			free(seqs);
			return;
		}
		conditional = true;
	}
	if (imap_atom(p, &op) < 0 || imap_sp(p) < 0) {
		srv_printf(s->conn, "%s BAD syntax: STORE set (+|-)FLAGS[.SILENT] (flags)\r\n", tag);
		free(seqs);
		return;
	}
	mode = op.s[0] == '+' ? 1 : op.s[0] == '-' ? -1 : 0;
	if (mode) {
		op.s++;
		op.len--;
	}
	silent = op.len == 12 && strncasecmp(op.s, "FLAGS.SILENT", 12) == 0;
	if (!silent && !(op.len == 5 && strncasecmp(op.s, "FLAGS", 5) == 0)) {
		srv_printf(s->conn, "%s BAD STORE takes FLAGS, +FLAGS or -FLAGS\r\n", tag);
		free(seqs);
		return;
	}
	if (s->readonly) {
		srv_printf(s->conn, "%s NO [READ-ONLY] mailbox is read-only\r\n", tag);
		free(seqs);
		return;
	}
	/* the flags, as a parenthesized list or bare (RFC 3501: flag-list / 1*flag) */
	parens = imap_peek(p) == '(';
	{
		struct imap_str f;
		char *save = p->p;

		if (!parens) {
			/* wrap: reuse the list parser by walking flags by hand */
			while (!imap_at_end(p)) {
				if (imap_flag(p, &f) < 0)
					goto bad;
				if (!imap_at_end(p) && imap_sp(p) < 0)
					goto bad;
			}
			p->p = save;
		}
	}
	{
		struct imap_str f;

		if (parens)
			p->p++;
		while (!imap_at_end(p) && imap_peek(p) != ')') {
			char word[128];

			if (imap_flag(p, &f) < 0 || f.len >= sizeof(word))
				goto bad;
			memcpy(word, f.s, f.len);
			word[f.len] = '\0';
			if (word[0] == '\\') {
				static const char *const names[] = { "\\Seen", "\\Answered", "\\Flagged",
								     "\\Deleted", "\\Draft" };
				static const uint32_t bits[] = { MB_SEEN, MB_ANSWERED, MB_FLAGGED,
								 MB_DELETED, MB_DRAFT };
				size_t k;

				for (k = 0; k < 5; k++)
					if (strcasecmp(word, names[k]) == 0)
						break;
				if (k == 5) {
					p->err = "unknown system flag";
					goto bad;
				}
				flags |= bits[k];
			} else {
				int k = mbox_keyword(s->mb, word, true);

				if (k < 0) {
					srv_printf(s->conn, "%s NO [LIMIT] too many keywords in this mailbox\r\n", tag);
					free(seqs);
					return;
				}
				kw |= 1ull << k;
			}
			if (imap_peek(p) == ' ')
				p->p++;
		}
		if (parens && imap_expect(p, ')') < 0)
			goto bad;
		if (imap_end(p) < 0)
			goto bad;
	}
	if (conditional) {
		imap_condstore_on(s);
		if (!(modified = malloc((n + 1) * sizeof(*modified)))) {
			srv_printf(s->conn, "%s NO [SERVERBUG] out of memory\r\n", tag);
			free(seqs);
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct mb_msg *m = imap_msg_at(s, seqs[i]);
		uint32_t nf;
		uint64_t nk;

		if (!m)
			continue;
		if (conditional && m->modseq > unchangedsince) {
			modified[modified_count++] = use_uid ? m->uid : seqs[i];
			continue;
		}
		nf = mode > 0 ? m->flags | flags : mode < 0 ? m->flags & ~flags : (m->flags & MB_RECENT) | flags;
		nk = mode > 0 ? m->keywords | kw : mode < 0 ? m->keywords & ~kw : kw;
		mbox_set_flags(s->mb, (size_t)mbox_index_of_uid(s->mb, m->uid), nf, nk);
		if (silent && !s->condstore)
			continue;
		/* with CONDSTORE on, even .SILENT tells the new MODSEQ (RFC 7162 3.1.3) */
		m = imap_msg_at(s, seqs[i]);
		srv_printf(s->conn, "* %u FETCH (", seqs[i]);
		if (use_uid)
			srv_printf(s->conn, "UID %u ", m->uid);
		if (!silent) {
			srv_write(s->conn, "FLAGS ", 6);
			imap_put_flags(s, m);
		}
		if (s->condstore)
			srv_printf(s->conn, "%sMODSEQ (%llu)", silent ? "" : " ",
				   (unsigned long long)m->modseq);
		srv_write(s->conn, ")\r\n", 3);
	}
	mbox_view(s->mb, &v);
	s->reported_modseq = v.highestmodseq;
	if (mbox_commit(s->mb) < 0) {
		srv_printf(s->conn, "%s NO [SERVERBUG] flags not saved\r\n", tag);
		goto out;
	}
	mbox_notify(s->mb);
	imap_hold_modseq(s);
	/* messages that failed the UNCHANGEDSINCE test, ascending either way */
	snprintf(prefix, sizeof(prefix), "%s OK [MODIFIED ", tag);
	imap_uids_begin(&w, s, prefix);
	for (size_t i = 0; i < modified_count; i++)
		imap_uids_add(&w, modified[i], modified[i]);
	if (imap_uids_end(&w, "] "))
		srv_printf(s->conn, "conditional %sSTORE failed for some messages\r\n",
			   use_uid ? "UID " : "");
	else
		srv_printf(s->conn, "%s OK %sSTORE completed\r\n", tag, use_uid ? "UID " : "");
	goto out;
bad:
	srv_printf(s->conn, "%s BAD %s\r\n", tag, p->err ? p->err : "bad flag list");
out:
	free(modified);
	free(seqs);
}
