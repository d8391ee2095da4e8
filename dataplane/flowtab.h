/* The flow table: every NATed TCP connection, findable from its inside tuple and from its
 * public tuple. Capacity and memory are fixed at creation; nothing is allocated per packet.
 * Not thread-safe: the caller serialises access (the engine holds one lock). */
#ifndef LG_FLOWTAB_H
#define LG_FLOWTAB_H

#include "dataplane/tcpstate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lg_flow {
	uint32_t id;
	uint32_t in_addr, rem_addr, pub_addr; /* network byte order */
	uint16_t in_port, rem_port, pub_port; /* network byte order */
	uint8_t state;                        /* enum lg_tcp_state */
	struct lg_tcp_track track;
	uint64_t created_ns, last_ns;
	uint64_t pkts_out, pkts_in, bytes_out, bytes_in;
	uint32_t next_by_inside, next_by_public; /* slot index + 1; 0 ends a chain */
	uint32_t next_in_mapping;                /* the next flow of the same mapping */
};

enum lg_flowtab_error { LG_FLOWTAB_FULL = 1, LG_FLOWTAB_NO_PORT, LG_FLOWTAB_QUOTA };

struct lg_flowtab;

/* PORT_LO..PORT_HI (host order) is the public port range on PUB_ADDR; an inside address holds
 * at most HOST_QUOTA mappings (RFC 6888 REQ-4). SEED 0 draws the hash
 * key and the port sequence from the kernel; any other value makes them reproducible (offline
 * replays and tests only: a predictable key lets outsiders aim at one chain). NULL on failure. */
struct lg_flowtab *lg_flowtab_create(uint32_t max_flows, uint32_t pub_addr, uint16_t port_lo,
				     uint16_t port_hi, uint32_t host_quota, uint64_t seed);
void lg_flowtab_destroy(struct lg_flowtab *t);

struct lg_flow *lg_flowtab_find_inside(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				       uint32_t rem_addr, uint16_t rem_port);
struct lg_flow *lg_flowtab_find_public(struct lg_flowtab *t, uint16_t pub_port,
				       uint32_t rem_addr, uint16_t rem_port);

/* Create a flow. Its public port is the inside endpoint's mapping (endpoint-independent,
 * RFC 5382 REQ-1), made with a fresh random port when the endpoint has none. NULL with *ERR
 * set when the table is full, no port is free, or the inside host is at its quota; no existing
 * mapping is ever given up to make room (RFC 6888 REQ-4). */
struct lg_flow *lg_flowtab_insert(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				  uint32_t rem_addr, uint16_t rem_port, uint64_t now_ns,
				  enum lg_flowtab_error *err);
void lg_flowtab_remove(struct lg_flowtab *t, struct lg_flow *f);

size_t lg_flowtab_count(const struct lg_flowtab *t);
size_t lg_flowtab_capacity(const struct lg_flowtab *t);
size_t lg_flowtab_mappings(const struct lg_flowtab *t);

/* Called when a mapping is created (CREATED) or released with its last flow. */
typedef void lg_mapping_hook(bool created, uint32_t in_addr, uint16_t in_port, uint32_t pub_addr,
			     uint16_t pub_port, void *arg);
void lg_flowtab_set_mapping_hook(struct lg_flowtab *t, lg_mapping_hook *fn, void *arg);

/* The inside endpoint that owns public port PUB_PORT (network order), if any. */
bool lg_flowtab_mapping_of_port(const struct lg_flowtab *t, uint16_t pub_port, uint32_t *in_addr,
				uint16_t *in_port);
/* The public port of the inside endpoint's mapping, if it has one. */
bool lg_flowtab_port_of_mapping(struct lg_flowtab *t, uint32_t in_addr, uint16_t in_port,
				uint16_t *pub_port);
/* Has the mapping on PUB_PORT a flow to REM_ADDR (address-dependent filtering)? */
bool lg_flowtab_mapping_sent_to(const struct lg_flowtab *t, uint16_t pub_port, uint32_t rem_addr);

/* Call FN for every flow; FN returns true to remove that flow. */
void lg_flowtab_walk(struct lg_flowtab *t, bool (*fn)(struct lg_flow *f, void *arg), void *arg);

#endif
