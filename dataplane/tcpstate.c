#include "dataplane/tcpstate.h"


enum lg_tcp_state lg_tcp_next(enum lg_tcp_state cur, bool from_inside, uint8_t flags)
{
	bool syn = flags & LG_TCP_SYN, fin = flags & LG_TCP_FIN, rst = flags & LG_TCP_RST;

	if (rst)
		return cur == LG_TCP_CLOSED ? LG_TCP_CLOSED : LG_TCP_TRANS;
	switch (cur) {
	case LG_TCP_CLOSED:
		if (!syn)
			return LG_TCP_CLOSED;
		return from_inside ? LG_TCP_INIT : LG_TCP_INIT_IN;
	case LG_TCP_INIT:
		/* A SYN from outside is the SYN-ACK, or the other half of a simultaneous open. */
		return (syn && !from_inside) ? LG_TCP_ESTABLISHED : LG_TCP_INIT;
	case LG_TCP_INIT_IN:
		return (syn && from_inside) ? LG_TCP_ESTABLISHED : LG_TCP_INIT_IN;
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
	return state == LG_TCP_INIT || state == LG_TCP_INIT_IN || state == LG_TCP_CS_FIN_RCV ||
	       state == LG_TCP_TRANS || state == LG_TCP_CLOSED;
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
		[LG_TCP_INIT_IN] = "init_in",
	};

	return (unsigned)state < LG_TCP_STATE_COUNT ? names[state] : "unknown";
}

/* Sequence arithmetic modulo 2^32 (RFC 793 section 3.3). */
static bool seq_after(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

void lg_tcp_track_update(struct lg_tcp_track *t, int side, const struct lg_pkt *p)
{
	uint32_t end = p->seq + (uint32_t)p->payload_len + !!(p->tcp_flags & LG_TCP_SYN) +
		       !!(p->tcp_flags & LG_TCP_FIN);
	int other = !side;
	bool scaled;

	if (p->tcp_flags & LG_TCP_SYN) {
		t->wscale[side] = p->wscale;
		t->seen[side] |= LG_TRACK_SYN;
	}
	if (!(t->seen[side] & LG_TRACK_SEQ) || seq_after(end, t->seq_end[side]))
		t->seq_end[side] = end;
	t->seen[side] |= LG_TRACK_SEQ;
	if (p->tcp_flags & LG_TCP_ACK) {
		t->ack[side] = p->ack;
		t->seen[side] |= LG_TRACK_ACK;
	}
	/* Windows in SYN segments are never scaled; others only when both SYNs offered it. */
	scaled = !(p->tcp_flags & LG_TCP_SYN) && t->wscale[side] >= 0 && t->wscale[other] >= 0 &&
		 (t->seen[side] & LG_TRACK_SYN) && (t->seen[other] & LG_TRACK_SYN);
	t->win[side] = (uint32_t)p->window << (scaled ? t->wscale[side] : 0);
}

bool lg_tcp_rst_valid(const struct lg_tcp_track *t, int side, const struct lg_pkt *p)
{
	int other = !side;

	if (t->seen[other] & LG_TRACK_ACK) {
		uint32_t win = t->win[other] ? t->win[other] : 1;

		if (p->seq - t->ack[other] < win)
			return true;
	}
	if ((t->seen[side] & LG_TRACK_SEQ) && p->seq == t->seq_end[side])
		return true;
	/* The answer to a SYN: no sequence number of ours yet, but it must acknowledge the SYN. */
	if ((p->tcp_flags & LG_TCP_ACK) && (t->seen[other] & LG_TRACK_SYN) &&
	    !(t->seen[side] & LG_TRACK_SEQ))
		return p->ack == t->seq_end[other];
	return false;
}
