/* Safe memory reclamation for the lock-free flow table: quiescent-state based (QSBR), with
 * online/offline so that a thread blocked in recv() never holds a grace period back.
 * A reader thread registers once; between two quiescent points (or while online) it may hold
 * pointers found in the table. A writer that unlinked something asks for a grace period with
 * lg_qsbr_advance() and may reuse it once lg_qsbr_passed() says every online reader has been
 * quiescent since. */
#ifndef LG_QSBR_H
#define LG_QSBR_H

#include <stdbool.h>
#include <stdint.h>

#define LG_QSBR_MAX_THREADS 64

struct lg_qsbr;

struct lg_qsbr *lg_qsbr_create(void);
void lg_qsbr_destroy(struct lg_qsbr *q);

/* A slot for the calling thread, offline until lg_qsbr_online(); -1 when all are taken. */
int lg_qsbr_register(struct lg_qsbr *q);
void lg_qsbr_unregister(struct lg_qsbr *q, int id);

void lg_qsbr_online(struct lg_qsbr *q, int id);
void lg_qsbr_offline(struct lg_qsbr *q, int id);
/* The thread holds no pointer into the table at this point. */
void lg_qsbr_quiescent(struct lg_qsbr *q, int id);

/* Start a grace period; returns its target. */
uint64_t lg_qsbr_advance(struct lg_qsbr *q);
/* Has every online reader been quiescent since TARGET was returned? Never blocks. */
bool lg_qsbr_passed(struct lg_qsbr *q, uint64_t target);

#endif
