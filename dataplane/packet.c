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

static enum lg_pkt_status parse_tcp(struct lg_pkt *pkt);
static enum lg_pkt_status parse_ipv6(uint8_t *buf, size_t caplen, struct lg_pkt *pkt);

enum lg_pkt_status lg_pkt_parse(uint8_t *buf, size_t caplen, struct lg_pkt *pkt)
{
	size_t ihl, tot_len;
	uint16_t frag;

	memset(pkt, 0, sizeof(*pkt));
	if (caplen < 1)
		return LG_PKT_TRUNCATED;
	if ((buf[0] >> 4) == 6)
		return parse_ipv6(buf, caplen, pkt);
	if (caplen < IPV4_MIN_HDR)
		return LG_PKT_TRUNCATED;
	if ((buf[0] >> 4) != 4)
		return LG_PKT_BAD_VERSION;
	pkt->family = 4;
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
	return parse_tcp(pkt);
}

/* The TCP header of a packet whose IP part has been checked; L4 and L4_LEN are set. */
static enum lg_pkt_status parse_tcp(struct lg_pkt *pkt)
{
	size_t doff;

	if (pkt->l4_len < TCP_MIN_HDR)
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

/* IPv6 (RFC 8200): extension headers are skipped to the upper-layer header; a fragment header
 * ends the walk (fragments are dropped, as in IPv4). */
#define IPV6_HDR       40
#define IPV6_EXT_MAX   8 /* more headers than this is an attack, not a real packet */
#define NH_HOP_BY_HOP  0
#define NH_ROUTING     43
#define NH_FRAGMENT    44
#define NH_DEST_OPTS   60

/* From *OFF (just past a header whose next-header value is *NH) within LEN bytes of IP, step
 * over hop-by-hop, routing and destination options headers. */
static enum lg_pkt_status skip_extensions(const uint8_t *ip, size_t len, uint8_t *nh, size_t *off)
{
	for (int n = 0; n <= IPV6_EXT_MAX; n++) {
		size_t hlen;

		if (*nh == NH_FRAGMENT)
			return LG_PKT_FRAGMENT;
		if (*nh != NH_HOP_BY_HOP && *nh != NH_ROUTING && *nh != NH_DEST_OPTS)
			return LG_PKT_OK;
		if (*off + 8 > len)
			return LG_PKT_BAD_EXT_HEADER;
		hlen = ((size_t)ip[*off + 1] + 1) * 8;
		if (*off + hlen > len)
			return LG_PKT_BAD_EXT_HEADER;
		*nh = ip[*off];
		*off += hlen;
	}
	return LG_PKT_BAD_EXT_HEADER;
}

static bool icmpv6_is_error(uint8_t type)
{
	/* destination unreachable, packet too big, time exceeded, parameter problem (RFC 4443) */
	return type >= 1 && type <= 4;
}

static uint16_t icmpv6_checksum(const uint8_t *src, const uint8_t *dst, const uint8_t *msg,
				size_t len)
{
	uint8_t pseudo[8] = { 0 };
	uint32_t len_be = htonl((uint32_t)len), sum;

	memcpy(pseudo, &len_be, 4);
	pseudo[7] = LG_IPPROTO_ICMPV6;
	sum = lg_csum_add(0, src, 16);
	sum = lg_csum_add(sum, dst, 16);
	sum = lg_csum_add(sum, pseudo, sizeof(pseudo));
	return lg_csum_finish(lg_csum_add(sum, msg, len));
}

/* An ICMPv6 error and the start of the IPv6 packet it quotes (RFC 4443 section 2.4; RFC 4884
 * lengths count 64-bit words). Only errors about TCP are followed. */
static enum lg_pkt_status parse_icmpv6(struct lg_pkt *pkt)
{
	struct lg_icmp_error *ie = &pkt->icmp;
	size_t avail, off = IPV6_HDR, rfc4884_len = 0;
	uint8_t nh;
	enum lg_pkt_status st;

	if (pkt->l4_len < 8)
		return LG_PKT_TRUNCATED;
	if (icmpv6_checksum(pkt->saddr6, pkt->daddr6, pkt->l4, pkt->l4_len) != 0)
		return LG_PKT_BAD_ICMP_CSUM;
	ie->icmp = pkt->l4;
	ie->icmp_len = pkt->l4_len;
	ie->type = pkt->l4[0];
	ie->code = pkt->l4[1];
	if (!icmpv6_is_error(ie->type))
		return LG_PKT_ICMP_UNSUPPORTED;
	if (ie->type == 1 || ie->type == 3)
		rfc4884_len = (size_t)pkt->l4[4] * 8;
	avail = pkt->l4_len - 8;
	if (rfc4884_len && rfc4884_len < avail)
		avail = rfc4884_len;
	ie->inner_ip = pkt->l4 + 8;
	if (avail < IPV6_HDR || (ie->inner_ip[0] >> 4) != 6)
		return LG_PKT_BAD_INNER;
	nh = ie->inner_ip[6];
	st = skip_extensions(ie->inner_ip, avail, &nh, &off);
	if (st == LG_PKT_BAD_EXT_HEADER)
		return LG_PKT_BAD_INNER;
	/* a quoted fragment may still be the first one, with the ports; no others are ours */
	if (st != LG_PKT_OK || nh != IP_PROTO_TCP || off + 8 > avail)
		return LG_PKT_ICMP_UNSUPPORTED;
	ie->inner_proto = nh;
	ie->inner_ihl = off;
	ie->inner_l4 = ie->inner_ip + off;
	ie->inner_saddr6 = ie->inner_ip + 8;
	ie->inner_daddr6 = ie->inner_ip + 24;
	ie->inner_sport = rd16(ie->inner_l4);
	ie->inner_dport = rd16(ie->inner_l4 + 2);
	return LG_PKT_OK;
}

static enum lg_pkt_status parse_ipv6(uint8_t *buf, size_t caplen, struct lg_pkt *pkt)
{
	size_t tot_len, off = IPV6_HDR;
	uint8_t nh;
	enum lg_pkt_status st;

	pkt->family = 6;
	if (caplen < IPV6_HDR)
		return LG_PKT_TRUNCATED;
	tot_len = IPV6_HDR + ntohs(rd16(buf + 4));
	if (tot_len == IPV6_HDR && buf[6] == NH_HOP_BY_HOP)
		return LG_PKT_BAD_LENGTH; /* a jumbogram (RFC 2675): never on our links */
	if (caplen < tot_len)
		return LG_PKT_TRUNCATED;
	nh = buf[6];
	st = skip_extensions(buf, tot_len, &nh, &off);
	if (st != LG_PKT_OK)
		return st;
	if (nh != IP_PROTO_TCP && nh != LG_IPPROTO_ICMPV6)
		return LG_PKT_NOT_TCP;
	pkt->ip = buf;
	pkt->len = tot_len;
	pkt->ihl = off;
	pkt->l4 = buf + off;
	pkt->l4_len = tot_len - off;
	pkt->proto = nh;
	pkt->saddr6 = buf + 8;
	pkt->daddr6 = buf + 24;
	if (nh == LG_IPPROTO_ICMPV6)
		return parse_icmpv6(pkt);
	return parse_tcp(pkt);
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
		[LG_PKT_BAD_EXT_HEADER] = "bad_ipv6_extension_header",
	};

	return (unsigned)status < LG_PKT_STATUS_COUNT ? names[status] : "unknown";
}
