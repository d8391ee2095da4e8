#include "dataplane/packet.h"

#include "dataplane/checksum.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#define IPV4_MIN_HDR 20
#define TCP_MIN_HDR  20
#define IP_PROTO_TCP 6
#define IP_PROTO_ICMP 1
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

static bool icmp_is_error(uint8_t type)
{
	/* unreachable, source quench, redirect, time exceeded, parameter problem */
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/* The ICMP part of a packet whose IP header has been checked. */
static enum lg_pkt_status parse_icmp(struct lg_pkt *pkt)
{
	struct lg_icmp_error *ie = &pkt->icmp;
	size_t avail, ihl, tot, rfc4884_len = 0;
	uint16_t frag;

	if (pkt->l4_len < 8)
		return LG_PKT_TRUNCATED;
	if (lg_csum_finish(lg_csum_add(0, pkt->l4, pkt->l4_len)) != 0)
		return LG_PKT_BAD_ICMP_CSUM;
	ie->icmp = pkt->l4;
	ie->icmp_len = pkt->l4_len;
	ie->type = pkt->l4[0];
	ie->code = pkt->l4[1];
	if (ie->type == LG_ICMP_ECHO_REQUEST || ie->type == LG_ICMP_ECHO_REPLY) {
		pkt->query = true;
		pkt->query_id = rd16(pkt->l4 + 4);
		return LG_PKT_OK;
	}
	if (!icmp_is_error(ie->type))
		return LG_PKT_ICMP_UNSUPPORTED;
	/* RFC 4884: a length (in 32-bit words) of the quoted datagram; extensions follow it */
	if (ie->type == 3 || ie->type == 11)
		rfc4884_len = (size_t)pkt->l4[5] * 4;
	else if (ie->type == 12)
		rfc4884_len = (size_t)pkt->l4[4] * 4;
	avail = pkt->l4_len - 8;
	if (rfc4884_len && rfc4884_len < avail)
		avail = rfc4884_len;
	ie->inner_ip = pkt->l4 + 8;
	if (avail < IPV4_MIN_HDR || (ie->inner_ip[0] >> 4) != 4)
		return LG_PKT_BAD_INNER;
	ihl = (size_t)(ie->inner_ip[0] & 0x0f) * 4;
	if (ihl < IPV4_MIN_HDR || ihl > avail)
		return LG_PKT_BAD_INNER;
	if (lg_csum_ipv4_header(ie->inner_ip, ihl) != 0)
		return LG_PKT_BAD_INNER_CSUM;
	tot = ntohs(rd16(ie->inner_ip + 2));
	frag = ntohs(rd16(ie->inner_ip + 6));
	if (tot < ihl)
		return LG_PKT_BAD_INNER;
	/* only a first fragment carries the ports or the query id */
	if ((ie->inner_ip[9] != IP_PROTO_TCP && ie->inner_ip[9] != IP_PROTO_ICMP) ||
	    (frag & IP_OFFMASK) || avail < ihl + 8 || tot < ihl + 8)
		return LG_PKT_ICMP_UNSUPPORTED;
	ie->inner_proto = ie->inner_ip[9];
	ie->inner_ihl = ihl;
	ie->inner_l4 = ie->inner_ip + ihl;
	ie->inner_saddr = rd32(ie->inner_ip + 12);
	ie->inner_daddr = rd32(ie->inner_ip + 16);
	if (ie->inner_proto == IP_PROTO_ICMP) {
		/* an error about an echo (ping, traceroute -I): its id is what we translated */
		if (ie->inner_l4[0] != LG_ICMP_ECHO_REQUEST && ie->inner_l4[0] != LG_ICMP_ECHO_REPLY)
			return LG_PKT_ICMP_UNSUPPORTED;
		ie->inner_sport = rd16(ie->inner_l4 + 4);
		ie->inner_dport = 0;
		return LG_PKT_OK;
	}
	ie->inner_sport = rd16(ie->inner_l4);
	ie->inner_dport = rd16(ie->inner_l4 + 2);
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
	if (buf[9] != IP_PROTO_TCP && buf[9] != IP_PROTO_ICMP)
		return LG_PKT_NOT_TCP;
	pkt->ip = buf;
	pkt->len = tot_len;
	pkt->ihl = ihl;
	pkt->l4 = buf + ihl;
	pkt->l4_len = tot_len - ihl;
	pkt->proto = buf[9];
	pkt->saddr = rd32(buf + 12);
	pkt->daddr = rd32(buf + 16);
	if (pkt->proto == IP_PROTO_ICMP)
		return parse_icmp(pkt);
	if (tot_len - ihl < TCP_MIN_HDR)
		return LG_PKT_TRUNCATED;
	doff = (size_t)(pkt->l4[12] >> 4) * 4;
	if (doff < TCP_MIN_HDR || doff > pkt->l4_len)
		return LG_PKT_BAD_TCP_OFFSET;
	pkt->payload_len = pkt->l4_len - doff;
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
		[LG_PKT_BAD_ICMP_CSUM] = "bad_icmp_checksum",
		[LG_PKT_BAD_INNER] = "bad_icmp_inner_header",
		[LG_PKT_BAD_INNER_CSUM] = "bad_icmp_inner_checksum",
		[LG_PKT_ICMP_UNSUPPORTED] = "icmp_unsupported",
	};

	return (unsigned)status < LG_PKT_STATUS_COUNT ? names[status] : "unknown";
}
