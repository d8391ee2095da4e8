#include "lgtest.h"
#include "policy/policy.h"

#include <arpa/inet.h>

static const char good[] =
	"# testbed\n"
	"interface inside gw-in\n"
	"interface outside \"gw-out\"   # quoted\n"
	"nat inside 10.77.0.0/24 10.78.0.0/16\n"
	"nat public 198.51.100.1\n"
	"nat ports 20000-29999\n"
	"queue 3 failure open count 2 length 2048\n"
	"timeout established 3h\n"
	"timeout transitory 5m\n"
	"max-flows 1000\n"
	"nat filtering address-dependent\n"
	"nat unsolicited-syn silent\n"
	"nat quota 64\n"
	"overload drop-new\n"
	"mail ports 143 587 2525\n"
	"timeout port 143 1d\n"
	"nat port-rest 5m\n"
	"timeout icmp-query 2m\n";

static int parse(const char *text, struct lg_policy *pol, struct lg_diags *d)
{
	return lg_policy_parse("t.conf", text, strlen(text), pol, d);
}

/* Parse TEXT, expect failure with a first error at LINE:COL whose message contains WANT. */
static void expect_error(const char *text, unsigned line, unsigned col, const char *want)
{
	struct lg_policy pol;
	struct lg_diags d;
	int rc = parse(text, &pol, &d);

	CHECK(rc == -1, "parse of bad config succeeded (want '%s')", want);
	CHECK(d.count > 0, "no diagnostic for '%s'", want);
	if (d.count == 0)
		return;
	CHECK(d.items[0].line == line && d.items[0].col == col, "'%s' at %u:%u, want %u:%u",
	      d.items[0].msg, d.items[0].line, d.items[0].col, line, col);
	CHECK(strstr(d.items[0].msg, want) != NULL, "message '%s' lacks '%s'", d.items[0].msg, want);
}

static void test_good(void)
{
	struct lg_policy pol;
	struct lg_diags d;
	char buf[INET_ADDRSTRLEN];

	CHECK_EQ_INT(parse(good, &pol, &d), 0, "good config parses");
	CHECK_EQ_INT(d.count, 0, "no diagnostics");
	CHECK_EQ_STR(pol.inside_if, "gw-in", "inside if");
	CHECK_EQ_STR(pol.outside_if, "gw-out", "outside if");
	CHECK_EQ_INT(pol.nat_inside_count, 2, "two prefixes");
	CHECK_EQ_INT(pol.nat_inside[1].len, 16, "second prefix len");
	inet_ntop(AF_INET, &pol.nat_public, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "198.51.100.1", "public");
	CHECK_EQ_INT(pol.port_lo, 20000, "port lo");
	CHECK_EQ_INT(pol.port_hi, 29999, "port hi");
	CHECK_EQ_INT(pol.queue_first, 3, "queue first");
	CHECK_EQ_INT(pol.queue_count, 2, "queue count");
	CHECK_EQ_INT(pol.queue_length, 2048, "queue length");
	CHECK_EQ_INT(pol.timeout_query, 120, "timeout icmp-query");
	CHECK(pol.queue_fail_open, "queue failure open");
	CHECK_EQ_INT(pol.timeout_established, 10800, "est timeout");
	CHECK_EQ_INT(pol.timeout_transitory, 300, "trans timeout");
	CHECK_EQ_INT(pol.max_flows, 1000, "max flows");
	CHECK_EQ_INT(pol.filtering, LG_FILTER_ADDRESS_DEPENDENT, "N5382-R3: filtering configurable");
	CHECK_EQ_INT(pol.unsolicited_syn, LG_UNSOLICITED_SILENT, "N5382-R4a: silent drop configurable");
	CHECK_EQ_INT(pol.host_quota, 64, "C6888-R4: per-host quota configurable");
	CHECK_EQ_INT(pol.overload, LG_OVERLOAD_DROP_NEW, "overload policy");
	CHECK_EQ_INT(lg_policy_port_timeout(&pol, htons(143)), 1, "a per-service timer for 143");
	CHECK_EQ_INT(pol.port_timeouts[0].secs, 86400, "of a day");
	CHECK_EQ_INT(lg_policy_port_timeout(&pol, htons(587)), 0, "none for 587");
	CHECK_EQ_INT(pol.port_rest, 300, "C6888-R8: port rest configurable");
	CHECK_EQ_INT(pol.mail_port_count, 3, "three mail ports");
	CHECK(lg_policy_is_mail_port(&pol, htons(2525)), "2525 is a mail port here");
	CHECK(!lg_policy_is_mail_port(&pol, htons(993)), "993 is not, once the list is given");
	CHECK(lg_policy_is_inside(&pol, inet_addr("10.77.0.2")), "10.77.0.2 inside");
	CHECK(lg_policy_is_inside(&pol, inet_addr("10.78.200.1")), "10.78.200.1 inside");
	CHECK(!lg_policy_is_inside(&pol, inet_addr("198.51.100.2")), "server not inside");
}

static const char rules_base[] = "interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
				  "nat public 192.0.2.1\n";

static int parse_rules(const char *rules, struct lg_policy *pol, struct lg_diags *d)
{
	char text[2048];

	snprintf(text, sizeof(text), "%s%s", rules_base, rules);
	return parse(text, pol, d);
}

static enum lg_rule_action verdict(const struct lg_policy *pol, enum lg_rule_dir dir,
				   enum lg_rule_proto proto, const char *from, const char *to,
				   uint16_t port, unsigned *line)
{
	uint8_t f[16], t[16];
	int family = strchr(from, ':') ? 6 : 4;
	struct lg_flow_desc d = { dir, proto, (uint8_t)family, f, t, port };

	inet_pton(family == 6 ? AF_INET6 : AF_INET, from, f);
	inet_pton(family == 6 ? AF_INET6 : AF_INET, to, t);
	return lg_policy_rules_verdict(pol, &d, line);
}

static void test_rules(void)
{
	struct lg_policy pol;
	struct lg_diags d;
	unsigned line;

	CHECK_EQ_INT(parse_rules("pass out proto tcp to any port { 143 587 993 465 4190 674 }\n"
				 "block return out proto tcp port 25,2525\n"
				 "block out proto tcp from 10.1.0.0/16 to {198.51.100.0/24 203.0.113.7} port 6000-6010\n"
				 "block in from 192.0.2.128/25\n"
				 "block out proto icmp to 203.0.113.0/24\n"
				 "block out proto tcp to 2001:db8:dead::/48\n",
				 &pol, &d),
		     0, "rules parse");
	CHECK_EQ_INT(d.warnings, 0, "no warning: nothing blocks 143 or 587 first");
	CHECK_EQ_INT(pol.rule_count, 6, "six rules");
	CHECK_EQ_INT(pol.rules[0].port_count, 6, "a brace list of six ports");
	CHECK_EQ_INT(pol.rules[1].action, LG_RULE_BLOCK_RETURN, "block return");
	CHECK_EQ_INT(pol.rules[2].to_count, 2, "braces touching the items");
	{
		char text[512];

		lg_rule_format(&pol.rules[2], text, sizeof(text));
		CHECK_EQ_STR(text, "block out proto tcp from 10.1.0.0/16 to { 198.51.100.0/24 203.0.113.7 } "
				   "port 6000-6010", "a rule written back");
		lg_rule_format(&pol.rules[1], text, sizeof(text));
		CHECK_EQ_STR(text, "block return out proto tcp port { 25 2525 }", "block return, a port list");
		lg_rule_format(&pol.rules[5], text, sizeof(text));
		CHECK_EQ_STR(text, "block out proto tcp to 2001:db8:dead::/48", "an IPv6 prefix");
	}
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_TCP, "10.0.0.5", "198.51.100.2", 143, &line),
		     LG_RULE_PASS, "L5383-3: IMAP passes");
	CHECK_EQ_INT(line, 5, "by the first rule (line 5)");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_TCP, "10.0.0.5", "198.51.100.2", 2525, &line),
		     LG_RULE_BLOCK_RETURN, "2525 blocked with an answer");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_TCP, "10.1.2.3", "203.0.113.7", 6005, NULL),
		     LG_RULE_BLOCK, "address and port range both match");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_TCP, "10.2.2.3", "203.0.113.7", 6005, &line),
		     LG_RULE_PASS, "another inside host: no rule matches");
	CHECK_EQ_INT(line, 0, "no deciding rule");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_IN, LG_RULE_TCP, "192.0.2.200", "10.0.0.5", 41000, NULL),
		     LG_RULE_BLOCK, "inbound from the blocked network");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_TCP, "192.0.2.200", "10.0.0.5", 41000, NULL),
		     LG_RULE_PASS, "direction matters");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_ICMP, "10.0.0.5", "203.0.113.9", 0, NULL),
		     LG_RULE_BLOCK, "echo to the blocked network");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_ICMP, "10.0.0.5", "198.51.100.2", 0, NULL),
		     LG_RULE_PASS, "a rule with ports says nothing of ICMP");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_TCP, "2001:db8:77::2", "2001:db8:dead:1::9", 80, NULL),
		     LG_RULE_BLOCK, "IPv6 prefix rule");
	CHECK_EQ_INT(verdict(&pol, LG_RULE_OUT, LG_RULE_TCP, "2001:db8:77::2", "2001:db8:100::2", 143, NULL),
		     LG_RULE_PASS, "IPv6 IMAP passes");

	CHECK_EQ_INT(parse_rules("block out proto tcp port 143\n", &pol, &d), 0, "blocking 143 is allowed");
	CHECK(d.warnings == 1 && strstr(d.items[0].msg, "L5383-3") && strstr(d.items[0].msg, "143"),
	      "L5383-3: but warned about, naming the port");
	CHECK_EQ_INT(parse_rules("block out\n", &pol, &d), 0, "block everything out parses");
	CHECK_EQ_INT(d.warnings, 2, "L5383-3: two warnings, 143 and 587");
	CHECK_EQ_INT(parse_rules("pass out proto tcp port 587\nblock out to 198.51.100.0/24\n", &pol, &d),
		     0, "partial block parses");
	CHECK(d.warnings == 1 && strstr(d.items[0].msg, "port 143") && strstr(d.items[0].msg, "some hosts"),
	      "L5383-3: 143 blocked for some hosts, 587 passed first");

	expect_error("block sideways\n", 1, 7, "expected 'in' or 'out'");
	expect_error("pass out proto udp\n", 1, 16, "protocol 'udp'");
	expect_error("pass out port 0\n", 1, 15, "not a port");
	expect_error("pass out port 9-3\n", 1, 15, "not a port");
	expect_error("pass out to 10.0.0.1/8\n", 1, 13, "not an address");
	expect_error("pass out port { 143 587\n", 1, 15, "without its '}'");
	expect_error("pass out proto icmp port 7\n", 1, 1, "ICMP has no ports");
	expect_error("pass out port 1 port 2\n", 1, 17, "given twice");
	expect_error("pass out to\n", 1, 10, "needs a value");
	expect_error("pass out port 1,2,3,4,5,6,7,8,9\n", 1, 15, "too many ports");
	expect_error("pass out with care\n", 1, 10, "unexpected 'with'");
}

static void test_fixed_changes(void)
{
	struct lg_policy a, b;
	struct lg_diags d;
	char buf[256];
	static const char base[] = "interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
				   "nat public 192.0.2.1\n";
	char text[512];

	CHECK_EQ_INT(parse(base, &a, &d), 0, "base parses");
	snprintf(text, sizeof(text), "%stimeout established 3h\nnat filtering address-dependent\n"
		 "nat quota 10\nmail ports 143\n", base);
	CHECK_EQ_INT(parse(text, &b, &d), 0, "live changes parse");
	CHECK_EQ_INT(lg_policy_fixed_changes(&a, &b, buf, sizeof(buf)), 0,
		     "timeouts, filtering, quota, mail ports: all live");
	snprintf(text, sizeof(text), "%snat ports 20000-30000\nqueue 1\nipv6 inside 2001:db8::/64\n",
		 base);
	CHECK_EQ_INT(parse(text, &b, &d), 0, "fixed changes parse");
	CHECK_EQ_INT(lg_policy_fixed_changes(&a, &b, buf, sizeof(buf)), 3, "three need a restart");
	CHECK_EQ_STR(buf, "nat ports, queue, ipv6 inside", "named in order");
	CHECK_EQ_INT(parse("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8 10.1.0.0/16\n"
			   "nat public 192.0.2.1\n", &b, &d), 0, "another prefix parses");
	CHECK_EQ_INT(lg_policy_fixed_changes(&a, &b, buf, sizeof(buf)), 1, "an added inside prefix");
	CHECK_EQ_STR(buf, "nat inside", "is named");
}

/* Which server ports the mail observer follows, as what; how many sessions at once (issue 8). */
static void test_observe(void)
{
	static const char base[] = "interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
				   "nat public 192.0.2.1\n";
	struct lg_policy pol, old;
	struct lg_diags d;
	char text[1024], buf[256];

	CHECK_EQ_INT(parse(base, &pol, &d), 0, "base parses");
	CHECK(lg_policy_mail_service(&pol, 143) == LG_MAIL_IMAP &&
		      lg_policy_mail_service(&pol, 587) == LG_MAIL_SUBMISSION &&
		      lg_policy_mail_service(&pol, 25) == LG_MAIL_SMTP &&
		      lg_policy_mail_service(&pol, 993) == LG_MAIL_IMAPS &&
		      lg_policy_mail_service(&pol, 465) == LG_MAIL_SUBMISSIONS &&
		      lg_policy_mail_service(&pol, 4190) == LG_MAIL_SIEVE,
	      "default: the well-known ports 143 587 25 993 465 4190");
	CHECK_EQ_INT(lg_policy_mail_service(&pol, 80), LG_MAIL_NONE, "port 80 is no mail service");
	CHECK_EQ_INT(pol.observe_sessions, LG_DEFAULT_OBSERVED, "default pool size");
	old = pol;
	snprintf(text, sizeof(text),
		 "%sobserve imap ports { 143 1143 }\nobserve smtp ports none\n"
		 "observe submission ports 587,2587\nobserve sessions 500\n", base);
	CHECK_EQ_INT(parse(text, &pol, &d), 0, "observe statements parse");
	CHECK(lg_policy_mail_service(&pol, 1143) == LG_MAIL_IMAP &&
		      lg_policy_mail_service(&pol, 143) == LG_MAIL_IMAP &&
		      lg_policy_mail_service(&pol, 2587) == LG_MAIL_SUBMISSION,
	      "the listed ports carry their service");
	CHECK_EQ_INT(lg_policy_mail_service(&pol, 25), LG_MAIL_NONE, "smtp ports none: 25 not observed");
	CHECK_EQ_INT(lg_policy_mail_service(&pol, 4190), LG_MAIL_SIEVE, "services not named keep theirs");
	CHECK_EQ_INT(pol.observe_sessions, 500, "observe sessions 500");
	CHECK_EQ_INT(lg_policy_fixed_changes(&old, &pol, buf, sizeof(buf)), 1,
		     "the pool size needs a restart, the ports do not");
	CHECK_EQ_STR(buf, "observe sessions", "and is named");
	snprintf(text, sizeof(text), "%sobserve smtp ports 2525\nobserve imap ports 25\n", base);
	CHECK_EQ_INT(parse(text, &pol, &d), 0, "a well-known port moved to another service");
	CHECK_EQ_INT(lg_policy_mail_service(&pol, 25), LG_MAIL_IMAP, "25 followed as IMAP");
	snprintf(text, sizeof(text), "%sobserve sessions 0\n", base);
	CHECK_EQ_INT(parse(text, &pol, &d), 0, "observe sessions 0: nothing observed");
	snprintf(text, sizeof(text), "%s\nobserve imap ports 587\n", base);
	CHECK_EQ_INT(parse(text, &pol, &d), -1, "a port given to two services is refused");
	CHECK(d.count == 1 && d.items[0].line == 6 && strstr(d.items[0].msg, "both submission and imap"),
	      "on the statement's line, both services named: %u '%s'", d.items[0].line, d.items[0].msg);
	expect_error("observe imap ports 143 143\n", 1, 24, "given twice");
	expect_error("observe imap ports 0\n", 1, 20, "port '0'");
	expect_error("observe pop3 ports 110\n", 1, 9, "expected: observe imap|");
	expect_error("observe imap 143\n", 1, 1, "expected: observe imap|");
	expect_error("observe imap ports 143\nobserve imap ports 144\n", 2, 1, "given twice");
	expect_error("observe sessions 300000\n", 1, 18, "must be 0 (observe nothing)..262143");
	expect_error("observe sessions\n", 1, 9, "missing argument");
	expect_error("observe imap ports { 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 "
		     "24 26 27 28 29 30 31 32 }\n", 1, 94, "more than 32 observed ports");
}

/* When an established flow's translation goes to the kernel (issue 5, dataplane/knat.h). */
static void test_offload(void)
{
	static const char base[] = "interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
				   "nat public 192.0.2.1\n";
	struct lg_policy pol, old;
	struct lg_diags d;
	char text[512], buf[256];

	CHECK_EQ_INT(parse(base, &pol, &d), 0, "base parses");
	CHECK_EQ_INT(pol.offload_after, LG_DEFAULT_OFFLOAD_AFTER, "offload on by default");
	old = pol;
	snprintf(text, sizeof(text), "%soffload after 1000\n", base);
	CHECK_EQ_INT(parse(text, &pol, &d), 0, "offload after 1000 parses");
	CHECK_EQ_INT(pol.offload_after, 1000, "after 1000 packets");
	CHECK_EQ_INT(lg_policy_fixed_changes(&old, &pol, buf, sizeof(buf)), 0,
		     "another threshold applies live");
	snprintf(text, sizeof(text), "%soffload off\n", base);
	CHECK_EQ_INT(parse(text, &pol, &d), 0, "offload off parses");
	CHECK_EQ_INT(pol.offload_after, 0, "off: never");
	CHECK_EQ_INT(lg_policy_fixed_changes(&old, &pol, buf, sizeof(buf)), 1,
		     "turning it off needs a restart (the steering rules change)");
	CHECK_EQ_STR(buf, "offload on or off", "and is named");
	expect_error("offload after 0\n", 1, 15, "packets, 1..4294967295");
	expect_error("offload after many\n", 1, 15, "offload after 'many'");
	expect_error("offload on\n", 1, 9, "expected: offload after N, or offload off");
	expect_error("offload\n", 1, 1, "expected: offload after N, or offload off");
	expect_error("offload after 5 packets\n", 1, 9, "expected: offload after N");
	expect_error("offload off\noffload after 5\n", 2, 1, "given twice");
}

static void test_ipv6(void)
{
	struct lg_policy pol;
	struct lg_diags d;
	uint8_t a[16];
	static const char text[] = "interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
				   "nat public 192.0.2.1\n"
				   "ipv6 inside 2001:db8:77::/64 2001:db8:80::/45\nipv6 max-flows 5000\n";

	CHECK_EQ_INT(parse(text, &pol, &d), 0, "ipv6 statements parse");
	CHECK_EQ_INT(pol.inside6_count, 2, "two IPv6 prefixes");
	CHECK_EQ_INT(pol.max_flows6, 5000, "ipv6 max-flows");
	inet_pton(AF_INET6, "2001:db8:77::2", a);
	CHECK(lg_policy_is_inside6(&pol, a), "2001:db8:77::2 inside");
	inet_pton(AF_INET6, "2001:db8:87:ffff::1", a);
	CHECK(lg_policy_is_inside6(&pol, a), "2001:db8:87:ffff::1 inside the /45");
	inet_pton(AF_INET6, "2001:db8:88::1", a);
	CHECK(!lg_policy_is_inside6(&pol, a), "2001:db8:88::1 outside the /45");
	inet_pton(AF_INET6, "2001:db8:100::2", a);
	CHECK(!lg_policy_is_inside6(&pol, a), "server not inside");
	lg_policy_defaults(&pol);
	CHECK_EQ_INT(pol.inside6_count, 0, "no IPv6 filtering unless asked for");
	expect_error("ipv6 inside 2001:db8::1/64\n", 1, 13, "not an IPv6 prefix");
	expect_error("ipv6 inside 10.0.0.0/8\n", 1, 13, "not an IPv6 prefix");
	expect_error("ipv6 inside 2001:db8::/129\n", 1, 13, "not an IPv6 prefix");
	expect_error("ipv6 inside 2001:db8::/-1\n", 1, 13, "not an IPv6 prefix");
	expect_error("ipv6 max-flows 0\n", 1, 16, "ipv6 max-flows '0'");
	expect_error("ipv6 outside 2001:db8::/32\n", 1, 6, "unknown ipv6 setting");
	expect_error("ipv6 inside\n", 1, 6, "missing argument");
	expect_error("nat refusal rst\n", 1, 13, "I5508-R8");
	expect_error("nat port-state relative/path\n", 1, 16, "absolute path");
	expect_error("control group no-such-group-here\n", 1, 15, "no group 'no-such-group-here'");
	expect_error("control owner root\n", 1, 9, "expected 'socket' or 'group'");
	expect_error("log level loud\n", 1, 11, "log level 'loud'");
	expect_error("nat public 192.0.2.1 192.0.2.1\n", 1, 22, "given twice");
	expect_error("nat public 192.0.2.1 nowhere\n", 1, 22, "not an IPv4 address");
	CHECK_EQ_INT(parse("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
			   "nat public 192.0.2.1 192.0.2.3 192.0.2.7\n", &pol, &d), 0, "a public pool parses");
	{
		const uint32_t *pub;

		CHECK_EQ_INT(lg_policy_public(&pol, &pub), 3, "three public addresses");
		CHECK(pub[0] == inet_addr("192.0.2.1") && pub[2] == inet_addr("192.0.2.7") &&
		      pol.nat_public == pub[0], "in order, the first as nat_public");
	}
	CHECK_EQ_INT(parse("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
			   "nat public 192.0.2.1 10.9.9.9\n", &pol, &d), -1, "a public address inside refused");
	expect_error("log mappings maybe\n", 1, 14, "on or off");
	CHECK_EQ_INT(parse("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
			   "nat public 192.0.2.1\nlog level warning\nlog mappings off\n", &pol, &d), 0,
		     "log settings parse");
	CHECK(pol.log_level == 1 && pol.log_mappings_off, "log level and mappings set");
	CHECK(d.warnings == 1 && strstr(d.items[0].msg, "C6888-LOG"),
	      "C6888-LOG: turning the mapping log off is warned about");
	CHECK_EQ_INT(parse("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
			   "nat public 192.0.2.1\ncontrol group root\n", &pol, &d), 0,
		     "control group of an existing group parses");
	CHECK(strcmp(pol.control_group, "root") == 0 && pol.control_gid == 0, "its gid looked up");
	CHECK_EQ_INT(parse("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
			   "nat public 192.0.2.1\nnat port-state /var/lib/lemongate/ports\n", &pol, &d), 0,
		     "nat port-state parses");
	CHECK_EQ_STR(pol.port_state, "/var/lib/lemongate/ports", "C6888-R8: ledger path configurable");
	CHECK_EQ_INT(parse("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
			   "nat public 192.0.2.1\nnat port-state none\n", &pol, &d), 0,
		     "nat port-state none parses");
	CHECK(pol.port_state_off && d.warnings == 1 && strstr(d.items[0].msg, "C6888-R8"),
	      "C6888-R8: turning the ledger off is allowed, with a warning that says what it costs");
	CHECK_EQ_INT(parse("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
			   "nat public 192.0.2.1\nnat refusal admin-prohibited\n", &pol, &d), 0,
		     "nat refusal parses");
	CHECK_EQ_INT(pol.refusal, LG_REFUSAL_ADMIN_PROHIBITED, "I5508-R8: 3/13 configurable");
	lg_policy_defaults(&pol);
	CHECK_EQ_INT(pol.refusal, LG_REFUSAL_HOST_UNREACHABLE, "C6888-R11: 3/1 by default");
}

static void test_defaults_meet_floors(void)
{
	struct lg_policy pol;
	struct lg_diags d;
	const char *minimal = "interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
			      "nat public 192.0.2.1\n";

	CHECK_EQ_INT(parse(minimal, &pol, &d), 0, "minimal config parses");
	CHECK(pol.timeout_established >= LG_EST_IDLE_FLOOR, "N5382-R5, L5383-7: default established >= 2h4m");
	CHECK(pol.timeout_transitory >= LG_TRANS_IDLE_FLOOR, "N5382-R5: default transitory >= 4m");
	CHECK_EQ_INT(pol.filtering, LG_FILTER_ENDPOINT_INDEPENDENT,
		     "N5382-R3: documented default filtering is endpoint-independent");
	CHECK_EQ_INT(pol.overload, LG_OVERLOAD_EVICT, "default overload: evict, mail last");
	CHECK_EQ_INT(pol.port_rest, 120, "C6888-R8: a released port rests 120 s by default");
	CHECK(!pol.queue_fail_open, "default: fail closed");
	CHECK_EQ_INT(pol.timeout_query, 60, "I5508-R2: ICMP query sessions last 60 s by default");
	CHECK_EQ_INT(pol.queue_length, 4096, "default queue length");
	CHECK(lg_policy_is_mail_port(&pol, htons(143)) && lg_policy_is_mail_port(&pol, htons(587)) &&
		      lg_policy_is_mail_port(&pol, htons(993)) && lg_policy_is_mail_port(&pol, htons(465)) &&
		      lg_policy_is_mail_port(&pol, htons(4190)),
	      "default mail ports 143 587 993 465 4190");
}

static void test_errors(void)
{
	expect_error("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
		     "nat public 192.0.2.1\ntimeout established 2h\n",
		     5, 21, "N5382-R5");
	expect_error("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
		     "nat public 192.0.2.1\ntimeout transitory 239\n",
		     5, 20, "below 4m");
	expect_error("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\n"
		     "nat public 192.0.2.1\ntimeout lifetime 24h\n",
		     5, 9, "L5383-4.1a");
	expect_error("bogus thing\n", 1, 1, "unknown statement 'bogus'");
	expect_error("nat filtering address-and-port-dependent\n", 1, 15, "N5382-R3");
	expect_error("nat filtering\n", 1, 5, "missing argument");
	expect_error("nat unsolicited-syn rst\n", 1, 21, "N5382-R4");
	expect_error("nat quota 0\n", 1, 11, "quota '0'");
	expect_error("  nat inside 10.0.0.1/8\n", 1, 14, "host bits");
	expect_error("nat inside 10.0.0.0/33\n", 1, 12, "not an IPv4 prefix");
	expect_error("nat public 999.1.1.1\n", 1, 12, "not an IPv4 address");
	expect_error("nat ports 2000-1000\n", 1, 11, "port range");
	expect_error("nat ports 80-1000\n", 1, 11, "port range");
	expect_error("interface inside \"abc\n", 1, 18, "unterminated");
	expect_error("interface inside a b\n", 1, 20, "unexpected 'b'");
	expect_error("interface inside\n", 1, 11, "missing argument");
	expect_error("interface inside a/b\n", 1, 18, "not a valid interface name");
	expect_error("interface inside a\ninterface inside b\n", 2, 1, "given twice (first on line 1)");
	expect_error("queue 1 count 99\n", 1, 15, "queue count");
	expect_error("queue 1 length 10\n", 1, 16, "queue length '10' must be 64..");
	expect_error("queue 1 failure maybe\n", 1, 17, "expected open or closed");
	expect_error("queue 1 speed 3\n", 1, 9, "expected 'count', 'length' or 'failure'");
	expect_error("queue 1 count\n", 1, 1, "expected: queue NUM");
	expect_error("queue 65535 count 2\n", 1, 7, "run past 65535");
	expect_error("max-flows lots\n", 1, 11, "max-flows");
	expect_error("max-flows 20000000\n", 1, 11, "16..16000000");
	expect_error("overload random\n", 1, 10, "evict or drop-new");
	expect_error("timeout port 143 1h\n", 1, 18, "N5382-R5");
	expect_error("timeout port 143 3h\ntimeout port 143 4h\n", 2, 14, "given twice");
	expect_error("timeout port 0 3h\n", 1, 14, "port '0'");
	expect_error("nat port-rest 2d\n", 1, 15, "C6888-R8");
	expect_error("timeout icmp-query 59s\n", 1, 20, "I5508-R2");
	expect_error("timeout icmp-query 2d\n", 1, 20, "up to 1d");
	expect_error("timeout icmp-query 1m\ntimeout icmp-query 2m\n", 2, 1, "given twice");
	expect_error("mail ports\n", 1, 1, "mail ports PORT");
	expect_error("mail ports 143 0\n", 1, 16, "mail port '0'");
	expect_error("mail ports 143\nmail ports 587\n", 2, 1, "given twice");
	expect_error("control socket relative.sock\n", 1, 16, "absolute path");
	expect_error("", 1, 1, "missing 'interface inside");
	expect_error("interface inside x\ninterface outside x\nnat inside 10.0.0.0/8\nnat public 1.2.3.4\n",
		     2, 1, "both 'x'");
	expect_error("interface inside a\ninterface outside b\nnat inside 10.0.0.0/8\nnat public 10.1.1.1\n",
		     4, 1, "public address lies inside");
	expect_error("nat inside 10.0.0.0/8\x01\n", 1, 22, "unexpected character");
}

static void test_nul_and_many_errors(void)
{
	struct lg_policy pol;
	struct lg_diags d;
	char text[8192];
	size_t n = 0;
	const char nul_text[] = "nat public 1.2.3.4\0junk\n";

	CHECK_EQ_INT(lg_policy_parse("t.conf", nul_text, sizeof(nul_text) - 1, &pol, &d), -1, "NUL rejected");
	CHECK(d.count > 0 && strstr(d.items[0].msg, "NUL") != NULL, "NUL reported");
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "junk%d\n", i);
	CHECK_EQ_INT(lg_policy_parse("t.conf", text, n, &pol, &d), -1, "200 errors fail");
	CHECK_EQ_INT(d.count, LG_MAX_DIAGS, "diagnostics capped");
	CHECK(d.dropped > 0, "dropped counted");
}

static void test_durations(void)
{
	static const struct { const char *text; long long secs; } cases[] = {
		{ "7440", 7440 }, { "2h4m", 7440 }, { "4m", 240 }, { "1d2h3m4s", 93784 },
		{ "30d", 2592000 }, { "0s", 0 }, { "", -1 }, { "h", -1 }, { "2h30", -1 },
		{ "4m2h", -1 }, { "2x", -1 }, { "-5", -1 }, { "99999999999999999999", -1 },
		{ "2h2h", -1 }, { " 5", -1 },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t s = 0;
		int rc = lg_duration_parse(cases[i].text, &s);

		if (cases[i].secs < 0)
			CHECK(rc == -1, "duration '%s' should be refused", cases[i].text);
		else
			CHECK(rc == 0 && (long long)s == cases[i].secs, "duration '%s' = %llu",
			      cases[i].text, (unsigned long long)s);
	}
	lg_duration_format(7440, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "2h4m", "format 7440");
	lg_duration_format(93784, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "1d2h3m4s", "format 93784");
	lg_duration_format(0, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "0s", "format 0");
}

int main(void)
{
	test_good();
	test_ipv6();
	test_fixed_changes();
	test_observe();
	test_offload();
	test_rules();
	test_defaults_meet_floors();
	test_errors();
	test_nul_and_many_errors();
	test_durations();
	return lgtest_finish();
}
