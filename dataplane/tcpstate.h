/* TCP session tracking after RFC 7857 section 2 (the RFC 6146 state machine, simplified). */
#ifndef LG_TCPSTATE_H
#define LG_TCPSTATE_H

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
	LG_TCP_STATE_COUNT
};

/* The state after a segment with FLAGS from the inside (FROM_INSIDE) or the outside. */
enum lg_tcp_state lg_tcp_next(enum lg_tcp_state cur, bool from_inside, uint8_t flags);
/* Transitory states use the transitory idle timer, all others the established one. */
bool lg_tcp_is_transitory(enum lg_tcp_state state);
const char *lg_tcp_state_name(enum lg_tcp_state state);

#endif
