/* Parsing and validation of the packets handed to us by NFQUEUE or a capture: IPv4 TCP, ICMP
 * echo and ICMP errors about TCP or echo; IPv6 TCP (extension headers skipped) and ICMPv6
 * errors about TCP. Nothing in a packet is trusted until lg_pkt_parse has accepted it. */
#ifndef LG_PACKET_H
#define LG_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_TCP_FIN 0x01
#define LG_TCP_SYN 0x02
#define LG_TCP_RST 0x04
#define LG_TCP_PSH 0x08
#define LG_TCP_ACK 0x10

enum lg_pkt_status {
	LG_PKT_OK = 0,
	LG_PKT_TRUNCATED,      /* fewer bytes than the headers or total length claim */
	LG_PKT_BAD_VERSION,
	LG_PKT_BAD_IHL,
	LG_PKT_BAD_LENGTH,     /* total length shorter than the header */
	LG_PKT_BAD_IP_CSUM,
	LG_PKT_FRAGMENT,
	LG_PKT_NOT_TCP,
	LG_PKT_BAD_TCP_OFFSET,
	LG_PKT_BAD_TCP_OPTIONS, /* an option runs past the header or has length < 2 */
	LG_PKT_BAD_ICMP_CSUM,   /* RFC 5508 REQ-3: dropped silently */
	LG_PKT_BAD_INNER,       /* the datagram inside an ICMP error is not a whole IPv4 header */
	LG_PKT_BAD_INNER_CSUM,  /* RFC 5508 REQ-3a: the embedded IP header checksum is wrong */
	LG_PKT_ICMP_UNSUPPORTED, /* a query other than echo, or an error about other than TCP/echo */
	LG_PKT_BAD_EXT_HEADER,  /* IPv6: an extension header runs past the packet, or too many */
	LG_PKT_STATUS_COUNT
};

#define LG_IPPROTO_ICMP 1
#define LG_IPPROTO_TCP  6
#define LG_ICMP_ECHO_REPLY   0
#define LG_ICMP_ECHO_REQUEST 8
#define LG_IPPROTO_ICMPV6 58
#define LG_ICMPV6_PACKET_TOO_BIG 2

/* An ICMP error and the start of the datagram it quotes (RFC 792, RFC 5508 section 4.1). */
struct lg_icmp_error {
	uint8_t *icmp;          /* ICMP header */
	size_t icmp_len;        /* ICMP header + body, RFC 4884 extensions included */
	uint8_t type, code;
	uint8_t *inner_ip;      /* the quoted IPv4 header (options skipped by its IHL) */
	size_t inner_ihl;
	uint8_t inner_proto;    /* LG_IPPROTO_TCP or LG_IPPROTO_ICMP (an echo) */
	uint8_t *inner_l4;      /* at least the 8 bytes that hold the TCP ports or the echo id */
	uint32_t inner_saddr, inner_daddr; /* network byte order */
	uint16_t inner_sport, inner_dport; /* network byte order; an echo: its id, and 0 */
	const uint8_t *inner_saddr6, *inner_daddr6; /* IPv6: the quoted addresses, in the packet */
};

struct lg_pkt {
	uint8_t family;        /* 4 or 6 */
	uint8_t proto;         /* LG_IPPROTO_TCP, or LG_IPPROTO_ICMP: an error, or an echo if QUERY */
	struct lg_icmp_error icmp; /* type and code always; the rest for an error */
	bool query;            /* an ICMP echo request or reply */
	uint16_t query_id;     /* its identifier, network byte order */
	uint8_t *ip;       /* IP header */
	size_t len;        /* IP total length (bytes beyond it are ignored) */
	size_t ihl;        /* IP header length in bytes; IPv6: up to the TCP or ICMPv6 header */
	uint8_t *l4;       /* TCP header, or the ICMP header */
	size_t l4_len;     /* TCP header + payload, or the ICMP message */
	size_t payload_len;
	uint32_t saddr, daddr; /* IPv4, network byte order */
	const uint8_t *saddr6, *daddr6; /* IPv6: the addresses, in the packet */
	uint16_t sport, dport; /* network byte order */
	uint32_t seq, ack;     /* host byte order */
	uint16_t window;       /* host byte order, unscaled */
	int8_t wscale;         /* window-scale option of a SYN (0..14), -1 if absent */
	uint8_t tcp_flags;
};

enum lg_pkt_status lg_pkt_parse(uint8_t *buf, size_t caplen, struct lg_pkt *pkt);
const char *lg_pkt_status_name(enum lg_pkt_status status);

#endif
