#define _GNU_SOURCE /* SO_PEERCRED, accept4 */
#include "dataplane/control.h"

#include "dataplane/clock.h"
#include "dataplane/flowquery.h"
#include "dataplane/knat.h"
#include "dataplane/log.h"
#include "dataplane/tcpstate.h"
#include "lg_control_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_IO_TIMEOUT_MS 1000
#define CTL_MAX_WORDS     16

struct lg_control {
	int fd;
	long read_gid;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct lg_control *lg_control_open(const char *path, long read_gid, char *err, size_t errlen)
{
	struct lg_control *c = calloc(1, sizeof(*c));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	char *slash;
	mode_t old;

	if (!c || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path too long");
		free(c);
		return NULL;
	}
	c->read_gid = read_gid;
	strcpy(c->path, path);
	strcpy(sa.sun_path, path);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
			free(c);
			return NULL;
		}
		/* the group must reach the socket: it may list the directory, never write it */
		if (read_gid >= 0 && (chown(dir, 0, (gid_t)read_gid) < 0 || chmod(dir, 0750) < 0)) {
			snprintf(err, errlen, "%s: group %ld: %s", dir, read_gid, strerror(errno));
			free(c);
			return NULL;
		}
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		free(c);
		return NULL;
	}
	unlink(path); /* a stale socket from a crashed run; a live daemon is refused earlier */
	old = umask(0077);
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(c->fd, 16) < 0) {
		snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
		umask(old);
		close(c->fd);
		free(c);
		return NULL;
	}
	umask(old);
	if (read_gid >= 0 && (chown(path, 0, (gid_t)read_gid) < 0 || chmod(path, 0660) < 0)) {
		snprintf(err, errlen, "%s: group %ld: %s", path, read_gid, strerror(errno));
		close(c->fd);
		unlink(path);
		free(c);
		return NULL;
	}
	return c;
}

int lg_control_fd(const struct lg_control *c)
{
	return c->fd;
}

void lg_control_close(struct lg_control *c)
{
	if (!c)
		return;
	close(c->fd);
	unlink(c->path);
	free(c);
}

static void fmt_endpoint(uint32_t addr, uint16_t port, char *buf, size_t size)
{
	char a[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &addr, a, sizeof(a));
	snprintf(buf, size, "%s:%u", a, ntohs(port));
}

/* "[2001:db8::2]:143", as in URLs (RFC 3986), so that the port is never ambiguous. */
static void fmt_endpoint6(const uint8_t addr[16], uint16_t port, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(AF_INET6, addr, a, sizeof(a));
	snprintf(buf, size, "[%s]:%u", a, ntohs(port));
}

/* Extension bits as a comma list ("-" for none): values hold no blanks. */
static void print_exts(FILE *out, const char *key, uint32_t bits)
{
	bool first = true;

	fputs(key, out);
	for (unsigned b = 0; b < LG_EXT_COUNT; b++)
		if (bits & (1u << b)) {
			fprintf(out, "%s%s", first ? "" : ",", lg_obs_ext_name(b));
			first = false;
		}
	if (first)
		fputc('-', out);
}

static void print_flow(FILE *out, const struct lg_flow_view *v, bool detail)
{
	const struct lg_flow *f = &v->flow;
	char in[56], pub[56], rem[56];

	if (v->family == 6) {
		fmt_endpoint6(v->in6, f->in_port, in, sizeof(in));
		fmt_endpoint6(v->in6, f->pub_port, pub, sizeof(pub));
		fmt_endpoint6(v->rem6, f->rem_port, rem, sizeof(rem));
	} else {
		fmt_endpoint(f->in_addr, f->in_port, in, sizeof(in));
		fmt_endpoint(v->pub_addr, f->pub_port, pub, sizeof(pub));
		fmt_endpoint(f->rem_addr, f->rem_port, rem, sizeof(rem));
	}
	fprintf(out,
		"flow id=%u proto=tcp inside=%s public=%s remote=%s state=%s idle=%llu age=%llu "
		"expires_in=%llu packets_out=%llu packets_in=%llu bytes_out=%llu bytes_in=%llu "
		"family=ipv%u",
		f->id, in, pub, rem, lg_tcp_state_name(f->state), (unsigned long long)v->idle_s,
		(unsigned long long)v->age_s, (unsigned long long)v->expires_in_s,
		(unsigned long long)f->pkts_out, (unsigned long long)f->pkts_in,
		(unsigned long long)f->bytes_out, (unsigned long long)f->bytes_in, v->family);
	if (v->observed) {
		/* what the passive observer saw: the service, where the session is, how long idle */
		fprintf(out, " mail=%s phase=%s", lg_mail_service_name(v->obs.service),
			lg_obs_phase_name(v->obs.phase));
		if (v->obs.phase == LG_PHASE_IDLE && v->obs.idle_since_s <= v->flow.last_s + v->idle_s)
			fprintf(out, " in_idle=%llu",
				(unsigned long long)(v->flow.last_s + v->idle_s - v->obs.idle_since_s));
	}
	if (v->observed) {
		print_exts(out, " server_extensions=", v->obs.server_ext);
		print_exts(out, " client_extensions=", v->obs.client_ext);
	}
	if (detail && v->observed) {
		fprintf(out, " auth=%s observed_client_bytes=%llu observed_server_bytes=%llu",
			v->obs.auth[0] ? v->obs.auth : "-", (unsigned long long)v->obs.bytes[0],
			(unsigned long long)v->obs.bytes[1]);
	}
	if (detail) {
		const struct lg_tcp_track *t = &f->track;

		fprintf(out,
			" service=%s opened_from=%s timeout=%llu timer=%s eviction=%s "
			"inside_next_seq=%u outside_next_seq=%u "
			"inside_window=%u outside_window=%u inside_wscale=%d outside_wscale=%d",
			lg_flow_service(v) ? lg_flow_service(v) : "-",
			(f->flags & LG_FLOW_INBOUND) ? "outside" : "inside", (unsigned long long)v->timeout_s,
			lg_tcp_is_transitory(f->state) ? "transitory" : "established",
			lg_tcp_is_transitory(f->state) ? "first"
			: (f->flags & LG_FLOW_MAIL) ? "last" : "idle-order", t->seq_end[0],
			t->seq_end[1], t->win[0], t->win[1], t->wscale[0], t->wscale[1]);
	}
	fputc('\n', out);
}

/* The flows a query selects, gathered in a growing array: only matches are copied, so a
 * narrow query on a large table costs a walk, not a copy of the table. */
struct selection {
	const struct lg_flow_query *q;
	struct lg_flow_view *views;
	size_t n, cap;
	bool out_of_memory;
};

static bool select_one(const struct lg_flow_view *v, void *arg)
{
	struct selection *s = arg;

	if (!lg_flow_query_match(s->q, v))
		return true;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct lg_flow_view *grown = realloc(s->views, cap * sizeof(*grown));

		if (!grown) {
			s->out_of_memory = true;
			return false;
		}
		s->views = grown;
		s->cap = cap;
	}
	s->views[s->n++] = *v;
	return true;
}

static void answer_flows(const struct lg_control_ctx *ctx, char **filters, size_t nfilters,
			 FILE *out)
{
	struct lg_flow_query q;
	struct selection s = { .q = &q };
	char err[160];
	size_t n;

	if (lg_flow_query_parse(filters, nfilters, &q, err, sizeof(err)) < 0) {
		fprintf(out, "error %s\n", err);
		return;
	}
	lg_engine_flows_each(ctx->engine, lg_clock_now_ns(), select_one, &s);
	if (s.out_of_memory) {
		free(s.views);
		fprintf(out, "error out of memory for %zu flows; narrow the query\n", s.n);
		return;
	}
	n = lg_flow_query_apply(&q, s.views, s.n);
	fprintf(out, "ok\n");
	for (size_t i = 0; i < n; i++)
		print_flow(out, &s.views[i], false);
	free(s.views);
}

struct by_id {
	uint32_t id;
	struct lg_flow_view found;
	bool have;
};

static bool find_id(const struct lg_flow_view *v, void *arg)
{
	struct by_id *b = arg;

	if (v->flow.id != b->id)
		return true;
	b->found = *v;
	b->have = true;
	return false;
}

static void answer_flow(const struct lg_control_ctx *ctx, const char *id_text, FILE *out)
{
	struct by_id b = { 0 };
	unsigned long id;
	char *end;

	id = strtoul(id_text, &end, 10);
	if (*end || id_text[0] < '1' || id_text[0] > '9' || id > UINT32_MAX) {
		fprintf(out, "error flow id '%.20s' is not a number\n", id_text);
		return;
	}
	b.id = (uint32_t)id;
	lg_engine_flows_each(ctx->engine, lg_clock_now_ns(), find_id, &b);
	if (!b.have) {
		fprintf(out, "error no flow with id %lu (it may have expired)\n", id);
		return;
	}
	fprintf(out, "ok\n");
	print_flow(out, &b.found, true);
}

/* The scalar counters, in the order 'stats' prints them; the names are a stable interface. */
static const struct stat_field {
	const char *name;
	size_t offset;
} stat_fields[] = {
	{ "packets_out", offsetof(struct lg_engine_stats, packets_out) },
	{ "packets_in", offsetof(struct lg_engine_stats, packets_in) },
	{ "bytes_out", offsetof(struct lg_engine_stats, bytes_out) },
	{ "bytes_in", offsetof(struct lg_engine_stats, bytes_in) },
	{ "passed_untranslated", offsetof(struct lg_engine_stats, passed_untranslated) },
	{ "verdict_accept_packets", offsetof(struct lg_engine_stats, verdict_accept_packets) },
	{ "verdict_accept_bytes", offsetof(struct lg_engine_stats, verdict_accept_bytes) },
	{ "verdict_drop_packets", offsetof(struct lg_engine_stats, verdict_drop_packets) },
	{ "verdict_drop_bytes", offsetof(struct lg_engine_stats, verdict_drop_bytes) },
	{ "flows_active", offsetof(struct lg_engine_stats, flows_active) },
	{ "flows_capacity", offsetof(struct lg_engine_stats, flows_capacity) },
	{ "flows6_active", offsetof(struct lg_engine_stats, flows6_active) },
	{ "flows6_capacity", offsetof(struct lg_engine_stats, flows6_capacity) },
	{ "mappings_active", offsetof(struct lg_engine_stats, mappings_active) },
	{ "echo_sessions_active", offsetof(struct lg_engine_stats, echo_sessions_active) },
	{ "echo_sessions_expired", offsetof(struct lg_engine_stats, echo_sessions_expired) },
	{ "icmp_echo_out", offsetof(struct lg_engine_stats, icmp_echo_out) },
	{ "icmp_echo_in", offsetof(struct lg_engine_stats, icmp_echo_in) },
	{ "flows_created", offsetof(struct lg_engine_stats, flows_created) },
	{ "flows_expired", offsetof(struct lg_engine_stats, flows_expired) },
	{ "evicted_transitory", offsetof(struct lg_engine_stats, evicted_transitory) },
	{ "evicted_idle", offsetof(struct lg_engine_stats, evicted_idle) },
	{ "evicted_mail", offsetof(struct lg_engine_stats, evicted_mail) },
	{ "table_bytes", offsetof(struct lg_engine_stats, table_bytes) },
	{ "hairpinned", offsetof(struct lg_engine_stats, hairpinned) },
	{ "rst_out_of_window", offsetof(struct lg_engine_stats, rst_out_of_window) },
	{ "syn_held", offsetof(struct lg_engine_stats, syn_held) },
	{ "syn_hold_superseded", offsetof(struct lg_engine_stats, syn_hold_superseded) },
	{ "syn_hold_silent", offsetof(struct lg_engine_stats, syn_hold_silent) },
	{ "syn_hold_overflow", offsetof(struct lg_engine_stats, syn_hold_overflow) },
	{ "icmp_port_unreachable_sent", offsetof(struct lg_engine_stats, icmp_port_unreachable_sent) },
	{ "icmp_host_unreachable_sent", offsetof(struct lg_engine_stats, icmp_host_unreachable_sent) },
	{ "icmp_admin_prohibited_sent", offsetof(struct lg_engine_stats, icmp_admin_prohibited_sent) },
	{ "flows_ended_by_rule", offsetof(struct lg_engine_stats, flows_ended_by_rule) },
	{ "inbound_refused_by_inside", offsetof(struct lg_engine_stats, inbound_refused_by_inside) },
	{ "mail_sessions_observed", offsetof(struct lg_engine_stats, mail_sessions_observed) },
	{ "mail_observer_pool_full", offsetof(struct lg_engine_stats, mail_observer_pool_full) },
	{ "icmp_refusals_suppressed", offsetof(struct lg_engine_stats, icmp_refusals_suppressed) },
	{ "icmp_errors_translated_in", offsetof(struct lg_engine_stats, icmp_errors_in) },
	{ "icmp_errors_translated_out", offsetof(struct lg_engine_stats, icmp_errors_out) },
	{ "icmp_errors_hairpinned", offsetof(struct lg_engine_stats, icmp_errors_hairpinned) },
	{ "icmp_frag_needed_translated", offsetof(struct lg_engine_stats, icmp_frag_needed) },
	{ "flows_offloaded", offsetof(struct lg_engine_stats, flows_offloaded) },
	{ "offloads_refused", offsetof(struct lg_engine_stats, offloads_refused) },
	{ "packets_kernel_nat", offsetof(struct lg_engine_stats, packets_kernel_nat) },
};

static void answer_stats(const struct lg_control_ctx *ctx, FILE *out)
{
	struct lg_engine_stats st;
	size_t drops_at = 9; /* the per-reason drop and malformed counters print after 9 fields */

	lg_engine_stats(ctx->engine, &st);
	fprintf(out, "ok\n");
	for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
		uint64_t v;

		if (i == drops_at) {
			for (int r = 0; r < LG_DROP_REASON_COUNT; r++)
				fprintf(out, "stat name=drop_%s value=%llu\n",
					lg_drop_reason_name((enum lg_drop_reason)r),
					(unsigned long long)st.dropped[r]);
			for (int m = 1; m < LG_PKT_STATUS_COUNT; m++)
				fprintf(out, "stat name=malformed_%s value=%llu\n",
					lg_pkt_status_name((enum lg_pkt_status)m),
					(unsigned long long)st.malformed[m]);
		}
		memcpy(&v, (const char *)&st + stat_fields[i].offset, sizeof(v));
		fprintf(out, "stat name=%s value=%llu\n", stat_fields[i].name, (unsigned long long)v);
	}
	fprintf(out, "stat name=offload_kernel value=%d\n", ctx->knat != NULL);
	fprintf(out, "stat name=offloads_withdrawn value=%llu\n",
		ctx->knat ? (unsigned long long)lg_knat_stats(ctx->knat)->withdrawn : 0ull);
	/* mail sessions by service and phase: only those seen */
	{
		static uint64_t counts[LG_MAIL_SERVICES][LG_PHASE_COUNT];

		lg_engine_mail_counts(ctx->engine, counts);
		for (int sv = 1; sv < LG_MAIL_SERVICES; sv++)
			for (int ph = 0; ph < LG_PHASE_COUNT; ph++)
				if (counts[sv][ph])
					fprintf(out, "mail service=%s phase=%s sessions=%llu\n",
						lg_mail_service_name((enum lg_mail_service)sv),
						lg_obs_phase_name((enum lg_obs_phase)ph),
						(unsigned long long)counts[sv][ph]);
	}
	/* ICMP errors passed on, by type and code: only those seen */
	for (unsigned k = 0; k < LG_ICMP_KINDS; k++) {
		struct lg_icmp_kind kind = lg_icmp_kind_of(k);

		if (!st.icmp_by_kind[k])
			continue;
		if (kind.other)
			fprintf(out, "icmp family=ipv%u type=other code=other count=%llu\n", kind.family,
				(unsigned long long)st.icmp_by_kind[k]);
		else
			fprintf(out, "icmp family=ipv%u type=%u code=%u count=%llu\n", kind.family,
				kind.type, kind.code, (unsigned long long)st.icmp_by_kind[k]);
	}
	for (size_t i = 0; i < ctx->queue_count; i++) {
		const struct lg_nfq_stats *q = lg_nfq_stats(ctx->queues[i]);
		uint64_t full = 0, user = 0;
		bool kernel = lg_nfq_kernel_drops(ctx->queues[i], &full, &user) == 0;

		fprintf(out,
			"queue num=%u received=%llu accepted=%llu dropped=%llu receives=%llu "
			"sends=%llu batch_verdicts=%llu gso=%llu csum_completed=%llu truncated=%llu "
			"recv_errors=%llu "
			"send_errors=%llu enobufs=%llu",
			lg_nfq_number(ctx->queues[i]), (unsigned long long)q->received,
			(unsigned long long)q->accepted, (unsigned long long)q->dropped,
			(unsigned long long)q->receives, (unsigned long long)q->sends,
			(unsigned long long)q->batch_verdicts, (unsigned long long)q->gso,
			(unsigned long long)q->csum_completed, (unsigned long long)q->truncated,
			(unsigned long long)q->recv_errors,
			(unsigned long long)q->send_errors, (unsigned long long)q->enobufs);
		if (kernel)
			fprintf(out, " kernel_queue_full=%llu kernel_user_dropped=%llu",
				(unsigned long long)full, (unsigned long long)user);
		fputc('\n', out);
	}
}

static void answer_clock(const struct lg_control_ctx *ctx, char **words, size_t n, FILE *out)
{
	uint64_t secs;

	if (n != 3 || strcmp(words[1], "advance") != 0) {
		fprintf(out, "error usage: clock advance DURATION\n");
		return;
	}
	if (!lg_clock_is_test()) {
		fprintf(out, "error the test clock is off: start lemongated with --test-clock\n");
		return;
	}
	if (lg_duration_parse(words[2], &secs) < 0) {
		fprintf(out, "error '%s' is not a duration (like 2h3m)\n", words[2]);
		return;
	}
	size_t expired;

	lg_clock_advance(secs);
	/* Expire and answer at once, so that a test sees the result of the jump when this returns,
	 * without waiting for the main loop's next tick. */
	expired = lg_engine_expire(ctx->engine, lg_clock_now_ns());
	if (ctx->send_icmp)
		lg_engine_due(ctx->engine, lg_clock_now_ns(), ctx->send_icmp, ctx->send_icmp_arg);
	lg_log(LG_LOG_INFO, "test clock advanced by %llu s, %zu flows expired",
	       (unsigned long long)secs, expired);
	fprintf(out, "ok\nclock advanced=%llu expired=%zu\n", (unsigned long long)secs, expired);
}

static bool print_mapping(const struct lg_mapping_view *v, void *arg)
{
	FILE *out = arg;
	char in[INET_ADDRSTRLEN], pub[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &v->in_addr, in, sizeof(in));
	inet_ntop(AF_INET, &v->pub_addr, pub, sizeof(pub));
	if (v->proto == LG_IPPROTO_TCP)
		fprintf(out, "mapping proto=tcp inside=%s:%u public=%s:%u flows=%u\n", in,
			ntohs(v->in_port), pub, ntohs(v->pub_port), v->flows);
	else
		fprintf(out, "mapping proto=icmp inside=%s:%u public=%s:%u idle=%llu\n", in,
			ntohs(v->in_port), pub, ntohs(v->pub_port), (unsigned long long)v->idle_s);
	return true;
}

static void setting(FILE *out, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void setting(FILE *out, const char *name, const char *fmt, ...)
{
	va_list ap;

	fprintf(out, "setting name=%s value=", name);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
}

/* A list setting: comma-separated, "none" when empty. */
static void prefixes4(FILE *out, const char *name, const struct lg_prefix4 *p, size_t n)
{
	fprintf(out, "setting name=%s value=%s", name, n ? "" : "none");
	for (size_t i = 0; i < n; i++) {
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &p[i].addr, a, sizeof(a));
		fprintf(out, "%s%s/%u", i ? "," : "", a, p[i].len);
	}
	fputc('\n', out);
}

/* The policy in force, one setting per record and one record per rule: values without
 * blanks, as the protocol wants; names as in the configuration file, '-' and ' ' as '_'. */
static void answer_policy_show(const struct lg_control_ctx *ctx, FILE *out)
{
	const struct lg_policy *p = lg_engine_policy(ctx->engine);
	char a[INET6_ADDRSTRLEN];

	fprintf(out, "ok\n");
	setting(out, "interface_inside", "%s", p->inside_if);
	setting(out, "interface_outside", "%s", p->outside_if);
	prefixes4(out, "nat_inside", p->nat_inside, p->nat_inside_count);
	{
		const uint32_t *pub;
		size_t npub = lg_policy_public(p, &pub);

		fprintf(out, "setting name=nat_public value=");
		for (size_t i = 0; i < npub; i++) {
			inet_ntop(AF_INET, &pub[i], a, sizeof(a));
			fprintf(out, "%s%s", i ? "," : "", a);
		}
		fputc('\n', out);
	}
	setting(out, "nat_ports", "%u-%u", p->port_lo, p->port_hi);
	setting(out, "nat_quota", "%u", p->host_quota);
	setting(out, "nat_port_rest", "%u", p->port_rest);
	setting(out, "nat_port_state", "%s",
		p->port_state_off ? "none" : p->port_state[0] ? p->port_state : "default");
	setting(out, "nat_filtering", "%s",
		p->filtering == LG_FILTER_ADDRESS_DEPENDENT ? "address-dependent" : "endpoint-independent");
	setting(out, "nat_unsolicited_syn", "%s",
		p->unsolicited_syn == LG_UNSOLICITED_SILENT ? "silent" : "icmp");
	setting(out, "nat_refusal", "%s",
		p->refusal == LG_REFUSAL_SILENT		? "silent"
		: p->refusal == LG_REFUSAL_ADMIN_PROHIBITED ? "admin-prohibited"
							    : "host-unreachable");
	setting(out, "queue", "%u", p->queue_first);
	setting(out, "queue_count", "%u", p->queue_count);
	setting(out, "queue_length", "%u", p->queue_length);
	setting(out, "queue_failure", "%s", p->queue_fail_open ? "open" : "closed");
	setting(out, "max_flows", "%u", p->max_flows);
	setting(out, "overload", "%s", p->overload == LG_OVERLOAD_DROP_NEW ? "drop-new" : "evict");
	fprintf(out, "setting name=mail_ports value=");
	for (size_t i = 0; i < p->mail_port_count; i++)
		fprintf(out, "%s%u", i ? "," : "", p->mail_ports[i]);
	fprintf(out, "%s\n", p->mail_port_count ? "" : "none");
	fprintf(out, "setting name=observe_ports value=");
	for (size_t i = 0; i < p->observed_count; i++)
		fprintf(out, "%s%s:%u", i ? "," : "",
			lg_mail_service_name((enum lg_mail_service)p->observed[i].service),
			p->observed[i].port);
	fprintf(out, "%s\n", p->observed_count ? "" : "none");
	setting(out, "observe_sessions", "%u", p->observe_sessions);
	setting(out, "timeout_established", "%u", p->timeout_established);
	setting(out, "timeout_transitory", "%u", p->timeout_transitory);
	setting(out, "timeout_icmp_query", "%u", p->timeout_query);
	for (size_t i = 0; i < p->port_timeout_count; i++)
		fprintf(out, "setting name=timeout_port_%u value=%u\n", p->port_timeouts[i].port,
			p->port_timeouts[i].secs);
	fprintf(out, "setting name=ipv6_inside value=%s", p->inside6_count ? "" : "none");
	for (size_t i = 0; i < p->inside6_count; i++) {
		inet_ntop(AF_INET6, p->inside6[i].addr, a, sizeof(a));
		fprintf(out, "%s%s/%u", i ? "," : "", a, p->inside6[i].len);
	}
	fputc('\n', out);
	setting(out, "ipv6_max_flows", "%u", p->max_flows6);
	setting(out, "log_level", "%s",
		(const char *const[]){ "error", "warning", "info", "debug" }[p->log_level & 3]);
	setting(out, "log_mappings", "%s", p->log_mappings_off ? "off" : "on");
	setting(out, "control_group", "%s", p->control_group[0] ? p->control_group : "none");
	for (size_t i = 0; i < p->rule_count; i++) {
		char text[512];

		lg_rule_format(&p->rules[i], text, sizeof(text));
		/* the protocol's values hold no blanks: the rule's words joined by '_' would read
		 * badly, so the rule goes as its parts */
		fprintf(out, "rule line=%u text=", p->rules[i].line);
		for (char *c = text; *c; c++)
			fputc(*c == ' ' ? '+' : *c, out);
		fputc('\n', out);
	}
}

/* flush preview: what a flush would end. flush confirm: end it. */
static void answer_flush(const struct lg_control_ctx *ctx, const char *what, FILE *out)
{
	struct lg_engine_stats st;

	if (strcmp(what, "confirm") == 0) {
		size_t echoes, flows = lg_engine_flush(ctx->engine, lg_clock_now_ns(), &echoes);

		lg_log(LG_LOG_WARN, "flush: %zu flows and %zu echo sessions ended on request", flows,
		       echoes);
		fprintf(out, "ok\nflush flows_ended=%zu echo_sessions_ended=%zu\n", flows, echoes);
		return;
	}
	if (strcmp(what, "preview") != 0) {
		fprintf(out, "error usage: flush preview|confirm\n");
		return;
	}
	lg_engine_stats(ctx->engine, &st);
	fprintf(out, "ok\nflush flows=%llu flows6=%llu mappings=%llu echo_sessions=%llu\n",
		(unsigned long long)st.flows_active, (unsigned long long)st.flows6_active,
		(unsigned long long)st.mappings_active, (unsigned long long)st.echo_sessions_active);
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* Commands that change nothing: what a member of the control group may use. */
static bool read_only_command(char **words, size_t n)
{
	static const char *const single[] = { "ping", "flows", "flow", "stats", "mappings" };

	for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++)
		if (strcmp(words[0], single[i]) == 0)
			return true;
	return n == 2 && ((strcmp(words[0], "policy") == 0 && strcmp(words[1], "show") == 0) ||
			  (strcmp(words[0], "flush") == 0 && strcmp(words[1], "preview") == 0));
}

void lg_control_answer(const char *request, const struct lg_control_ctx *ctx, bool read_only,
		       FILE *out)
{
	char buf[LG_CTL_MAX_REQUEST + 1], *words[CTL_MAX_WORDS], *save = NULL, *w;
	size_t n = 0, magic_len = strlen(LG_CTL_MAGIC);

	if (strlen(request) > LG_CTL_MAX_REQUEST) {
		fprintf(out, "error request too long\n");
		return;
	}
	if (!printable(request)) {
		fprintf(out, "error request contains control or non-ASCII characters\n");
		return;
	}
	if (strncmp(request, LG_CTL_MAGIC, magic_len) != 0 ||
	    (request[magic_len] != ' ' && request[magic_len] != '\0')) {
		fprintf(out, "error unsupported protocol (this daemon speaks %s)\n", LG_CTL_MAGIC);
		return;
	}
	strcpy(buf, request + magic_len);
	for (w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (n == CTL_MAX_WORDS) {
			fprintf(out, "error too many arguments\n");
			return;
		}
		words[n++] = w;
	}
	if (n == 0) {
		fprintf(out, "error empty request\n");
		return;
	}
	if (read_only && !read_only_command(words, n)) {
		fprintf(out, "error permission denied: '%.40s' changes the daemon and needs root\n",
			words[0]);
		return;
	}
	if (strcmp(words[0], "ping") == 0 && n == 1) {
		struct lg_engine_stats st;

		lg_engine_stats(ctx->engine, &st);
		fprintf(out, "ok\ndaemon pid=%ld uptime=%llu test_clock=%s queues=%zu flows=%llu\n",
			(long)getpid(),
			(unsigned long long)((lg_clock_now_ns() - ctx->started_ns) / 1000000000ull),
			lg_clock_is_test() ? "yes" : "no", ctx->queue_count,
			(unsigned long long)st.flows_active);
	} else if (strcmp(words[0], "flows") == 0) {
		answer_flows(ctx, words + 1, n - 1, out);
	} else if (strcmp(words[0], "flow") == 0 && n == 2) {
		answer_flow(ctx, words[1], out);
	} else if (strcmp(words[0], "stats") == 0 && n == 1) {
		answer_stats(ctx, out);
	} else if (strcmp(words[0], "clock") == 0) {
		answer_clock(ctx, words, n, out);
	} else if (strcmp(words[0], "mappings") == 0 && n == 1) {
		fprintf(out, "ok\n");
		lg_engine_mappings_each(ctx->engine, lg_clock_now_ns(), print_mapping, out);
	} else if (strcmp(words[0], "policy") == 0 && n == 2 && strcmp(words[1], "show") == 0) {
		answer_policy_show(ctx, out);
	} else if (strcmp(words[0], "flush") == 0 && n == 2) {
		answer_flush(ctx, words[1], out);
	} else if (strcmp(words[0], "policy") == 0 && n >= 2 && strcmp(words[1], "reload") == 0 &&
		   (n == 2 || (n == 3 && strcmp(words[2], "reevaluate") == 0))) {
		char msg[1024] = "";

		if (!ctx->reload) {
			fprintf(out, "error this daemon cannot reload\n");
		} else if (ctx->reload(ctx->reload_arg, msg, sizeof(msg)) < 0) {
			fprintf(out, "error %s\n", msg);
		} else if (n == 3) {
			size_t ended = lg_engine_reevaluate(ctx->engine, lg_clock_now_ns());

			lg_log(LG_LOG_INFO, "reload --reevaluate: %zu flows the rules refuse now ended",
			       ended);
			fprintf(out, "ok\nreload result=applied reevaluated=yes flows_ended=%zu\n", ended);
		} else {
			fprintf(out, "ok\nreload result=applied reevaluated=no\n");
		}
	} else {
		fprintf(out, "error unknown command '%.40s' or wrong arguments\n", words[0]);
	}
}

enum peer_access { PEER_DENIED, PEER_READ, PEER_ROOT };

/* Root may do anything; a member of the read group (primary or supplementary) may read. */
static enum peer_access peer_access(int fd, long read_gid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[256];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return PEER_DENIED;
	if (cred.uid == 0)
		return PEER_ROOT;
	if (read_gid < 0)
		return PEER_DENIED;
	if (cred.gid == (gid_t)read_gid)
		return PEER_READ;
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		for (size_t i = 0; i < len / sizeof(groups[0]); i++)
			if (groups[i] == (gid_t)read_gid)
				return PEER_READ;
	return PEER_DENIED;
}

/* Read one line within the time limit. Returns its length, or -1. */
static ssize_t read_request(int fd, char *buf, size_t size)
{
	size_t used = 0;

	while (used < size - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;
		char *nl;

		if (poll(&p, 1, CTL_IO_TIMEOUT_MS) <= 0)
			return -1;
		n = read(fd, buf + used, size - 1 - used);
		if (n <= 0)
			return -1;
		used += (size_t)n;
		buf[used] = '\0';
		nl = memchr(buf, '\n', used);
		if (nl) {
			*nl = '\0';
			return nl - buf;
		}
	}
	return -1;
}

static void write_all(int fd, const char *data, size_t len)
{
	while (len) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n;

		if (poll(&p, 1, CTL_IO_TIMEOUT_MS) <= 0)
			return;
		n = write(fd, data, len);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

void lg_control_serve(struct lg_control *c, const struct lg_control_ctx *ctx)
{
	char req[LG_CTL_MAX_REQUEST + 2];
	char *reply = NULL;
	size_t reply_len = 0;
	FILE *out;
	enum peer_access access;
	int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	out = open_memstream(&reply, &reply_len);
	if (!out) {
		close(fd);
		return;
	}
	access = peer_access(fd, c->read_gid);
	if (access == PEER_DENIED)
		fprintf(out, "error permission denied: the control socket is for root%s\n",
			c->read_gid >= 0 ? " and its group" : "");
	else if (read_request(fd, req, sizeof(req)) < 0)
		fprintf(out, "error no complete request line (at most %d bytes) within %d ms\n",
			LG_CTL_MAX_REQUEST, CTL_IO_TIMEOUT_MS);
	else
		lg_control_answer(req, ctx, access == PEER_READ, out);
	fclose(out);
	write_all(fd, reply, reply_len);
	free(reply);
	close(fd);
}
