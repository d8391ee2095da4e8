#include "dataplane/tcpstate.h"

#include "dataplane/packet.h"

enum lg_tcp_state lg_tcp_next(enum lg_tcp_state cur, bool from_inside, uint8_t flags)
{
	bool syn = flags & LG_TCP_SYN, fin = flags & LG_TCP_FIN, rst = flags & LG_TCP_RST;

	if (rst)
		return cur == LG_TCP_CLOSED ? LG_TCP_CLOSED : LG_TCP_TRANS;
	switch (cur) {
	case LG_TCP_CLOSED:
		return (syn && from_inside) ? LG_TCP_INIT : LG_TCP_CLOSED;
	case LG_TCP_INIT:
		/* A SYN from outside is the SYN-ACK, or the other half of a simultaneous open. */
		return (syn && !from_inside) ? LG_TCP_ESTABLISHED : LG_TCP_INIT;
	case LG_TCP_ESTABLISHED:
		if (fin)
			return from_inside ? LG_TCP_C_FIN_RCV : LG_TCP_S_FIN_RCV;
		return LG_TCP_ESTABLISHED;
	case LG_TCP_C_FIN_RCV:
		return (fin && !from_inside) ? LG_TCP_CS_FIN_RCV : LG_TCP_C_FIN_RCV;
	case LG_TCP_S_FIN_RCV:
		return (fin && from_inside) ? LG_TCP_CS_FIN_RCV : LG_TCP_S_FIN_RCV;
	case LG_TCP_CS_FIN_RCV:
		return LG_TCP_CS_FIN_RCV;
	case LG_TCP_TRANS:
		/* RFC 6146 3.5.2.2: any non-RST packet in TRANS returns the session to ESTABLISHED. */
		return LG_TCP_ESTABLISHED;
	default:
		return cur;
	}
}

bool lg_tcp_is_transitory(enum lg_tcp_state state)
{
	return state == LG_TCP_INIT || state == LG_TCP_CS_FIN_RCV || state == LG_TCP_TRANS ||
	       state == LG_TCP_CLOSED;
}

const char *lg_tcp_state_name(enum lg_tcp_state state)
{
	static const char *const names[LG_TCP_STATE_COUNT] = {
		[LG_TCP_CLOSED] = "closed",
		[LG_TCP_INIT] = "init",
		[LG_TCP_ESTABLISHED] = "established",
		[LG_TCP_C_FIN_RCV] = "c_fin_rcv",
		[LG_TCP_S_FIN_RCV] = "s_fin_rcv",
		[LG_TCP_CS_FIN_RCV] = "cs_fin_rcv",
		[LG_TCP_TRANS] = "trans",
	};

	return (unsigned)state < LG_TCP_STATE_COUNT ? names[state] : "unknown";
}
