/* A parsed control-socket reply: "ok" or "error MESSAGE", then records
 * "KIND key=value ..." (see include/lg_control_proto.h). */
#ifndef LG_CTL_REPLY_H
#define LG_CTL_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define LG_REPLY_MAX_FIELDS 48

struct lg_field {
	char *key, *value;
};

struct lg_record {
	char *kind;
	struct lg_field fields[LG_REPLY_MAX_FIELDS];
	size_t count;
};

struct lg_reply {
	bool ok;
	char *error;             /* when !ok */
	struct lg_record *records;
	size_t count;
	char *text;              /* owns every string above */
};

/* Parse TEXT (takes ownership of the malloc'd buffer). 0, or -1 if it is not a reply. */
int lg_reply_parse(char *text, struct lg_reply *out);
void lg_reply_free(struct lg_reply *r);
const char *lg_record_get(const struct lg_record *rec, const char *key);

/* Render records of KIND as a JSON array of objects; digit-only values become numbers. */
void lg_render_json_array(const struct lg_reply *r, const char *kind, FILE *out);
void lg_json_string(const char *s, FILE *out);
/* The flows table for people, like conntrack -L / pfctl -ss. */
void lg_render_flows_text(const struct lg_reply *r, FILE *out);
/* NAT mappings and echo sessions, one per line. */
void lg_render_mappings_text(const struct lg_reply *r, FILE *out);
/* The policy in force: "name value" lines, then the rules as the configuration writes them. */
void lg_render_policy_text(const struct lg_reply *r, FILE *out);
/* The same as one JSON object: settings by name, "rules" an array of {line, text}. */
void lg_render_policy_json(const struct lg_reply *r, FILE *out);
/* Counters, each with its rate per second since PREV (NULL the first time). */
void lg_render_stats_watch(const struct lg_reply *cur, const struct lg_reply *prev, double secs,
			   FILE *out);

#endif
