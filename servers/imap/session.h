/* One IMAP session of lemongate-imapd, shared by the command modules (imapd.c: state,
 * authentication, mailboxes, IDLE; fetch.c: FETCH and STORE; search.c: SEARCH). */
#ifndef LG_IMAP_SESSION_H
#define LG_IMAP_SESSION_H

#include "servers/core/server.h"
#include "servers/imap/parse.h"
#include "servers/mail/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_TAG_MAX   64
#define IMAP_USER_MAX  64
#define IMAP_CMD_MAX   (64u << 10)  /* a command without its APPEND literals */

enum imap_state { IMAP_NOT_AUTH, IMAP_AUTH, IMAP_SELECTED, IMAP_LOGOUT };

struct imap_session {
	struct srv_conn *conn;
	enum imap_state state;
	char user[IMAP_USER_MAX + 1];
	bool condstore, qresync;   /* ENABLEd, or CONDSTORE turned on by use */

	/* the command being assembled: lines and the literals between them, as on the wire */
	char *cmd;
	size_t cmd_len, cmd_cap;
	uint64_t cmd_limit;         /* grows for APPEND's message literals */
	bool discarding;            /* a refused literal is being read and thrown away */
	const char *discard_reason;

	bool idling, authenticating;
	char pending_tag[IMAP_TAG_MAX + 1];

	/* the selected mailbox and this session's view of it (UIDs by sequence number) */
	struct mbox *mb;
	bool readonly;
	uint32_t *view;
	size_t view_count, view_cap;
	uint64_t reported_modseq;   /* flag changes up to here have been reported */
	uint64_t expunges_reported; /* expunges up to this MODSEQ have been reported */
	uint32_t reported_uidnext;
	size_t recent;
};

/* Untagged data and strings */
void imap_put_string(struct imap_session *s, const char *data, size_t len);
void imap_put_nstring(struct imap_session *s, const char *data, size_t len); /* NULL: NIL */
void imap_put_flags(struct imap_session *s, const struct mb_msg *m);
/* Report mailbox changes to the client: new messages, flag changes, and, when ALLOW_EXPUNGE,
 * expunges (never during FETCH, STORE or SEARCH by sequence number). */
void imap_sync(struct imap_session *s, bool allow_expunge);
/* The message of sequence number SEQ (1-based) in this session's view, or NULL when the
 * mailbox no longer has it (expunged by another session, not yet reported). */
const struct mb_msg *imap_msg_at(struct imap_session *s, uint32_t seq);
/* Resolve a sequence set or UID set to the view's sequence numbers, ascending; malloc'd. */
int imap_resolve_set(struct imap_session *s, struct imap_seqset *set, bool uid, uint32_t **seqs,
		     size_t *count);

/* BODY[SECTION] of a message (SECTION as in FETCH, without the brackets; "" for all of it),
 * malloc'd into *DATA; *DATA NULL when no such part exists. -1 on a malformed SECTION. */
int imap_message_section(const char *section, const char *msg, size_t len, char **data,
			 size_t *dlen);

/* Commands of the other modules; ARGS is after "FETCH " and so on; USE_UID for UID FETCH. */
void imap_cmd_fetch(struct imap_session *s, const char *tag, struct imap_parser *p, bool use_uid);
void imap_cmd_store(struct imap_session *s, const char *tag, struct imap_parser *p, bool use_uid);
void imap_cmd_search(struct imap_session *s, const char *tag, struct imap_parser *p, bool use_uid);

/* CONDSTORE and QRESYNC (RFC 7162), condstore.c */
void imap_condstore_on(struct imap_session *s);
/* A UID set on the wire ("4,7:9"), from ascending ranges; PREFIX goes out before the first
 * one, nothing at all when there is none. */
struct imap_uid_writer {
	struct imap_session *s;
	const char *prefix;
	uint32_t lo, hi;
	bool pending, written;
};
void imap_uids_begin(struct imap_uid_writer *w, struct imap_session *s, const char *prefix);
void imap_uids_add(struct imap_uid_writer *w, uint32_t lo, uint32_t hi);
bool imap_uids_end(struct imap_uid_writer *w, const char *suffix); /* true when written */
/* "* VANISHED (EARLIER)" for the UIDs of UIDS (NULL: all) expunged after MODSEQ SINCE. */
void imap_vanished_earlier(struct imap_session *s, uint64_t since, struct imap_seqset *uids);
/* SELECT's QRESYNC parameter: what changed since SINCE among the KNOWN UIDs (NULL: all). */
void imap_qresync_select(struct imap_session *s, uint64_t since, struct imap_seqset *known);
/* Before the tagged reply of a command that may not report expunges: when some are pending,
 * an HIGHESTMODSEQ below them, so that a client never skips past them (RFC 7162 3.2). */
void imap_hold_modseq(struct imap_session *s);

#endif
