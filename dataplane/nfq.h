/* NFQUEUE I/O over libmnl: one queue, one thread. Packets are received many at a time
 * (recvmmsg), go to the engine one by one, and their verdicts (with the rewritten packet) go
 * back to the kernel together in one send; runs of untouched accepts become one batch
 * verdict. The queue takes GSO packets whole (NFQA_CFG_F_GSO), so a checksum the kernel left
 * partial is completed here when we rewrite the packet. */
#ifndef LG_NFQ_H
#define LG_NFQ_H

#include "dataplane/engine.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lg_nfq_stats {
	_Atomic uint64_t received, accepted, dropped;
	_Atomic uint64_t receives, sends;    /* system calls: packets and verdicts per call */
	_Atomic uint64_t batch_verdicts;     /* verdicts that each covered a run of accepts */
	_Atomic uint64_t gso, csum_completed; /* GSO packets; partial checksums completed */
	_Atomic uint64_t truncated;          /* longer than the kernel copies to us: dropped */
	_Atomic uint64_t recv_errors, send_errors, enobufs;
};

struct lg_nfq_config {
	uint16_t queue_num;
	uint32_t length;  /* packets the kernel holds before it drops (or passes: fail_open) */
	bool fail_open;   /* NFQA_CFG_F_FAIL_OPEN: a full queue passes packets untouched */
	bool gso;         /* NFQA_CFG_F_GSO: take GSO packets whole */
};

struct lg_nfq;

/* Bind and configure a queue; every setting is acknowledged by the kernel. NULL with a
 * message in ERR on failure. A kernel without GSO support is reported in WARN (if not NULL)
 * and the queue works without it. */
struct lg_nfq *lg_nfq_open(const struct lg_nfq_config *cfg, char *err, size_t errlen,
			   char *warn, size_t warnlen);
/* Decides on one packet of LEN bytes at PKT, rewriting it in place (as lg_engine_packet).
 * MARK: the packet's mark (0 when it has none). */
typedef enum lg_verdict lg_nfq_handler(void *arg, uint8_t *pkt, size_t len, uint32_t mark,
				       bool *modified, size_t *len_out);
/* Hand packets to FN until *STOP becomes true (checked at least every 200 ms). */
void lg_nfq_run(struct lg_nfq *q, lg_nfq_handler *fn, void *arg, atomic_bool *stop);
const struct lg_nfq_stats *lg_nfq_stats(const struct lg_nfq *q);
uint16_t lg_nfq_number(const struct lg_nfq *q);
/* The kernel's own drop counters for the queue (/proc/net/netfilter/nfnetlink_queue): full
 * queue, and messages it could not hand to us. 0, or -1 when they cannot be read. */
int lg_nfq_kernel_drops(const struct lg_nfq *q, uint64_t *queue_full, uint64_t *user_dropped);
void lg_nfq_close(struct lg_nfq *q);

#endif
