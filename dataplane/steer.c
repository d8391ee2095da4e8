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

/* Our chains and the built-in chains that jump to them. Outbound packets are queued after
 * routing (FORWARD): rewritten before routing, their source would be one of our own addresses
 * and the kernel would drop them as martians. Inbound packets are queued before routing
 * (PREROUTING), so that the kernel routes on the rewritten destination. */
static const struct hook {
	const char *table, *builtin, *chain;
	bool offload_only;
} hooks[] = {
	{ "raw", "PREROUTING", "LEMONGATE", false },
	{ "mangle", "PREROUTING", "LEMONGATE-IN", false },
	{ "mangle", "FORWARD", "LEMONGATE-OUT", false },
	/* Empty, but with them the kernel's NAT hooks exist in this namespace, and so our
	 * offloaded conntrack entries get translated (dataplane/knat.h). */
	{ "nat", "PREROUTING", "LEMONGATE-NAT-IN", true },
	{ "nat", "POSTROUTING", "LEMONGATE-NAT-OUT", true },
};
#define HOOK_COUNT (sizeof(hooks) / sizeof(hooks[0]))
#define STEER_MAXARG 32

/* IPv6 is filtered, not translated: both directions are queued after routing, in one chain. */
static const struct hook hooks6[] = {
	{ "raw", "PREROUTING", "LEMONGATE", false },
	{ "mangle", "FORWARD", "LEMONGATE-FWD", false },
};
#define HOOK6_COUNT (sizeof(hooks6) / sizeof(hooks6[0]))

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

static void remove_hook(const char *prog, const struct hook *h)
{
	/* Delete every jump (an earlier crash may have left more than one), then the chain. */
	for (int i = 0; i < 16; i++)
		if (tables(prog, true, "-t", h->table, "-D", h->builtin, "-j", h->chain, NULL) != 0)
			break;
	tables(prog, true, "-t", h->table, "-F", h->chain, NULL);
	tables(prog, true, "-t", h->table, "-X", h->chain, NULL);
}

void lg_steer_remove(void)
{
	for (size_t i = HOOK_COUNT; i-- > 0;)
		remove_hook("iptables", &hooks[i]);
	for (size_t i = HOOK6_COUNT; i-- > 0;)
		remove_hook("ip6tables", &hooks6[i]);
}

#define TRY_WITH(prog, ...)                                                            \
	do {                                                                           \
		if (tables(prog, false, __VA_ARGS__, NULL) != 0) {                     \
			snprintf(err, errlen, prog " %s failed", #__VA_ARGS__);        \
			lg_steer_remove();                                             \
			return -1;                                                     \
		}                                                                      \
	} while (0)
#define TRY(...) TRY_WITH("iptables", __VA_ARGS__)
#define TRY6(...) TRY_WITH("ip6tables", __VA_ARGS__)

static const char *const icmp6_errors[] = { "destination-unreachable", "packet-too-big",
					     "time-exceeded", "parameter-problem" };

/* IPv6 TCP and ICMPv6 errors crossing the gateway to or from an inside prefix. */
static int install6(const struct lg_policy *pol, const char *qflag, const char *queue,
		    const char *bypass, char *err, size_t errlen)
{
	for (size_t i = 0; i < HOOK6_COUNT; i++)
		TRY6("-t", hooks6[i].table, "-N", hooks6[i].chain);
	for (size_t i = 0; i < pol->inside6_count; i++) {
		char addr[INET6_ADDRSTRLEN], prefix[INET6_ADDRSTRLEN + 5];

		inet_ntop(AF_INET6, pol->inside6[i].addr, addr, sizeof(addr));
		snprintf(prefix, sizeof(prefix), "%s/%u", addr, pol->inside6[i].len);
		TRY6("-t", "raw", "-A", "LEMONGATE", "-i", pol->inside_if, "-s", prefix, "-p", "tcp",
		     "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "CT", "--notrack");
		TRY6("-t", "raw", "-A", "LEMONGATE", "-i", pol->outside_if, "-d", prefix, "-p", "tcp",
		     "-j", "CT", "--notrack");
		TRY6("-t", "mangle", "-A", "LEMONGATE-FWD", "-i", pol->inside_if, "-o", pol->outside_if,
		     "-s", prefix, "-p", "tcp", "-j", "NFQUEUE", qflag, queue, bypass);
		TRY6("-t", "mangle", "-A", "LEMONGATE-FWD", "-i", pol->outside_if, "-o", pol->inside_if,
		     "-d", prefix, "-p", "tcp", "-j", "NFQUEUE", qflag, queue, bypass);
		for (size_t t = 0; t < sizeof(icmp6_errors) / sizeof(icmp6_errors[0]); t++) {
			TRY6("-t", "raw", "-A", "LEMONGATE", "-i", pol->inside_if, "-s", prefix, "-p",
			     "icmpv6", "--icmpv6-type", icmp6_errors[t], "-m", "addrtype", "!",
			     "--dst-type", "LOCAL", "-j", "CT", "--notrack");
			TRY6("-t", "raw", "-A", "LEMONGATE", "-i", pol->outside_if, "-d", prefix, "-p",
			     "icmpv6", "--icmpv6-type", icmp6_errors[t], "-j", "CT", "--notrack");
			TRY6("-t", "mangle", "-A", "LEMONGATE-FWD", "-i", pol->inside_if, "-o",
			     pol->outside_if, "-s", prefix, "-p", "icmpv6", "--icmpv6-type",
			     icmp6_errors[t], "-j", "NFQUEUE", qflag, queue, bypass);
			TRY6("-t", "mangle", "-A", "LEMONGATE-FWD", "-i", pol->outside_if, "-o",
			     pol->inside_if, "-d", prefix, "-p", "icmpv6", "--icmpv6-type",
			     icmp6_errors[t], "-j", "NFQUEUE", qflag, queue, bypass);
		}
	}
	for (size_t i = 0; i < HOOK6_COUNT; i++)
		TRY6("-t", hooks6[i].table, "-I", hooks6[i].builtin, "1", "-j", hooks6[i].chain);
	return 0;
}

static const char *const icmp_errors[] = { "destination-unreachable", "time-exceeded",
					    "parameter-problem" };

int lg_steer_install(const struct lg_policy *pol, bool offload, char *err, size_t errlen)
{
	/* every public address, as one list: iptables makes a rule of each */
	char pub[LG_MAX_PUBLIC * (INET_ADDRSTRLEN + 4)], ports[16], queue[16], ctmark[16], pktmark[16];
	const uint32_t *addrs;
	size_t npub = lg_policy_public(pol, &addrs);
	const char *qflag;
	/* with no reader on the queue, fail-open passes packets (the kernel drops them otherwise);
	 * as the last argument, NULL simply ends the list */
	const char *bypass = pol->queue_fail_open ? "--queue-bypass" : NULL;

	lg_steer_remove();
	pub[0] = '\0';
	for (size_t i = 0; i < npub; i++) {
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &addrs[i], a, sizeof(a));
		snprintf(pub + strlen(pub), sizeof(pub) - strlen(pub), "%s%s/32", i ? "," : "", a);
	}
	snprintf(ports, sizeof(ports), "%u:%u", pol->port_lo, pol->port_hi);
	if (pol->queue_count > 1) {
		qflag = "--queue-balance";
		snprintf(queue, sizeof(queue), "%u:%u", pol->queue_first,
			 pol->queue_first + pol->queue_count - 1);
	} else {
		qflag = "--queue-num";
		snprintf(queue, sizeof(queue), "%u", pol->queue_first);
	}

	snprintf(ctmark, sizeof(ctmark), "0x%x", LG_KNAT_CTMARK);
	snprintf(pktmark, sizeof(pktmark), "0x%x", LG_KNAT_PKTMARK);

	for (size_t i = 0; i < HOOK_COUNT; i++)
		if (offload || !hooks[i].offload_only)
			TRY("-t", hooks[i].table, "-N", hooks[i].chain);
	for (size_t i = 0; i < pol->nat_inside_count; i++) {
		char addr[INET_ADDRSTRLEN], prefix[INET_ADDRSTRLEN + 4];

		inet_ntop(AF_INET, &pol->nat_inside[i].addr, addr, sizeof(addr));
		snprintf(prefix, sizeof(prefix), "%s/%u", addr, pol->nat_inside[i].len);
		/* Outbound: from an inside prefix, through the gateway (not to its own addresses).
		 * An offloaded flow is tracked, and marked for the engine when it carries our
		 * conntrack entry; everything else is untracked. */
		if (offload) {
			TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->inside_if, "-s", prefix, "-p",
			    "tcp", "-m", "set", "--match-set", LG_KNAT_SET, "src,src,dst", "-j",
			    "RETURN");
			TRY("-t", "mangle", "-A", "LEMONGATE-OUT", "-i", pol->inside_if, "-o",
			    pol->outside_if, "-s", prefix, "-p", "tcp", "-m", "connmark", "--mark",
			    ctmark, "-j", "MARK", "--or-mark", pktmark);
		}
		TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->inside_if, "-s", prefix, "-p", "tcp",
		    "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "CT", "--notrack");
		TRY("-t", "mangle", "-A", "LEMONGATE-OUT", "-i", pol->inside_if, "-o", pol->outside_if,
		    "-s", prefix, "-p", "tcp", "-j", "NFQUEUE", qflag, queue, bypass);
	}
	/* ICMP errors (unreachable, time exceeded, parameter problem) about our flows, both ways;
	 * queries such as a ping of the gateway itself are left alone. */
	for (size_t t = 0; t < sizeof(icmp_errors) / sizeof(icmp_errors[0]); t++) {
		for (size_t i = 0; i < pol->nat_inside_count; i++) {
			char addr[INET_ADDRSTRLEN], prefix[INET_ADDRSTRLEN + 4];

			inet_ntop(AF_INET, &pol->nat_inside[i].addr, addr, sizeof(addr));
			snprintf(prefix, sizeof(prefix), "%s/%u", addr, pol->nat_inside[i].len);
			TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->inside_if, "-s", prefix, "-p",
			    "icmp", "--icmp-type", icmp_errors[t], "-m", "addrtype", "!", "--dst-type",
			    "LOCAL", "-j", "CT", "--notrack");
			TRY("-t", "mangle", "-A", "LEMONGATE-OUT", "-i", pol->inside_if, "-o",
			    pol->outside_if, "-s", prefix, "-p", "icmp", "--icmp-type", icmp_errors[t],
			    "-j", "NFQUEUE", qflag, queue, bypass);
		}
		TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->outside_if, "-d", pub, "-p", "icmp",
		    "--icmp-type", icmp_errors[t], "-j", "CT", "--notrack");
		TRY("-t", "mangle", "-A", "LEMONGATE-IN", "-i", pol->outside_if, "-d", pub, "-p", "icmp",
		    "--icmp-type", icmp_errors[t], "-j", "NFQUEUE", qflag, queue, bypass);
	}
	/* ICMP echo (RFC 5508 section 3): requests from inside out, replies to the public address
	 * in. Echoes to the gateway's own addresses are its own business and not queued. */
	for (size_t i = 0; i < pol->nat_inside_count; i++) {
		char addr[INET_ADDRSTRLEN], prefix[INET_ADDRSTRLEN + 4];

		inet_ntop(AF_INET, &pol->nat_inside[i].addr, addr, sizeof(addr));
		snprintf(prefix, sizeof(prefix), "%s/%u", addr, pol->nat_inside[i].len);
		TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->inside_if, "-s", prefix, "-p", "icmp",
		    "--icmp-type", "echo-request", "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j",
		    "CT", "--notrack");
		TRY("-t", "mangle", "-A", "LEMONGATE-OUT", "-i", pol->inside_if, "-o", pol->outside_if,
		    "-s", prefix, "-p", "icmp", "--icmp-type", "echo-request", "-j", "NFQUEUE", qflag,
		    queue, bypass);
	}
	TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->outside_if, "-d", pub, "-p", "icmp",
	    "--icmp-type", "echo-reply", "-j", "CT", "--notrack");
	TRY("-t", "mangle", "-A", "LEMONGATE-IN", "-i", pol->outside_if, "-d", pub, "-p", "icmp",
	    "--icmp-type", "echo-reply", "-j", "NFQUEUE", qflag, queue, bypass);
	/* Hairpinned ICMP errors (RFC 5508 REQ-7): an inside host's error about a hairpinned
	 * segment goes to the public address; it is turned toward the sender before routing, and
	 * given the public address as its source after (as the hairpinned segments are). */
	for (size_t t = 0; t < sizeof(icmp_errors) / sizeof(icmp_errors[0]); t++) {
		for (size_t i = 0; i < pol->nat_inside_count; i++) {
			char addr[INET_ADDRSTRLEN], prefix[INET_ADDRSTRLEN + 4];

			inet_ntop(AF_INET, &pol->nat_inside[i].addr, addr, sizeof(addr));
			snprintf(prefix, sizeof(prefix), "%s/%u", addr, pol->nat_inside[i].len);
			TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->inside_if, "-s", prefix, "-d", pub,
			    "-p", "icmp", "--icmp-type", icmp_errors[t], "-j", "CT", "--notrack");
			TRY("-t", "mangle", "-A", "LEMONGATE-IN", "-i", pol->inside_if, "-s", prefix, "-d",
			    pub, "-p", "icmp", "--icmp-type", icmp_errors[t], "-j", "NFQUEUE", qflag,
			    queue, bypass);
			for (size_t k = 0; k < pol->nat_inside_count; k++) {
				char to[INET_ADDRSTRLEN + 4];

				inet_ntop(AF_INET, &pol->nat_inside[k].addr, addr, sizeof(addr));
				snprintf(to, sizeof(to), "%s/%u", addr, pol->nat_inside[k].len);
				TRY("-t", "mangle", "-A", "LEMONGATE-OUT", "-i", pol->inside_if, "-o",
				    pol->inside_if, "-s", prefix, "-d", to, "-p", "icmp", "--icmp-type",
				    icmp_errors[t], "-j", "NFQUEUE", qflag, queue, bypass);
			}
		}
	}
	/* Hairpinning: inside to the public address, queued twice. Before routing the destination
	 * becomes the mapping's owner; after routing (back out the inside interface) the source
	 * becomes the sender's public endpoint. */
	for (size_t i = 0; i < pol->nat_inside_count; i++) {
		char addr[INET_ADDRSTRLEN], from[INET_ADDRSTRLEN + 4];

		inet_ntop(AF_INET, &pol->nat_inside[i].addr, addr, sizeof(addr));
		snprintf(from, sizeof(from), "%s/%u", addr, pol->nat_inside[i].len);
		TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->inside_if, "-s", from, "-d", pub, "-p",
		    "tcp", "--dport", ports, "-j", "CT", "--notrack");
		TRY("-t", "mangle", "-A", "LEMONGATE-IN", "-i", pol->inside_if, "-s", from, "-d", pub,
		    "-p", "tcp", "--dport", ports, "-j", "NFQUEUE", qflag, queue, bypass);
		for (size_t k = 0; k < pol->nat_inside_count; k++) {
			char to[INET_ADDRSTRLEN + 4];

			inet_ntop(AF_INET, &pol->nat_inside[k].addr, addr, sizeof(addr));
			snprintf(to, sizeof(to), "%s/%u", addr, pol->nat_inside[k].len);
			TRY("-t", "mangle", "-A", "LEMONGATE-OUT", "-i", pol->inside_if, "-o",
			    pol->inside_if, "-s", from, "-d", to, "-p", "tcp", "-j", "NFQUEUE", qflag,
			    queue, bypass);
		}
	}
	/* Inbound: to the public address, in the NAT port range. */
	if (offload) {
		TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->outside_if, "-d", pub, "-p", "tcp",
		    "--dport", ports, "-m", "set", "--match-set", LG_KNAT_SET, "dst,dst,src", "-j",
		    "RETURN");
		TRY("-t", "mangle", "-A", "LEMONGATE-IN", "-i", pol->outside_if, "-d", pub, "-p",
		    "tcp", "--dport", ports, "-m", "connmark", "--mark", ctmark, "-j", "MARK",
		    "--or-mark", pktmark);
	}
	TRY("-t", "raw", "-A", "LEMONGATE", "-i", pol->outside_if, "-d", pub, "-p", "tcp",
	    "--dport", ports, "-j", "CT", "--notrack");
	TRY("-t", "mangle", "-A", "LEMONGATE-IN", "-i", pol->outside_if, "-d", pub, "-p", "tcp",
	    "--dport", ports, "-j", "NFQUEUE", qflag, queue, bypass);
	for (size_t i = 0; i < HOOK_COUNT; i++)
		if (offload || !hooks[i].offload_only)
			TRY("-t", hooks[i].table, "-I", hooks[i].builtin, "1", "-j", hooks[i].chain);
	if (pol->inside6_count)
		return install6(pol, qflag, queue, bypass, err, errlen);
	return 0;
}
