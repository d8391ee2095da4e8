/* The servers' shared core: one epoll loop, line-buffered connections, users, logging.
 * A protocol file (imapd.c, submitd.c) supplies callbacks and holds protocol only. */
#ifndef LG_SERVER_H
#define LG_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#define SRV_MAX_LINE    8192      /* longest command line accepted, CRLF included */
#define SRV_MAX_OUTBUF  (1u << 20) /* a client that stops reading is dropped past this */
#define SRV_MAX_CONNS   20000

struct srv_conn;

struct srv_proto {
	const char *name;          /* "lemongate-imapd" */
	unsigned short default_port;
	size_t state_size;         /* per-connection protocol state, zeroed at accept */
	void (*on_open)(struct srv_conn *c);
	/* LINE has its CRLF (or bare LF) removed; it holds no NUL byte. */
	void (*on_line)(struct srv_conn *c, char *line, size_t len);
	/* The client sent more than SRV_MAX_LINE bytes without a line end. */
	void (*on_line_too_long)(struct srv_conn *c);
};

struct srv_config {
	const char *hostname;
	bool allow_plaintext_auth; /* test beds only: no TLS yet */
};

void srv_printf(struct srv_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Close once everything queued so far has been sent. */
void srv_close_after_flush(struct srv_conn *c);
void *srv_state(struct srv_conn *c);
const char *srv_peer(const struct srv_conn *c);
const struct srv_config *srv_config(void);
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Check USER/PASS against the users file given with -u. */
bool srv_auth_check(const char *user, const char *pass);

/* Parse the common flags, listen, and run the loop until SIGTERM/SIGINT. Returns the exit code. */
int srv_main(int argc, char **argv, const struct srv_proto *proto);

#endif
