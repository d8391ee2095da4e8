/* The structure of a stored message (RFC 5322 headers, RFC 2045/2046 MIME): enough to serve
 * IMAP body sections (BODY[1.2.HEADER] ...), ENVELOPE and BODYSTRUCTURE. Offsets point into
 * the caller's buffer, which must outlive the tree. Malformed messages still parse: a part
 * whose boundary never comes runs to the end of its parent. */
#ifndef LG_IMAP_MIME_H
#define LG_IMAP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_MAX_DEPTH 24
#define MIME_MAX_PARTS 2000

struct mime_part {
	size_t header_off, header_len; /* the header block, its blank line included */
	size_t body_off, body_len;
	char type[64], subtype[64];    /* lower case; text/plain when absent */
	bool multipart, message;       /* multipart/..., message/rfc822 */
	struct mime_part *children;    /* the parts, or for message/rfc822 the one inner message */
	size_t child_count;
};

struct mime_part *mime_parse(const char *msg, size_t len);
void mime_free(struct mime_part *root);
/* The part at PATH (1-based numbers, IMAP section rules), or NULL. */
const struct mime_part *mime_find(const struct mime_part *root, const uint32_t *path, size_t depth);
/* The unfolded value of the first header field NAME in HDR (case-insensitive), malloc'd, or NULL. */
char *mime_header(const char *hdr, size_t len, const char *name);
/* A parameter of a structured field value ("multipart/mixed; boundary=x"), malloc'd, or NULL. */
char *mime_param(const char *value, const char *param);
/* Header lines whose field names are (or, NOT, are not) among NAMES, followed by the blank
 * line: appended to OUT (malloc'd, *OUT_LEN). */
int mime_header_fields(const char *hdr, size_t len, const char *const *names, size_t count,
		       bool not, char **out, size_t *out_len);

#endif
