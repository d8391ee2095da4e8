/* TCP session tracking after RFC 7857 section 2 (the RFC 6146 state machine, simplified). */
#ifndef LG_TCPSTATE_H
#define LG_TCPSTATE_H

#include "dataplane/packet.h"

#include <stdbool.h>
#include <stdint.h>

enum lg_tcp_state {
	LG_TCP_CLOSED = 0,
	LG_TCP_INIT,         /* inside sent SYN, no answer yet */
	LG_TCP_ESTABLISHED,
	LG_TCP_C_FIN_RCV,    /* inside (client) sent FIN */
	LG_TCP_S_FIN_RCV,    /* outside (server) sent FIN */
	LG_TCP_CS_FIN_RCV,   /* both sent FIN */
	LG_TCP_TRANS,        /* after RST: kept 4 minutes, back to ESTABLISHED on traffic */
	LG_TCP_INIT_IN,      /* outside sent SYN to a mapping that admits it, no answer yet */
	LG_TCP_STATE_COUNT
};

/* The state after a segment with FLAGS from the inside (FROM_INSIDE) or the outside. */
enum lg_tcp_state lg_tcp_next(enum lg_tcp_state cur, bool from_inside, uint8_t flags);
/* Transitory states use the transitory idle timer, all others the established one. */
bool lg_tcp_is_transitory(enum lg_tcp_state state);
const char *lg_tcp_state_name(enum lg_tcp_state state);

/* Sequence-space tracking, enough to tell whether a RST belongs to the connection (RFC 7857
 * section 2.2: a RST is believed only once verified). Index 0 is the inside, 1 the outside. */
struct lg_tcp_track {
	uint32_t seq_end[2]; /* next sequence number each side will send */
	uint32_t ack[2];     /* last acknowledgment each side sent */
	uint32_t win[2];     /* last window each side advertised, scaled */
	int8_t wscale[2];    /* window-scale option from each side's SYN, -1 if none */
	uint8_t seen[2];     /* LG_TRACK_* bits */
};

#define LG_TRACK_SEQ 0x01
#define LG_TRACK_ACK 0x02
#define LG_TRACK_SYN 0x04

/* Record a segment from SIDE (0 inside, 1 outside) that was not a RST. */
void lg_tcp_track_update(struct lg_tcp_track *t, int side, const struct lg_pkt *p);
/* Does a RST from SIDE fall inside what the other side would accept? */
bool lg_tcp_rst_valid(const struct lg_tcp_track *t, int side, const struct lg_pkt *p);

#endif
