#define _GNU_SOURCE /* memmem */
#include "dataplane/observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#define LINE_KEEP 256 /* the start of a line is what tells its meaning; the rest is skipped */
#define HOLD_MAX  512 /* one early segment per direction up to this size waits for its gap */
#define PENDING   4   /* IMAP commands of interest awaiting their tagged answer */
#define TAG_MAX   16

/* what a command awaits its answer for; P_OTHER and P_CAPA keep ManageSieve's answers in order */
enum pending_kind { P_NONE, P_STARTTLS, P_COMPRESS, P_AUTH, P_IDLE, P_DATA, P_CAPA, P_OTHER };

struct pending {
	char tag[TAG_MAX];
	uint8_t kind;
};

struct dir {
	uint32_t next;     /* the next sequence number expected */
	uint32_t skip;     /* literal, BDAT chunk: bytes to pass over */
	uint32_t bytes;    /* followed so far */
	bool started, in_data, after_literal, line_cut;
	uint8_t eod;       /* progress through CRLF "." CRLF in a DATA body */
	uint16_t line_len;
	char line[LINE_KEEP];
	bool held;
	uint16_t held_len;
	uint32_t held_seq;
	uint8_t held_data[HOLD_MAX];
};

struct sess {
	uint8_t lock;
	uint32_t gen; /* bumped at each open: a handle of an earlier session no longer matches */
	uint8_t service, phase;
	bool used, data_asked;
	uint32_t server_ext, client_ext, idle_since, next_free;
	char auth[24];
	struct pending pending[PENDING];
	struct dir d[2]; /* 0: client to server, 1: server to client */
};

struct lg_obs_pool {
	struct sess *s;
	uint32_t capacity, free_head; /* index + 1, 0 = none */
	uint32_t fresh;               /* sessions below this index have been handed out */
	uint8_t lock;
	size_t bytes;
};

static void spin_lock(uint8_t *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			;
}

static void spin_unlock(uint8_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* A handle: the session's index + 1 in its low bits, its generation above them, so that a
 * packet still in flight for a flow that has ended cannot reach the session's next owner. */
#define INDEX_BITS 18
#define INDEX_MASK ((1u << INDEX_BITS) - 1)
#define GEN_MASK   ((1u << (32 - INDEX_BITS)) - 1) /* the generation wraps within its bits */
_Static_assert(INDEX_MASK == LG_MAX_OBSERVED, "the policy's limit is the handle's index space");

static struct sess *session(struct lg_obs_pool *p, uint32_t h)
{
	uint32_t i = h & INDEX_MASK;

	return i && i <= p->capacity ? &p->s[i - 1] : NULL;
}

struct lg_obs_pool *lg_obs_pool_create(uint32_t capacity)
{
	struct lg_obs_pool *p = calloc(1, sizeof(*p));

	if (!p || capacity == 0 || capacity > INDEX_MASK)
		goto fail;
	p->capacity = capacity;
	p->bytes = (size_t)capacity * sizeof(struct sess);
	/* reserved, not touched: a session costs memory only once used */
	p->s = mmap(NULL, p->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		    -1, 0);
	if (p->s == MAP_FAILED)
		goto fail;
	p->free_head = 0;
	return p;
fail:
	free(p);
	return NULL;
}

void lg_obs_pool_destroy(struct lg_obs_pool *p)
{
	if (!p)
		return;
	munmap(p->s, p->bytes);
	free(p);
}

size_t lg_obs_pool_memory(const struct lg_obs_pool *p)
{
	return p ? p->bytes : 0;
}

/* Freed sessions are handed out again first, then never-used ones in index order, so that
 * the pages in use stay few. */
uint32_t lg_obs_open(struct lg_obs_pool *p, enum lg_mail_service service)
{
	uint32_t h = 0;
	struct sess *s;

	spin_lock(&p->lock);
	if (p->free_head) {
		h = p->free_head;
		p->free_head = p->s[h - 1].next_free;
	} else if (p->fresh < p->capacity) {
		h = ++p->fresh;
	}
	if (h) {
		uint32_t gen;

		s = &p->s[h - 1];
		gen = (s->gen + 1) & GEN_MASK;
		memset(s, 0, sizeof(*s));
		s->gen = gen;
		s->used = true;
		s->service = (uint8_t)service;
		/* the TLS ports are opaque from the start */
		s->phase = service == LG_MAIL_IMAPS || service == LG_MAIL_SUBMISSIONS ? LG_PHASE_TLS
										       : LG_PHASE_GREETING;
	}
	spin_unlock(&p->lock);
	return h ? (p->s[h - 1].gen << INDEX_BITS) | h : 0;
}

/* S (locked) is the session handle H names. */
static bool current(const struct sess *s, uint32_t h)
{
	return s->used && s->gen == h >> INDEX_BITS;
}

void lg_obs_close(struct lg_obs_pool *p, uint32_t h)
{
	struct sess *s = session(p, h);
	bool mine;

	if (!s)
		return;
	spin_lock(&s->lock);
	mine = current(s, h);
	s->used = s->used && !mine;
	spin_unlock(&s->lock);
	if (!mine)
		return;
	spin_lock(&p->lock);
	s->next_free = p->free_head;
	p->free_head = h & INDEX_MASK;
	spin_unlock(&p->lock);
}

const char *lg_obs_phase_name(enum lg_obs_phase ph)
{
	static const char *const n[LG_PHASE_COUNT] = { "greeting", "plaintext", "authenticated",
						       "idle", "tls", "compressed", "unknown",
						       "budget" };
	return (unsigned)ph < LG_PHASE_COUNT ? n[ph] : "unknown";
}

const char *lg_obs_ext_name(unsigned bit)
{
	static const char *const n[LG_EXT_COUNT] = {
		"STARTTLS", "IDLE", "CATENATE", "URLAUTH", "BURL", "COMPRESS", "CHUNKING",
		"LITERAL+", "CONDSTORE", "QRESYNC", "PIPELINING", "8BITMIME", "BINARYMIME", "SIZE",
		"DSN", "AUTH", "ENHANCEDSTATUSCODES",
	};
	return bit < LG_EXT_COUNT ? n[bit] : "?";
}

static bool imap(const struct sess *s)
{
	return s->service == LG_MAIL_IMAP;
}

static bool sieve(const struct sess *s)
{
	return s->service == LG_MAIL_SIEVE;
}

static bool opaque(const struct sess *s)
{
	return s->phase >= LG_PHASE_TLS;
}

/* The extension a capability word names, or 0. */
static uint32_t ext_of(const char *w, size_t n)
{
	static const struct {
		const char *name;
		uint32_t bit;
		bool prefix; /* "AUTH=PLAIN", "COMPRESS=DEFLATE", "URLAUTH=BINARY"... */
	} words[] = {
		{ "STARTTLS", LG_EXT_STARTTLS, false }, { "IDLE", LG_EXT_IDLE, false },
		{ "CATENATE", LG_EXT_CATENATE, false }, { "URLAUTH", LG_EXT_URLAUTH, true },
		{ "BURL", LG_EXT_BURL, false },		{ "COMPRESS", LG_EXT_COMPRESS, true },
		{ "CHUNKING", LG_EXT_CHUNKING, false }, { "LITERAL+", LG_EXT_LITERALP, false },
		{ "CONDSTORE", LG_EXT_CONDSTORE, false }, { "QRESYNC", LG_EXT_QRESYNC, false },
		{ "PIPELINING", LG_EXT_PIPELINING, false }, { "8BITMIME", LG_EXT_8BITMIME, false },
		{ "BINARYMIME", LG_EXT_BINARYMIME, false }, { "SIZE", LG_EXT_SIZE, false },
		{ "DSN", LG_EXT_DSN, false },		{ "AUTH", LG_EXT_AUTH, true },
		{ "ENHANCEDSTATUSCODES", LG_EXT_ENHANCED, false },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t len = strlen(words[i].name);

		if (n >= len && strncasecmp(w, words[i].name, len) == 0 &&
		    (n == len || (words[i].prefix && (w[len] == '=' || w[len] == ' '))))
			return words[i].bit;
	}
	return 0;
}

/* Every capability word in TEXT (blank-separated, up to N bytes or a ']'). */
static uint32_t capabilities(const char *text, size_t n)
{
	uint32_t ext = 0;
	size_t i = 0;

	while (i < n && text[i] != ']') {
		size_t start;

		while (i < n && text[i] == ' ')
			i++;
		start = i;
		while (i < n && text[i] != ' ' && text[i] != ']')
			i++;
		ext |= ext_of(text + start, i - start);
	}
	return ext;
}

/* The Nth blank-separated word of LINE: its start and length, or false. */
static bool word(const char *line, size_t len, int nth, const char **w, size_t *wl)
{
	size_t i = 0;

	for (int k = 0;; k++) {
		size_t start;

		while (i < len && line[i] == ' ')
			i++;
		if (i >= len)
			return false;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		if (k == nth) {
			*w = line + start;
			*wl = i - start;
			return true;
		}
	}
}

static bool word_is(const char *w, size_t wl, const char *want)
{
	return wl == strlen(want) && strncasecmp(w, want, wl) == 0;
}

/* A literal announced at the end of LINE: "{N}" or "{N+}". */
static bool literal_at_end(const char *line, size_t len, uint32_t *n, bool *plus)
{
	size_t i;
	uint64_t v = 0;

	if (len < 3 || line[len - 1] != '}')
		return false;
	i = len - 2;
	*plus = line[i] == '+';
	if (*plus)
		i--;
	if (line[i] < '0' || line[i] > '9')
		return false;
	while (i > 0 && line[i] >= '0' && line[i] <= '9')
		i--;
	if (line[i] != '{')
		return false;
	for (size_t k = i + 1; line[k] >= '0' && line[k] <= '9'; k++)
		v = v * 10 + (uint64_t)(line[k] - '0');
	if (v > UINT32_MAX)
		return false;
	*n = (uint32_t)v;
	return true;
}

/* Commands awaiting an answer, oldest first: answers to untagged protocols come in order. */
static bool remember(struct sess *s, const char *tag, size_t tl, enum pending_kind kind)
{
	for (int i = 0; i < PENDING; i++)
		if (s->pending[i].kind == P_NONE) {
			snprintf(s->pending[i].tag, sizeof(s->pending[i].tag), "%.*s", (int)tl, tag);
			s->pending[i].kind = (uint8_t)kind;
			return true;
		}
	return false;
}

static enum pending_kind answered(struct sess *s, const char *tag, size_t tl)
{
	for (int i = 0; i < PENDING; i++)
		if (s->pending[i].kind != P_NONE && word_is(tag, tl, s->pending[i].tag)) {
			enum pending_kind k = (enum pending_kind)s->pending[i].kind;

			memmove(&s->pending[i], &s->pending[i + 1],
				sizeof(s->pending[0]) * (size_t)(PENDING - 1 - i));
			s->pending[PENDING - 1].kind = P_NONE;
			return k;
		}
	return P_NONE;
}

static enum pending_kind pending_any(const struct sess *s, enum pending_kind kind)
{
	for (int i = 0; i < PENDING; i++)
		if (s->pending[i].kind == kind)
			return kind;
	return P_NONE;
}

static void imap_client_line(struct sess *s, const char *line, size_t len, uint32_t now_s)
{
	const char *tag, *cmd, *arg;
	size_t tl, cl, al;

	if (s->phase == LG_PHASE_IDLE) {
		if (len >= 4 && strncasecmp(line, "DONE", 4) == 0)
			s->phase = LG_PHASE_AUTHENTICATED;
		return;
	}
	if (!word(line, len, 0, &tag, &tl) || !word(line, len, 1, &cmd, &cl))
		return;
	if (word_is(cmd, cl, "STARTTLS")) {
		s->client_ext |= LG_EXT_STARTTLS;
		remember(s, tag, tl, P_STARTTLS);
	} else if (word_is(cmd, cl, "COMPRESS")) {
		s->client_ext |= LG_EXT_COMPRESS;
		remember(s, tag, tl, P_COMPRESS);
	} else if (word_is(cmd, cl, "IDLE")) {
		s->client_ext |= LG_EXT_IDLE;
		remember(s, tag, tl, P_IDLE);
	} else if (word_is(cmd, cl, "LOGIN") || word_is(cmd, cl, "AUTHENTICATE")) {
		if (word_is(cmd, cl, "AUTHENTICATE") && word(line, len, 2, &arg, &al))
			snprintf(s->auth, sizeof(s->auth), "%.*s", (int)al, arg);
		else
			snprintf(s->auth, sizeof(s->auth), "LOGIN");
		if (word_is(cmd, cl, "AUTHENTICATE"))
			s->client_ext |= LG_EXT_AUTH;
		remember(s, tag, tl, P_AUTH);
	} else if (word_is(cmd, cl, "GENURLAUTH") || word_is(cmd, cl, "URLFETCH") ||
		   word_is(cmd, cl, "RESETKEY")) {
		s->client_ext |= LG_EXT_URLAUTH;
	} else if (word_is(cmd, cl, "ENABLE")) {
		for (int k = 2; word(line, len, k, &arg, &al); k++)
			s->client_ext |= ext_of(arg, al) & (LG_EXT_CONDSTORE | LG_EXT_QRESYNC);
	}
	if (word_is(cmd, cl, "APPEND")) {
		for (int k = 2; word(line, len, k, &arg, &al); k++) {
			while (al && *arg == '(') /* "(CATENATE" */
				arg++, al--;
			if (al >= 8 && strncasecmp(arg, "CATENATE", 8) == 0)
				s->client_ext |= LG_EXT_CATENATE;
		}
	}
	(void)now_s;
}

static void imap_server_line(struct sess *s, const char *line, size_t len, uint32_t now_s)
{
	const char *tag, *status, *code;
	size_t tl, sl;

	if (!word(line, len, 0, &tag, &tl))
		return;
	/* capabilities: "* CAPABILITY ..." or a [CAPABILITY ...] response code on any line */
	code = memmem(line, len, "[CAPABILITY ", 12);
	if (code)
		s->server_ext |= capabilities(code + 12, len - (size_t)(code + 12 - line));
	else if (word(line, len, 1, &status, &sl) && word_is(tag, tl, "*") &&
		 word_is(status, sl, "CAPABILITY"))
		s->server_ext |= capabilities(status + sl, len - (size_t)(status + sl - line));
	if (s->phase == LG_PHASE_GREETING && word_is(tag, tl, "*") &&
	    word(line, len, 1, &status, &sl)) {
		if (word_is(status, sl, "OK"))
			s->phase = LG_PHASE_PLAINTEXT;
		else if (word_is(status, sl, "PREAUTH"))
			s->phase = LG_PHASE_AUTHENTICATED;
		return;
	}
	if (word_is(tag, tl, "+")) {
		if (pending_any(s, P_IDLE) && s->phase != LG_PHASE_IDLE) {
			s->phase = LG_PHASE_IDLE;
			s->idle_since = now_s;
		}
		return;
	}
	if (word_is(tag, tl, "*") || !word(line, len, 1, &status, &sl))
		return;
	switch (answered(s, tag, tl)) {
	case P_STARTTLS:
		if (word_is(status, sl, "OK"))
			s->phase = LG_PHASE_TLS;
		break;
	case P_COMPRESS:
		if (word_is(status, sl, "OK"))
			s->phase = LG_PHASE_COMPRESSED;
		break;
	case P_AUTH:
		if (word_is(status, sl, "OK"))
			s->phase = LG_PHASE_AUTHENTICATED;
		break;
	case P_IDLE:
		if (s->phase == LG_PHASE_IDLE)
			s->phase = LG_PHASE_AUTHENTICATED;
		break;
	default:
		break;
	}
}

static void smtp_client_line(struct sess *s, struct dir *d, const char *line, size_t len)
{
	const char *cmd, *arg;
	size_t cl, al;

	if (!word(line, len, 0, &cmd, &cl))
		return;
	if (word_is(cmd, cl, "STARTTLS")) {
		s->client_ext |= LG_EXT_STARTTLS;
		remember(s, "-", 1, P_STARTTLS);
	} else if (word_is(cmd, cl, "AUTH") && word(line, len, 1, &arg, &al)) {
		s->client_ext |= LG_EXT_AUTH;
		snprintf(s->auth, sizeof(s->auth), "%.*s", (int)al, arg);
		remember(s, "-", 1, P_AUTH);
	} else if (word_is(cmd, cl, "BURL")) {
		s->client_ext |= LG_EXT_BURL;
	} else if (word_is(cmd, cl, "BDAT") && word(line, len, 1, &arg, &al)) {
		uint64_t n = 0;

		s->client_ext |= LG_EXT_CHUNKING;
		for (size_t i = 0; i < al && arg[i] >= '0' && arg[i] <= '9' && n <= UINT32_MAX; i++)
			n = n * 10 + (uint64_t)(arg[i] - '0');
		d->skip = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	} else if (word_is(cmd, cl, "DATA")) {
		s->data_asked = true;
	}
}

static void smtp_server_line(struct sess *s, const char *line, size_t len)
{
	enum pending_kind k;

	if (len < 3)
		return;
	if (s->phase == LG_PHASE_GREETING) {
		if (strncmp(line, "220", 3) == 0)
			s->phase = LG_PHASE_PLAINTEXT;
		return;
	}
	if (strncmp(line, "250", 3) == 0 && len > 4 && (line[3] == '-' || line[3] == ' ')) {
		const char *w;
		size_t wl;

		if (word(line + 4, len - 4, 0, &w, &wl))
			s->server_ext |= ext_of(w, wl);
		return;
	}
	if (strncmp(line, "354", 3) == 0 && s->data_asked) {
		s->d[0].in_data = true;
		s->d[0].eod = 2; /* the body's first line may be the lone dot */
		s->data_asked = false;
		return;
	}
	if (line[0] == '4' || line[0] == '5')
		s->data_asked = false;
	k = answered(s, "-", 1);
	if (k == P_STARTTLS && strncmp(line, "220", 3) == 0)
		s->phase = LG_PHASE_TLS;
	else if (k == P_AUTH && strncmp(line, "334", 3) == 0)
		remember(s, "-", 1, P_AUTH); /* a SASL challenge: the answer is still to come */
	else if (k == P_AUTH && strncmp(line, "235", 3) == 0)
		s->phase = LG_PHASE_AUTHENTICATED;
}

/* A ManageSieve string ("...") from *I on: its text and length; *I ends past it. */
static bool quoted(const char *line, size_t len, size_t *i, const char **w, size_t *wl)
{
	size_t k = *i;

	while (k < len && line[k] == ' ')
		k++;
	if (k >= len || line[k] != '"')
		return false;
	*w = line + ++k;
	while (k < len && line[k] != '"')
		k += line[k] == '\\' ? 2 : 1;
	if (k >= len)
		return false;
	*wl = (size_t)(line + k - *w);
	*i = k + 1;
	return true;
}

/* ManageSieve (RFC 5804): commands are atoms, answered in order by OK, NO or BYE; the greeting
 * and CAPABILITY list capabilities as strings ("STARTTLS", "SASL" "PLAIN"). */
static void sieve_client_line(struct sess *s, const char *line, size_t len)
{
	enum pending_kind kind = P_OTHER;
	const char *cmd, *mech;
	size_t cl, ml, i;

	if (!len || line[0] == '"' || line[0] == '{')
		return; /* a string: an answer to a SASL challenge, not a command */
	if (!word(line, len, 0, &cmd, &cl))
		return;
	if (word_is(cmd, cl, "STARTTLS")) {
		s->client_ext |= LG_EXT_STARTTLS;
		kind = P_STARTTLS;
	} else if (word_is(cmd, cl, "AUTHENTICATE")) {
		s->client_ext |= LG_EXT_AUTH;
		kind = P_AUTH;
		i = (size_t)(cmd + cl - line);
		if (quoted(line, len, &i, &mech, &ml))
			snprintf(s->auth, sizeof(s->auth), "%.*s", (int)ml, mech);
	} else if (word_is(cmd, cl, "CAPABILITY")) {
		kind = P_CAPA;
	}
	if (!remember(s, "-", 1, kind))
		s->phase = LG_PHASE_UNKNOWN; /* more commands in flight than followed: answers unmatched */
}

static void sieve_server_line(struct sess *s, const char *line, size_t len)
{
	const char *status, *name, *value;
	size_t sl, nl, vl, i = 0;
	bool ok;

	if (!word(line, len, 0, &status, &sl))
		return;
	ok = word_is(status, sl, "OK");
	if (!ok && !word_is(status, sl, "NO") && !word_is(status, sl, "BYE")) {
		if ((s->phase == LG_PHASE_GREETING || s->pending[0].kind == P_CAPA) &&
		    quoted(line, len, &i, &name, &nl)) {
			if (word_is(name, nl, "STARTTLS"))
				s->server_ext |= LG_EXT_STARTTLS;
			else if (word_is(name, nl, "SASL") && quoted(line, len, &i, &value, &vl) && vl)
				s->server_ext |= LG_EXT_AUTH;
		}
		return;
	}
	if (s->phase == LG_PHASE_GREETING) {
		if (ok)
			s->phase = LG_PHASE_PLAINTEXT;
		return;
	}
	switch (answered(s, "-", 1)) {
	case P_STARTTLS:
		if (ok)
			s->phase = LG_PHASE_TLS;
		break;
	case P_AUTH:
		if (ok)
			s->phase = LG_PHASE_AUTHENTICATED;
		break;
	default:
		break;
	}
}

static void line_done(struct sess *s, int side, uint32_t now_s)
{
	struct dir *d = &s->d[side];
	size_t len = d->line_len;
	uint32_t lit;
	bool plus;

	while (len && (d->line[len - 1] == '\r' || d->line[len - 1] == '\n'))
		len--;
	if (!d->after_literal) {
		if (sieve(s) && side == 0)
			sieve_client_line(s, d->line, len);
		else if (sieve(s))
			sieve_server_line(s, d->line, len);
		else if (imap(s) && side == 0)
			imap_client_line(s, d->line, len, now_s);
		else if (imap(s))
			imap_server_line(s, d->line, len, now_s);
		else if (side == 0)
			smtp_client_line(s, d, d->line, len);
		else
			smtp_server_line(s, d->line, len);
	}
	d->after_literal = false;
	/* an IMAP or ManageSieve literal follows this line: its bytes are data, and the line goes on
	 * after it */
	if ((imap(s) || sieve(s)) && !d->line_cut && literal_at_end(d->line, len, &lit, &plus)) {
		d->skip = lit;
		d->after_literal = true;
		if (plus && side == 0 && imap(s))
			s->client_ext |= LG_EXT_LITERALP;
	}
	d->line_len = 0;
	d->line_cut = false;
}

/* In-order bytes of one direction. */
static void feed(struct sess *s, int side, const uint8_t *p, size_t n, uint32_t now_s)
{
	struct dir *d = &s->d[side];

	while (n && !opaque(s)) {
		if (d->skip) {
			size_t k = n < d->skip ? n : d->skip;

			d->skip -= (uint32_t)k;
			p += k;
			n -= k;
			continue;
		}
		if (d->in_data) {
			/* the DATA body ends with CRLF "." CRLF; EOD counts the match so far */
			static const char eod[] = "\r\n.\r\n";
			uint8_t c = *p++;

			n--;
			d->eod = c == (uint8_t)eod[d->eod] ? (uint8_t)(d->eod + 1) : c == '\r' ? 1 : 0;
			if (d->eod == 5)
				d->in_data = false, d->eod = 0;
			continue;
		}
		{
			uint8_t c = *p++;

			n--;
			if (d->line_len < LINE_KEEP - 1)
				d->line[d->line_len++] = (char)c;
			else
				d->line_cut = true;
			if (c == '\n')
				line_done(s, side, now_s);
		}
	}
}

static void follow(struct sess *s, int side, const uint8_t *p, size_t n, uint32_t now_s)
{
	struct dir *d = &s->d[side];

	if (d->bytes + n > LG_OBS_BUDGET) {
		n = LG_OBS_BUDGET - d->bytes;
		feed(s, side, p, n, now_s);
		if (!opaque(s))
			s->phase = LG_PHASE_BUDGET;
		return;
	}
	d->bytes += (uint32_t)n;
	d->next += (uint32_t)n;
	feed(s, side, p, n, now_s);
}

bool lg_obs_segment(struct lg_obs_pool *p, uint32_t h, bool from_client, uint32_t seq, bool syn,
		    const uint8_t *payload, size_t len, uint32_t now_s)
{
	struct sess *s;
	struct dir *d;
	int side = from_client ? 0 : 1;
	int32_t off;
	bool idle;

	s = session(p, h);
	if (!s)
		return false;
	spin_lock(&s->lock);
	d = &s->d[side];
	if (!current(s, h) || opaque(s))
		goto out;
	if (syn) {
		d->next = seq + 1;
		d->started = true;
		seq++;
	}
	if (!d->started) { /* no SYN seen: where the stream starts is unknown */
		if (len)
			s->phase = LG_PHASE_UNKNOWN;
		goto out;
	}
	if (!len)
		goto out;
	off = (int32_t)(seq - d->next);
	if (off > 0) {
		/* early: hold one, wait for the gap; more than that cannot be followed */
		if (!d->held && len <= HOLD_MAX) {
			d->held = true;
			d->held_seq = seq;
			d->held_len = (uint16_t)len;
			memcpy(d->held_data, payload, len);
		} else if (!(d->held && d->held_seq == seq && d->held_len == len)) {
			s->phase = LG_PHASE_UNKNOWN;
		}
		goto out;
	}
	if ((size_t)-off >= len)
		goto out; /* all of it seen before: a retransmission */
	follow(s, side, payload + -off, len - (size_t)-off, now_s);
	if (d->held && !opaque(s)) {
		off = (int32_t)(d->held_seq - d->next);
		if (off <= 0) {
			d->held = false;
			if ((size_t)-off < d->held_len)
				follow(s, side, d->held_data + -off, d->held_len - (size_t)-off, now_s);
		}
	}
out:
	idle = current(s, h) && s->phase == LG_PHASE_IDLE;
	spin_unlock(&s->lock);
	return idle;
}

bool lg_obs_view(struct lg_obs_pool *p, uint32_t h, struct lg_obs_view *out)
{
	struct sess *s;
	bool ok;

	s = session(p, h);
	if (!s)
		return false;
	spin_lock(&s->lock);
	ok = current(s, h);
	if (ok) {
		out->service = (enum lg_mail_service)s->service;
		out->phase = (enum lg_obs_phase)s->phase;
		out->server_ext = s->server_ext;
		out->client_ext = s->client_ext;
		memcpy(out->auth, s->auth, sizeof(out->auth));
		out->idle_since_s = s->idle_since;
		out->bytes[0] = s->d[0].bytes;
		out->bytes[1] = s->d[1].bytes;
	}
	spin_unlock(&s->lock);
	return ok;
}

void lg_obs_counts(struct lg_obs_pool *p, uint64_t by_phase[LG_MAIL_SERVICES][LG_PHASE_COUNT])
{
	memset(by_phase, 0, sizeof(uint64_t) * LG_MAIL_SERVICES * LG_PHASE_COUNT);
	if (!p)
		return;
	for (uint32_t i = 0; i < p->capacity; i++) {
		struct sess *s = &p->s[i];

		if (!__atomic_load_n(&s->used, __ATOMIC_RELAXED))
			continue;
		spin_lock(&s->lock);
		if (s->used && s->service < LG_MAIL_SERVICES && s->phase < LG_PHASE_COUNT)
			by_phase[s->service][s->phase]++;
		spin_unlock(&s->lock);
	}
}
