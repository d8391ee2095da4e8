/* Firewall rules: the first rule that matches a new flow decides; none matching, it passes. */
#include "policy/policy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static bool addr_matches(const struct lg_addrmatch *m, uint8_t family, const uint8_t *addr)
{
	size_t whole = m->len / 8, bits = m->len % 8;

	if (m->family != family)
		return false;
	if (memcmp(m->addr, addr, whole) != 0)
		return false;
	return bits == 0 || ((m->addr[whole] ^ addr[whole]) & (uint8_t)(0xff << (8 - bits))) == 0;
}

static bool list_matches(const struct lg_addrmatch *list, uint8_t count, uint8_t family,
			 const uint8_t *addr)
{
	if (count == 0)
		return true;
	for (uint8_t i = 0; i < count; i++)
		if (addr_matches(&list[i], family, addr))
			return true;
	return false;
}

static bool rule_matches(const struct lg_rule *r, const struct lg_flow_desc *d)
{
	if (r->dir != d->dir || (r->proto != LG_RULE_ANY && r->proto != d->proto))
		return false;
	if (!list_matches(r->from, r->from_count, d->family, d->from) ||
	    !list_matches(r->to, r->to_count, d->family, d->to))
		return false;
	if (r->port_count == 0)
		return true;
	if (d->proto != LG_RULE_TCP)
		return false; /* a rule about ports says nothing of ICMP */
	for (uint8_t i = 0; i < r->port_count; i++)
		if (d->port >= r->port_lo[i] && d->port <= r->port_hi[i])
			return true;
	return false;
}

enum lg_rule_action lg_policy_rules_verdict(const struct lg_policy *pol, const struct lg_flow_desc *d,
					    unsigned *line)
{
	for (size_t i = 0; i < pol->rule_count; i++) {
		if (rule_matches(&pol->rules[i], d)) {
			if (line)
				*line = pol->rules[i].line;
			return pol->rules[i].action;
		}
	}
	if (line)
		*line = 0;
	return LG_RULE_PASS;
}

static void append(char *buf, size_t size, const char *text)
{
	size_t len = strlen(buf);

	if (len < size)
		snprintf(buf + len, size - len, "%s", text);
}

static void format_addrs(const struct lg_addrmatch *list, uint8_t count, char *buf, size_t size)
{
	append(buf, size, count > 1 ? " {" : "");
	for (uint8_t i = 0; i < count; i++) {
		char a[INET6_ADDRSTRLEN], item[INET6_ADDRSTRLEN + 6];

		inet_ntop(list[i].family == 6 ? AF_INET6 : AF_INET, list[i].addr, a, sizeof(a));
		if (list[i].len == (list[i].family == 6 ? 128 : 32))
			snprintf(item, sizeof(item), " %s", a);
		else
			snprintf(item, sizeof(item), " %s/%u", a, list[i].len);
		append(buf, size, item);
	}
	append(buf, size, count > 1 ? " }" : "");
}

void lg_rule_format(const struct lg_rule *r, char *buf, size_t size)
{
	static const char *const actions[] = { "pass", "block", "block return" };
	static const char *const protos[] = { "any", "tcp", "icmp" };

	if (!size)
		return;
	snprintf(buf, size, "%s %s", actions[r->action], r->dir == LG_RULE_IN ? "in" : "out");
	if (r->proto != LG_RULE_ANY) {
		append(buf, size, " proto ");
		append(buf, size, protos[r->proto]);
	}
	if (r->from_count) {
		append(buf, size, " from");
		format_addrs(r->from, r->from_count, buf, size);
	}
	if (r->to_count) {
		append(buf, size, " to");
		format_addrs(r->to, r->to_count, buf, size);
	}
	if (r->port_count) {
		append(buf, size, r->port_count > 1 ? " port {" : " port");
		for (uint8_t i = 0; i < r->port_count; i++) {
			char item[16];

			if (r->port_lo[i] == r->port_hi[i])
				snprintf(item, sizeof(item), " %u", r->port_lo[i]);
			else
				snprintf(item, sizeof(item), " %u-%u", r->port_lo[i], r->port_hi[i]);
			append(buf, size, item);
		}
		append(buf, size, r->port_count > 1 ? " }" : "");
	}
}
