/* NAT mappings of one public address: endpoint-independent (RFC 5382 REQ-1), one public port
 * per inside addr:port whatever the destination, held by its flows and released with the
 * last; ports drawn at random (RFC 7857 section 9), a released port rested before reuse
 * (RFC 6888 REQ-8), at most QUOTA per inside host (RFC 6888 REQ-4). Sized by the port space,
 * not by the flow count. Not thread-safe: the engine calls it under its writer lock. */
#ifndef LG_NATMAP_H
#define LG_NATMAP_H

#include "dataplane/flowtab.h"
#include "dataplane/portledger.h"

#include <stdbool.h>
#include <stdint.h>

enum lg_natmap_error { LG_NATMAP_NO_PORT = 1, LG_NATMAP_QUOTA };

/* Called when a mapping is created (CREATED) or released with its last flow. */
typedef void lg_mapping_hook(bool created, uint32_t in_addr, uint16_t in_port, uint32_t pub_addr,
			     uint16_t pub_port, void *arg);

struct lg_natmap;

/* PORT_LO..PORT_HI (host order) on PUB_ADDR; a released port is not drawn again for HOLD_S
 * seconds. SEED as for lg_flowtab_create(). */
struct lg_natmap *lg_natmap_create(uint32_t pub_addr, uint16_t port_lo, uint16_t port_hi,
				   uint32_t host_quota, uint32_t hold_s, uint64_t seed);
void lg_natmap_destroy(struct lg_natmap *m);
/* A reload: new mappings are held to HOST_QUOTA and released ports rest HOLD_S; mappings a
 * host already holds beyond a lower quota are kept. */
void lg_natmap_set_limits(struct lg_natmap *m, uint32_t host_quota, uint32_t hold_s);
void lg_natmap_set_hook(struct lg_natmap *m, lg_mapping_hook *fn, void *arg);

/* Add flow F (record REC of table T) to its inside endpoint's mapping, made if there is none;
 * sets F's public address and port. Fails with *ERR when the host is at its quota or no port is free. */
bool lg_natmap_attach(struct lg_natmap *m, struct lg_flowtab *t, struct lg_flow *f,
		      uint32_t now_s, enum lg_natmap_error *err);
/* Take F off its mapping; the mapping goes with its last flow. */
void lg_natmap_detach(struct lg_natmap *m, struct lg_flowtab *t, struct lg_flow *f, uint32_t now_s);

/* The inside endpoint that owns PUB_PORT (network order), if any. */
bool lg_natmap_owner(const struct lg_natmap *m, uint16_t pub_port, uint32_t *in_addr,
		     uint16_t *in_port);
/* The public port (network order) of an inside endpoint's mapping, if it has one. */
bool lg_natmap_port_of(const struct lg_natmap *m, uint32_t in_addr, uint16_t in_port,
		       uint16_t *pub_port);
/* Has the mapping on PUB_PORT a flow to REM_ADDR (address-dependent filtering)? */
bool lg_natmap_sent_to(const struct lg_natmap *m, struct lg_flowtab *t, uint16_t pub_port,
		       uint32_t rem_addr);
size_t lg_natmap_count(const struct lg_natmap *m);
/* Call FN for each mapping, by public port, until it returns false. */
void lg_natmap_each(const struct lg_natmap *m,
		    bool (*fn)(uint32_t in_addr, uint16_t in_port, uint16_t pub_port, uint32_t flows,
			       void *arg),
		    void *arg);
/* Keep section SECTION of LEDGER up to date from now on, and rest each port REST_LEFT[port]
 * seconds from NOW_S (what the previous run left, lg_portledger_open). Ports in use now are
 * recorded. */
void lg_natmap_set_ledger(struct lg_natmap *m, struct lg_portledger *ledger, size_t section,
			  const uint32_t *rest_left, uint32_t now_s);
uint32_t lg_natmap_address(const struct lg_natmap *m);

#endif
