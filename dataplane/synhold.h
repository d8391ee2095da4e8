/* Unsolicited inbound SYNs, remembered for 6 seconds (RFC 5382 REQ-4): if the inside sends a
 * SYN for the same connection meanwhile, the inbound one is forgotten silently; otherwise it
 * becomes due and the caller answers it (ICMP 3/3) or not (REQ-4a). The SYN itself is always
 * dropped at once, never delivered. Bounded: when full, the oldest is forgotten unanswered. */
#ifndef LG_SYNHOLD_H
#define LG_SYNHOLD_H

#include "dataplane/icmpgen.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_SYNHOLD_NS    (6ull * 1000000000ull)
#define LG_SYNHOLD_SLOTS 4096 /* a power of two */

struct lg_synhold_entry {
	uint32_t rem_addr;           /* network byte order */
	uint16_t rem_port, pub_port; /* network byte order */
	uint64_t first_ns;
	uint8_t quote[LG_ICMP_QUOTE_MAX];
	uint8_t quote_len;
	bool live;                   /* false once cancelled */
	uint16_t next;               /* bucket chain: ring index + 1 */
};

struct lg_synhold {
	struct lg_synhold_entry ring[LG_SYNHOLD_SLOTS];
	uint16_t buckets[LG_SYNHOLD_SLOTS];
	size_t head, count; /* ring order is arrival order, so the head is the oldest */
	uint64_t seed;
	uint64_t overflow;  /* forgotten unanswered because the ring was full */
};

void lg_synhold_init(struct lg_synhold *h, uint64_t seed);
/* Remember a SYN; false if this connection's SYN is already held (a retransmission). */
bool lg_synhold_note(struct lg_synhold *h, uint32_t rem_addr, uint16_t rem_port, uint16_t pub_port,
		     uint64_t now_ns, const uint8_t *quote, size_t quote_len);
/* The inside opened the same connection: forget the held SYN. True if one was held. */
bool lg_synhold_cancel(struct lg_synhold *h, uint32_t rem_addr, uint16_t rem_port, uint16_t pub_port);
/* Pop every entry held 6 s by NOW_NS; FN is called for those still live. Returns FN's calls. */
size_t lg_synhold_due(struct lg_synhold *h, uint64_t now_ns,
		      void (*fn)(const struct lg_synhold_entry *e, void *arg), void *arg);

#endif
