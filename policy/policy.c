#include "policy/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void lg_policy_defaults(struct lg_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->port_lo = 1024;
	pol->port_hi = 65535;
	pol->host_quota = 4096;
	pol->port_rest = 120;
	pol->queue_first = 0;
	pol->queue_count = 1;
	pol->queue_length = 4096;
	pol->max_flows = 262144;
	pol->overload = LG_OVERLOAD_EVICT;
	/* RFC 5383 section 3 and RFC 4550: IMAP, Submission, their TLS ports and ManageSieve */
	static const uint16_t mail[] = { 143, 587, 993, 465, 4190 };
	memcpy(pol->mail_ports, mail, sizeof(mail));
	pol->mail_port_count = sizeof(mail) / sizeof(mail[0]);
	for (enum lg_mail_service m = LG_MAIL_IMAP; m < LG_MAIL_SERVICES; m++) {
		pol->observed[pol->observed_count].port = lg_mail_default_port(m);
		pol->observed[pol->observed_count++].service = (uint8_t)m;
	}
	pol->observe_sessions = LG_DEFAULT_OBSERVED;
	pol->offload_after = LG_DEFAULT_OFFLOAD_AFTER;
	pol->timeout_established = LG_EST_IDLE_FLOOR;
	pol->timeout_transitory = LG_TRANS_IDLE_FLOOR;
	pol->timeout_query = LG_QUERY_IDLE_FLOOR;
	pol->max_flows6 = 65536;
	pol->log_level = 2;
}

unsigned lg_policy_port_timeout(const struct lg_policy *pol, uint16_t port_be)
{
	for (size_t i = 0; i < pol->port_timeout_count; i++)
		if (pol->port_timeouts[i].port == ntohs(port_be))
			return (unsigned)i + 1;
	return 0;
}

uint16_t lg_mail_default_port(enum lg_mail_service s)
{
	static const uint16_t port[LG_MAIL_SERVICES] = { 0, 143, 587, 25, 993, 465, 4190 };

	return (unsigned)s < LG_MAIL_SERVICES ? port[s] : 0;
}

const char *lg_mail_service_name(enum lg_mail_service s)
{
	static const char *const name[LG_MAIL_SERVICES] = { "none",  "imap",	    "submission", "smtp",
							    "imaps", "submissions", "sieve" };

	return (unsigned)s < LG_MAIL_SERVICES ? name[s] : "none";
}

enum lg_mail_service lg_policy_mail_service(const struct lg_policy *pol, uint16_t port)
{
	for (size_t i = 0; i < pol->observed_count; i++)
		if (pol->observed[i].port == port)
			return (enum lg_mail_service)pol->observed[i].service;
	return LG_MAIL_NONE;
}

bool lg_policy_is_mail_port(const struct lg_policy *pol, uint16_t port_be)
{
	for (size_t i = 0; i < pol->mail_port_count; i++)
		if (pol->mail_ports[i] == ntohs(port_be))
			return true;
	return false;
}

static uint32_t prefix_mask(uint8_t len)
{
	return len == 0 ? 0 : htonl(0xffffffffu << (32 - len));
}

size_t lg_policy_public(const struct lg_policy *pol, const uint32_t **addrs)
{
	if (pol->nat_pool_count) {
		*addrs = pol->nat_pool;
		return pol->nat_pool_count;
	}
	*addrs = &pol->nat_public;
	return 1;
}

bool lg_policy_is_inside(const struct lg_policy *pol, uint32_t addr_be)
{
	for (size_t i = 0; i < pol->nat_inside_count; i++) {
		const struct lg_prefix4 *p = &pol->nat_inside[i];

		if ((addr_be & prefix_mask(p->len)) == p->addr)
			return true;
	}
	return false;
}

static void note_change(char *buf, size_t size, size_t *n, const char *name)
{
	size_t len = strlen(buf);

	if (len < size)
		snprintf(buf + len, size - len, "%s%s", *n ? ", " : "", name);
	(*n)++;
}

/* Field by field: the structs' padding may hold anything. */
static bool same_prefixes4(const struct lg_prefix4 *a, size_t na, const struct lg_prefix4 *b,
			   size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].addr != b[i].addr || a[i].len != b[i].len)
			return false;
	return true;
}

static bool same_prefixes6(const struct lg_prefix6 *a, size_t na, const struct lg_prefix6 *b,
			   size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (memcmp(a[i].addr, b[i].addr, 16) != 0 || a[i].len != b[i].len)
			return false;
	return true;
}

size_t lg_policy_fixed_changes(const struct lg_policy *old, const struct lg_policy *new_pol,
			       char *buf, size_t size)
{
	size_t n = 0;

	if (size)
		buf[0] = '\0';
#define FIXED(cond, name)                              \
	do {                                           \
		if (cond)                              \
			note_change(buf, size, &n, name); \
	} while (0)
	FIXED(strcmp(old->inside_if, new_pol->inside_if) != 0, "interface inside");
	FIXED(strcmp(old->outside_if, new_pol->outside_if) != 0, "interface outside");
	FIXED(!same_prefixes4(old->nat_inside, old->nat_inside_count, new_pol->nat_inside,
			      new_pol->nat_inside_count),
	      "nat inside");
	{
		const uint32_t *a, *b;
		size_t na = lg_policy_public(old, &a), nb = lg_policy_public(new_pol, &b);

		FIXED(na != nb || memcmp(a, b, na * sizeof(*a)) != 0, "nat public");
	}
	FIXED(old->port_lo != new_pol->port_lo || old->port_hi != new_pol->port_hi, "nat ports");
	FIXED(old->port_state_off != new_pol->port_state_off ||
		      strcmp(old->port_state, new_pol->port_state) != 0,
	      "nat port-state");
	FIXED(old->queue_first != new_pol->queue_first || old->queue_count != new_pol->queue_count ||
		      old->queue_length != new_pol->queue_length ||
		      old->queue_fail_open != new_pol->queue_fail_open,
	      "queue");
	FIXED(old->max_flows != new_pol->max_flows, "max-flows");
	FIXED(old->observe_sessions != new_pol->observe_sessions, "observe sessions");
	FIXED((old->offload_after == 0) != (new_pol->offload_after == 0), "offload on or off");
	FIXED(!same_prefixes6(old->inside6, old->inside6_count, new_pol->inside6,
			      new_pol->inside6_count),
	      "ipv6 inside");
	FIXED(old->max_flows6 != new_pol->max_flows6, "ipv6 max-flows");
	FIXED(strcmp(old->control_socket, new_pol->control_socket) != 0, "control socket");
	FIXED(strcmp(old->control_group, new_pol->control_group) != 0, "control group");
#undef FIXED
	return n;
}

bool lg_prefix6_contains(const struct lg_prefix6 *p, const uint8_t addr[16])
{
	size_t whole = p->len / 8, bits = p->len % 8;

	if (memcmp(p->addr, addr, whole) != 0)
		return false;
	return bits == 0 || ((p->addr[whole] ^ addr[whole]) & (uint8_t)(0xff << (8 - bits))) == 0;
}

bool lg_policy_is_inside6(const struct lg_policy *pol, const uint8_t addr[16])
{
	for (size_t i = 0; i < pol->inside6_count; i++)
		if (lg_prefix6_contains(&pol->inside6[i], addr))
			return true;
	return false;
}

int lg_prefix6_parse(const char *text, struct lg_prefix6 *out)
{
	char buf[INET6_ADDRSTRLEN + 4];
	const char *slash = strchr(text, '/');
	unsigned long len = 128;
	struct lg_prefix6 whole;

	if (strlen(text) >= sizeof(buf))
		return -1;
	if (slash) {
		if (lg_uint_parse(slash + 1, 0, 128, &len) < 0)
			return -1;
		memcpy(buf, text, (size_t)(slash - text));
		buf[slash - text] = '\0';
	} else {
		strcpy(buf, text);
	}
	if (inet_pton(AF_INET6, buf, out->addr) != 1)
		return -1;
	out->len = (uint8_t)len;
	/* host bits set: almost always a typo */
	memset(&whole, 0, sizeof(whole));
	memcpy(whole.addr, out->addr, 16);
	for (size_t bit = len; bit < 128; bit++)
		whole.addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	return memcmp(whole.addr, out->addr, 16) == 0 ? 0 : -1;
}

int lg_uint_parse(const char *text, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (text[0] < '0' || text[0] > '9')
		return -1; /* strtoul would take blanks and signs */
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int lg_addr4_parse(const char *text, uint32_t *addr_be)
{
	struct in_addr a;

	if (inet_pton(AF_INET, text, &a) != 1)
		return -1;
	*addr_be = a.s_addr;
	return 0;
}

int lg_prefix4_parse(const char *text, struct lg_prefix4 *out)
{
	char buf[INET_ADDRSTRLEN + 4];
	const char *slash = strchr(text, '/');
	unsigned long len = 32;

	if (strlen(text) >= sizeof(buf))
		return -1;
	if (slash) {
		char *end;

		if (slash[1] < '0' || slash[1] > '9')
			return -1;
		len = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || len > 32)
			return -1;
		memcpy(buf, text, (size_t)(slash - text));
		buf[slash - text] = '\0';
	} else {
		strcpy(buf, text);
	}
	if (lg_addr4_parse(buf, &out->addr) < 0)
		return -1;
	out->len = (uint8_t)len;
	if ((out->addr & ~prefix_mask(out->len)) != 0)
		return -1; /* host bits set: almost always a typo */
	return 0;
}

void lg_diags_print(const struct lg_diags *diags, FILE *out)
{
	for (size_t i = 0; i < diags->count; i++) {
		const struct lg_diag *d = &diags->items[i];

		fprintf(out, "%s:%u:%u: %s: %s\n", diags->file, d->line, d->col,
			d->level == LG_DIAG_ERROR ? "error" : "warning", d->msg);
	}
	if (diags->dropped)
		fprintf(out, "%s: %zu more diagnostics not shown\n", diags->file, diags->dropped);
}

void lg_policy_summary(const struct lg_policy *pol, FILE *out)
{
	char addr[INET_ADDRSTRLEN], est[32], trans[32];

	fprintf(out, "interfaces: inside %s, outside %s\n", pol->inside_if, pol->outside_if);
	fprintf(out, "nat inside:");
	for (size_t i = 0; i < pol->nat_inside_count; i++) {
		inet_ntop(AF_INET, &pol->nat_inside[i].addr, addr, sizeof(addr));
		fprintf(out, " %s/%u", addr, pol->nat_inside[i].len);
	}
	{
		const uint32_t *pub;
		size_t npub = lg_policy_public(pol, &pub);

		fprintf(out, "\nnat public:");
		for (size_t i = 0; i < npub; i++) {
			inet_ntop(AF_INET, &pub[i], addr, sizeof(addr));
			fprintf(out, " %s", addr);
		}
		fprintf(out, " ports %u-%u%s\n", pol->port_lo, pol->port_hi,
			npub > 1 ? "; each inside address always uses the same one (paired pooling)" : "");
	}
	fprintf(out, "nat quota: %u ports per inside host; a released port rests %u s\n",
		pol->host_quota, pol->port_rest);
	fprintf(out, "port ledger (rest kept across restarts): %s\n",
		pol->port_state_off ? "none" : pol->port_state[0] ? pol->port_state
								   : "(default for this network namespace)");
	fprintf(out, "nat mapping: endpoint-independent; filtering: %s\n",
		pol->filtering == LG_FILTER_ADDRESS_DEPENDENT ? "address-dependent"
							       : "endpoint-independent");
	fprintf(out, "unsolicited inbound SYN: held 6 s, then %s\n",
		pol->unsolicited_syn == LG_UNSOLICITED_SILENT ? "dropped silently"
							      : "ICMP port unreachable");
	fprintf(out, "new flow refused (no port, quota, table full): dropped, %s\n",
		pol->refusal == LG_REFUSAL_SILENT		? "no answer"
		: pol->refusal == LG_REFUSAL_ADMIN_PROHIBITED ? "ICMP 3/13 (administratively prohibited)"
							      : "ICMP 3/1 (host unreachable)");
	fprintf(out, "queues: %u-%u (%u thread%s), %u packets each; on failure: %s\n",
		pol->queue_first, pol->queue_first + pol->queue_count - 1, pol->queue_count,
		pol->queue_count == 1 ? "" : "s", pol->queue_length,
		pol->queue_fail_open ? "open (packets pass untranslated and unfiltered)"
				     : "closed (packets are dropped)");
	lg_duration_format(pol->timeout_established, est, sizeof(est));
	lg_duration_format(pol->timeout_transitory, trans, sizeof(trans));
	fprintf(out, "timeouts: established %s, transitory %s, no duration limit\n", est, trans);
	lg_duration_format(pol->timeout_query, est, sizeof(est));
	fprintf(out, "ICMP echo sessions: NATed, idle timeout %s\n", est);
	for (size_t i = 0; i < pol->port_timeout_count; i++) {
		lg_duration_format(pol->port_timeouts[i].secs, est, sizeof(est));
		fprintf(out, "timeout established to port %u: %s\n", pol->port_timeouts[i].port, est);
	}
	fprintf(out, "max flows: %u; when full: %s\n", pol->max_flows,
		pol->overload == LG_OVERLOAD_DROP_NEW
			? "drop new flows (transitory ones may be evicted)"
			: "evict transitory, then longest idle, mail flows last");
	if (pol->offload_after)
		fprintf(out, "kernel NAT offload: after %u packets of an established flow\n",
			pol->offload_after);
	else
		fprintf(out, "kernel NAT offload: off (every packet translated by lemongated)\n");
	fprintf(out, "mail ports:");
	for (size_t i = 0; i < pol->mail_port_count; i++)
		fprintf(out, " %u", pol->mail_ports[i]);
	fprintf(out, "\n");
	if (pol->observe_sessions && pol->observed_count) {
		fprintf(out, "mail sessions observed (passively, %u at once at most):", pol->observe_sessions);
		for (size_t i = 0; i < pol->observed_count; i++)
			fprintf(out, "%s %s %u", i ? "," : "",
				lg_mail_service_name((enum lg_mail_service)pol->observed[i].service),
				pol->observed[i].port);
		fprintf(out, "\n");
	} else {
		fprintf(out, "mail sessions observed: none\n");
	}
	if (pol->inside6_count) {
		fprintf(out, "ipv6 inside (stateful filtering, no translation, same timers):");
		for (size_t i = 0; i < pol->inside6_count; i++) {
			char a6[INET6_ADDRSTRLEN];

			inet_ntop(AF_INET6, pol->inside6[i].addr, a6, sizeof(a6));
			fprintf(out, " %s/%u", a6, pol->inside6[i].len);
		}
		fprintf(out, "; max flows %u\n", pol->max_flows6);
	} else {
		fprintf(out, "ipv6: not filtered (no 'ipv6 inside' prefix)\n");
	}
	fprintf(out, "log: level %s, mappings %s\n",
		(const char *const[]){ "error", "warning", "info", "debug" }[pol->log_level & 3],
		pol->log_mappings_off ? "not logged" : "logged (create and release)");
	fprintf(out, "rules: %zu%s\n", pol->rule_count,
		pol->rule_count ? ", first match decides, none matching passes" : " (everything passes)");
	for (size_t i = 0; i < pol->rule_count; i++) {
		char rule[512];

		lg_rule_format(&pol->rules[i], rule, sizeof(rule));
		fprintf(out, "  line %u: %s\n", pol->rules[i].line, rule);
	}
	fprintf(out, "control socket: %s; %s%s%s\n",
		pol->control_socket[0] ? pol->control_socket : "(default for this network namespace)",
		pol->control_group[0] ? "root, and group " : "root only",
		pol->control_group, pol->control_group[0] ? " may read" : "");
}
