/* Passive observation of IMAP and SMTP sessions (issue 8): what a mail flow negotiated, read
 * from the segments that cross the gateway and never written to them. Each direction is
 * followed as a byte stream from the first payload: retransmitted and overlapping bytes are
 * skipped, one early segment per direction is held until the gap before it fills, and
 * anything else out of order makes that session "unknown" rather than guessed. Lines split
 * across segments, pipelined commands, literals, BDAT chunks and DATA bodies are followed.
 * Observation stops for good when the stream turns opaque (TLS, COMPRESS) or after a budget,
 * so it costs nothing after that. Memory: a fixed pool of sessions, allocated at start. */
#ifndef LG_OBSERVE_H
#define LG_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h" /* enum lg_mail_service */


enum lg_obs_phase {
	LG_PHASE_GREETING,      /* waiting for the server's greeting */
	LG_PHASE_PLAINTEXT,     /* commands in the clear, not authenticated */
	LG_PHASE_AUTHENTICATED, /* in the clear, authenticated */
	LG_PHASE_IDLE,          /* IMAP IDLE in progress */
	LG_PHASE_TLS,           /* STARTTLS done, or TLS from the start: opaque */
	LG_PHASE_COMPRESSED,    /* COMPRESS active: opaque */
	LG_PHASE_UNKNOWN,       /* the stream could not be followed */
	LG_PHASE_BUDGET,        /* observed as far as the budget goes */
	LG_PHASE_COUNT
};

/* Extensions, as bits: advertised by the server, or used by the client. */
#define LG_EXT_STARTTLS   (1u << 0)
#define LG_EXT_IDLE       (1u << 1)
#define LG_EXT_CATENATE   (1u << 2)
#define LG_EXT_URLAUTH    (1u << 3)
#define LG_EXT_BURL       (1u << 4)
#define LG_EXT_COMPRESS   (1u << 5)
#define LG_EXT_CHUNKING   (1u << 6)
#define LG_EXT_LITERALP   (1u << 7)
#define LG_EXT_CONDSTORE  (1u << 8)
#define LG_EXT_QRESYNC    (1u << 9)
#define LG_EXT_PIPELINING (1u << 10)
#define LG_EXT_8BITMIME   (1u << 11)
#define LG_EXT_BINARYMIME (1u << 12)
#define LG_EXT_SIZE       (1u << 13)
#define LG_EXT_DSN        (1u << 14)
#define LG_EXT_AUTH       (1u << 15)
#define LG_EXT_ENHANCED   (1u << 16)
#define LG_EXT_COUNT      17

#define LG_OBS_BUDGET 65536   /* bytes followed per direction */

struct lg_obs_view {
	enum lg_mail_service service;
	enum lg_obs_phase phase;
	uint32_t server_ext, client_ext; /* LG_EXT_* */
	char auth[24];                   /* the SASL mechanism or LOGIN, if seen */
	uint32_t idle_since_s;           /* phase IDLE: since when */
	uint64_t bytes[2];               /* followed: client to server, server to client */
};

struct lg_obs_pool;

/* CAPACITY sessions at once (1..LG_MAX_OBSERVED, about 1.7 KB each, touched only once used);
 * NULL on failure. */
struct lg_obs_pool *lg_obs_pool_create(uint32_t capacity);
void lg_obs_pool_destroy(struct lg_obs_pool *p);
size_t lg_obs_pool_memory(const struct lg_obs_pool *p);

const char *lg_obs_phase_name(enum lg_obs_phase p);
const char *lg_obs_ext_name(unsigned bit); /* bit index 0..LG_EXT_COUNT-1 */

/* A session for a new flow of SERVICE: its handle (> 0), or 0 when the pool is full. */
uint32_t lg_obs_open(struct lg_obs_pool *p, enum lg_mail_service service);
void lg_obs_close(struct lg_obs_pool *p, uint32_t handle);

/* A segment of session HANDLE: FROM_CLIENT, its TCP sequence number, SYN flag and payload.
 * Thread-safe per session; never touches the segment. True when the session is in IDLE. */
bool lg_obs_segment(struct lg_obs_pool *p, uint32_t handle, bool from_client, uint32_t seq,
		    bool syn, const uint8_t *payload, size_t len, uint32_t now_s);
bool lg_obs_view(struct lg_obs_pool *p, uint32_t handle, struct lg_obs_view *out);

/* Sessions in use, by service and phase. */
void lg_obs_counts(struct lg_obs_pool *p, uint64_t by_phase[LG_MAIL_SERVICES][LG_PHASE_COUNT]);

#endif
