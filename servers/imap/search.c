/* SEARCH (RFC 3501 6.4.4): the keys are parsed into a tree, then every message is tested;
 * message bytes are read only when a key needs them. Strings match case-insensitively
 * (ASCII); CHARSET may be US-ASCII or UTF-8. */
#include "servers/imap/mime.h"
#include "servers/imap/session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEARCH_DEPTH_MAX 32

enum key_kind {
	K_ALL, K_FLAG_ON, K_FLAG_OFF, K_KEYWORD_ON, K_KEYWORD_OFF, K_NEW, K_OLD, K_LARGER, K_SMALLER,
	K_UID, K_SEQ, K_NOT, K_OR, K_AND, K_BEFORE, K_ON, K_SINCE, K_SENTBEFORE, K_SENTON,
	K_SENTSINCE, K_HEADER, K_BODY, K_TEXT, K_NOTHING, K_MODSEQ,
};

struct key {
	enum key_kind kind;
	uint32_t flag;
	uint64_t number;
	int64_t day;
	struct imap_seqset set;
	char *field, *text;
	size_t text_len;
	struct key *a, *b;  /* NOT, OR; AND: a list through b */
	struct key *next;
};

struct search {
	struct imap_session *s;
	struct imap_parser *p;
	bool use_uid;
	bool modseq; /* a MODSEQ key: the reply ends with the highest MODSEQ found */
};

static void key_free(struct key *k)
{
	while (k) {
		struct key *next = k->next;

		imap_seqset_free(&k->set);
		free(k->field);
		free(k->text);
		key_free(k->a);
		key_free(k->b);
		free(k);
		k = next;
	}
}

static struct key *parse_key(struct search *q, int depth);

static struct key *new_key(enum key_kind kind)
{
	struct key *k = calloc(1, sizeof(*k));

	if (k)
		k->kind = kind;
	return k;
}

static int take_string(struct imap_parser *p, char **out, size_t *len)
{
	struct imap_str str;

	if (imap_sp(p) < 0 || imap_astring(p, &str) < 0)
		return -1;
	if (!(*out = malloc(str.len + 1)))
		return -1;
	memcpy(*out, str.s, str.len);
	(*out)[str.len] = '\0';
	if (len)
		*len = str.len;
	return 0;
}

static const struct {
	const char *name;
	enum key_kind kind;
	uint32_t flag;
} flag_keys[] = {
	{ "ANSWERED", K_FLAG_ON, MB_ANSWERED }, { "DELETED", K_FLAG_ON, MB_DELETED },
	{ "DRAFT", K_FLAG_ON, MB_DRAFT },       { "FLAGGED", K_FLAG_ON, MB_FLAGGED },
	{ "RECENT", K_FLAG_ON, MB_RECENT },     { "SEEN", K_FLAG_ON, MB_SEEN },
	{ "UNANSWERED", K_FLAG_OFF, MB_ANSWERED }, { "UNDELETED", K_FLAG_OFF, MB_DELETED },
	{ "UNDRAFT", K_FLAG_OFF, MB_DRAFT },    { "UNFLAGGED", K_FLAG_OFF, MB_FLAGGED },
	{ "UNSEEN", K_FLAG_OFF, MB_SEEN },      { "ALL", K_ALL, 0 },
	{ "NEW", K_NEW, 0 },                    { "OLD", K_OLD, 0 },
};

static const struct {
	const char *name;
	enum key_kind kind;
} date_keys[] = {
	{ "BEFORE", K_BEFORE }, { "ON", K_ON }, { "SINCE", K_SINCE },
	{ "SENTBEFORE", K_SENTBEFORE }, { "SENTON", K_SENTON }, { "SENTSINCE", K_SENTSINCE },
};

static const char *const header_keys[] = { "FROM", "TO", "CC", "BCC", "SUBJECT" };

static struct key *parse_list(struct search *q, int depth, char close)
{
	struct key *head = NULL, **tail = &head;

	for (;;) {
		struct key *k = parse_key(q, depth);

		if (!k) {
			key_free(head);
			return NULL;
		}
		*tail = k;
		tail = &k->next;
		if (imap_at_end(q->p) || imap_peek(q->p) == close)
			break;
		if (imap_sp(q->p) < 0) {
			key_free(head);
			return NULL;
		}
	}
	struct key *and = new_key(K_AND);

	if (!and) {
		key_free(head);
		return NULL;
	}
	and->a = head;
	return and;
}

static struct key *parse_key(struct search *q, int depth)
{
	struct imap_parser *p = q->p;
	struct key *k;

	if (depth > SEARCH_DEPTH_MAX) {
		p->err = "search keys nested too deep";
		return NULL;
	}
	if (imap_peek(p) == '(') {
		p->p++;
		k = parse_list(q, depth + 1, ')');
		if (k && imap_expect(p, ')') < 0) {
			key_free(k);
			return NULL;
		}
		return k;
	}
	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++)
		if (imap_take_word(p, flag_keys[i].name) == 0) {
			if ((k = new_key(flag_keys[i].kind)))
				k->flag = flag_keys[i].flag;
			return k;
		}
	p->err = NULL;
	for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++)
		if (imap_take_word(p, date_keys[i].name) == 0) {
			if (!(k = new_key(date_keys[i].kind)))
				return NULL;
			if (imap_sp(p) < 0 || imap_date(p, &k->day) < 0) {
				key_free(k);
				return NULL;
			}
			return k;
		}
	p->err = NULL;
	for (size_t i = 0; i < sizeof(header_keys) / sizeof(header_keys[0]); i++)
		if (imap_take_word(p, header_keys[i]) == 0) {
			if (!(k = new_key(K_HEADER)) || !(k->field = strdup(header_keys[i])) ||
			    take_string(p, &k->text, &k->text_len) < 0) {
				key_free(k);
				return NULL;
			}
			return k;
		}
	p->err = NULL;
	if (imap_word_is(p, "KEYWORD") || imap_word_is(p, "UNKEYWORD")) {
		bool on = imap_take_word(p, "KEYWORD") == 0;
		struct imap_str w;

		if (!on)
			imap_take_word(p, "UNKEYWORD");
		if (!(k = new_key(on ? K_KEYWORD_ON : K_KEYWORD_OFF)))
			return NULL;
		if (imap_sp(p) < 0 || imap_flag(p, &w) < 0 || !(k->text = strndup(w.s, w.len))) {
			key_free(k);
			return NULL;
		}
		return k;
	}
	if (imap_word_is(p, "LARGER") || imap_word_is(p, "SMALLER")) {
		bool larger = imap_take_word(p, "LARGER") == 0;
		uint32_t n;

		if (!larger)
			imap_take_word(p, "SMALLER");
		if (!(k = new_key(larger ? K_LARGER : K_SMALLER)))
			return NULL;
		if (imap_sp(p) < 0 || imap_number(p, &n) < 0) {
			key_free(k);
			return NULL;
		}
		k->number = n;
		return k;
	}
	if (imap_take_word(p, "MODSEQ") == 0) {
		/* RFC 7162 3.1.5: MODSEQ [entry-name entry-type] modseq; flags share one MODSEQ
		 * here, so the entry only has to be well formed */
		struct imap_str entry, type;

		if (!(k = new_key(K_MODSEQ)))
			return NULL;
		if (imap_sp(p) < 0)
			goto bad_modseq;
		if (imap_peek(p) == '"') {
			if (imap_string(p, &entry) < 0 || imap_sp(p) < 0 || imap_atom(p, &type) < 0 ||
			    imap_sp(p) < 0)
				goto bad_modseq;
			if (!((type.len == 4 && strncasecmp(type.s, "priv", 4) == 0) ||
			      (type.len == 6 && strncasecmp(type.s, "shared", 6) == 0) ||
			      (type.len == 3 && strncasecmp(type.s, "all", 3) == 0))) {
				p->err = "MODSEQ entry type is priv, shared or all";
				goto bad_modseq;
			}
		}
		if (imap_number64(p, &k->number) < 0)
			goto bad_modseq;
		q->modseq = true;
		return k;
bad_modseq:
		key_free(k);
		return NULL;
	}
	p->err = NULL;
	if (imap_take_word(p, "HEADER") == 0) {
		if (!(k = new_key(K_HEADER)) || take_string(p, &k->field, NULL) < 0 ||
		    take_string(p, &k->text, &k->text_len) < 0) {
			key_free(k);
			return NULL;
		}
		return k;
	}
	p->err = NULL;
	if (imap_word_is(p, "BODY") || imap_word_is(p, "TEXT")) {
		bool body = imap_take_word(p, "BODY") == 0;

		if (!body)
			imap_take_word(p, "TEXT");
		if (!(k = new_key(body ? K_BODY : K_TEXT)) || take_string(p, &k->text, &k->text_len) < 0) {
			key_free(k);
			return NULL;
		}
		return k;
	}
	if (imap_take_word(p, "NOT") == 0) {
		if (!(k = new_key(K_NOT)))
			return NULL;
		if (imap_sp(p) < 0 || !(k->a = parse_key(q, depth + 1))) {
			key_free(k);
			return NULL;
		}
		return k;
	}
	p->err = NULL;
	if (imap_take_word(p, "OR") == 0) {
		if (!(k = new_key(K_OR)))
			return NULL;
		if (imap_sp(p) < 0 || !(k->a = parse_key(q, depth + 1)) || imap_sp(p) < 0 ||
		    !(k->b = parse_key(q, depth + 1))) {
			key_free(k);
			return NULL;
		}
		return k;
	}
	p->err = NULL;
	if (imap_take_word(p, "UID") == 0) {
		if (!(k = new_key(K_UID)))
			return NULL;
		if (imap_sp(p) < 0 || imap_seqset(p, &k->set) < 0 || k->set.searchres) {
			key_free(k);
			return NULL;
		}
		return k;
	}
	p->err = NULL;
	if (isdigit(imap_peek(p)) || imap_peek(p) == '*') {
		if (!(k = new_key(K_SEQ)))
			return NULL;
		if (imap_seqset(p, &k->set) < 0) {
			key_free(k);
			return NULL;
		}
		return k;
	}
	p->err = "unknown search key";
	return NULL;
}

/* ---- evaluation ---- */

struct candidate {
	struct imap_session *s;
	uint32_t seq;
	const struct mb_msg *m;
	char *data;
	size_t len;
	struct mime_part *root;
	bool loaded;
};

static bool load(struct candidate *c)
{
	if (!c->loaded) {
		c->loaded = true;
		if (mbox_read(c->s->mb, c->m, &c->data, &c->len) == 0)
			c->root = mime_parse(c->data, c->len);
	}
	return c->data && c->root;
}

static bool contains(const char *hay, size_t hay_len, const char *needle, size_t n)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i + n <= hay_len; i++)
		if (strncasecmp(hay + i, needle, n) == 0)
			return true;
	return false;
}

static const char *const months[12] = { "jan", "feb", "mar", "apr", "may", "jun",
					"jul", "aug", "sep", "oct", "nov", "dec" };

/* The day (days since the epoch) of an RFC 5322 Date: "[Wdy,] d Mon yyyy ..."; -1 if unreadable. */
static int64_t date_header_day(const char *v)
{
	int d = 0, y = 0, m = -1;
	char mon[4] = "";

	if (!v)
		return -1;
	if (strchr(v, ','))
		v = strchr(v, ',') + 1;
	if (sscanf(v, " %d %3s %d", &d, mon, &y) != 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (strcasecmp(mon, months[i]) == 0)
			m = i + 1;
	if (m < 0 || d < 1 || d > 31 || y < 1900 || y > 9999)
		return -1;
	/* days from civil, as parse.c */
	int64_t yy = y - (m <= 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	unsigned yoe = (unsigned)(yy - era * 400);
	unsigned doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

static bool eval(struct key *k, struct candidate *c)
{
	const struct mb_msg *m = c->m;
	int64_t day;

	switch (k->kind) {
	case K_ALL: return true;
	case K_NOTHING: return false;
	case K_FLAG_ON: return (m->flags & k->flag) != 0;
	case K_FLAG_OFF: return (m->flags & k->flag) == 0;
	case K_NEW: return (m->flags & MB_RECENT) && !(m->flags & MB_SEEN);
	case K_OLD: return !(m->flags & MB_RECENT);
	case K_KEYWORD_ON:
	case K_KEYWORD_OFF: {
		int i = mbox_keyword(c->s->mb, k->text, false);
		bool on = i >= 0 && (m->keywords & (1ull << i));

		return k->kind == K_KEYWORD_ON ? on : !on;
	}
	case K_MODSEQ: return m->modseq >= k->number;
	case K_LARGER: return m->size > k->number;
	case K_SMALLER: return m->size < k->number;
	case K_UID: return imap_seqset_has(&k->set, m->uid);
	case K_SEQ: return imap_seqset_has(&k->set, c->seq);
	case K_NOT: return !eval(k->a, c);
	case K_OR: return eval(k->a, c) || eval(k->b, c);
	case K_AND:
		for (struct key *x = k->a; x; x = x->next)
			if (!eval(x, c))
				return false;
		return true;
	case K_BEFORE:
	case K_ON:
	case K_SINCE:
		day = (m->internaldate + (int64_t)m->zone_minutes * 60);
		day = day >= 0 ? day / 86400 : (day - 86399) / 86400;
		return k->kind == K_BEFORE ? day < k->day : k->kind == K_ON ? day == k->day : day >= k->day;
	case K_SENTBEFORE:
	case K_SENTON:
	case K_SENTSINCE: {
		char *v;

		if (!load(c))
			return false;
		v = mime_header(c->data + c->root->header_off, c->root->header_len, "Date");
		day = date_header_day(v);
		free(v);
		if (day < 0)
			return false;
		return k->kind == K_SENTBEFORE ? day < k->day : k->kind == K_SENTON ? day == k->day : day >= k->day;
	}
	case K_HEADER: {
		char *v;
		bool hit;

		if (!load(c))
			return false;
		v = mime_header(c->data + c->root->header_off, c->root->header_len, k->field);
		hit = v && contains(v, strlen(v), k->text, k->text_len);
		free(v);
		return hit;
	}
	case K_BODY:
		return load(c) && contains(c->data + c->root->body_off, c->root->body_len, k->text,
					   k->text_len);
	case K_TEXT:
		return load(c) && contains(c->data, c->len, k->text, k->text_len);
	}
	return false;
}

/* '*' in a set is the highest UID or the last message */
static void resolve_stars(struct key *k, uint32_t max_uid, uint32_t max_seq)
{
	for (; k; k = k->next) {
		if (k->kind == K_UID)
			imap_seqset_resolve(&k->set, max_uid);
		else if (k->kind == K_SEQ)
			imap_seqset_resolve(&k->set, max_seq);
		resolve_stars(k->a, max_uid, max_seq);
		resolve_stars(k->b, max_uid, max_seq);
	}
}

void imap_cmd_search(struct imap_session *s, const char *tag, struct imap_parser *p, bool use_uid)
{
	struct search q = { .s = s, .p = p, .use_uid = use_uid };
	struct key *root;

	if (imap_take_word(p, "CHARSET") == 0) {
		struct imap_str cs;

		if (imap_sp(p) < 0 || imap_astring(p, &cs) < 0 || imap_sp(p) < 0) {
			srv_printf(s->conn, "%s BAD syntax: SEARCH [CHARSET name] keys\r\n", tag);
			return;
		}
		if (!((cs.len == 8 && strncasecmp(cs.s, "US-ASCII", 8) == 0) ||
		      (cs.len == 5 && strncasecmp(cs.s, "UTF-8", 5) == 0))) {
			srv_printf(s->conn, "%s NO [BADCHARSET (US-ASCII UTF-8)] unsupported charset\r\n", tag);
			return;
		}
	}
	p->err = NULL;
	root = parse_list(&q, 0, -1);
	if (!root || imap_end(p) < 0) {
		srv_printf(s->conn, "%s BAD %s\r\n", tag, p->err ? p->err : "bad search keys");
		key_free(root);
		return;
	}
	resolve_stars(root, s->view_count ? s->view[s->view_count - 1] : 0, (uint32_t)s->view_count);
	if (q.modseq)
		imap_condstore_on(s);
	uint64_t highest = 0;

	srv_printf(s->conn, "* SEARCH");
	for (uint32_t seq = 1; seq <= s->view_count; seq++) {
		struct candidate c = { .s = s, .seq = seq, .m = imap_msg_at(s, seq) };

		if (!c.m)
			continue;
		if (eval(root, &c)) {
			srv_printf(s->conn, " %u", use_uid ? c.m->uid : seq);
			if (c.m->modseq > highest)
				highest = c.m->modseq;
		}
		mime_free(c.root);
		free(c.data);
	}
	if (q.modseq && highest)
		srv_printf(s->conn, " (MODSEQ %llu)", (unsigned long long)highest);
	srv_printf(s->conn, "\r\n");
	imap_hold_modseq(s);
	srv_printf(s->conn, "%s OK %sSEARCH completed\r\n", tag, use_uid ? "UID " : "");
	key_free(root);
}
