/* ICMP errors that lemongated itself originates (RFC 792, RFC 1812 section 4.3.2.3). */
#ifndef LG_ICMPGEN_H
#define LG_ICMPGEN_H

#include <stddef.h>
#include <stdint.h>

#define LG_ICMP_QUOTE_MAX 28 /* the offending IP header (no options) + 8 bytes */
#define LG_ICMP_ERR_LEN   (20 + 8 + LG_ICMP_QUOTE_MAX)

/* Build an IPv4 packet from SRC to DST (network order) carrying ICMP TYPE/CODE that quotes
 * QUOTE (QUOTE_LEN <= LG_ICMP_QUOTE_MAX bytes of the offending packet). BUF holds at least
 * LG_ICMP_ERR_LEN bytes. Returns the packet length. */
size_t lg_icmp_build_error(uint8_t *buf, uint32_t src, uint32_t dst, uint8_t type, uint8_t code,
			   const uint8_t *quote, size_t quote_len);

/* An ICMPv6 error message (RFC 4443) of TYPE/CODE quoting QUOTE, for a raw ICMPv6 socket: the
 * kernel adds the IPv6 header and fills in the checksum. BUF holds 8 + QUOTE_LEN bytes.
 * Returns the message length. */
size_t lg_icmp6_build_error(uint8_t *buf, uint8_t type, uint8_t code, const uint8_t *quote,
			    size_t quote_len);

#endif
