/* Address and port rewriting of a parsed packet, checksums kept valid incrementally. */
#ifndef LG_NAT_H
#define LG_NAT_H

#include "dataplane/packet.h"

/* ADDR and PORT in network byte order. The packet's IP and TCP checksums are updated. */
void lg_nat_rewrite_src(struct lg_pkt *pkt, uint32_t addr, uint16_t port);
void lg_nat_rewrite_dst(struct lg_pkt *pkt, uint32_t addr, uint16_t port);

/* An ICMP echo request leaving (source and id become the public ones) and its reply
 * arriving (destination and id become the inside ones), RFC 5508 section 3. */
void lg_nat_echo_out(struct lg_pkt *pkt, uint32_t pub_addr, uint16_t pub_id);
void lg_nat_echo_in(struct lg_pkt *pkt, uint32_t in_addr, uint16_t in_id);

/* An ICMP error arriving for the public address about a packet we sent out (RFC 5508
 * section 4.2.1): outer destination and quoted source become the inside endpoint (for a
 * quoted echo, IN_PORT is its id). */
void lg_nat_icmp_to_inside(struct lg_pkt *pkt, uint32_t in_addr, uint16_t in_port);
/* An ICMP error an inside host sends about a packet it received through us (RFC 5508
 * section 4.2.2): outer source and quoted destination become the public endpoint. */
void lg_nat_icmp_to_outside(struct lg_pkt *pkt, uint32_t pub_addr, uint16_t pub_port);
/* A hairpinned ICMP error (RFC 5508 REQ-7): an inside host complains about a packet another
 * inside host sent it through us. The quoted packet becomes what the sender sent, from its
 * own endpoint SENDER_ADDR:SENDER_PORT to the complainer's public one PUB_ADDR:TARGET_PORT, and
 * the outer destination the sender (REQ-7a). The outer source is left to a second pass. */
void lg_nat_icmp_hairpin(struct lg_pkt *pkt, uint32_t sender_addr, uint16_t sender_port,
			 uint32_t pub_addr, uint16_t target_port);

#endif
