/* ICMP echo sessions (RFC 5508 section 3): an inside host's (address, echo id) mapped to an id
 * of the public address, the same whatever host it pings (REQ-1), kept while echoes pass and
 * for at least 60 s after (REQ-2). The id space is the 16-bit echo identifier of our one
 * public address; a session lives in the slot of its public id. Not thread-safe: the engine
 * holds a lock around every call. Addresses and ids in network byte order. */
#ifndef LG_ECHOMAP_H
#define LG_ECHOMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lg_echomap;

struct lg_echo_session {
	uint32_t in_addr;
	uint16_t in_id, pub_id;
	uint32_t last_s;
};

/* TIMEOUT_S: idle seconds a session lives. QUOTA: sessions one inside address may hold at once
 * (0: no limit), so that one host cannot take every public id (RFC 6888 REQ-4). SEED: 0 for
 * random public ids, else reproducible. */
struct lg_echomap *lg_echomap_create(uint32_t timeout_s, uint32_t quota, uint64_t seed);
void lg_echomap_destroy(struct lg_echomap *m);
/* A reload: sessions live TIMEOUT_S idle from now on, new ones held to QUOTA per host. */
void lg_echomap_set_limits(struct lg_echomap *m, uint32_t timeout_s, uint32_t quota);

/* An echo request from inside to REM_ADDR: find or make the session and refresh it. False
 * when every public id is taken or the inside address holds its quota. */
bool lg_echomap_outbound(struct lg_echomap *m, uint32_t in_addr, uint16_t in_id, uint32_t rem_addr,
			 uint32_t now_s, struct lg_echo_session *out);
/* An echo reply from REM_ADDR to public id PUB_ID: the live session it belongs to, refreshed.
 * With ADDRESS_DEPENDENT, only from an address the session has pinged (its last 4). */
bool lg_echomap_inbound(struct lg_echomap *m, uint16_t pub_id, uint32_t rem_addr,
			bool address_dependent, uint32_t now_s, struct lg_echo_session *out);
/* Look a session up without refreshing it (ICMP errors about it, RFC 5508 REQ-6). */
bool lg_echomap_by_public(const struct lg_echomap *m, uint16_t pub_id, uint32_t now_s,
			  struct lg_echo_session *out);
/* End sessions idle past the timeout; returns how many. */
size_t lg_echomap_expire(struct lg_echomap *m, uint32_t now_s);
size_t lg_echomap_active(const struct lg_echomap *m);
/* Call FN for each live session until it returns false. */
void lg_echomap_each(const struct lg_echomap *m, uint32_t now_s,
		     bool (*fn)(const struct lg_echo_session *s, void *arg), void *arg);
/* End every session; returns how many. */
size_t lg_echomap_flush(struct lg_echomap *m);

#endif
