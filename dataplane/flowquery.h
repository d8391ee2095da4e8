/* Selecting, sorting and limiting flows for the control socket: "flows inside=10.77.0.0/24
 * state=established idle_over=1h sort=idle limit=20". Evaluated in the daemon so that a large
 * table is not shipped to the client to be filtered there. */
#ifndef LG_FLOWQUERY_H
#define LG_FLOWQUERY_H

#include "dataplane/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lg_flow_sort { LG_SORT_NONE, LG_SORT_IDLE, LG_SORT_AGE, LG_SORT_BYTES };

struct lg_endpoint_match {
	bool set;
	uint8_t family; /* 4: PREFIX, 6: PREFIX6 */
	struct lg_prefix4 prefix;
	struct lg_prefix6 prefix6;
	uint16_t port; /* network byte order; 0 = any */
};

struct lg_flow_query {
	struct lg_endpoint_match inside, remote;
	uint16_t port;      /* network byte order: inside, public or remote port; 0 = any */
	const char *service; /* a service name, as lg_flow_service gives it; NULL = any */
	int state;          /* enum lg_tcp_state, -1 = any */
	bool proto_none;    /* a protocol other than TCP was asked for: nothing matches yet */
	uint64_t idle_over; /* seconds; flows idle strictly longer */
	enum lg_flow_sort sort;
	size_t limit;       /* 0 = no limit */
};

/* The mail service a flow is of ("imap", "submission"...): the one the policy's observed ports
 * give its server port, else the one whose well-known port it is; NULL for neither. */
const char *lg_flow_service(const struct lg_flow_view *v);

/* Parse WORDS ("key=value") into Q. 0, or -1 with a message in ERR naming the bad word. */
int lg_flow_query_parse(char **words, size_t n, struct lg_flow_query *q, char *err, size_t errlen);
bool lg_flow_query_match(const struct lg_flow_query *q, const struct lg_flow_view *v);
/* Keep the matching views, sorted and limited; returns the new count. */
size_t lg_flow_query_apply(const struct lg_flow_query *q, struct lg_flow_view *views, size_t n);

#endif
