#define _GNU_SOURCE /* accept4 */
#include "servers/core/server.h"

#include "servers/core/users.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define IN_CHUNK      4096
#define TICK_SECONDS  5

/* Idle connections hold no buffers: both are allocated when bytes arrive or leave and freed
 * when drained, so ten thousand sessions in IDLE cost little more than their records. */
/* Every epoll registration starts with its kind, so an event is never taken for another. */
enum item_kind { ITEM_CONN = 1, ITEM_WATCH, ITEM_LISTEN, ITEM_SIGNAL, ITEM_TICK };

struct srv_conn {
	enum item_kind kind;
	int fd;
	char peer[INET6_ADDRSTRLEN + 8];
	char *in;
	size_t in_len, in_cap;
	size_t want_bytes;        /* > 0: the next bytes go to on_bytes */
	char *out;
	size_t out_len, out_cap;
	SSL *ssl;
	bool tls_requested, handshaking, ssl_wants_write;
	bool closing, dead, in_dirty_list, gone;
	bool paused, processing;
	unsigned timeout_s;
	time_t last_input;
	struct srv_conn *next_dirty;
	struct srv_conn *prev, *next; /* all connections, for the timeout tick */
	struct srv_conn *next_gone;
	void *state;
};

struct watch {
	enum item_kind kind;
	int fd;
	void (*cb)(void *arg);
	void *arg;
	struct watch *next;
};

static const struct srv_proto *proto;
static struct srv_config config;
static struct srv_users *users;
static SSL_CTX *tls_ctx;
static int epfd;
static size_t conn_count;
static bool accept_paused; /* out of descriptors: the listening socket is disarmed */
/* Closed connections and removed watches are freed after the epoll batch: a later event of
 * the same batch may still point at them. */
static struct srv_conn *all_conns, *dirty_conns, *gone_conns;
static struct watch *watches, *gone_watches;
static int listen_fd = -1, signal_fd = -1, tick_fd = -1;
static const enum item_kind listen_kind = ITEM_LISTEN, signal_kind = ITEM_SIGNAL,
			    tick_kind = ITEM_TICK;

const struct srv_config *srv_config(void)
{
	return &config;
}

void *srv_state(struct srv_conn *c)
{
	return c->state;
}

const char *srv_peer(const struct srv_conn *c)
{
	return c->peer;
}

size_t srv_conn_count(void)
{
	return conn_count;
}

bool srv_auth_check(const char *user, const char *pass)
{
	return srv_users_check(users, user, pass);
}

bool srv_user_exists(const char *user)
{
	return srv_users_exists(users, user);
}

void srv_log(const char *fmt, ...)
{
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s %s: ", stamp, proto ? proto->name : "server");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* Output queued outside an event of this connection (another session's APPEND waking an IDLE)
 * is flushed at the end of the loop iteration. */
static void mark_dirty(struct srv_conn *c)
{
	if (c->in_dirty_list || c->gone)
		return;
	c->in_dirty_list = true;
	c->next_dirty = dirty_conns;
	dirty_conns = c;
}

static bool out_reserve(struct srv_conn *c, size_t more)
{
	size_t need = c->out_len + more, cap = c->out_cap ? c->out_cap : 4096;
	char *bigger;

	if (need <= c->out_cap)
		return true;
	while (cap < need)
		cap *= 2;
	if (need > SRV_MAX_OUTBUF) {
		srv_log("%s: client not reading, dropping it", c->peer);
		c->dead = true;
		return false;
	}
	bigger = realloc(c->out, cap);
	if (!bigger) {
		c->dead = true;
		return false;
	}
	c->out = bigger;
	c->out_cap = cap;
	return true;
}

void srv_write(struct srv_conn *c, const void *data, size_t len)
{
	if (c->dead || !out_reserve(c, len))
		return;
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	mark_dirty(c);
}

void srv_printf(struct srv_conn *c, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0 || c->dead)
		return;
	if ((size_t)n < sizeof(small)) {
		srv_write(c, small, (size_t)n);
		return;
	}
	if (!out_reserve(c, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf(c->out + c->out_len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	c->out_len += (size_t)n;
	mark_dirty(c);
}

void srv_close_after_flush(struct srv_conn *c)
{
	c->closing = true;
	mark_dirty(c);
}

void srv_read_bytes(struct srv_conn *c, size_t len)
{
	c->want_bytes = len;
}

static void conn_process(struct srv_conn *c);

void srv_pause(struct srv_conn *c, bool paused)
{
	c->paused = paused;
	if (!paused && !c->processing && c->in_len > 0 && !c->dead)
		conn_process(c); /* what arrived while paused, in order */
	mark_dirty(c);
}

void srv_set_timeout(struct srv_conn *c, unsigned seconds)
{
	c->timeout_s = seconds;
}

bool srv_tls_available(void)
{
	return tls_ctx != NULL;
}

bool srv_tls_active(const struct srv_conn *c)
{
	return c->ssl != NULL || c->tls_requested;
}

int srv_starttls(struct srv_conn *c)
{
	if (!tls_ctx || c->ssl || c->tls_requested)
		return -1;
	c->tls_requested = true;
	mark_dirty(c);
	return 0;
}

static void log_tls_error(struct srv_conn *c, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	srv_log("%s: TLS %s failed%s%s", c->peer, what, *buf ? ": " : "", buf);
	ERR_clear_error();
}

static void tls_handshake(struct srv_conn *c)
{
	int r = SSL_do_handshake(c->ssl);

	c->ssl_wants_write = false;
	if (r == 1) {
		c->handshaking = false;
		srv_log("%s: TLS started (%s, %s)", c->peer, SSL_get_version(c->ssl),
			SSL_get_cipher_name(c->ssl));
		return;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return;
	case SSL_ERROR_WANT_WRITE:
		c->ssl_wants_write = true;
		return;
	default:
		log_tls_error(c, "handshake");
		c->dead = true;
	}
}

static void tls_begin(struct srv_conn *c)
{
	c->tls_requested = false;
	c->in_len = 0;
	c->want_bytes = 0;
	c->ssl = SSL_new(tls_ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		log_tls_error(c, "setup");
		c->dead = true;
		return;
	}
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_accept_state(c->ssl);
	c->handshaking = true;
	tls_handshake(c);
}

static ssize_t conn_send(struct srv_conn *c)
{
	int r;

	if (!c->ssl) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

		if (n < 0 && errno != EAGAIN && errno != EINTR)
			c->dead = true;
		return n;
	}
	r = SSL_write(c->ssl, c->out, c->out_len > 1u << 30 ? 1 << 30 : (int)c->out_len);
	if (r > 0)
		return r;
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_WRITE:
		c->ssl_wants_write = true;
		return -1;
	case SSL_ERROR_WANT_READ:
		return -1;
	default:
		log_tls_error(c, "write");
		c->dead = true;
		return -1;
	}
}

/* Send what we can; keep EPOLLOUT armed only while output is pending. */
static void conn_flush(struct srv_conn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	if (c->handshaking && !c->dead)
		tls_handshake(c);
	while (c->out_len > 0 && !c->dead && !c->handshaking) {
		ssize_t n = conn_send(c);

		if (n <= 0)
			break;
		c->ssl_wants_write = false;
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	if (c->out_len == 0 && c->out_cap > 0) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	if (c->tls_requested && c->out_len == 0 && !c->dead)
		tls_begin(c);
	ev.events = (c->paused ? 0u : EPOLLIN) | (c->out_len || c->ssl_wants_write ? EPOLLOUT : 0u);
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void in_release_if_empty(struct srv_conn *c)
{
	if (c->in_len == 0 && c->in_cap > 0) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
}

static void conn_process(struct srv_conn *c)
{
	size_t start = 0;

	c->processing = true;
	while (start < c->in_len && !c->closing && !c->dead && !c->tls_requested && !c->paused) {
		if (c->want_bytes > 0) {
			size_t n = c->in_len - start;

			if (n > c->want_bytes)
				n = c->want_bytes;
			c->want_bytes -= n;
			proto->on_bytes(c, c->in + start, n, c->want_bytes == 0);
			start += n;
			continue;
		}
		char *nl = memchr(c->in + start, '\n', c->in_len - start);

		if (!nl)
			break;
		size_t end = (size_t)(nl - c->in);

		if (end > start && c->in[end - 1] == '\r')
			end--;
		c->in[end] = '\0';
		if (memchr(c->in + start, '\0', end - start)) {
			c->in[start] = '\0';
			end = start;
		}
		char *line = c->in + start;

		start = (size_t)(nl - c->in) + 1;
		proto->on_line(c, line, (size_t)(line + strlen(line) - line));
	}
	c->processing = false;
	if (c->tls_requested)
		start = c->in_len; /* anything pipelined after STARTTLS is dropped unread */
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->want_bytes == 0 && c->in_len >= SRV_MAX_LINE && !c->closing && !c->paused) {
		proto->on_line_too_long(c);
		c->closing = true;
		c->in_len = 0;
	}
	in_release_if_empty(c);
}

static bool in_reserve(struct srv_conn *c)
{
	size_t cap;
	char *bigger;

	if (c->in_cap - c->in_len >= IN_CHUNK / 2)
		return true;
	cap = c->in_cap ? c->in_cap * 2 : IN_CHUNK;
	if (cap > SRV_MAX_LINE + IN_CHUNK)
		cap = SRV_MAX_LINE + IN_CHUNK;
	if (cap <= c->in_len)
		return c->in_cap > c->in_len;
	bigger = realloc(c->in, cap);
	if (!bigger) {
		c->dead = true;
		return false;
	}
	c->in = bigger;
	c->in_cap = cap;
	return true;
}

/* 1 bytes read, 0 nothing more now, -1 closed or failed */
static int conn_recv(struct srv_conn *c)
{
	size_t room;
	int r;

	if (!in_reserve(c))
		return -1;
	room = c->in_cap - c->in_len;
	if (!c->ssl) {
		ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);

		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->in_len += (size_t)n;
		return 1;
	}
	r = SSL_read(c->ssl, c->in + c->in_len, room > 1u << 30 ? 1 << 30 : (int)room);
	if (r > 0) {
		c->in_len += (size_t)r;
		return 1;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->ssl_wants_write = true;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return -1;
	default:
		log_tls_error(c, "read");
		return -1;
	}
}

static void conn_read(struct srv_conn *c)
{
	if (c->handshaking) {
		tls_handshake(c);
		if (c->handshaking || c->dead)
			return;
	}
	for (;;) {
		int r = conn_recv(c);

		if (r < 0) {
			c->dead = true;
			in_release_if_empty(c);
			return;
		}
		if (r == 0) {
			in_release_if_empty(c);
			return;
		}
		c->last_input = time(NULL);
		conn_process(c);
		if (c->closing || c->dead || c->tls_requested)
			return;
	}
}

/* With no descriptor left, the pending connection keeps the listening socket readable and a
 * level-triggered loop would spin: stop listening until a connection closes. */
static void pause_accepting(void)
{
	struct epoll_event ev = { .events = 0, .data.ptr = (void *)(uintptr_t)&listen_kind };

	if (accept_paused)
		return;
	srv_log("out of file descriptors at %zu connections: not accepting until one closes", conn_count);
	accept_paused = epoll_ctl(epfd, EPOLL_CTL_MOD, listen_fd, &ev) == 0;
}

static void resume_accepting(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = (void *)(uintptr_t)&listen_kind };

	if (accept_paused && epoll_ctl(epfd, EPOLL_CTL_MOD, listen_fd, &ev) == 0)
		accept_paused = false;
}

static void conn_close(struct srv_conn *c)
{
	if (c->gone)
		return;
	if (proto->on_close)
		proto->on_close(c);
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->ssl) {
		/* An orderly end sends close_notify, so that the client can tell it from a
		 * truncation attack (OpenSSL 3 clients report a bare EOF as an error). Best
		 * effort: the socket is non-blocking and we do not wait for the peer's reply. */
		if (!c->dead && !c->handshaking)
			SSL_shutdown(c->ssl);
		else
			SSL_set_quiet_shutdown(c->ssl, 1);
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	resume_accepting();
	if (c->prev)
		c->prev->next = c->next;
	else
		all_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->in_dirty_list) {
		for (struct srv_conn **p = &dirty_conns; *p; p = &(*p)->next_dirty)
			if (*p == c) {
				*p = c->next_dirty;
				break;
			}
		c->in_dirty_list = false;
	}
	c->gone = true;
	c->next_gone = gone_conns;
	gone_conns = c;
	conn_count--;
}

static void free_gone(void)
{
	while (gone_conns) {
		struct srv_conn *c = gone_conns;

		gone_conns = c->next_gone;
		free(c->in);
		free(c->out);
		free(c->state);
		free(c);
	}
	while (gone_watches) {
		struct watch *w = gone_watches;

		gone_watches = w->next;
		free(w);
	}
}

static bool conn_finished(const struct srv_conn *c)
{
	return c->dead || (c->closing && c->out_len == 0 && !c->tls_requested);
}

static void conn_after_event(struct srv_conn *c)
{
	conn_flush(c);
	if (conn_finished(c)) {
		srv_log("close %s", c->peer);
		conn_close(c);
	}
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char addr[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		snprintf(out, size, "[%s]:%u", addr, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		snprintf(out, size, "%s:%u", addr, ntohs(s4->sin_port));
	}
}

static void accept_all(void)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct srv_conn *c;
		struct epoll_event ev;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				pause_accepting();
			return;
		}
		if (conn_count >= SRV_MAX_CONNS) {
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || !(c->state = calloc(1, proto->state_size + 1))) {
			free(c);
			close(fd);
			continue;
		}
		c->kind = ITEM_CONN;
		c->fd = fd;
		c->last_input = time(NULL);
		peer_name(&ss, c->peer, sizeof(c->peer));
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			free(c->state);
			free(c);
			close(fd);
			continue;
		}
		c->next = all_conns;
		if (all_conns)
			all_conns->prev = c;
		all_conns = c;
		conn_count++;
		srv_log("connect from %s", c->peer);
		proto->on_open(c);
		conn_after_event(c);
	}
}

int srv_watch(int fd, bool writable, void (*cb)(void *arg), void *arg)
{
	struct watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev;

	if (!w)
		return -1;
	*w = (struct watch){ .kind = ITEM_WATCH, .fd = fd, .cb = cb, .arg = arg, .next = watches };
	ev = (struct epoll_event){ .events = writable ? EPOLLOUT : EPOLLIN, .data.ptr = w };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(w);
		return -1;
	}
	watches = w;
	return 0;
}

void srv_unwatch(int fd)
{
	for (struct watch **p = &watches; *p; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			struct watch *w = *p;

			epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
			*p = w->next;
			w->cb = NULL;
			w->next = gone_watches;
			gone_watches = w;
			return;
		}
	}
}

static void tick(void)
{
	uint64_t expirations;
	time_t now = time(NULL);
	struct srv_conn *c = all_conns, *next;

	if (read(tick_fd, &expirations, sizeof(expirations)) < 0)
		return;
	for (; c; c = next) {
		next = c->next;
		if (c->gone || !c->timeout_s || now - c->last_input < (time_t)c->timeout_s || c->closing)
			continue;
		if (proto->on_timeout)
			proto->on_timeout(c);
		c->closing = true;
		conn_after_event(c);
	}
}

static void flush_dirty(void)
{
	while (dirty_conns) {
		struct srv_conn *c = dirty_conns;

		dirty_conns = c->next_dirty;
		c->in_dirty_list = false;
		conn_after_event(c);
	}
}

static int listen_on(const char *spec, unsigned short default_port)
{
	char host[INET6_ADDRSTRLEN + 2] = "0.0.0.0";
	unsigned long port = default_port;
	const char *colon = strrchr(spec, ':');
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd, one = 1;

	if (colon && strchr(spec, ']') < colon) {
		char *end;

		if ((size_t)(colon - spec) >= sizeof(host))
			return -1;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
		port = strtoul(colon + 1, &end, 10);
		if (*end || port == 0 || port > 65535)
			return -1;
	} else if (*spec) {
		snprintf(host, sizeof(host), "%s", spec);
	}
	if (host[0] == '[') {
		size_t hl = strlen(host);

		if (hl < 2 || host[hl - 1] != ']')
			return -1;
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int tls_setup(const char *cert, const char *key)
{
	tls_ctx = SSL_CTX_new(TLS_server_method());
	if (!tls_ctx || SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(tls_ctx) != 1) {
		unsigned long e = ERR_get_error();

		fprintf(stderr, "%s: TLS certificate %s / key %s: %s\n", proto->name, cert, key,
			e ? ERR_reason_error_string(e) : "unusable");
		SSL_CTX_free(tls_ctx);
		tls_ctx = NULL;
		return -1;
	}
	SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_SERVER);
	/* An idle session then holds no TLS record buffers (about 34 KiB each otherwise). */
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s [-l ADDR[:PORT]] [-u USERSFILE] [-n HOSTNAME] [-d DATADIR]\n"
		"       [--tls-cert FILE --tls-key FILE] [-o KEY=VALUE]... [--allow-plaintext-auth]\n"
		"  -l ADDR[:PORT]           listen address (default 0.0.0.0:%u)\n"
		"  -u USERSFILE             NAME:sha256:HEX lines\n"
		"  -n HOSTNAME              name in greetings (default: the host name)\n"
		"  -d DATADIR               the mail store (imapd) or the spool (submitd)\n"
		"  --tls-cert, --tls-key    PEM certificate chain and key: enables STARTTLS\n"
		"  -o KEY=VALUE             a setting of this server (see its manual)\n"
		"  --allow-plaintext-auth   allow authentication without TLS (test beds only)\n",
		proto->name, proto->default_port);
}

static int parse_args(int argc, char **argv, const char **listen_spec)
{
	static const struct option longopts[] = {
		{ "allow-plaintext-auth", no_argument, NULL, 'P' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char hostname[256];
	const char *users_file = NULL, *cert = NULL, *key = NULL;
	char err[256];
	int ch;

	while ((ch = getopt_long(argc, argv, "l:u:n:d:o:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l': *listen_spec = optarg; break;
		case 'u': users_file = optarg; break;
		case 'n': config.hostname = optarg; break;
		case 'd': config.data_dir = optarg; break;
		case 'P': config.allow_plaintext_auth = true; break;
		case 'C': cert = optarg; break;
		case 'K': key = optarg; break;
		case 'o': {
			char *eq = strchr(optarg, '=');
			const char *msg;

			if (!eq || eq == optarg) {
				fprintf(stderr, "%s: -o %s: expected KEY=VALUE\n", proto->name, optarg);
				return 2;
			}
			*eq = '\0';
			msg = proto->on_option ? proto->on_option(optarg, eq + 1) : "no such setting";
			if (msg) {
				fprintf(stderr, "%s: -o %s: %s\n", proto->name, optarg, msg);
				return 2;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !cert != !key) {
		if (!cert != !key)
			fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", proto->name);
		usage(stderr);
		return 2;
	}
	if (!config.hostname) {
		if (gethostname(hostname, sizeof(hostname) - 1) < 0)
			strcpy(hostname, "localhost");
		config.hostname = hostname;
	}
	if (users_file && !(users = srv_users_load(users_file, err, sizeof(err)))) {
		fprintf(stderr, "%s: %s\n", proto->name, err);
		return 1;
	}
	if (cert && tls_setup(cert, key) < 0)
		return 1;
	return -1;
}

/* Every session is a descriptor, and the usual soft limit (1024) is far below SRV_MAX_CONNS. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t want = SRV_MAX_CONNS + 1024; /* mail files, BURL connections, the loop's own */

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < want)
		srv_log("file descriptor limit %llu (hard): fewer than %d sessions fit",
			(unsigned long long)rl.rlim_cur, SRV_MAX_CONNS);
}

static int add_loop_fd(int fd, const enum item_kind *kind)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = (void *)(uintptr_t)kind };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int srv_main(int argc, char **argv, const struct srv_proto *p)
{
	struct itimerspec every = { .it_interval = { TICK_SECONDS, 0 }, .it_value = { TICK_SECONDS, 0 } };
	const char *listen_spec = "", *msg;
	sigset_t sigs;
	int rc;

	proto = p;
	rc = parse_args(argc, argv, &listen_spec);
	if (rc >= 0)
		return rc;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (signal_fd < 0 || epfd < 0 || tick_fd < 0 || timerfd_settime(tick_fd, 0, &every, NULL) < 0) {
		fprintf(stderr, "%s: signalfd/epoll/timerfd: %s\n", proto->name, strerror(errno));
		return 1;
	}
	if (proto->on_start && (msg = proto->on_start())) {
		fprintf(stderr, "%s: %s\n", proto->name, msg);
		return 1;
	}
	listen_fd = listen_on(listen_spec, proto->default_port);
	if (listen_fd < 0) {
		fprintf(stderr, "%s: cannot listen on '%s': %s\n", proto->name, listen_spec,
			strerror(errno));
		return 1;
	}
	add_loop_fd(listen_fd, &listen_kind);
	add_loop_fd(signal_fd, &signal_kind);
	add_loop_fd(tick_fd, &tick_kind);
	srv_log("listening on %s (port %u)%s%s", *listen_spec ? listen_spec : "0.0.0.0",
		proto->default_port, tls_ctx ? ", STARTTLS" : "",
		config.allow_plaintext_auth ? ", plaintext auth allowed" : "");

	for (;;) {
		struct epoll_event events[64];
		int n = epoll_wait(epfd, events, 64, -1);

		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			const enum item_kind *kind = events[i].data.ptr;

			switch (*kind) {
			case ITEM_LISTEN:
				accept_all();
				break;
			case ITEM_SIGNAL:
				srv_log("stopping");
				while (all_conns)
					conn_close(all_conns);
				free_gone();
				srv_users_free(users);
				SSL_CTX_free(tls_ctx);
				return 0;
			case ITEM_TICK:
				tick();
				break;
			case ITEM_WATCH: {
				struct watch *w = events[i].data.ptr;

				if (w->cb)
					w->cb(w->arg);
				break;
			}
			case ITEM_CONN: {
				struct srv_conn *c = events[i].data.ptr;

				if (c->gone)
					break;
				if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					conn_read(c);
				if (!c->in_dirty_list)
					conn_after_event(c);
				break;
			}
			}
			flush_dirty();
		}
		free_gone();
	}
	return 1;
}
