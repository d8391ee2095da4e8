/* Offline mode: the packet path over a capture file (libpcap), no kernel and no root.
 * Feeds the engine what the steering rules would queue (IPv4 TCP and ICMP), with the capture's
 * timestamps as the clock, and writes the packets it would forward, translated. */
#ifndef LG_REPLAY_H
#define LG_REPLAY_H

#include "dataplane/engine.h"

#include <stddef.h>
#include <stdint.h>

struct lg_replay_stats {
	uint64_t read;          /* records in the capture */
	uint64_t not_steered;   /* neither IPv4 TCP nor ICMP: left out, as the steering rules would */
	uint64_t accepted, dropped, modified;
	double seconds;         /* wall time in the packet path */
};

/* Replay IN (pcap or pcapng; Ethernet, raw IP or Linux cooked link types) through ENGINE,
 * writing accepted packets to OUT (NULL: write nothing). 0, or -1 with a message in ERR. */
int lg_replay_run(struct lg_engine *engine, const char *in, const char *out,
		  struct lg_replay_stats *st, char *err, size_t errlen);

#endif
