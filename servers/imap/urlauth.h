/* URLAUTH (RFC 4467) for lemongate-imapd: per-mailbox access keys, the INTERNAL mechanism
 * (HMAC-SHA256 of the rump URL under the mailbox key, hex), and resolving an IMAP URL to
 * message bytes for URLFETCH and CATENATE. Keys live in the owner's store directory
 * (urlauth.keys, replaced durably), created on first GENURLAUTH, dropped by RESETKEY. */
#ifndef LG_IMAP_URLAUTH_H
#define LG_IMAP_URLAUTH_H

#include "servers/mail/imapurl.h"

#include <stdbool.h>
#include <stddef.h>

/* Users that act as message submission entities (submit+USER URLs): a comma list. */
int urlauth_set_submit_users(const char *list);
bool urlauth_is_submit_user(const char *user);

/* GENURLAUTH: OUT gets URL (a rump, LEN bytes, owned by USER) with ":INTERNAL:token". */
int urlauth_generate(const char *user, const char *url, size_t len, char *out, size_t size,
		     const char **err);
/* RESETKEY: new keys for MAILBOX (NULL: every mailbox of USER); old URLs stop working. */
int urlauth_reset(const char *user, const char *mailbox);

/* The bytes a URL names (section and partial applied), for SESSION_USER: with URLAUTH the
 * verifier and access identifier are checked; without (CATENATE only, AUTHORIZED_ONLY
 * false) the URL must name the session user's own message. malloc'd into *DATA; -1 with a
 * reason in *ERR. */
int urlauth_fetch(const char *session_user, const char *url, size_t len, bool authorized_only,
		  char **data, size_t *dlen, const char **err);

#endif
