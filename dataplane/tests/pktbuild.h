/* Hand-built IPv4/TCP packets for the dataplane unit tests. */
#ifndef LG_TEST_PKTBUILD_H
#define LG_TEST_PKTBUILD_H

#include "dataplane/checksum.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

/* An IPv4 header (DF clear unless DF, TTL 64) for a packet of TOTAL_LEN bytes. */
static inline void build_ipv4_header(uint8_t *buf, const char *src, const char *dst, uint8_t proto,
				     size_t total_len, int df)
{
	uint32_t s = inet_addr(src), d = inet_addr(dst);
	uint16_t v16;

	memset(buf, 0, 20);
	buf[0] = 0x45;
	v16 = htons((uint16_t)total_len);
	memcpy(buf + 2, &v16, 2);
	v16 = htons(df ? 0x4000 : 0);
	memcpy(buf + 6, &v16, 2);
	buf[8] = 64;
	buf[9] = proto;
	memcpy(buf + 12, &s, 4);
	memcpy(buf + 16, &d, 4);
	v16 = lg_csum_ipv4_header(buf, 20);
	memcpy(buf + 10, &v16, 2);
}

struct tcp_spec {
	uint32_t seq, ack;
	uint16_t window;
	const uint8_t *options; /* a multiple of 4 bytes */
	size_t options_len;
};

/* Builds a valid IPv4/TCP packet into BUF; returns its length. Addresses as dotted strings. */
static inline size_t build_tcp4_spec(uint8_t *buf, const char *src, uint16_t sport, const char *dst,
				     uint16_t dport, uint8_t flags, const struct tcp_spec *spec,
				     const char *payload)
{
	size_t plen = payload ? strlen(payload) : 0, thl = 20 + spec->options_len;
	size_t len = 20 + thl + plen;
	uint32_t s = inet_addr(src), d = inet_addr(dst);
	uint16_t v16, csum;
	uint32_t v32;

	memset(buf + 20, 0, thl);
	build_ipv4_header(buf, src, dst, 6, len, 1);
	v16 = htons(sport);
	memcpy(buf + 20, &v16, 2);
	v16 = htons(dport);
	memcpy(buf + 22, &v16, 2);
	v32 = htonl(spec->seq);
	memcpy(buf + 24, &v32, 4);
	v32 = htonl(spec->ack);
	memcpy(buf + 28, &v32, 4);
	buf[32] = (uint8_t)((thl / 4) << 4);
	buf[33] = flags;
	v16 = htons(spec->window);
	memcpy(buf + 34, &v16, 2);
	if (spec->options_len)
		memcpy(buf + 40, spec->options, spec->options_len);
	if (plen)
		memcpy(buf + 20 + thl, payload, plen);
	csum = lg_csum_l4_ipv4(s, d, 6, buf + 20, thl + plen);
	memcpy(buf + 36, &csum, 2);
	return len;
}

/* The common case: seq 1000, ack 5000 when ACK is set, window 65535, no options. */
static inline size_t build_tcp4(uint8_t *buf, const char *src, uint16_t sport, const char *dst,
				uint16_t dport, uint8_t flags, const char *payload)
{
	struct tcp_spec spec = { 1000, (flags & 0x10) ? 5000 : 0, 65535, NULL, 0 };

	return build_tcp4_spec(buf, src, sport, dst, dport, flags, &spec, payload);
}

/* An ICMP error from SRC to DST quoting the first QUOTE_LEN bytes of INNER. REST_OF_HEADER is
 * the 4 bytes after the checksum (next-hop MTU, RFC 4884 length...). EXT/EXT_LEN, if given,
 * are appended after the quote (RFC 4884 extensions). Returns the packet length. */
static inline size_t build_icmp4(uint8_t *buf, const char *src, const char *dst, uint8_t type,
				 uint8_t code, const uint8_t rest_of_header[4], const uint8_t *inner,
				 size_t quote_len, const uint8_t *ext, size_t ext_len)
{
	size_t len = 20 + 8 + quote_len + ext_len;
	uint16_t v16;

	build_ipv4_header(buf, src, dst, 1, len, 0);
	memset(buf + 20, 0, 8);
	buf[20] = type;
	buf[21] = code;
	memcpy(buf + 24, rest_of_header, 4);
	memcpy(buf + 28, inner, quote_len);
	if (ext_len)
		memcpy(buf + 28 + quote_len, ext, ext_len);
	v16 = lg_csum_finish(lg_csum_add(0, buf + 20, len - 20));
	memcpy(buf + 22, &v16, 2);
	return len;
}

/* An ICMP echo request (TYPE 8) or reply (0) with identifier ID and sequence number SEQ. */
static inline size_t build_echo4(uint8_t *buf, const char *src, const char *dst, uint8_t type,
				 uint16_t id, uint16_t seq)
{
	const uint8_t idseq[4] = { (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(seq >> 8), (uint8_t)seq };

	return build_icmp4(buf, src, dst, type, 0, idseq, (const uint8_t *)"lemongate ping..", 16,
			   NULL, 0);
}

/* The ICMPv6 / TCP-over-IPv6 checksum of the upper-layer message at MSG (RFC 8200 8.1). */
static inline uint16_t csum_l4_ipv6(const uint8_t *src, const uint8_t *dst, uint8_t nh,
				    const uint8_t *msg, size_t len)
{
	uint8_t pseudo[8] = { 0 };
	uint32_t len_be = htonl((uint32_t)len), sum;

	memcpy(pseudo, &len_be, 4);
	pseudo[7] = nh;
	sum = lg_csum_add(0, src, 16);
	sum = lg_csum_add(sum, dst, 16);
	sum = lg_csum_add(sum, pseudo, 8);
	return lg_csum_finish(lg_csum_add(sum, msg, len));
}

/* An IPv6 header for PAYLOAD_LEN bytes after it, next header NH (hop limit 64). */
static inline void build_ipv6_header(uint8_t *buf, const char *src, const char *dst, uint8_t nh,
				     size_t payload_len)
{
	uint16_t v16 = htons((uint16_t)payload_len);

	memset(buf, 0, 40);
	buf[0] = 0x60;
	memcpy(buf + 4, &v16, 2);
	buf[6] = nh;
	buf[7] = 64;
	inet_pton(AF_INET6, src, buf + 8);
	inet_pton(AF_INET6, dst, buf + 24);
}

/* A valid IPv6/TCP packet: seq 1000, ack 5000 when ACK is set, window 65535. EXT_LEN bytes
 * of destination-options header (a multiple of 8, 0 for none) sit between IPv6 and TCP. */
static inline size_t build_tcp6_ext(uint8_t *buf, const char *src, uint16_t sport, const char *dst,
				    uint16_t dport, uint8_t flags, const char *payload, size_t ext_len)
{
	size_t plen = payload ? strlen(payload) : 0, off = 40 + ext_len, len = off + 20 + plen;
	uint16_t v16, csum;
	uint32_t v32;

	build_ipv6_header(buf, src, dst, ext_len ? 60 : 6, len - 40);
	if (ext_len) {
		memset(buf + 40, 0, ext_len);
		buf[40] = 6;
		buf[41] = (uint8_t)(ext_len / 8 - 1);
		buf[42] = 1; /* a PadN option filling the header */
		buf[43] = (uint8_t)(ext_len - 4);
	}
	memset(buf + off, 0, 20);
	v16 = htons(sport);
	memcpy(buf + off, &v16, 2);
	v16 = htons(dport);
	memcpy(buf + off + 2, &v16, 2);
	v32 = htonl(1000);
	memcpy(buf + off + 4, &v32, 4);
	v32 = htonl((flags & 0x10) ? 5000 : 0);
	memcpy(buf + off + 8, &v32, 4);
	buf[off + 12] = 5 << 4;
	buf[off + 13] = flags;
	v16 = htons(65535);
	memcpy(buf + off + 14, &v16, 2);
	if (plen)
		memcpy(buf + off + 20, payload, plen);
	csum = csum_l4_ipv6(buf + 8, buf + 24, 6, buf + off, 20 + plen);
	memcpy(buf + off + 16, &csum, 2);
	return len;
}

static inline size_t build_tcp6(uint8_t *buf, const char *src, uint16_t sport, const char *dst,
				uint16_t dport, uint8_t flags, const char *payload)
{
	return build_tcp6_ext(buf, src, sport, dst, dport, flags, payload, 0);
}

/* An ICMPv6 error from SRC to DST quoting the first QUOTE_LEN bytes of INNER. */
static inline size_t build_icmp6(uint8_t *buf, const char *src, const char *dst, uint8_t type,
				 uint8_t code, const uint8_t *inner, size_t quote_len)
{
	size_t len = 40 + 8 + quote_len;
	uint16_t csum;

	build_ipv6_header(buf, src, dst, 58, len - 40);
	memset(buf + 40, 0, 8);
	buf[40] = type;
	buf[41] = code;
	memcpy(buf + 48, inner, quote_len);
	csum = csum_l4_ipv6(buf + 8, buf + 24, 58, buf + 40, len - 40);
	memcpy(buf + 42, &csum, 2);
	return len;
}

/* Both checksums of a packet verify from scratch. */
static inline int checksums_ok(const uint8_t *buf, size_t len)
{
	uint32_t s, d;
	size_t ihl = (size_t)(buf[0] & 0x0f) * 4;

	memcpy(&s, buf + 12, 4);
	memcpy(&d, buf + 16, 4);
	return lg_csum_ipv4_header(buf, ihl) == 0 &&
	       lg_csum_l4_ipv4(s, d, 6, buf + ihl, len - ihl) == 0;
}

#endif
