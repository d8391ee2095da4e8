/* The baseline of make bench's packet-path figures: an NFQUEUE reader that accepts every
 * packet untouched, with exactly lemongated's queue I/O (dataplane/nfq.c: same receive
 * batches, batch verdicts, GSO and buffer sizes). What lemongated costs on top of it is
 * parsing, flow tracking, NAT and rewriting.
 * Usage: nfq_accept QUEUE  (runs until SIGINT or SIGTERM, writes "ready" on stdout once bound) */
#include "dataplane/nfq.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_bool stop;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop, true);
}

static enum lg_verdict accept_all(void *arg, uint8_t *pkt, size_t len, uint32_t mark, bool *modified,
				  size_t *len_out)
{
	(void)arg;
	(void)pkt;
	(void)mark;
	*modified = false;
	*len_out = len;
	return LG_VERDICT_ACCEPT;
}

int main(int argc, char **argv)
{
	struct lg_nfq_config cfg = { .length = 4096, .gso = true };
	struct sigaction sa = { .sa_handler = on_signal };
	char err[256], warn[256];
	struct lg_nfq *q;
	const struct lg_nfq_stats *st;

	if (argc != 2) {
		fprintf(stderr, "usage: nfq_accept QUEUE\n");
		return 2;
	}
	cfg.queue_num = (uint16_t)atoi(argv[1]);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	q = lg_nfq_open(&cfg, err, sizeof(err), warn, sizeof(warn));
	if (!q) {
		fprintf(stderr, "nfq_accept: %s\n", err);
		return 1;
	}
	if (warn[0])
		fprintf(stderr, "nfq_accept: %s\n", warn);
	printf("ready\n");
	fflush(stdout);
	lg_nfq_run(q, accept_all, NULL, &stop);
	st = lg_nfq_stats(q);
	fprintf(stderr, "nfq_accept: %llu packets, %llu receive calls, %llu batch verdicts\n",
		(unsigned long long)st->received, (unsigned long long)st->receives,
		(unsigned long long)st->batch_verdicts);
	lg_nfq_close(q);
	return 0;
}
