#include "dataplane/steer.h"

#include "dataplane/knat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Our chains; an entry chain names the built-in chain that jumps to it. Outbound packets are
 * queued after routing (FORWARD): rewritten before routing, their source would be one of our
 * own addresses and the kernel would drop them as martians. Inbound packets are queued before
 * routing (PREROUTING), so that the kernel routes on the rewritten destination.
 *
 * Every packet crossing the gateway walks these chains, so they are a dispatch tree rather than
 * a list: an entry chain tests one thing and goes (-g) to a chain for that direction, and a
 * packet to untrack leaves by goto as well, as CT is no verdict and would let it walk on.
 * iptables-nft loads the interface name afresh for every rule naming one; laid out as a flat
 * list, the rules cost the small-packet rate a fifth (bench/path.sh). */
static const struct chain {
	const char *table, *name;
	const char *builtin; /* NULL: reached from our own chains only */
	bool offload_only;
} chains[] = {
	{ "raw", "LEMONGATE", "PREROUTING", false },
	{ "raw", "LEMONGATE-FROM-IN", NULL, false },
	{ "raw", "LEMONGATE-FROM-OUT", NULL, false },
	{ "raw", "LEMONGATE-UNTRACK", NULL, false },
	{ "mangle", "LEMONGATE-IN", "PREROUTING", false },
	{ "mangle", "LEMONGATE-IN-PUBLIC", NULL, false },
	{ "mangle", "LEMONGATE-OUT", "FORWARD", false },
	{ "mangle", "LEMONGATE-OUT-FROM-IN", NULL, false },
	/* Empty, but with them the kernel's NAT hooks exist in this namespace, and so our
	 * offloaded conntrack entries get translated (dataplane/knat.h). */
	{ "nat", "LEMONGATE-NAT-IN", "PREROUTING", true },
	{ "nat", "LEMONGATE-NAT-OUT", "POSTROUTING", true },
};
#define CHAIN_COUNT (sizeof(chains) / sizeof(chains[0]))
#define STEER_MAXARG 32

/* IPv6 is filtered, not translated: both directions are queued after routing. */
static const struct chain chains6[] = {
	{ "raw", "LEMONGATE", "PREROUTING", false },
	{ "raw", "LEMONGATE-FROM-IN", NULL, false },
	{ "raw", "LEMONGATE-FROM-OUT", NULL, false },
	{ "raw", "LEMONGATE-UNTRACK", NULL, false },
	{ "mangle", "LEMONGATE-FWD", "FORWARD", false },
	{ "mangle", "LEMONGATE-FWD-FROM-IN", NULL, false },
	{ "mangle", "LEMONGATE-FWD-FROM-OUT", NULL, false },
};
#define CHAIN6_COUNT (sizeof(chains6) / sizeof(chains6[0]))

/* Run "PROG -w ARGS..." without a shell; returns its exit status, -1 if it could not run. */
static int vrun(const char *prog, bool quiet, const char *first, va_list ap)
{
	char *argv[STEER_MAXARG] = { (char *)(uintptr_t)prog, "-w" };
	size_t n = 2;
	pid_t pid;
	int status;

	for (const char *a = first; a && n < STEER_MAXARG - 1; a = va_arg(ap, const char *))
		argv[n++] = (char *)(uintptr_t)a; /* execvp's prototype predates const */
	argv[n] = NULL;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (quiet) {
			int devnull = open("/dev/null", O_WRONLY);

			if (devnull >= 0) {
				dup2(devnull, STDOUT_FILENO);
				dup2(devnull, STDERR_FILENO);
			}
		}
		execvp(prog, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* PROG is "iptables" or "ip6tables". */
static int tables(const char *prog, bool quiet, const char *first, ...)
{
	va_list ap;
	int rc;

	va_start(ap, first);
	rc = vrun(prog, quiet, first, ap);
	va_end(ap);
	return rc;
}

/* The jumps first (an earlier crash may have left more than one), then every chain emptied,
 * so that no chain is still referred to when they are deleted. */
static void remove_chains(const char *prog, const struct chain *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		for (int k = 0; list[i].builtin && k < 16; k++)
			if (tables(prog, true, "-t", list[i].table, "-D", list[i].builtin, "-j",
				   list[i].name, NULL) != 0)
				break;
	for (size_t i = 0; i < count; i++)
		tables(prog, true, "-t", list[i].table, "-F", list[i].name, NULL);
	for (size_t i = 0; i < count; i++)
		tables(prog, true, "-t", list[i].table, "-X", list[i].name, NULL);
}

void lg_steer_remove(void)
{
	remove_chains("iptables", chains, CHAIN_COUNT);
	remove_chains("ip6tables", chains6, CHAIN6_COUNT);
}

#define TRY_WITH(prog, ...)                                                            \
	do {                                                                           \
		if (tables(prog, false, __VA_ARGS__, NULL) != 0) {                     \
			snprintf(err, errlen, "%s %s failed", prog, #__VA_ARGS__);        \
			lg_steer_remove();                                             \
			return -1;                                                     \
		}                                                                      \
	} while (0)
#define TRY(...) TRY_WITH("iptables", __VA_ARGS__)
#define TRY6(...) TRY_WITH("ip6tables", __VA_ARGS__)

static void format_prefix4(const struct lg_prefix4 *p, char *buf, size_t len)
{
	char addr[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &p->addr, addr, sizeof(addr));
	snprintf(buf, len, "%s/%u", addr, p->len);
}

static void format_prefix6(const struct lg_prefix6 *p, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	inet_ntop(AF_INET6, p->addr, addr, sizeof(addr));
	snprintf(buf, len, "%s/%u", addr, p->len);
}

/* Create our chains, and once they are filled, hook the entry chains in. */
static int create_chains(const char *prog, const struct chain *list, size_t count, bool offload,
			 char *err, size_t errlen)
{
	for (size_t i = 0; i < count; i++)
		if (offload || !list[i].offload_only)
			TRY_WITH(prog, "-t", list[i].table, "-N", list[i].name);
	return 0;
}

static int hook_chains(const char *prog, const struct chain *list, size_t count, bool offload,
		       char *err, size_t errlen)
{
	for (size_t i = 0; i < count; i++)
		if (list[i].builtin && (offload || !list[i].offload_only))
			TRY_WITH(prog, "-t", list[i].table, "-I", list[i].builtin, "1", "-j",
				 list[i].name);
	return 0;
}

/* How packets are sent to the queues, the same in every rule. */
struct queue_args {
	const char *flag, *num, *bypass;
};

static const char *const icmp6_errors[] = { "destination-unreachable", "packet-too-big",
					     "time-exceeded", "parameter-problem" };
#define ICMP6_ERROR_COUNT (sizeof(icmp6_errors) / sizeof(icmp6_errors[0]))

/* IPv6 TCP and ICMPv6 errors crossing the gateway to or from an inside prefix. */
static int install6(const struct lg_policy *pol, const struct queue_args *q, char *err,
		    size_t errlen)
{
	const char *in = pol->inside_if, *out = pol->outside_if;
	char prefix[LG_MAX_PREFIXES][INET6_ADDRSTRLEN + 5];
	size_t nprefix = pol->inside6_count;

	for (size_t i = 0; i < nprefix; i++)
		format_prefix6(&pol->inside6[i], prefix[i], sizeof(prefix[i]));
	if (create_chains("ip6tables", chains6, CHAIN6_COUNT, false, err, errlen) != 0)
		return -1;
	TRY6("-t", "raw", "-A", "LEMONGATE", "-i", in, "-g", "LEMONGATE-FROM-IN");
	TRY6("-t", "raw", "-A", "LEMONGATE", "-i", out, "-g", "LEMONGATE-FROM-OUT");
	TRY6("-t", "raw", "-A", "LEMONGATE-UNTRACK", "-j", "CT", "--notrack");
	TRY6("-t", "mangle", "-A", "LEMONGATE-FWD", "-i", in, "-g", "LEMONGATE-FWD-FROM-IN");
	TRY6("-t", "mangle", "-A", "LEMONGATE-FWD", "-i", out, "-g", "LEMONGATE-FWD-FROM-OUT");
	for (size_t i = 0; i < nprefix; i++) {
		TRY6("-t", "raw", "-A", "LEMONGATE-FROM-IN", "-s", prefix[i], "-p", "tcp", "-m",
		     "addrtype", "!", "--dst-type", "LOCAL", "-g", "LEMONGATE-UNTRACK");
		TRY6("-t", "raw", "-A", "LEMONGATE-FROM-OUT", "-d", prefix[i], "-p", "tcp", "-g",
		     "LEMONGATE-UNTRACK");
		TRY6("-t", "mangle", "-A", "LEMONGATE-FWD-FROM-IN", "-o", out, "-s", prefix[i], "-p",
		     "tcp", "-j", "NFQUEUE", q->flag, q->num, q->bypass);
		TRY6("-t", "mangle", "-A", "LEMONGATE-FWD-FROM-OUT", "-o", in, "-d", prefix[i], "-p",
		     "tcp", "-j", "NFQUEUE", q->flag, q->num, q->bypass);
	}
	for (size_t t = 0; t < ICMP6_ERROR_COUNT; t++) {
		for (size_t i = 0; i < nprefix; i++) {
			TRY6("-t", "raw", "-A", "LEMONGATE-FROM-IN", "-s", prefix[i], "-p", "icmpv6",
			     "--icmpv6-type", icmp6_errors[t], "-m", "addrtype", "!", "--dst-type",
			     "LOCAL", "-g", "LEMONGATE-UNTRACK");
			TRY6("-t", "raw", "-A", "LEMONGATE-FROM-OUT", "-d", prefix[i], "-p", "icmpv6",
			     "--icmpv6-type", icmp6_errors[t], "-g", "LEMONGATE-UNTRACK");
			TRY6("-t", "mangle", "-A", "LEMONGATE-FWD-FROM-IN", "-o", out, "-s", prefix[i],
			     "-p", "icmpv6", "--icmpv6-type", icmp6_errors[t], "-j", "NFQUEUE",
			     q->flag, q->num, q->bypass);
			TRY6("-t", "mangle", "-A", "LEMONGATE-FWD-FROM-OUT", "-o", in, "-d", prefix[i],
			     "-p", "icmpv6", "--icmpv6-type", icmp6_errors[t], "-j", "NFQUEUE",
			     q->flag, q->num, q->bypass);
		}
	}
	return hook_chains("ip6tables", chains6, CHAIN6_COUNT, false, err, errlen);
}

static const char *const icmp_errors[] = { "destination-unreachable", "time-exceeded",
					    "parameter-problem" };
#define ICMP_ERROR_COUNT (sizeof(icmp_errors) / sizeof(icmp_errors[0]))

/* Most frequent first in every chain: TCP, then ICMP errors, then echo. */
int lg_steer_install(const struct lg_policy *pol, bool offload, char *err, size_t errlen)
{
	/* every public address, as one list: iptables makes a rule of each */
	char pub[LG_MAX_PUBLIC * (INET_ADDRSTRLEN + 4)], ports[16], queue[16], ctmark[16], pktmark[16];
	const char *in = pol->inside_if, *out = pol->outside_if;
	const uint32_t *addrs;
	size_t npub = lg_policy_public(pol, &addrs);
	/* with no reader on the queue, fail-open passes packets (the kernel drops them otherwise);
	 * as the last argument, NULL simply ends the list */
	struct queue_args q = { "--queue-num", queue, pol->queue_fail_open ? "--queue-bypass" : NULL };
	char prefix[LG_MAX_PREFIXES][INET_ADDRSTRLEN + 4];
	size_t nprefix = pol->nat_inside_count;

	lg_steer_remove();
	pub[0] = '\0';
	for (size_t i = 0; i < npub; i++) {
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &addrs[i], a, sizeof(a));
		snprintf(pub + strlen(pub), sizeof(pub) - strlen(pub), "%s%s/32", i ? "," : "", a);
	}
	for (size_t i = 0; i < nprefix; i++)
		format_prefix4(&pol->nat_inside[i], prefix[i], sizeof(prefix[i]));
	snprintf(ports, sizeof(ports), "%u:%u", pol->port_lo, pol->port_hi);
	if (pol->queue_count > 1) {
		q.flag = "--queue-balance";
		snprintf(queue, sizeof(queue), "%u:%u", pol->queue_first,
			 pol->queue_first + pol->queue_count - 1);
	} else {
		snprintf(queue, sizeof(queue), "%u", pol->queue_first);
	}
	snprintf(ctmark, sizeof(ctmark), "0x%x", LG_KNAT_CTMARK);
	snprintf(pktmark, sizeof(pktmark), "0x%x", LG_KNAT_PKTMARK);

	if (create_chains("iptables", chains, CHAIN_COUNT, offload, err, errlen) != 0)
		return -1;

	/* raw: what we translate is kept from kernel conntrack, except a flow the kernel
	 * translates for us (its set member: dataplane/knat.h), which is left tracked. */
	TRY("-t", "raw", "-A", "LEMONGATE", "-i", in, "-g", "LEMONGATE-FROM-IN");
	TRY("-t", "raw", "-A", "LEMONGATE", "-i", out, "-g", "LEMONGATE-FROM-OUT");
	TRY("-t", "raw", "-A", "LEMONGATE-UNTRACK", "-j", "CT", "--notrack");
	for (size_t i = 0; i < nprefix; i++) {
		if (offload)
			TRY("-t", "raw", "-A", "LEMONGATE-FROM-IN", "-s", prefix[i], "-p", "tcp", "-m",
			    "set", "--match-set", LG_KNAT_SET, "src,src,dst", "-j", "RETURN");
		/* through the gateway, not to its own addresses; then hairpinning: to the public
		 * address and a NAT port */
		TRY("-t", "raw", "-A", "LEMONGATE-FROM-IN", "-s", prefix[i], "-p", "tcp", "-m",
		    "addrtype", "!", "--dst-type", "LOCAL", "-g", "LEMONGATE-UNTRACK");
		TRY("-t", "raw", "-A", "LEMONGATE-FROM-IN", "-s", prefix[i], "-d", pub, "-p", "tcp",
		    "--dport", ports, "-g", "LEMONGATE-UNTRACK");
	}
	if (offload)
		TRY("-t", "raw", "-A", "LEMONGATE-FROM-OUT", "-d", pub, "-p", "tcp", "--dport", ports,
		    "-m", "set", "--match-set", LG_KNAT_SET, "dst,dst,src", "-j", "RETURN");
	TRY("-t", "raw", "-A", "LEMONGATE-FROM-OUT", "-d", pub, "-p", "tcp", "--dport", ports, "-g",
	    "LEMONGATE-UNTRACK");
	/* ICMP errors (unreachable, time exceeded, parameter problem) about our flows, both ways,
	 * and hairpinned ones (RFC 5508 REQ-7); then ICMP echo (RFC 5508 section 3): requests
	 * from inside out, replies to the public address in. Echoes to the gateway's own
	 * addresses are its own business. */
	for (size_t t = 0; t < ICMP_ERROR_COUNT; t++) {
		for (size_t i = 0; i < nprefix; i++) {
			TRY("-t", "raw", "-A", "LEMONGATE-FROM-IN", "-s", prefix[i], "-p", "icmp",
			    "--icmp-type", icmp_errors[t], "-m", "addrtype", "!", "--dst-type", "LOCAL",
			    "-g", "LEMONGATE-UNTRACK");
			TRY("-t", "raw", "-A", "LEMONGATE-FROM-IN", "-s", prefix[i], "-d", pub, "-p",
			    "icmp", "--icmp-type", icmp_errors[t], "-g", "LEMONGATE-UNTRACK");
		}
		TRY("-t", "raw", "-A", "LEMONGATE-FROM-OUT", "-d", pub, "-p", "icmp", "--icmp-type",
		    icmp_errors[t], "-g", "LEMONGATE-UNTRACK");
	}
	for (size_t i = 0; i < nprefix; i++)
		TRY("-t", "raw", "-A", "LEMONGATE-FROM-IN", "-s", prefix[i], "-p", "icmp",
		    "--icmp-type", "echo-request", "-m", "addrtype", "!", "--dst-type", "LOCAL", "-g",
		    "LEMONGATE-UNTRACK");
	TRY("-t", "raw", "-A", "LEMONGATE-FROM-OUT", "-d", pub, "-p", "icmp", "--icmp-type",
	    "echo-reply", "-g", "LEMONGATE-UNTRACK");

	/* mangle PREROUTING: to a public address, from outside, or from inside (hairpinning:
	 * before routing the destination becomes the mapping's owner). */
	TRY("-t", "mangle", "-A", "LEMONGATE-IN", "-d", pub, "-g", "LEMONGATE-IN-PUBLIC");
	if (offload)
		TRY("-t", "mangle", "-A", "LEMONGATE-IN-PUBLIC", "-i", out, "-p", "tcp", "--dport",
		    ports, "-m", "connmark", "--mark", ctmark, "-j", "MARK", "--or-mark", pktmark);
	TRY("-t", "mangle", "-A", "LEMONGATE-IN-PUBLIC", "-i", out, "-p", "tcp", "--dport", ports,
	    "-j", "NFQUEUE", q.flag, q.num, q.bypass);
	for (size_t i = 0; i < nprefix; i++)
		TRY("-t", "mangle", "-A", "LEMONGATE-IN-PUBLIC", "-i", in, "-s", prefix[i], "-p",
		    "tcp", "--dport", ports, "-j", "NFQUEUE", q.flag, q.num, q.bypass);
	for (size_t t = 0; t < ICMP_ERROR_COUNT; t++) {
		TRY("-t", "mangle", "-A", "LEMONGATE-IN-PUBLIC", "-i", out, "-p", "icmp",
		    "--icmp-type", icmp_errors[t], "-j", "NFQUEUE", q.flag, q.num, q.bypass);
		for (size_t i = 0; i < nprefix; i++)
			TRY("-t", "mangle", "-A", "LEMONGATE-IN-PUBLIC", "-i", in, "-s", prefix[i],
			    "-p", "icmp", "--icmp-type", icmp_errors[t], "-j", "NFQUEUE", q.flag,
			    q.num, q.bypass);
	}
	TRY("-t", "mangle", "-A", "LEMONGATE-IN-PUBLIC", "-i", out, "-p", "icmp", "--icmp-type",
	    "echo-reply", "-j", "NFQUEUE", q.flag, q.num, q.bypass);

	/* mangle FORWARD: from inside, out (translated after routing), or back in (a hairpinned
	 * packet's source becomes the sender's public endpoint, so that the owner sees the sender
	 * as an outside peer). */
	TRY("-t", "mangle", "-A", "LEMONGATE-OUT", "-i", in, "-g", "LEMONGATE-OUT-FROM-IN");
	for (size_t i = 0; i < nprefix; i++) {
		if (offload)
			TRY("-t", "mangle", "-A", "LEMONGATE-OUT-FROM-IN", "-o", out, "-s", prefix[i],
			    "-p", "tcp", "-m", "connmark", "--mark", ctmark, "-j", "MARK", "--or-mark",
			    pktmark);
		TRY("-t", "mangle", "-A", "LEMONGATE-OUT-FROM-IN", "-o", out, "-s", prefix[i], "-p",
		    "tcp", "-j", "NFQUEUE", q.flag, q.num, q.bypass);
	}
	for (size_t i = 0; i < nprefix; i++)
		for (size_t k = 0; k < nprefix; k++)
			TRY("-t", "mangle", "-A", "LEMONGATE-OUT-FROM-IN", "-o", in, "-s", prefix[i],
			    "-d", prefix[k], "-p", "tcp", "-j", "NFQUEUE", q.flag, q.num, q.bypass);
	for (size_t t = 0; t < ICMP_ERROR_COUNT; t++) {
		for (size_t i = 0; i < nprefix; i++) {
			TRY("-t", "mangle", "-A", "LEMONGATE-OUT-FROM-IN", "-o", out, "-s", prefix[i],
			    "-p", "icmp", "--icmp-type", icmp_errors[t], "-j", "NFQUEUE", q.flag,
			    q.num, q.bypass);
			for (size_t k = 0; k < nprefix; k++)
				TRY("-t", "mangle", "-A", "LEMONGATE-OUT-FROM-IN", "-o", in, "-s",
				    prefix[i], "-d", prefix[k], "-p", "icmp", "--icmp-type",
				    icmp_errors[t], "-j", "NFQUEUE", q.flag, q.num, q.bypass);
		}
	}
	for (size_t i = 0; i < nprefix; i++)
		TRY("-t", "mangle", "-A", "LEMONGATE-OUT-FROM-IN", "-o", out, "-s", prefix[i], "-p",
		    "icmp", "--icmp-type", "echo-request", "-j", "NFQUEUE", q.flag, q.num, q.bypass);

	if (hook_chains("iptables", chains, CHAIN_COUNT, offload, err, errlen) != 0)
		return -1;
	if (pol->inside6_count)
		return install6(pol, &q, err, errlen);
	return 0;
}
