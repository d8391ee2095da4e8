#include "dataplane/steer.h"

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

#define STEER_CHAIN  "LEMONGATE"
#define STEER_MAXARG 32

/* Run "iptables -w ARGS..." without a shell; returns its exit status, -1 if it could not run. */
static int iptables(bool quiet, const char *first, ...)
{
	char *argv[STEER_MAXARG] = { "iptables", "-w" };
	size_t n = 2;
	va_list ap;
	pid_t pid;
	int status;

	va_start(ap, first);
	for (const char *a = first; a && n < STEER_MAXARG - 1; a = va_arg(ap, const char *))
		argv[n++] = (char *)(uintptr_t)a; /* execvp's prototype predates const */
	va_end(ap);
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
		execvp("iptables", argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void remove_table(const char *table)
{
	/* Delete every jump (an earlier crash may have left more than one), then the chain. */
	for (int i = 0; i < 16; i++)
		if (iptables(true, "-t", table, "-D", "PREROUTING", "-j", STEER_CHAIN, NULL) != 0)
			break;
	iptables(true, "-t", table, "-F", STEER_CHAIN, NULL);
	iptables(true, "-t", table, "-X", STEER_CHAIN, NULL);
}

void lg_steer_remove(void)
{
	remove_table("mangle");
	remove_table("raw");
}

#define TRY(...)                                                                       \
	do {                                                                           \
		if (iptables(false, __VA_ARGS__, NULL) != 0) {                         \
			snprintf(err, errlen, "iptables %s failed", #__VA_ARGS__);     \
			lg_steer_remove();                                             \
			return -1;                                                     \
		}                                                                      \
	} while (0)

int lg_steer_install(const struct lg_policy *pol, char *err, size_t errlen)
{
	char pub[INET_ADDRSTRLEN + 3], ports[16], queue[16];
	const char *qflag;

	lg_steer_remove();
	inet_ntop(AF_INET, &pol->nat_public, pub, INET_ADDRSTRLEN);
	strcat(pub, "/32");
	snprintf(ports, sizeof(ports), "%u:%u", pol->port_lo, pol->port_hi);
	if (pol->queue_count > 1) {
		qflag = "--queue-balance";
		snprintf(queue, sizeof(queue), "%u:%u", pol->queue_first,
			 pol->queue_first + pol->queue_count - 1);
	} else {
		qflag = "--queue-num";
		snprintf(queue, sizeof(queue), "%u", pol->queue_first);
	}

	TRY("-t", "raw", "-N", STEER_CHAIN);
	TRY("-t", "mangle", "-N", STEER_CHAIN);
	for (size_t i = 0; i < pol->nat_inside_count; i++) {
		char addr[INET_ADDRSTRLEN], prefix[INET_ADDRSTRLEN + 4];

		inet_ntop(AF_INET, &pol->nat_inside[i].addr, addr, sizeof(addr));
		snprintf(prefix, sizeof(prefix), "%s/%u", addr, pol->nat_inside[i].len);
		/* Outbound: from an inside prefix, through the gateway (not to one of its own
		 * addresses). */
		TRY("-t", "raw", "-A", STEER_CHAIN, "-i", pol->inside_if, "-s", prefix, "-p", "tcp",
		    "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "CT", "--notrack");
		TRY("-t", "mangle", "-A", STEER_CHAIN, "-i", pol->inside_if, "-s", prefix, "-p", "tcp",
		    "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "NFQUEUE", qflag, queue);
	}
	/* Inbound: to the public address, in the NAT port range. Queued before routing so that
	 * the rewritten destination is what the kernel routes on. */
	TRY("-t", "raw", "-A", STEER_CHAIN, "-i", pol->outside_if, "-d", pub, "-p", "tcp",
	    "--dport", ports, "-j", "CT", "--notrack");
	TRY("-t", "mangle", "-A", STEER_CHAIN, "-i", pol->outside_if, "-d", pub, "-p", "tcp",
	    "--dport", ports, "-j", "NFQUEUE", qflag, queue);
	TRY("-t", "raw", "-I", "PREROUTING", "1", "-j", STEER_CHAIN);
	TRY("-t", "mangle", "-I", "PREROUTING", "1", "-j", STEER_CHAIN);
	return 0;
}
