#include "ctl/reply.h"

#include <stdlib.h>
#include <string.h>

static int parse_record(char *line, struct lg_record *rec)
{
	char *save = NULL, *w;

	rec->kind = strtok_r(line, " ", &save);
	rec->count = 0;
	if (!rec->kind)
		return -1;
	while ((w = strtok_r(NULL, " ", &save))) {
		char *eq = strchr(w, '=');

		if (!eq || eq == w || rec->count >= LG_REPLY_MAX_FIELDS)
			return -1;
		*eq = '\0';
		rec->fields[rec->count].key = w;
		rec->fields[rec->count].value = eq + 1;
		rec->count++;
	}
	return 0;
}

int lg_reply_parse(char *text, struct lg_reply *out)
{
	char *line, *save = NULL;
	size_t lines = 0, cap;

	memset(out, 0, sizeof(*out));
	out->text = text;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	line = strtok_r(text, "\n", &save);
	if (!line)
		return -1;
	if (strncmp(line, "error ", 6) == 0) {
		out->error = line + 6;
		return 0;
	}
	if (strcmp(line, "ok") != 0)
		return -1;
	out->ok = true;
	cap = lines + 1;
	out->records = calloc(cap, sizeof(*out->records));
	if (!out->records)
		return -1;
	while ((line = strtok_r(NULL, "\n", &save))) {
		if (out->count >= cap || parse_record(line, &out->records[out->count]) < 0)
			return -1;
		out->count++;
	}
	return 0;
}

void lg_reply_free(struct lg_reply *r)
{
	free(r->records);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

const char *lg_record_get(const struct lg_record *rec, const char *key)
{
	for (size_t i = 0; i < rec->count; i++)
		if (strcmp(rec->fields[i].key, key) == 0)
			return rec->fields[i].value;
	return NULL;
}

void lg_json_string(const char *s, FILE *out)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static bool is_number(const char *s)
{
	if (!*s || (s[0] == '0' && s[1] != '\0'))
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

void lg_render_json_array(const struct lg_reply *r, const char *kind, FILE *out)
{
	bool first = true;

	fputc('[', out);
	for (size_t i = 0; i < r->count; i++) {
		const struct lg_record *rec = &r->records[i];

		if (strcmp(rec->kind, kind) != 0)
			continue;
		fputs(first ? "\n  {" : ",\n  {", out);
		first = false;
		for (size_t k = 0; k < rec->count; k++) {
			if (k)
				fputs(", ", out);
			lg_json_string(rec->fields[k].key, out);
			fputs(": ", out);
			if (is_number(rec->fields[k].value))
				fputs(rec->fields[k].value, out);
			else
				lg_json_string(rec->fields[k].value, out);
		}
		fputc('}', out);
	}
	fputs(first ? "]\n" : "\n]\n", out);
}

static const char *field_or_dash(const struct lg_record *rec, const char *key)
{
	const char *v = lg_record_get(rec, key);

	return v ? v : "-";
}

/* "tcp", or "tcp6" for an IPv6 flow, as netstat and ss name them. */
static const char *proto_column(const struct lg_record *rec, char *buf, size_t size)
{
	const char *family = lg_record_get(rec, "family");

	snprintf(buf, size, "%s%s", field_or_dash(rec, "proto"),
		 family && strcmp(family, "ipv6") == 0 ? "6" : "");
	return buf;
}

void lg_render_flows_text(const struct lg_reply *r, FILE *out)
{
	static const char *const keys[3] = { "inside", "public", "remote" };
	int width[3] = { 21, 21, 21 }; /* an IPv4 endpoint fits; IPv6 ones widen the columns */
	size_t n = 0;
	char proto[16];

	for (size_t i = 0; i < r->count; i++)
		for (int k = 0; k < 3; k++) {
			size_t len = strlen(field_or_dash(&r->records[i], keys[k]));

			if (strcmp(r->records[i].kind, "flow") == 0 && len > (size_t)width[k] && len < 64)
				width[k] = (int)len;
		}
	/* the extension lists come last: they are the only columns of unbounded width */
	fprintf(out, "%-5s %-*s %-*s %-*s %-12s %8s %8s  %-11s %-13s %-7s %s %s\n", "PROTO", width[0],
		"INSIDE", width[1], "PUBLIC", width[2], "REMOTE", "STATE", "IDLE", "AGE", "MAIL", "PHASE",
		"IN-IDLE", "SERVER-EXTENSIONS", "CLIENT-EXTENSIONS");
	for (size_t i = 0; i < r->count; i++) {
		const struct lg_record *rec = &r->records[i];

		if (strcmp(rec->kind, "flow") != 0)
			continue;
		n++;
		fprintf(out, "%-5s %-*s %-*s %-*s %-12s %8s %8s  %-11s %-13s %-7s %s %s\n",
			proto_column(rec, proto, sizeof(proto)), width[0], field_or_dash(rec, "inside"),
			width[1], field_or_dash(rec, "public"), width[2], field_or_dash(rec, "remote"),
			field_or_dash(rec, "state"), field_or_dash(rec, "idle"), field_or_dash(rec, "age"),
			field_or_dash(rec, "mail"), field_or_dash(rec, "phase"), field_or_dash(rec, "in_idle"),
			field_or_dash(rec, "server_extensions"), field_or_dash(rec, "client_extensions"));
	}
	fprintf(out, "%zu flow%s\n", n, n == 1 ? "" : "s");
}

void lg_render_mappings_text(const struct lg_reply *r, FILE *out)
{
	size_t n = 0;

	fprintf(out, "%-5s %-21s %-21s %s\n", "PROTO", "INSIDE", "PUBLIC", "FLOWS/IDLE");
	for (size_t i = 0; i < r->count; i++) {
		const struct lg_record *rec = &r->records[i];
		const char *flows = lg_record_get(rec, "flows"), *idle = lg_record_get(rec, "idle");

		if (strcmp(rec->kind, "mapping") != 0)
			continue;
		n++;
		fprintf(out, "%-5s %-21s %-21s %s%s\n", field_or_dash(rec, "proto"),
			field_or_dash(rec, "inside"), field_or_dash(rec, "public"),
			flows ? flows : idle ? idle : "-", flows ? " flows" : idle ? " s idle" : "");
	}
	fprintf(out, "%zu mapping%s\n", n, n == 1 ? "" : "s");
}

/* Rule text travels with '+' for its blanks (values hold none). */
static void put_rule_text(const char *text, FILE *out, bool json)
{
	char buf[512];
	size_t i;

	for (i = 0; text[i] && i + 1 < sizeof(buf); i++)
		buf[i] = text[i] == '+' ? ' ' : text[i];
	buf[i] = '\0';
	if (json)
		lg_json_string(buf, out);
	else
		fputs(buf, out);
}

void lg_render_policy_text(const struct lg_reply *r, FILE *out)
{
	for (size_t i = 0; i < r->count; i++) {
		const struct lg_record *rec = &r->records[i];

		if (strcmp(rec->kind, "setting") == 0) {
			fprintf(out, "%-24s %s\n", field_or_dash(rec, "name"), field_or_dash(rec, "value"));
		} else if (strcmp(rec->kind, "rule") == 0) {
			fprintf(out, "rule (line %s)%*s ", field_or_dash(rec, "line"), 10, "");
			put_rule_text(field_or_dash(rec, "text"), out, false);
			fputc('\n', out);
		}
	}
}

void lg_render_policy_json(const struct lg_reply *r, FILE *out)
{
	bool first = true, first_rule = true;

	fputc('{', out);
	for (size_t i = 0; i < r->count; i++) {
		const struct lg_record *rec = &r->records[i];
		const char *value = field_or_dash(rec, "value");

		if (strcmp(rec->kind, "setting") != 0)
			continue;
		fputs(first ? "\n  " : ",\n  ", out);
		first = false;
		lg_json_string(field_or_dash(rec, "name"), out);
		fputs(": ", out);
		if (is_number(value))
			fputs(value, out);
		else
			lg_json_string(value, out);
	}
	fputs(first ? "\n  \"rules\": [" : ",\n  \"rules\": [", out);
	for (size_t i = 0; i < r->count; i++) {
		const struct lg_record *rec = &r->records[i];

		if (strcmp(rec->kind, "rule") != 0)
			continue;
		fprintf(out, "%s{\"line\": %s, \"text\": ", first_rule ? "\n    " : ",\n    ",
			is_number(field_or_dash(rec, "line")) ? field_or_dash(rec, "line") : "0");
		put_rule_text(field_or_dash(rec, "text"), out, true);
		fputc('}', out);
		first_rule = false;
	}
	fputs(first_rule ? "]\n}\n" : "\n  ]\n}\n", out);
}

static const char *stat_value(const struct lg_reply *r, const char *name)
{
	for (size_t i = 0; r && i < r->count; i++)
		if (strcmp(r->records[i].kind, "stat") == 0) {
			const char *n = lg_record_get(&r->records[i], "name");

			if (n && strcmp(n, name) == 0)
				return lg_record_get(&r->records[i], "value");
		}
	return NULL;
}

void lg_render_stats_watch(const struct lg_reply *cur, const struct lg_reply *prev, double secs,
			   FILE *out)
{
	for (size_t i = 0; i < cur->count; i++) {
		const struct lg_record *rec = &cur->records[i];
		const char *name = lg_record_get(rec, "name"), *value = lg_record_get(rec, "value");
		const char *before = name ? stat_value(prev, name) : NULL;

		if (strcmp(rec->kind, "stat") != 0 || !name || !value)
			continue;
		fprintf(out, "%-36s %14s", name, value);
		if (before && is_number(value) && is_number(before)) {
			double delta = strtod(value, NULL) - strtod(before, NULL);

			if (delta != 0)
				fprintf(out, "  %+.1f/s", delta / secs);
		}
		fputc('\n', out);
	}
}
