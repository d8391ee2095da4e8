/* Internet checksum (RFC 1071) and incremental update (RFC 1624).
 * All values are taken and stored in network byte order, as they sit in the packet. */
#ifndef LG_CHECKSUM_H
#define LG_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* One's-complement sum of LEN bytes added to SUM, not folded. */
uint32_t lg_csum_add(uint32_t sum, const void *data, size_t len);
/* Fold a 32-bit sum and complement it: the value to store in a checksum field. */
uint16_t lg_csum_finish(uint32_t sum);
/* Checksum of an IPv4 header (its checksum field must be zero or is included as is). */
uint16_t lg_csum_ipv4_header(const void *hdr, size_t len);
/* Full TCP/UDP checksum over the IPv4 pseudo-header and SEGMENT (checksum field included). */
uint16_t lg_csum_l4_ipv4(uint32_t saddr, uint32_t daddr, uint8_t proto, const void *segment,
			 size_t len);
/* Compute and store the whole TCP checksum of the IPv4 packet at PKT (LEN bytes captured):
 * for a packet whose checksum the kernel left partial, to be finished by offload. 0, or -1
 * when PKT is not a whole IPv4 TCP segment. */
int lg_csum_fill_tcp4(uint8_t *pkt, size_t len);
/* Update the checksum at CSUM (unaligned) for a 16- or 32-bit field changing FROM -> TO. */
void lg_csum_replace16(uint8_t *csum, uint16_t from, uint16_t to);
void lg_csum_replace32(uint8_t *csum, uint32_t from, uint32_t to);

#endif
