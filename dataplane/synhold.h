/* Unsolicited inbound SYNs, remembered for 6 seconds (RFC 5382 REQ-4): if the inside sends a
 * SYN for the same connection meanwhile, the inbound one is forgotten silently; otherwise it
 * becomes due and the caller answers it (ICMP 3/3, ICMPv6 1/4) or not (REQ-4a). The SYN itself
 * is always dropped at once, never delivered. Bounded: when full, the oldest is forgotten
 * unanswered. */
#ifndef LG_SYNHOLD_H
#define LG_SYNHOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LG_SYNHOLD_NS    (6ull * 1000000000ull)
#define LG_SYNHOLD_SLOTS 4096 /* a power of two */
#define LG_SYNHOLD_QUOTE_MAX 64 /* an IPv6 header and a TCP header: what an answer quotes */

/* A held SYN's connection as the gateway sees it: the remote endpoint, and the local one the
 * SYN asked for. IPv4: REM's and LOCAL's first 4 bytes, LOCAL the public address.
 * IPv6: the inside address and port, as nothing is translated. */
struct lg_synhold_key {
	uint8_t family; /* 4 or 6 */
	uint8_t rem[16], local[16];
	uint16_t rem_port, local_port; /* network byte order */
};

static inline struct lg_synhold_key lg_synhold_key4(uint32_t rem_addr, uint16_t rem_port,
						    uint32_t pub_addr, uint16_t pub_port)
{
	struct lg_synhold_key k;

	memset(&k, 0, sizeof(k));
	k.family = 4;
	memcpy(k.rem, &rem_addr, 4);
	memcpy(k.local, &pub_addr, 4);
	k.rem_port = rem_port;
	k.local_port = pub_port;
	return k;
}

static inline struct lg_synhold_key lg_synhold_key6(const uint8_t rem[16], uint16_t rem_port,
						    const uint8_t in[16], uint16_t in_port)
{
	struct lg_synhold_key k;

	memset(&k, 0, sizeof(k));
	k.family = 6;
	memcpy(k.rem, rem, 16);
	memcpy(k.local, in, 16);
	k.rem_port = rem_port;
	k.local_port = in_port;
	return k;
}

struct lg_synhold_entry {
	struct lg_synhold_key key;
	uint64_t first_ns;
	uint8_t quote[LG_SYNHOLD_QUOTE_MAX];
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
/* Remember a SYN and the first QUOTE_LEN bytes of it (at most LG_SYNHOLD_QUOTE_MAX kept);
 * false if this connection's SYN is already held (a retransmission). */
bool lg_synhold_note(struct lg_synhold *h, const struct lg_synhold_key *k, uint64_t now_ns,
		     const uint8_t *quote, size_t quote_len);
/* The inside opened the same connection: forget the held SYN. True if one was held. */
bool lg_synhold_cancel(struct lg_synhold *h, const struct lg_synhold_key *k);
/* Pop every entry held 6 s by NOW_NS; FN is called for those still live. Returns FN's calls. */
size_t lg_synhold_due(struct lg_synhold *h, uint64_t now_ns,
		      void (*fn)(const struct lg_synhold_entry *e, void *arg), void *arg);

#endif
