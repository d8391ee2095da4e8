/* Where lemongate-submitd puts an accepted message: into each local recipient's INBOX in the
 * IMAP store (store_deliver: durable, picked up by imapd at once), and, for every other
 * recipient, into the spool (SPOOL/queue/ID: the envelope with its DSN parameters, a blank
 * line, the message), written durably. Nothing is acknowledged before both are on disk.
 * lemongate-submitd does not relay: the testbed has no other MTA; the spool is the hand-off
 * point an operator (or a later relay) would read. */
#ifndef LG_SUBMIT_DELIVER_H
#define LG_SUBMIT_DELIVER_H

#include "servers/submit/envelope.h"

#include <stdbool.h>
#include <stddef.h>

/* Local domains: a comma list; by default the host name and its parent domain. */
int deliver_set_local_domains(const char *list);
void deliver_default_local_domains(const char *hostname);
/* The spool directory (created with queue/ and tmp/); 0 or -1 with a message. */
int deliver_set_spool(const char *dir, char *err, size_t errlen);
/* USER gets the store user ADDR is delivered to, when its domain is local. */
bool deliver_is_local_domain(const char *addr);
bool deliver_local_user(const char *addr, char *user, size_t size);

/* Deliver DATA (LEN bytes) with the trace header RECEIVED (one or more CRLF-ended lines) in
 * front; ID names the transaction in logs and the spool. 0, or -1 with errno. */
int deliver_message(const char *id, const struct smtp_mail *m, const struct smtp_rcpt *rcpts,
		    size_t count, const char *received, const char *data, size_t len);

#endif
