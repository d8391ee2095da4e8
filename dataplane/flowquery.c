#include "dataplane/flowquery.h"

#include "dataplane/tcpstate.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *text, uint16_t *port_be)
{
	unsigned long v;

	if (lg_uint_parse(text, 1, 65535, &v) < 0)
		return -1;
	*port_be = htons((uint16_t)v);
	return 0;
}

/* IPv6: "ADDR", "[ADDR]:PORT" or "ADDR/LEN" */
static int parse_endpoint6(char *buf, struct lg_endpoint_match *m)
{
	char *close;

	m->family = 6;
	if (buf[0] == '[') {
		close = strchr(buf, ']');
		if (!close || (close[1] != '\0' && close[1] != ':'))
			return -1;
		if (close[1] == ':' && parse_port(close + 2, &m->port) < 0)
			return -1;
		*close = '\0';
		buf++;
		if (strchr(buf, '/'))
			return -1;
	}
	if (lg_prefix6_parse(buf, &m->prefix6) < 0)
		return -1;
	m->set = true;
	return 0;
}

/* "ADDR", "ADDR:PORT" or "ADDR/LEN", IPv4 or IPv6 */
static int parse_endpoint(const char *text, struct lg_endpoint_match *m)
{
	char buf[64];
	char *colon;

	if (strlen(text) >= sizeof(buf))
		return -1;
	strcpy(buf, text);
	m->port = 0;
	if (buf[0] == '[' || strchr(buf, ':') != strrchr(buf, ':'))
		return parse_endpoint6(buf, m);
	m->family = 4;
	colon = strchr(buf, ':');
	if (colon) {
		*colon = '\0';
		if (strchr(buf, '/') || parse_port(colon + 1, &m->port) < 0)
			return -1;
	}
	if (lg_prefix4_parse(buf, &m->prefix) < 0)
		return -1;
	m->set = true;
	return 0;
}

static bool endpoint_match(const struct lg_endpoint_match *m, const struct lg_flow_view *v,
			   bool inside)
{
	uint32_t mask = m->prefix.len ? htonl(0xffffffffu << (32 - m->prefix.len)) : 0;
	uint32_t addr = inside ? v->flow.in_addr : v->flow.rem_addr;
	uint16_t port = inside ? v->flow.in_port : v->flow.rem_port;

	if (!m->set)
		return true;
	if (m->port != 0 && m->port != port)
		return false;
	if (m->family != v->family)
		return false;
	if (v->family == 6)
		return lg_prefix6_contains(&m->prefix6, inside ? v->in6 : v->rem6);
	return (addr & mask) == m->prefix.addr;
}

/* Mail services by their well-known ports (RFC 5383 section 3, RFC 4550), for flows on ports
 * the policy does not name; the server side is the remote end of a flow opened from inside,
 * the inside end of one opened from outside. */
static const struct {
	const char *name;
	uint16_t port;
} services[] = {
	{ "imap", 143 }, { "submission", 587 }, { "smtp", 25 }, { "imaps", 993 },
	{ "submissions", 465 }, { "sieve", 4190 }, { "acap", 674 },
};

static int parse_service(const char *text, const char **name)
{
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
		if (strcmp(text, services[i].name) == 0) {
			*name = services[i].name;
			return 0;
		}
	return -1;
}

static uint16_t server_port(const struct lg_flow_view *v)
{
	return (v->flow.flags & LG_FLOW_INBOUND) ? v->flow.in_port : v->flow.rem_port;
}

const char *lg_flow_service(const struct lg_flow_view *v)
{
	if (v->service != LG_MAIL_NONE)
		return lg_mail_service_name((enum lg_mail_service)v->service);
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
		if (htons(services[i].port) == server_port(v))
			return services[i].name;
	return NULL;
}

static int parse_state(const char *text)
{
	for (int s = 0; s < LG_TCP_STATE_COUNT; s++)
		if (strcmp(text, lg_tcp_state_name((enum lg_tcp_state)s)) == 0)
			return s;
	return -1;
}

int lg_flow_query_parse(char **words, size_t n, struct lg_flow_query *q, char *err, size_t errlen)
{
	memset(q, 0, sizeof(*q));
	q->state = -1;
	for (size_t i = 0; i < n; i++) {
		char *eq = strchr(words[i], '=');
		const char *key = words[i], *val;

		if (!eq || eq == words[i] || eq[1] == '\0') {
			snprintf(err, errlen, "filter '%.40s' is not key=value", words[i]);
			return -1;
		}
		*eq = '\0';
		val = eq + 1;
		if (strcmp(key, "proto") == 0) {
			if (strcmp(val, "tcp") == 0)
				continue;
			if (strcmp(val, "udp") != 0 && strcmp(val, "icmp") != 0) {
				snprintf(err, errlen, "unknown protocol '%.20s' (tcp, udp, icmp)", val);
				return -1;
			}
			q->proto_none = true; /* only TCP is tracked so far */
		} else if (strcmp(key, "inside") == 0 || strcmp(key, "remote") == 0) {
			if (parse_endpoint(val, key[0] == 'i' ? &q->inside : &q->remote) < 0) {
				snprintf(err, errlen, "%s '%.40s' is not ADDR, ADDR:PORT or PREFIX/LEN", key, val);
				return -1;
			}
		} else if (strcmp(key, "port") == 0) {
			if (parse_port(val, &q->port) < 0) {
				snprintf(err, errlen, "port '%.20s' is not 1..65535", val);
				return -1;
			}
		} else if (strcmp(key, "service") == 0) {
			if (parse_service(val, &q->service) < 0) {
				snprintf(err, errlen, "unknown service '%.20s' (imap, submission, smtp, "
					 "imaps, submissions, sieve, acap)", val);
				return -1;
			}
		} else if (strcmp(key, "state") == 0) {
			q->state = parse_state(val);
			if (q->state < 0) {
				snprintf(err, errlen, "unknown state '%.20s' (init, init_in, established, "
					 "c_fin_rcv, s_fin_rcv, cs_fin_rcv, trans)", val);
				return -1;
			}
		} else if (strcmp(key, "idle_over") == 0) {
			if (lg_duration_parse(val, &q->idle_over) < 0) {
				snprintf(err, errlen, "idle_over '%.20s' is not a duration", val);
				return -1;
			}
		} else if (strcmp(key, "sort") == 0) {
			if (strcmp(val, "idle") == 0)
				q->sort = LG_SORT_IDLE;
			else if (strcmp(val, "age") == 0)
				q->sort = LG_SORT_AGE;
			else if (strcmp(val, "bytes") == 0)
				q->sort = LG_SORT_BYTES;
			else {
				snprintf(err, errlen, "sort '%.20s' is not idle, age or bytes", val);
				return -1;
			}
		} else if (strcmp(key, "limit") == 0) {
			unsigned long v;

			if (lg_uint_parse(val, 1, ULONG_MAX, &v) < 0) {
				snprintf(err, errlen, "limit '%.20s' is not a positive number", val);
				return -1;
			}
			q->limit = (size_t)v;
		} else {
			snprintf(err, errlen, "unknown filter '%.20s'", key);
			return -1;
		}
	}
	return 0;
}

bool lg_flow_query_match(const struct lg_flow_query *q, const struct lg_flow_view *v)
{
	const struct lg_flow *f = &v->flow;

	if (q->proto_none)
		return false;
	if (!endpoint_match(&q->inside, v, true) || !endpoint_match(&q->remote, v, false))
		return false;
	if (q->port && q->port != f->in_port && q->port != f->pub_port && q->port != f->rem_port)
		return false;
	if (q->state >= 0 && f->state != q->state)
		return false;
	if (q->service) {
		const char *service = lg_flow_service(v);

		if (!service || strcmp(q->service, service) != 0)
			return false;
	}
	return v->idle_s > q->idle_over || q->idle_over == 0;
}

static uint64_t sort_key(enum lg_flow_sort sort, const struct lg_flow_view *v)
{
	switch (sort) {
	case LG_SORT_IDLE: return v->idle_s;
	case LG_SORT_AGE: return v->age_s;
	case LG_SORT_BYTES: return v->flow.bytes_in + v->flow.bytes_out;
	default: return 0;
	}
}

static enum lg_flow_sort current_sort;

/* Largest first; ties by flow id so that the order is stable from one call to the next. */
static int compare_views(const void *a, const void *b)
{
	const struct lg_flow_view *x = a, *y = b;
	uint64_t kx = sort_key(current_sort, x), ky = sort_key(current_sort, y);

	if (kx != ky)
		return kx > ky ? -1 : 1;
	return x->flow.id < y->flow.id ? -1 : x->flow.id > y->flow.id;
}

size_t lg_flow_query_apply(const struct lg_flow_query *q, struct lg_flow_view *views, size_t n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++)
		if (lg_flow_query_match(q, &views[i]))
			views[kept++] = views[i];
	if (q->sort != LG_SORT_NONE) {
		/* the control socket is served from one thread, so a file-scope key is safe */
		current_sort = q->sort;
		qsort(views, kept, sizeof(*views), compare_views);
	}
	if (q->limit && kept > q->limit)
		kept = q->limit;
	return kept;
}
