/* BURL (RFC 4468) for lemongate-submitd: fetch a URLAUTH-authorized IMAP URL from the IMAP
 * server it names, logged in as the configured submit identity (URLFETCH, RFC 4467). Only
 * servers the operator listed are contacted (-o imap-host=NAME=ADDR:PORT; by default the
 * server's own host name at 127.0.0.1:143), so a client cannot make the submission server
 * connect anywhere. Non-blocking, on the server's event loop. */
#ifndef LG_SUBMIT_BURL_H
#define LG_SUBMIT_BURL_H

#include <stdbool.h>
#include <stddef.h>

/* -o options: imap-host=NAME=ADDR:PORT, imap-tls=starttls|none (STARTTLS by default, the
 * certificate checked against NAME), imap-ca=PATH, burl-user=NAME, burl-password-file=PATH.
 * 1 when KEY is one of them (with *ERR set when VALUE is bad), 0 otherwise. */
int burl_option(const char *key, const char *value, const char **err);
/* Defaults once the options are in; a message when BURL cannot work (it is then not offered). */
const char *burl_start_config(const char *hostname);
bool burl_available(void);

struct burl_fetch;
/* DATA is malloc'd (the callee frees it), or NULL with ERR for the client's 554 reply. */
typedef void (*burl_done)(void *arg, char *data, size_t len, const char *err);
/* NULL with *ERR when the URL is refused before any connection. */
struct burl_fetch *burl_fetch_start(const char *url, size_t len, burl_done cb, void *arg,
				    const char **err);
void burl_fetch_cancel(struct burl_fetch *f);

#endif
