/* Steering: the iptables rules that send NATed TCP to our queues and keep kernel conntrack
 * off it, and the ip6tables rules that do the same for filtered IPv6. Everything lives in
 * chains of our own (raw LEMONGATE, mangle LEMONGATE-IN and LEMONGATE-OUT; for IPv6 raw
 * LEMONGATE and mangle LEMONGATE-FWD; and the LEMONGATE-* chains they dispatch to), so removal
 * never touches the operator's rules. */
#ifndef LG_STEER_H
#define LG_STEER_H

#include "policy/policy.h"

#include <stdbool.h>
#include <stddef.h>

/* Remove any leftovers of an earlier run, then install. OFFLOAD: the kernel NAT offload's
 * set exists (dataplane/knat.h) and its flows are to be tracked. 0, or -1 with ERR set. */
int lg_steer_install(const struct lg_policy *pol, bool offload, char *err, size_t errlen);
/* Remove our chains and the jumps to them. Safe to call when nothing is installed. */
void lg_steer_remove(void);

#endif
