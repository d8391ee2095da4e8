/* Kernel NAT offload. An established IPv4 TCP flow's translation can be handed to the
 * kernel's conntrack NAT: a conntrack entry with lemongated's own mapping (made over
 * ctnetlink, marked LG_KNAT_CTMARK) and the flow's two directions in an ipset that lets its
 * packets be tracked (every other NATed packet stays untracked). Its packets still pass
 * through our queue, whole, for tracking and observation; the steering rules mark those that
 * carry our conntrack entry (LG_KNAT_PKTMARK) and the engine leaves their headers to the
 * kernel. A packet without the mark is rewritten here, so a lost or late kernel entry only
 * costs speed, never correctness. The saving: a verdict without the packet, so no copy back
 * and no linearized GSO packet (shared/NFQUEUE-NOTES.md). Thread-safe: one socket under a
 * lock. */
#ifndef LG_KNAT_H
#define LG_KNAT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LG_KNAT_SET "lemongate-knat"
#define LG_KNAT_CTMARK 0x4c470001u  /* conntrack mark of our entries */
/* Packet mark bit: the kernel translates this packet. A mark set by a rule, because the queue
 * cannot say which conntrack entry a packet carries on kernels built without
 * CONFIG_NETFILTER_NETLINK_GLUE_CT (NFQA_CFG_F_CONNTRACK refused with EOPNOTSUPP), as here. */
#define LG_KNAT_PKTMARK 0x00400000u

/* One flow, all in network byte order. */
struct lg_knat_flow {
	uint32_t in_addr, rem_addr, pub_addr;
	uint16_t in_port, rem_port, pub_port;
};

struct lg_knat_stats {
	_Atomic uint64_t offloaded, withdrawn, failed;
};

struct lg_knat;

/* Open the netlink socket, forget what an earlier run left (our conntrack entries, the set)
 * and make the set, sized for MAX_FLOWS flows. NULL with a message in ERR when the kernel
 * cannot (no ctnetlink, ipset or NAT): lemongated then translates everything itself. */
struct lg_knat *lg_knat_open(uint32_t max_flows, char *err, size_t errlen);
/* Hand F to the kernel: 0, or a negative errno (nothing is left half done). */
int lg_knat_offload(struct lg_knat *k, const struct lg_knat_flow *f);
/* Take F back: its packets go untracked again and its conntrack entry is deleted. */
void lg_knat_withdraw(struct lg_knat *k, const struct lg_knat_flow *f);
const struct lg_knat_stats *lg_knat_stats(const struct lg_knat *k);
/* Delete our conntrack entries and the set (the rules that use it must be gone), close. */
void lg_knat_close(struct lg_knat *k);

#endif
