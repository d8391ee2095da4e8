/* IMAP command syntax (RFC 3501 section 9 plus LITERAL+, BINARY and CATENATE literals): a
 * cursor over one complete command, literals included as they came on the wire
 * ("{5}\r\nhello"). Quoted strings are unescaped in place, so the buffer must be writable.
 * Every function returns 0 on success and -1 on a syntax error, with a message in p->err. */
#ifndef LG_IMAP_PARSE_H
#define LG_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_SEQ_STAR UINT32_MAX

struct imap_str {
	const char *s;
	size_t len;
	bool literal, binary; /* a literal; a ~{n} literal (may hold NUL) */
};

struct imap_parser {
	char *p, *end;
	const char *err;
};

struct imap_range {
	uint32_t lo, hi; /* lo <= hi once resolved; IMAP_SEQ_STAR for '*' */
};

struct imap_seqset {
	size_t n;
	struct imap_range *r; /* malloc'd; imap_seqset_free */
	bool searchres;        /* "$" (RFC 5182): not supported, refused by the caller */
};

void imap_p_init(struct imap_parser *p, char *buf, size_t len);
bool imap_at_end(const struct imap_parser *p);
int imap_peek(const struct imap_parser *p); /* next byte or -1 */
int imap_expect(struct imap_parser *p, char c);
int imap_sp(struct imap_parser *p);
/* Nothing left but the end of the command. */
int imap_end(struct imap_parser *p);

int imap_atom(struct imap_parser *p, struct imap_str *out);
/* atom chars plus ']' (RFC 3501 ASTRING-CHAR), quoted, or a literal */
int imap_astring(struct imap_parser *p, struct imap_str *out);
int imap_string(struct imap_parser *p, struct imap_str *out);
/* NIL gives out->s == NULL */
int imap_nstring(struct imap_parser *p, struct imap_str *out);
int imap_number(struct imap_parser *p, uint32_t *out);     /* 0..2^32-1 */
int imap_nz_number(struct imap_parser *p, uint32_t *out);
int imap_number64(struct imap_parser *p, uint64_t *out);   /* mod-sequence values: < 2^63 */
int imap_seqset(struct imap_parser *p, struct imap_seqset *out);
void imap_seqset_free(struct imap_seqset *s);
/* Resolve '*' to MAX and order each range; true when N is in the set. */
void imap_seqset_resolve(struct imap_seqset *s, uint32_t max);
bool imap_seqset_has(const struct imap_seqset *s, uint32_t n);
/* A flag: "\Word" or an atom keyword. */
int imap_flag(struct imap_parser *p, struct imap_str *out);
/* "dd-Mon-yyyy" (SEARCH dates), unquoted or quoted; days since the epoch. */
int imap_date(struct imap_parser *p, int64_t *days);
/* "dd-Mon-yyyy hh:mm:ss +zzzz" quoted (APPEND); seconds since the epoch, UTC. */
int imap_date_time(struct imap_parser *p, int64_t *when, int *zone_minutes);
/* An optional parenthesized list after a command's arguments, as SELECT parameters and FETCH
 * modifiers are written: imap_paren_begin gives 0 at the end of the command, 1 once " (" is
 * taken, -1 otherwise; imap_paren_next gives 1 before each item (taking the space between
 * items), 0 once ")" is taken, -1 on bad syntax. FIRST starts true. */
int imap_paren_begin(struct imap_parser *p);
int imap_paren_next(struct imap_parser *p, bool *first);
/* Case-insensitive match of the next word WORD, followed by SP, brackets, ")" or the end. */
bool imap_word_is(const struct imap_parser *p, const char *word);
int imap_take_word(struct imap_parser *p, const char *word);

/* The literal announced at the end of LINE ("{n}", "{n+}", "~{n}"): 1 with its size and
 * whether the client waits for "+" (SYNC), 0 when the line ends otherwise, -1 when it is bad. */
int imap_line_literal(const char *line, size_t len, uint64_t *size, bool *sync);

/* Modified UTF-7 (RFC 3501 5.1.3) mailbox name check: printable ASCII, '&' shifts well formed,
 * base64 of UTF-16 that decodes to characters that needed encoding. */
bool imap_mutf7_valid(const char *name, size_t len);

#endif
