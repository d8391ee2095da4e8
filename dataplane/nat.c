#include "dataplane/nat.h"

#include "dataplane/checksum.h"

#include <string.h>

#define IP_CSUM_OFF  10
#define IP_SADDR_OFF 12
#define IP_DADDR_OFF 16
#define TCP_SPORT_OFF 0
#define TCP_DPORT_OFF 2
#define TCP_CSUM_OFF 16

/* The TCP checksum covers the addresses through the pseudo-header, so both checksums change. */
static void rewrite(struct lg_pkt *pkt, size_t addr_off, size_t port_off, uint32_t *addr_field,
		    uint16_t *port_field, uint32_t addr, uint16_t port)
{
	uint8_t *tcp_csum = pkt->l4 + TCP_CSUM_OFF;

	if (*addr_field != addr) {
		lg_csum_replace32(pkt->ip + IP_CSUM_OFF, *addr_field, addr);
		lg_csum_replace32(tcp_csum, *addr_field, addr);
		memcpy(pkt->ip + addr_off, &addr, 4);
		*addr_field = addr;
	}
	if (*port_field != port) {
		lg_csum_replace16(tcp_csum, *port_field, port);
		memcpy(pkt->l4 + port_off, &port, 2);
		*port_field = port;
	}
}

void lg_nat_rewrite_src(struct lg_pkt *pkt, uint32_t addr, uint16_t port)
{
	rewrite(pkt, IP_SADDR_OFF, TCP_SPORT_OFF, &pkt->saddr, &pkt->sport, addr, port);
}

void lg_nat_rewrite_dst(struct lg_pkt *pkt, uint32_t addr, uint16_t port)
{
	rewrite(pkt, IP_DADDR_OFF, TCP_DPORT_OFF, &pkt->daddr, &pkt->dport, addr, port);
}
