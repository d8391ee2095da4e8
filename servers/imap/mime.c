#include "servers/imap/mime.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct parse_ctx {
	const char *msg;
	size_t parts;
};

/* End of the header block starting at OFF: just past the blank line (or END). */
static size_t header_end(const char *m, size_t off, size_t end)
{
	size_t i = off;

	if (i < end && m[i] == '\n')
		return i + 1;
	if (i + 1 < end && m[i] == '\r' && m[i + 1] == '\n')
		return i + 2;
	for (; i < end; i++) {
		if (m[i] != '\n')
			continue;
		if (i + 1 < end && m[i + 1] == '\n')
			return i + 2;
		if (i + 2 < end && m[i + 1] == '\r' && m[i + 2] == '\n')
			return i + 3;
	}
	return end;
}

char *mime_header(const char *hdr, size_t len, const char *name)
{
	size_t nl = strlen(name), i = 0;

	while (i < len) {
		size_t line_end = i;

		while (line_end < len && hdr[line_end] != '\n')
			line_end++;
		if (line_end - i > nl && strncasecmp(hdr + i, name, nl) == 0 && hdr[i + nl] == ':') {
			/* the value and its continuation lines, unfolded */
			size_t start = i + nl + 1, end = line_end;
			char *out;
			size_t o = 0;

			while (end + 1 < len && (hdr[end + 1] == ' ' || hdr[end + 1] == '\t')) {
				end++;
				while (end < len && hdr[end] != '\n')
					end++;
			}
			if (!(out = malloc(end - start + 1)))
				return NULL;
			for (size_t k = start; k < end && k < len; k++)
				if (hdr[k] != '\r' && hdr[k] != '\n')
					out[o++] = hdr[k];
			out[o] = '\0';
			size_t lead = 0;

			while (out[lead] == ' ' || out[lead] == '\t')
				lead++;
			memmove(out, out + lead, o - lead + 1);
			o -= lead;
			while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
				out[--o] = '\0';
			return out;
		}
		i = line_end + 1;
	}
	return NULL;
}

char *mime_param(const char *value, const char *param)
{
	size_t pl = strlen(param);
	const char *p = value;

	while ((p = strchr(p, ';'))) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, param, pl) != 0)
			continue;
		const char *q = p + pl;

		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		char *out = malloc(strlen(q) + 1);
		size_t o = 0;

		if (!out)
			return NULL;
		if (*q == '"') {
			for (q++; *q && *q != '"'; q++) {
				if (*q == '\\' && q[1])
					q++;
				out[o++] = *q;
			}
		} else {
			while (*q && *q != ';' && *q != ' ' && *q != '\t')
				out[o++] = *q++;
		}
		out[o] = '\0';
		return out;
	}
	return NULL;
}

static void copy_lower(char *dst, size_t size, const char *src, size_t len)
{
	size_t n = len < size - 1 ? len : size - 1;

	for (size_t i = 0; i < n; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[n] = '\0';
}

static void content_type(struct mime_part *part, const char *hdr, size_t len, bool digest_parent,
			 char **boundary)
{
	char *ct = mime_header(hdr, len, "Content-Type");
	const char *slash, *end;

	*boundary = NULL;
	if (digest_parent) {
		strcpy(part->type, "message");
		strcpy(part->subtype, "rfc822");
	} else {
		strcpy(part->type, "text");
		strcpy(part->subtype, "plain");
	}
	if (!ct)
		return;
	slash = strchr(ct, '/');
	end = ct + strcspn(ct, "; \t");
	if (slash && slash < end && slash > ct && end > slash + 1) {
		copy_lower(part->type, sizeof(part->type), ct, (size_t)(slash - ct));
		copy_lower(part->subtype, sizeof(part->subtype), slash + 1, (size_t)(end - slash - 1));
	}
	if (strcmp(part->type, "multipart") == 0)
		*boundary = mime_param(ct, "boundary");
	free(ct);
}

static void parse_part(struct parse_ctx *ctx, struct mime_part *part, size_t off, size_t end,
		       int depth, bool digest_parent);

static int add_child(struct parse_ctx *ctx, struct mime_part *parent, size_t off, size_t end,
		     int depth, bool digest)
{
	struct mime_part *more;

	if (ctx->parts >= MIME_MAX_PARTS)
		return -1;
	more = realloc(parent->children, (parent->child_count + 1) * sizeof(*more));
	if (!more)
		return -1;
	parent->children = more;
	ctx->parts++;
	parse_part(ctx, &parent->children[parent->child_count++], off, end, depth + 1, digest);
	return 0;
}

/* A delimiter line "--BOUNDARY" at a line start, optionally "--" after it (the last). */
static bool delimiter_at(const char *m, size_t i, size_t end, const char *b, size_t bl, bool *last)
{
	if (i + 2 + bl > end || m[i] != '-' || m[i + 1] != '-' || memcmp(m + i + 2, b, bl) != 0)
		return false;
	*last = i + 4 + bl <= end && m[i + 2 + bl] == '-' && m[i + 3 + bl] == '-';
	return true;
}

static size_t next_line(const char *m, size_t i, size_t end)
{
	while (i < end && m[i] != '\n')
		i++;
	return i < end ? i + 1 : end;
}

static void parse_multipart(struct parse_ctx *ctx, struct mime_part *part, const char *b,
			    int depth)
{
	const char *m = ctx->msg;
	size_t end = part->body_off + part->body_len, bl = strlen(b), i = part->body_off;
	size_t part_start = 0;
	bool in_part = false, last = false, digest = strcmp(part->subtype, "digest") == 0;

	while (i < end && !last) {
		bool is_last;

		if (delimiter_at(m, i, end, b, bl, &is_last)) {
			if (in_part) {
				/* the line break before the delimiter belongs to it */
				size_t pe = i;

				if (pe > part_start && m[pe - 1] == '\n')
					pe--;
				if (pe > part_start && m[pe - 1] == '\r')
					pe--;
				if (add_child(ctx, part, part_start, pe, depth, digest) < 0)
					return;
			}
			last = is_last;
			in_part = true;
			i = next_line(m, i, end);
			part_start = i;
			continue;
		}
		i = next_line(m, i, end);
	}
	if (in_part && !last && part_start < end)
		add_child(ctx, part, part_start, end, depth, digest);
}

static void parse_part(struct parse_ctx *ctx, struct mime_part *part, size_t off, size_t end,
		       int depth, bool digest_parent)
{
	size_t he = header_end(ctx->msg, off, end);
	char *boundary;

	*part = (struct mime_part){
		.header_off = off, .header_len = he - off, .body_off = he, .body_len = end - he,
	};
	content_type(part, ctx->msg + off, he - off, digest_parent, &boundary);
	if (depth >= MIME_MAX_DEPTH) {
		free(boundary);
		return;
	}
	if (strcmp(part->type, "multipart") == 0 && boundary && *boundary && strlen(boundary) <= 70) {
		part->multipart = true;
		parse_multipart(ctx, part, boundary, depth);
	} else if (strcmp(part->type, "message") == 0 && (strcmp(part->subtype, "rfc822") == 0 ||
							  strcmp(part->subtype, "global") == 0)) {
		part->message = true;
		add_child(ctx, part, part->body_off, end, depth, false);
	}
	free(boundary);
}

struct mime_part *mime_parse(const char *msg, size_t len)
{
	struct mime_part *root = calloc(1, sizeof(*root));
	struct parse_ctx ctx = { .msg = msg };

	if (root)
		parse_part(&ctx, root, 0, len, 0, false);
	return root;
}

static void free_children(struct mime_part *p)
{
	for (size_t i = 0; i < p->child_count; i++)
		free_children(&p->children[i]);
	free(p->children);
}

void mime_free(struct mime_part *root)
{
	if (!root)
		return;
	free_children(root);
	free(root);
}

const struct mime_part *mime_find(const struct mime_part *root, const uint32_t *path, size_t depth)
{
	const struct mime_part *p = root;

	for (size_t i = 0; i < depth; i++) {
		/* inside an encapsulated message, numbers count that message's parts */
		if (p->message && p->child_count)
			p = &p->children[0];
		if (p->multipart) {
			if (path[i] == 0 || path[i] > p->child_count)
				return NULL;
			p = &p->children[path[i] - 1];
		} else if (path[i] != 1) {
			return NULL; /* a single-part body is part 1 of itself */
		}
	}
	return p;
}

int mime_header_fields(const char *hdr, size_t len, const char *const *names, size_t count,
		       bool not, char **out, size_t *out_len)
{
	char *buf = malloc(len + 3);
	size_t o = 0, i = 0;
	bool keep = false;

	if (!buf)
		return -1;
	while (i < len) {
		size_t e = i;

		while (e < len && hdr[e] != '\n')
			e++;
		if (e < len)
			e++;
		if ((e - i == 1 && hdr[i] == '\n') || (e - i == 2 && hdr[i] == '\r'))
			break; /* the blank line */
		if (hdr[i] != ' ' && hdr[i] != '\t') {
			const char *colon = memchr(hdr + i, ':', e - i);
			bool match = false;

			for (size_t k = 0; colon && k < count; k++)
				match |= strlen(names[k]) == (size_t)(colon - hdr - i) &&
					 strncasecmp(names[k], hdr + i, (size_t)(colon - hdr - i)) == 0;
			keep = colon && match != not;
		}
		if (keep) {
			memcpy(buf + o, hdr + i, e - i);
			o += e - i;
		}
		i = e;
	}
	memcpy(buf + o, "\r\n", 2);
	o += 2;
	*out = buf;
	*out_len = o;
	return 0;
}
