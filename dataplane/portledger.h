/* The port ledger: which public ports a NAT had in use, kept in a file that outlives the
 * daemon, so that after a restart or a crash no port that carried a connection is handed to a
 * new one before its rest is over (RFC 6888 REQ-8: "This also applies after state loss").
 * The file is mapped shared: every mapping made or released is a store into the page cache,
 * which survives the process however it ends. One ledger per public address. */
#ifndef LG_PORTLEDGER_H
#define LG_PORTLEDGER_H

#include <stddef.h>
#include <stdint.h>

struct lg_portledger;

/* Open (or create) the ledger at PATH for PUB_ADDR (network order). NOW_WALL is the wall
 * clock in seconds. What the previous run left is read into REST_LEFT (65536 entries, by port):
 * the seconds each port must still rest, HOLD_S after its release, or after NOW_WALL for a
 * port still in use when the previous run ended; 0 for the others. A ledger of another public
 * address, or of another format, is started afresh. NULL with ERR on failure. */
struct lg_portledger *lg_portledger_open(const char *path, uint32_t pub_addr, uint32_t hold_s,
					 uint32_t now_wall, uint32_t *rest_left, char *err,
					 size_t errlen);
void lg_portledger_close(struct lg_portledger *l);

/* PORT (host order) now carries a mapping / was released at NOW_WALL. */
void lg_portledger_used(struct lg_portledger *l, uint16_t port);
void lg_portledger_released(struct lg_portledger *l, uint16_t port, uint32_t now_wall);

#endif
