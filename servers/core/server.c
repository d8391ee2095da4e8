#define _GNU_SOURCE /* accept4 */
#include "servers/core/server.h"

#include "servers/core/users.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct srv_conn {
	int fd;
	char peer[INET6_ADDRSTRLEN + 8];
	char in[SRV_MAX_LINE];
	size_t in_len;
	char *out;
	size_t out_len, out_cap;
	bool closing, dead;
	void *state;
};

static const struct srv_proto *proto;
static struct srv_config config;
static struct srv_users *users;
static int epfd;
static size_t conn_count;

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

bool srv_auth_check(const char *user, const char *pass)
{
	return srv_users_check(users, user, pass);
}

void srv_log(const char *fmt, ...)
{
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s %s: ", stamp, proto->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

void srv_printf(struct srv_conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->dead)
		return;
	for (;;) {
		size_t room = c->out_cap - c->out_len;

		va_start(ap, fmt);
		n = vsnprintf(c->out + c->out_len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			c->out_len += (size_t)n;
			return;
		}
		if (c->out_cap * 2 > SRV_MAX_OUTBUF) {
			srv_log("%s: client not reading, dropping it", c->peer);
			c->dead = true;
			return;
		}
		char *bigger = realloc(c->out, c->out_cap * 2);

		if (!bigger) {
			c->dead = true;
			return;
		}
		c->out = bigger;
		c->out_cap *= 2;
	}
}

void srv_close_after_flush(struct srv_conn *c)
{
	c->closing = true;
}

static void conn_free(struct srv_conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c->state);
	free(c);
	conn_count--;
}

/* Send what we can; keep EPOLLOUT armed only while output is pending. */
static void conn_flush(struct srv_conn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	while (c->out_len > 0 && !c->dead) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			c->dead = true;
			break;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	ev.events = EPOLLIN | (c->out_len ? EPOLLOUT : 0u);
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_lines(struct srv_conn *c)
{
	size_t start = 0;

	for (size_t i = 0; i < c->in_len && !c->closing && !c->dead; i++) {
		if (c->in[i] != '\n')
			continue;
		size_t end = i;

		if (end > start && c->in[end - 1] == '\r')
			end--;
		c->in[end] = '\0';
		if (memchr(c->in + start, '\0', end - start)) {
			/* an embedded NUL cannot be a command; let the protocol answer an empty line */
			c->in[start] = '\0';
			end = start;
		}
		proto->on_line(c, c->in + start, end - start);
		start = i + 1;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->in_len == sizeof(c->in) && !c->closing) {
		proto->on_line_too_long(c);
		c->closing = true;
	}
}

static void conn_read(struct srv_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

		if (n == 0) {
			c->dead = true;
			return;
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				c->dead = true;
			return;
		}
		c->in_len += (size_t)n;
		conn_lines(c);
		if (c->closing || c->dead)
			return;
	}
}

static void accept_all(int lfd)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct srv_conn *c;
		struct epoll_event ev;
		char addr[INET6_ADDRSTRLEN];
		unsigned port;

		if (fd < 0)
			return;
		if (conn_count >= SRV_MAX_CONNS) {
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || !(c->out = malloc(4096)) || !(c->state = calloc(1, proto->state_size + 1))) {
			if (c) {
				free(c->out);
				free(c);
			}
			close(fd);
			continue;
		}
		c->fd = fd;
		c->out_cap = 4096;
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
			port = ntohs(s6->sin6_port);
			snprintf(c->peer, sizeof(c->peer), "[%s]:%u", addr, port);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
			port = ntohs(s4->sin_port);
			snprintf(c->peer, sizeof(c->peer), "%s:%u", addr, port);
		}
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			free(c->out);
			free(c->state);
			free(c);
			close(fd);
			continue;
		}
		conn_count++;
		srv_log("connect from %s", c->peer);
		proto->on_open(c);
		conn_flush(c);
		if (c->dead || (c->closing && c->out_len == 0)) {
			srv_log("close %s", c->peer);
			conn_free(c);
		}
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

	if (colon) {
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
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s [-l ADDR[:PORT]] [-u USERSFILE] [-n HOSTNAME] [--allow-plaintext-auth]\n"
		"  -l ADDR[:PORT]           listen address (default 0.0.0.0:%u)\n"
		"  -u USERSFILE             NAME:sha256:HEX lines\n"
		"  -n HOSTNAME              name in greetings (default: the host name)\n"
		"  --allow-plaintext-auth   allow LOGIN/AUTH without TLS (test beds only)\n",
		proto->name, proto->default_port);
}

int srv_main(int argc, char **argv, const struct srv_proto *p)
{
	static const struct option longopts[] = {
		{ "allow-plaintext-auth", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char hostname[256];
	const char *listen_spec = "", *users_file = NULL;
	struct epoll_event ev;
	sigset_t sigs;
	int ch, lfd, sfd;
	char err[256];

	proto = p;
	while ((ch = getopt_long(argc, argv, "l:u:n:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l': listen_spec = optarg; break;
		case 'u': users_file = optarg; break;
		case 'n': config.hostname = optarg; break;
		case 'P': config.allow_plaintext_auth = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
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
	lfd = listen_on(listen_spec, proto->default_port);
	if (lfd < 0) {
		fprintf(stderr, "%s: cannot listen on '%s': %s\n", proto->name, listen_spec,
			strerror(errno));
		return 1;
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || epfd < 0) {
		fprintf(stderr, "%s: signalfd/epoll: %s\n", proto->name, strerror(errno));
		return 1;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &lfd };
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &sfd };
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
	srv_log("listening on %s (port %u)%s", *listen_spec ? listen_spec : "0.0.0.0",
		proto->default_port, config.allow_plaintext_auth ? ", plaintext auth allowed" : "");

	for (;;) {
		struct epoll_event events[64];
		int n = epoll_wait(epfd, events, 64, -1);

		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			struct srv_conn *c;

			if (events[i].data.ptr == &lfd) {
				accept_all(lfd);
				continue;
			}
			if (events[i].data.ptr == &sfd) {
				srv_log("stopping");
				srv_users_free(users);
				return 0;
			}
			c = events[i].data.ptr;
			if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_read(c);
			conn_flush(c);
			if (c->dead || (c->closing && c->out_len == 0)) {
				srv_log("close %s", c->peer);
				conn_free(c);
			}
		}
	}
	return 1;
}
