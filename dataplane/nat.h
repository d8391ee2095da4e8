/* Address and port rewriting of a parsed packet, checksums kept valid incrementally. */
#ifndef LG_NAT_H
#define LG_NAT_H

#include "dataplane/packet.h"

/* ADDR and PORT in network byte order. The packet's IP and TCP checksums are updated. */
void lg_nat_rewrite_src(struct lg_pkt *pkt, uint32_t addr, uint16_t port);
void lg_nat_rewrite_dst(struct lg_pkt *pkt, uint32_t addr, uint16_t port);

#endif
