/* The port ledger: which public ports a NAT had in use, kept in a file that outlives the
 * daemon, so that after a restart or a crash no port that carried a connection is handed to a
 * new one before its rest is over (RFC 6888 REQ-8: "This also applies after state loss").
 * The file is mapped shared: every mapping made or released is a store into the page cache,
 * which survives the process however it ends. One section of 65536 ports per public address. */
#ifndef LG_PORTLEDGER_H
#define LG_PORTLEDGER_H

#include <stddef.h>
#include <stdint.h>

#define LG_PORTLEDGER_MAX_ADDRS 16
#define LG_PORTLEDGER_PORTS 65536

struct lg_portledger;

/* Open (or create) the ledger at PATH for the N public addresses ADDRS (network order),
 * section I for ADDRS[I]. NOW_WALL is the wall clock in seconds. What the previous run left
 * for each address is read into REST_LEFT (N sections of 65536 entries, by port): the seconds
 * each port must still rest, HOLD_S after its release, or after NOW_WALL for a port still in
 * use when the previous run ended; 0 for the others. Addresses the previous run did not have
 * start afresh, as does a file of another format. NULL with ERR on failure. */
struct lg_portledger *lg_portledger_open(const char *path, const uint32_t *addrs, size_t n,
					 uint32_t hold_s, uint32_t now_wall, uint32_t *rest_left,
					 char *err, size_t errlen);
void lg_portledger_close(struct lg_portledger *l);

/* PORT (host order) of section SECTION now carries a mapping / was released at NOW_WALL. */
void lg_portledger_used(struct lg_portledger *l, size_t section, uint16_t port);
void lg_portledger_released(struct lg_portledger *l, size_t section, uint16_t port,
			    uint32_t now_wall);

#endif
