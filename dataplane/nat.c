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

#define ICMP_CSUM_OFF 2

#define ECHO_CSUM_OFF 2
#define ECHO_ID_OFF   4

/* Rewrite the quoted datagram's address at ADDR_OFF and port (or echo id) at PORT_OFF. Its IP
 * checksum is updated, and the ICMP checksum for every word that changed. A quoted TCP
 * checksum is left as it is: it covers a segment the error carries only the start of (RFC 5508
 * section 4.1). A quoted echo's checksum covers no pseudo-header, so it follows its id. */
static void rewrite_inner(struct lg_pkt *pkt, size_t addr_off, size_t port_off, uint32_t addr,
			  uint16_t port)
{
	struct lg_icmp_error *ie = &pkt->icmp;
	uint8_t *icmp_csum = ie->icmp + ICMP_CSUM_OFF;
	uint32_t old_addr;
	uint16_t old_port, old_ipcsum, new_ipcsum;

	memcpy(&old_addr, ie->inner_ip + addr_off, 4);
	memcpy(&old_port, ie->inner_l4 + port_off, 2);
	memcpy(&old_ipcsum, ie->inner_ip + IP_CSUM_OFF, 2);
	if (old_addr != addr) {
		lg_csum_replace32(ie->inner_ip + IP_CSUM_OFF, old_addr, addr);
		memcpy(ie->inner_ip + addr_off, &addr, 4);
		lg_csum_replace32(icmp_csum, old_addr, addr);
	}
	memcpy(&new_ipcsum, ie->inner_ip + IP_CSUM_OFF, 2);
	lg_csum_replace16(icmp_csum, old_ipcsum, new_ipcsum);
	if (old_port != port) {
		memcpy(ie->inner_l4 + port_off, &port, 2);
		lg_csum_replace16(icmp_csum, old_port, port);
		if (ie->inner_proto == LG_IPPROTO_ICMP) {
			uint16_t old_echo_csum, new_echo_csum;

			memcpy(&old_echo_csum, ie->inner_l4 + ECHO_CSUM_OFF, 2);
			lg_csum_replace16(ie->inner_l4 + ECHO_CSUM_OFF, old_port, port);
			memcpy(&new_echo_csum, ie->inner_l4 + ECHO_CSUM_OFF, 2);
			lg_csum_replace16(icmp_csum, old_echo_csum, new_echo_csum);
		}
	}
	if (addr_off == IP_SADDR_OFF) {
		ie->inner_saddr = addr;
		ie->inner_sport = port;
	} else {
		ie->inner_daddr = addr;
		ie->inner_dport = port;
	}
}

static void rewrite_outer(struct lg_pkt *pkt, size_t addr_off, uint32_t *field, uint32_t addr)
{
	if (*field == addr)
		return;
	lg_csum_replace32(pkt->ip + IP_CSUM_OFF, *field, addr);
	memcpy(pkt->ip + addr_off, &addr, 4);
	*field = addr;
}

void lg_nat_icmp_to_inside(struct lg_pkt *pkt, uint32_t in_addr, uint16_t in_port)
{
	rewrite_outer(pkt, IP_DADDR_OFF, &pkt->daddr, in_addr);
	rewrite_inner(pkt, IP_SADDR_OFF,
		      pkt->icmp.inner_proto == LG_IPPROTO_ICMP ? ECHO_ID_OFF : TCP_SPORT_OFF, in_addr,
		      in_port);
}

void lg_nat_icmp_to_outside(struct lg_pkt *pkt, uint32_t pub_addr, uint16_t pub_port)
{
	rewrite_outer(pkt, IP_SADDR_OFF, &pkt->saddr, pub_addr);
	rewrite_inner(pkt, IP_DADDR_OFF, TCP_DPORT_OFF, pub_addr, pub_port);
}

void lg_nat_icmp_hairpin(struct lg_pkt *pkt, uint32_t sender_addr, uint16_t sender_port,
			 uint32_t pub_addr, uint16_t target_port)
{
	rewrite_inner(pkt, IP_DADDR_OFF, TCP_DPORT_OFF, pub_addr, target_port);
	lg_nat_icmp_to_inside(pkt, sender_addr, sender_port);
}

/* An echo's identifier is covered by the ICMP checksum alone (no pseudo-header). */
static void rewrite_echo(struct lg_pkt *pkt, size_t addr_off, uint32_t *addr_field, uint32_t addr,
			 uint16_t id)
{
	rewrite_outer(pkt, addr_off, addr_field, addr);
	if (pkt->query_id != id) {
		lg_csum_replace16(pkt->l4 + ICMP_CSUM_OFF, pkt->query_id, id);
		memcpy(pkt->l4 + ECHO_ID_OFF, &id, 2);
		pkt->query_id = id;
	}
}

void lg_nat_echo_out(struct lg_pkt *pkt, uint32_t pub_addr, uint16_t pub_id)
{
	rewrite_echo(pkt, IP_SADDR_OFF, &pkt->saddr, pub_addr, pub_id);
}

void lg_nat_echo_in(struct lg_pkt *pkt, uint32_t in_addr, uint16_t in_id)
{
	rewrite_echo(pkt, IP_DADDR_OFF, &pkt->daddr, in_addr, in_id);
}
