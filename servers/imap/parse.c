#include "servers/imap/parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEQSET_MAX_RANGES 100000

static int fail(struct imap_parser *p, const char *msg)
{
	if (!p->err)
		p->err = msg;
	return -1;
}

void imap_p_init(struct imap_parser *p, char *buf, size_t len)
{
	p->p = buf;
	p->end = buf + len;
	p->err = NULL;
}

bool imap_at_end(const struct imap_parser *p)
{
	return p->p >= p->end;
}

int imap_peek(const struct imap_parser *p)
{
	return p->p < p->end ? (unsigned char)*p->p : -1;
}

int imap_expect(struct imap_parser *p, char c)
{
	static char msg[] = "expected 'x'";

	if (imap_peek(p) != (unsigned char)c) {
		msg[10] = c;
		return fail(p, msg);
	}
	p->p++;
	return 0;
}

int imap_sp(struct imap_parser *p)
{
	if (imap_peek(p) != ' ')
		return fail(p, "expected a space");
	p->p++;
	return 0;
}

int imap_end(struct imap_parser *p)
{
	return imap_at_end(p) ? 0 : fail(p, "unexpected text at the end of the command");
}

static bool atom_char(int c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

int imap_atom(struct imap_parser *p, struct imap_str *out)
{
	char *start = p->p;

	while (p->p < p->end && atom_char((unsigned char)*p->p))
		p->p++;
	if (p->p == start)
		return fail(p, "expected an atom");
	*out = (struct imap_str){ .s = start, .len = (size_t)(p->p - start) };
	return 0;
}

static int quoted(struct imap_parser *p, struct imap_str *out)
{
	char *w, *start;

	p->p++; /* the opening quote */
	start = w = p->p;
	for (;;) {
		if (p->p >= p->end)
			return fail(p, "unterminated quoted string");
		char c = *p->p++;

		if (c == '"')
			break;
		if (c == '\r' || c == '\n')
			return fail(p, "line break in a quoted string");
		if (c == '\\') {
			if (p->p >= p->end || (*p->p != '\\' && *p->p != '"'))
				return fail(p, "bad escape in a quoted string");
			c = *p->p++;
		}
		*w++ = c;
	}
	*out = (struct imap_str){ .s = start, .len = (size_t)(w - start) };
	return 0;
}

static int literal(struct imap_parser *p, struct imap_str *out)
{
	bool binary = false;
	uint64_t n = 0;
	int digits = 0;

	if (*p->p == '~') {
		binary = true;
		p->p++;
	}
	if (imap_expect(p, '{') < 0)
		return -1;
	while (p->p < p->end && isdigit((unsigned char)*p->p) && digits < 20) {
		n = n * 10 + (uint64_t)(*p->p++ - '0');
		digits++;
	}
	if (!digits || n > 0xffffffffu)
		return fail(p, "bad literal size");
	if (p->p < p->end && *p->p == '+')
		p->p++;
	if (imap_expect(p, '}') < 0 || imap_expect(p, '\r') < 0 || imap_expect(p, '\n') < 0)
		return fail(p, "bad literal");
	if ((uint64_t)(p->end - p->p) < n)
		return fail(p, "literal shorter than announced");
	if (!binary && memchr(p->p, '\0', (size_t)n))
		return fail(p, "NUL in a literal (only ~{n} literals may hold one)");
	*out = (struct imap_str){ .s = p->p, .len = (size_t)n, .literal = true, .binary = binary };
	p->p += n;
	return 0;
}

int imap_string(struct imap_parser *p, struct imap_str *out)
{
	int c = imap_peek(p);

	if (c == '"')
		return quoted(p, out);
	if (c == '{')
		return literal(p, out);
	return fail(p, "expected a string");
}

int imap_astring(struct imap_parser *p, struct imap_str *out)
{
	int c = imap_peek(p);
	char *start = p->p;

	if (c == '"' || c == '{')
		return imap_string(p, out);
	while (p->p < p->end && (atom_char((unsigned char)*p->p) || *p->p == ']'))
		p->p++;
	if (p->p == start)
		return fail(p, "expected an atom or a string");
	*out = (struct imap_str){ .s = start, .len = (size_t)(p->p - start) };
	return 0;
}

int imap_nstring(struct imap_parser *p, struct imap_str *out)
{
	if (imap_word_is(p, "NIL")) {
		p->p += 3;
		*out = (struct imap_str){ 0 };
		return 0;
	}
	return imap_string(p, out);
}

static int number_max(struct imap_parser *p, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	char *start = p->p;

	while (p->p < p->end && isdigit((unsigned char)*p->p)) {
		n = n * 10 + (uint64_t)(*p->p++ - '0');
		if (n > max)
			return fail(p, "number too large");
	}
	if (p->p == start)
		return fail(p, "expected a number");
	*out = n;
	return 0;
}

int imap_number(struct imap_parser *p, uint32_t *out)
{
	uint64_t n;

	if (number_max(p, 0xffffffffu, &n) < 0)
		return -1;
	*out = (uint32_t)n;
	return 0;
}

int imap_nz_number(struct imap_parser *p, uint32_t *out)
{
	if (imap_number(p, out) < 0)
		return -1;
	return *out ? 0 : fail(p, "zero is not allowed here");
}

int imap_number64(struct imap_parser *p, uint64_t *out)
{
	return number_max(p, INT64_MAX, out);
}

static int seq_number(struct imap_parser *p, uint32_t *out)
{
	if (imap_peek(p) == '*') {
		p->p++;
		*out = IMAP_SEQ_STAR;
		return 0;
	}
	return imap_nz_number(p, out);
}

int imap_seqset(struct imap_parser *p, struct imap_seqset *out)
{
	size_t cap = 0;

	*out = (struct imap_seqset){ 0 };
	if (imap_peek(p) == '$') {
		p->p++;
		out->searchres = true;
		return 0;
	}
	for (;;) {
		struct imap_range r;

		if (seq_number(p, &r.lo) < 0)
			goto bad;
		r.hi = r.lo;
		if (imap_peek(p) == ':') {
			p->p++;
			if (seq_number(p, &r.hi) < 0)
				goto bad;
		}
		if (out->n == cap) {
			struct imap_range *more;

			if (cap >= SEQSET_MAX_RANGES) {
				fail(p, "sequence set too long");
				goto bad;
			}
			cap = cap ? cap * 2 : 8;
			more = realloc(out->r, cap * sizeof(*more));
			if (!more) {
				fail(p, "out of memory");
				goto bad;
			}
			out->r = more;
		}
		out->r[out->n++] = r;
		if (imap_peek(p) != ',')
			return 0;
		p->p++;
	}
bad:
	fail(p, "bad sequence set");
	imap_seqset_free(out);
	return -1;
}

void imap_seqset_free(struct imap_seqset *s)
{
	free(s->r);
	*s = (struct imap_seqset){ 0 };
}

void imap_seqset_resolve(struct imap_seqset *s, uint32_t max)
{
	for (size_t i = 0; i < s->n; i++) {
		struct imap_range *r = &s->r[i];

		if (r->lo == IMAP_SEQ_STAR)
			r->lo = max;
		if (r->hi == IMAP_SEQ_STAR)
			r->hi = max;
		if (r->lo > r->hi) {
			uint32_t t = r->lo;

			r->lo = r->hi;
			r->hi = t;
		}
	}
}

bool imap_seqset_has(const struct imap_seqset *s, uint32_t n)
{
	for (size_t i = 0; i < s->n; i++)
		if (n >= s->r[i].lo && n <= s->r[i].hi)
			return true;
	return false;
}

int imap_flag(struct imap_parser *p, struct imap_str *out)
{
	char *start = p->p;

	if (imap_peek(p) == '\\') {
		p->p++;
		if (imap_peek(p) == '*') { /* only in PERMANENTFLAGS, never from a client */
			return fail(p, "\\* is not a flag");
		}
	}
	if (imap_atom(p, out) < 0)
		return fail(p, "expected a flag");
	out->s = start;
	out->len = (size_t)(p->p - start);
	return 0;
}

static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* days from civil (Howard Hinnant's algorithm, proleptic Gregorian) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dim[m - 1];
}

static int digits(struct imap_parser *p, int count, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < count; i++) {
		if (p->p >= p->end || !isdigit((unsigned char)*p->p))
			return fail(p, "bad date");
		v = v * 10 + (unsigned)(*p->p++ - '0');
	}
	*out = v;
	return 0;
}

/* dd-Mon-yyyy; a one-digit day is allowed unless FIXED (date-time pads it with a space) */
static int date_text(struct imap_parser *p, bool fixed, int64_t *days)
{
	unsigned d, m = 0, y;

	if (fixed && imap_peek(p) == ' ') {
		p->p++;
		if (digits(p, 1, &d) < 0)
			return -1;
	} else if (digits(p, 1, &d) < 0) {
		return -1;
	} else if (isdigit(imap_peek(p))) {
		d = d * 10 + (unsigned)(*p->p++ - '0');
	}
	if (imap_expect(p, '-') < 0 || p->end - p->p < 3)
		return fail(p, "bad date");
	for (unsigned i = 0; i < 12; i++)
		if (strncasecmp(p->p, months[i], 3) == 0)
			m = i + 1;
	if (!m)
		return fail(p, "bad month in a date");
	p->p += 3;
	if (imap_expect(p, '-') < 0 || digits(p, 4, &y) < 0)
		return fail(p, "bad date");
	if (d < 1 || d > days_in_month(y, m))
		return fail(p, "no such day");
	*days = days_from_civil(y, m, d);
	return 0;
}

int imap_date(struct imap_parser *p, int64_t *days)
{
	bool q = imap_peek(p) == '"';

	if (q)
		p->p++;
	if (date_text(p, false, days) < 0)
		return -1;
	return q ? imap_expect(p, '"') : 0;
}

int imap_date_time(struct imap_parser *p, int64_t *when, int *zone_minutes)
{
	unsigned hh, mm, ss, zone;
	int64_t days;
	int sign;

	if (imap_expect(p, '"') < 0 || date_text(p, true, &days) < 0 || imap_sp(p) < 0 ||
	    digits(p, 2, &hh) < 0 || imap_expect(p, ':') < 0 || digits(p, 2, &mm) < 0 ||
	    imap_expect(p, ':') < 0 || digits(p, 2, &ss) < 0 || imap_sp(p) < 0)
		return fail(p, "bad date-time");
	if (imap_peek(p) != '+' && imap_peek(p) != '-')
		return fail(p, "bad zone in a date-time");
	sign = *p->p++ == '-' ? -1 : 1;
	if (digits(p, 4, &zone) < 0 || imap_expect(p, '"') < 0)
		return fail(p, "bad date-time");
	if (hh > 23 || mm > 59 || ss > 60 || zone % 100 > 59)
		return fail(p, "bad time in a date-time");
	*zone_minutes = sign * (int)(zone / 100 * 60 + zone % 100);
	*when = days * 86400 + hh * 3600 + mm * 60 + ss - (int64_t)*zone_minutes * 60;
	return 0;
}

bool imap_word_is(const struct imap_parser *p, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(p->end - p->p) < n || strncasecmp(p->p, word, n) != 0)
		return false;
	return p->p + n == p->end || strchr(" )[]", p->p[n]);
}

int imap_take_word(struct imap_parser *p, const char *word)
{
	if (!imap_word_is(p, word))
		return fail(p, "unexpected word");
	p->p += strlen(word);
	return 0;
}

int imap_line_literal(const char *line, size_t len, uint64_t *size, bool *sync)
{
	size_t i;
	uint64_t n = 0, scale = 1;

	if (len < 3 || line[len - 1] != '}')
		return 0;
	i = len - 2;
	*sync = true;
	if (line[i] == '+') {
		*sync = false;
		i--;
	}
	if (!isdigit((unsigned char)line[i]))
		return 0;
	for (; i > 0 && isdigit((unsigned char)line[i]); i--) {
		if (scale > 1000000000000ull)
			return -1;
		n += (uint64_t)(line[i] - '0') * scale;
		scale *= 10;
	}
	if (line[i] != '{')
		return 0;
	*size = n;
	return 1;
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

bool imap_mutf7_valid(const char *name, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)name[i++];

		if (c < 0x20 || c > 0x7e)
			return false;
		if (c != '&')
			continue;
		if (i < len && name[i] == '-') { /* "&-" is '&' */
			i++;
			continue;
		}
		uint32_t bits = 0;
		unsigned nbits = 0, units = 0;
		uint16_t high = 0;

		for (;;) {
			if (i >= len)
				return false;
			c = (unsigned char)name[i++];
			if (c == '-')
				break;
			int v = b64_value(c);

			if (v < 0)
				return false;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits >= 16) {
				uint16_t u = (uint16_t)(bits >> (nbits - 16));

				nbits -= 16;
				bits &= (1u << nbits) - 1;
				units++;
				if (high) {
					if (u < 0xdc00 || u > 0xdfff)
						return false;
					high = 0;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					high = u;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					return false;
				} else if (u >= 0x20 && u <= 0x7e) {
					return false; /* printable ASCII must not be encoded */
				}
			}
		}
		if (!units || high || nbits >= 6 || bits != 0)
			return false; /* empty shift, lone surrogate, or leftover non-zero bits */
	}
	return true;
}

int imap_paren_begin(struct imap_parser *p)
{
	if (imap_at_end(p))
		return 0;
	return imap_sp(p) < 0 || imap_expect(p, '(') < 0 ? -1 : 1;
}

int imap_paren_next(struct imap_parser *p, bool *first)
{
	if (imap_peek(p) == ')') {
		p->p++;
		return 0;
	}
	if (!*first && imap_sp(p) < 0)
		return -1;
	*first = false;
	return 1;
}
