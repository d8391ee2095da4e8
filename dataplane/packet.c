#include "dataplane/packet.h"

#include "dataplane/checksum.h"

#include <arpa/inet.h>
#include <string.h>

#define IPV4_MIN_HDR 20
#define TCP_MIN_HDR  20
#define IP_PROTO_TCP 6
#define IP_MF        0x2000
#define IP_OFFMASK   0x1fff
#define TCPOPT_EOL    0
#define TCPOPT_NOP    1
#define TCPOPT_WSCALE 3
#define TCP_MAX_WSCALE 14 /* RFC 7323 section 2.3 */

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Walk the options of a TCP header of DOFF bytes; only the window scale is kept. */
static enum lg_pkt_status parse_options(const uint8_t *tcp, size_t doff, int8_t *wscale)
{
	size_t i = 20;

	*wscale = -1;
	while (i < doff) {
		uint8_t kind = tcp[i], len;

		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= doff)
			return LG_PKT_BAD_TCP_OPTIONS;
		len = tcp[i + 1];
		if (len < 2 || i + len > doff)
			return LG_PKT_BAD_TCP_OPTIONS;
		if (kind == TCPOPT_WSCALE && len == 3)
			*wscale = (int8_t)(tcp[i + 2] > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : tcp[i + 2]);
		i += len;
	}
	return LG_PKT_OK;
}

enum lg_pkt_status lg_pkt_parse(uint8_t *buf, size_t caplen, struct lg_pkt *pkt)
{
	size_t ihl, tot_len, doff;
	uint16_t frag;

	memset(pkt, 0, sizeof(*pkt));
	if (caplen < IPV4_MIN_HDR)
		return LG_PKT_TRUNCATED;
	if ((buf[0] >> 4) != 4)
		return LG_PKT_BAD_VERSION;
	ihl = (size_t)(buf[0] & 0x0f) * 4;
	if (ihl < IPV4_MIN_HDR)
		return LG_PKT_BAD_IHL;
	tot_len = ntohs(rd16(buf + 2));
	if (tot_len < ihl)
		return LG_PKT_BAD_LENGTH;
	if (caplen < ihl || caplen < tot_len)
		return LG_PKT_TRUNCATED;
	if (lg_csum_ipv4_header(buf, ihl) != 0)
		return LG_PKT_BAD_IP_CSUM;
	frag = ntohs(rd16(buf + 6));
	if (frag & (IP_MF | IP_OFFMASK))
		return LG_PKT_FRAGMENT;
	if (buf[9] != IP_PROTO_TCP)
		return LG_PKT_NOT_TCP;
	if (tot_len - ihl < TCP_MIN_HDR)
		return LG_PKT_TRUNCATED;

	pkt->ip = buf;
	pkt->len = tot_len;
	pkt->ihl = ihl;
	pkt->l4 = buf + ihl;
	pkt->l4_len = tot_len - ihl;
	doff = (size_t)(pkt->l4[12] >> 4) * 4;
	if (doff < TCP_MIN_HDR || doff > pkt->l4_len)
		return LG_PKT_BAD_TCP_OFFSET;
	pkt->payload_len = pkt->l4_len - doff;
	pkt->saddr = rd32(buf + 12);
	pkt->daddr = rd32(buf + 16);
	pkt->sport = rd16(pkt->l4);
	pkt->dport = rd16(pkt->l4 + 2);
	pkt->seq = ntohl(rd32(pkt->l4 + 4));
	pkt->ack = ntohl(rd32(pkt->l4 + 8));
	pkt->tcp_flags = pkt->l4[13];
	pkt->window = ntohs(rd16(pkt->l4 + 14));
	if (pkt->tcp_flags & LG_TCP_SYN)
		return parse_options(pkt->l4, doff, &pkt->wscale);
	pkt->wscale = -1;
	return LG_PKT_OK;
}

const char *lg_pkt_status_name(enum lg_pkt_status status)
{
	static const char *const names[LG_PKT_STATUS_COUNT] = {
		[LG_PKT_OK] = "ok",
		[LG_PKT_TRUNCATED] = "truncated",
		[LG_PKT_BAD_VERSION] = "bad_version",
		[LG_PKT_BAD_IHL] = "bad_ihl",
		[LG_PKT_BAD_LENGTH] = "bad_length",
		[LG_PKT_BAD_IP_CSUM] = "bad_ip_checksum",
		[LG_PKT_FRAGMENT] = "fragment",
		[LG_PKT_NOT_TCP] = "not_tcp",
		[LG_PKT_BAD_TCP_OFFSET] = "bad_tcp_offset",
		[LG_PKT_BAD_TCP_OPTIONS] = "bad_tcp_options",
	};

	return (unsigned)status < LG_PKT_STATUS_COUNT ? names[status] : "unknown";
}
