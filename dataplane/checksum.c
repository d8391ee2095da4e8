#include "dataplane/checksum.h"

#include <arpa/inet.h>
#include <string.h>

uint32_t lg_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t acc = sum;

	/* 32-bit words into a 64-bit accumulator: a one's-complement sum is order-free, and the
	 * carries pile up in the high half until the end (2^32 words before it could overflow) */
	while (len >= 8) {
		uint32_t w[2];

		memcpy(w, p, 8);
		acc += (uint64_t)w[0] + w[1];
		p += 8;
		len -= 8;
	}
	while (len >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint16_t w = 0;

		memcpy(&w, p, 1); /* odd byte is the high-order byte in network order */
		acc += w;
	}
	while (acc >> 32)
		acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

uint16_t lg_csum_finish(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)~sum;
}

uint16_t lg_csum_ipv4_header(const void *hdr, size_t len)
{
	return lg_csum_finish(lg_csum_add(0, hdr, len));
}

uint16_t lg_csum_l4_ipv4(uint32_t saddr, uint32_t daddr, uint8_t proto, const void *segment,
			 size_t len)
{
	uint8_t pseudo[12];
	uint16_t l4len = htons((uint16_t)len);

	memcpy(pseudo, &saddr, 4);
	memcpy(pseudo + 4, &daddr, 4);
	pseudo[8] = 0;
	pseudo[9] = proto;
	memcpy(pseudo + 10, &l4len, 2);
	return lg_csum_finish(lg_csum_add(lg_csum_add(0, pseudo, sizeof(pseudo)), segment, len));
}

void lg_csum_replace16(uint8_t *csum, uint16_t from, uint16_t to)
{
	uint16_t hc;
	uint32_t sum;

	memcpy(&hc, csum, 2);
	/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') */
	sum = (uint16_t)~hc + (uint32_t)(uint16_t)~from + to;
	hc = lg_csum_finish(sum);
	memcpy(csum, &hc, 2);
}

void lg_csum_replace32(uint8_t *csum, uint32_t from, uint32_t to)
{
	uint16_t f[2], t[2];

	memcpy(f, &from, 4);
	memcpy(t, &to, 4);
	lg_csum_replace16(csum, f[0], t[0]);
	lg_csum_replace16(csum, f[1], t[1]);
}

int lg_csum_fill_tcp4(uint8_t *pkt, size_t len)
{
	size_t ihl, tot;
	uint16_t tot_be, zero = 0, csum;
	uint32_t saddr, daddr;

	if (len < 20 || (pkt[0] >> 4) != 4 || pkt[9] != 6)
		return -1;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	memcpy(&tot_be, pkt + 2, 2);
	tot = ntohs(tot_be);
	if (ihl < 20 || tot > len || tot < ihl + 20)
		return -1;
	memcpy(&saddr, pkt + 12, 4);
	memcpy(&daddr, pkt + 16, 4);
	memcpy(pkt + ihl + 16, &zero, 2);
	csum = lg_csum_l4_ipv4(saddr, daddr, 6, pkt + ihl, tot - ihl);
	memcpy(pkt + ihl + 16, &csum, 2);
	return 0;
}
