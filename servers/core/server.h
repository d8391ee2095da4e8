/* The servers' shared core: one epoll loop, buffered connections (lines, counted byte runs for
 * literals and chunks), STARTTLS, users, logging, timers and foreign file descriptors.
 * A protocol file (imapd.c, submitd.c) supplies callbacks and holds protocol only.
 * Everything runs on one thread; no callback may block. */
#ifndef LG_SERVER_H
#define LG_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#define SRV_MAX_LINE    65536     /* longest command line accepted, CRLF included */
#define SRV_MAX_OUTBUF  (4u << 20) /* a client that stops reading is dropped past this */
#define SRV_MAX_CONNS   20000

struct srv_conn;

struct srv_proto {
	const char *name;          /* "lemongate-imapd" */
	unsigned short default_port;
	size_t state_size;         /* per-connection protocol state, zeroed at accept */
	/* -o KEY=VALUE options and the server's start, before it listens; NULL or 0 on success,
	 * else a message for the operator. */
	const char *(*on_option)(const char *key, const char *value);
	const char *(*on_start)(void);
	void (*on_open)(struct srv_conn *c);
	/* LINE has its CRLF (or bare LF) removed; it holds no NUL byte (a line that had one is
	 * given as empty). */
	void (*on_line)(struct srv_conn *c, char *line, size_t len);
	/* Bytes asked for with srv_read_bytes(), in pieces as they arrive; LAST on the final one. */
	void (*on_bytes)(struct srv_conn *c, const char *data, size_t len, bool last);
	/* The client sent more than SRV_MAX_LINE bytes without a line end. */
	void (*on_line_too_long)(struct srv_conn *c);
	/* Idle longer than the timeout set with srv_set_timeout(). */
	void (*on_timeout)(struct srv_conn *c);
	/* The connection is going away (client closed, error, or after srv_close_after_flush). */
	void (*on_close)(struct srv_conn *c);
};

struct srv_config {
	const char *hostname;
	bool allow_plaintext_auth; /* test beds only: authentication without TLS */
	const char *data_dir;      /* -d: the mail store (imapd) or spool (submitd) */
};

void srv_printf(struct srv_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_write(struct srv_conn *c, const void *data, size_t len);
/* Close once everything queued so far has been sent. */
void srv_close_after_flush(struct srv_conn *c);
/* The next LEN bytes of input go to on_bytes instead of on_line. */
void srv_read_bytes(struct srv_conn *c, size_t len);
/* Start TLS once the output queued so far is sent; input that arrived after the command is
 * discarded (a STARTTLS command injection must not be executed inside TLS). -1 when no
 * certificate is configured. */
int srv_starttls(struct srv_conn *c);
bool srv_tls_available(void);
bool srv_tls_active(const struct srv_conn *c);
/* Stop (or resume) reading and handling this client's input, while the protocol waits on
 * something else (submitd's BURL fetch); pipelined commands wait their turn. */
void srv_pause(struct srv_conn *c, bool paused);
/* Seconds of client silence before on_timeout; 0 for none. */
void srv_set_timeout(struct srv_conn *c, unsigned seconds);
void *srv_state(struct srv_conn *c);
const char *srv_peer(const struct srv_conn *c);
const struct srv_config *srv_config(void);
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
size_t srv_conn_count(void);

/* Watch another descriptor (inotify, a client socket of our own): CB runs when it is readable
 * (WRITABLE: writable). srv_unwatch before closing it. -1 on error. */
int srv_watch(int fd, bool writable, void (*cb)(void *arg), void *arg);
void srv_unwatch(int fd);

/* Check USER/PASS against the users file given with -u. */
bool srv_auth_check(const char *user, const char *pass);
bool srv_user_exists(const char *user);

/* Parse the common flags, listen, and run the loop until SIGTERM/SIGINT. Returns the exit code. */
int srv_main(int argc, char **argv, const struct srv_proto *proto);

#endif
