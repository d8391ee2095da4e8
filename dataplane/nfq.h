/* NFQUEUE I/O over libmnl: one queue, one thread. Packets go to the engine, verdicts
 * (with the rewritten packet) go back to the kernel. */
#ifndef LG_NFQ_H
#define LG_NFQ_H

#include "dataplane/engine.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct lg_nfq_stats {
	_Atomic uint64_t received, accepted, dropped, recv_errors, send_errors, enobufs;
};

struct lg_nfq;

/* Bind queue QUEUE_NUM. NULL with a message in ERR on failure. */
struct lg_nfq *lg_nfq_open(uint16_t queue_num, char *err, size_t errlen);
/* Process packets until *STOP becomes true (checked at least every 200 ms). */
void lg_nfq_run(struct lg_nfq *q, struct lg_engine *engine, atomic_bool *stop);
const struct lg_nfq_stats *lg_nfq_stats(const struct lg_nfq *q);
uint16_t lg_nfq_number(const struct lg_nfq *q);
void lg_nfq_close(struct lg_nfq *q);

#endif
