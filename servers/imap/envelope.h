/* FETCH ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 7.4.2), written to the session. */
#ifndef LG_IMAP_ENVELOPE_H
#define LG_IMAP_ENVELOPE_H

#include "servers/imap/mime.h"
#include "servers/imap/session.h"

void imap_put_envelope(struct imap_session *s, const char *hdr, size_t len);
/* EXTENDED: BODYSTRUCTURE (with extension data); otherwise BODY. DEPTH: 0 at the root. */
void imap_put_body(struct imap_session *s, const char *msg, const struct mime_part *part,
		   bool extended, int depth);

#endif
