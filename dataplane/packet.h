/* Parsing and validation of the IPv4/TCP packets handed to us by NFQUEUE or a capture.
 * Nothing in a packet is trusted until lg_pkt_parse has accepted it. */
#ifndef LG_PACKET_H
#define LG_PACKET_H

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
	LG_PKT_STATUS_COUNT
};

struct lg_pkt {
	uint8_t *ip;       /* IPv4 header */
	size_t len;        /* IP total length (bytes beyond it are ignored) */
	size_t ihl;        /* IP header length in bytes */
	uint8_t *l4;       /* TCP header */
	size_t l4_len;     /* TCP header + payload */
	size_t payload_len;
	uint32_t saddr, daddr; /* network byte order */
	uint16_t sport, dport; /* network byte order */
	uint32_t seq, ack;     /* host byte order */
	uint16_t window;       /* host byte order, unscaled */
	int8_t wscale;         /* window-scale option of a SYN (0..14), -1 if absent */
	uint8_t tcp_flags;
};

enum lg_pkt_status lg_pkt_parse(uint8_t *buf, size_t caplen, struct lg_pkt *pkt);
const char *lg_pkt_status_name(enum lg_pkt_status status);

#endif
