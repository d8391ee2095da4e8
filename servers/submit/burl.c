/* The BURL fetcher: a small IMAP client on the event loop (STARTTLS, LOGIN, URLFETCH, LOGOUT). */
#include "servers/submit/burl.h"

#include "servers/core/server.h"
#include "servers/mail/imapurl.h"
#include "servers/mail/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HOSTS_MAX 16
#define URL_MAX 4096
#define REPLY_MAX (MB_MESSAGE_MAX + 65536)

struct imap_host {
	char name[IMAPURL_HOST_MAX + 1];
	struct sockaddr_storage addr;
	socklen_t addr_len;
};

static struct imap_host hosts[HOSTS_MAX];
static size_t host_count;
static char login_user[IMAPURL_USER_MAX + 1], login_password[256];
static bool use_tls = true;
static char ca_path[4096];
static SSL_CTX *client_ctx;

enum fetch_state { CONNECTING, GREETING, STARTTLS, HANDSHAKE, LOGIN, FETCHING };

struct burl_fetch {
	int fd;
	SSL *ssl;
	const struct imap_host *host;
	bool watching_write;
	enum fetch_state state;
	char url[URL_MAX + 1];
	char *in;
	size_t in_len, in_cap;
	char *data;
	size_t data_len;
	burl_done cb;
	void *arg;
};

static int parse_host(const char *value, struct imap_host *h)
{
	const char *eq = strchr(value, '='), *addr, *colon;
	char ip[64];
	unsigned port;
	size_t n;

	if (!eq || eq == value || (size_t)(eq - value) > IMAPURL_HOST_MAX)
		return -1;
	memcpy(h->name, value, (size_t)(eq - value));
	h->name[eq - value] = '\0';
	addr = eq + 1;
	colon = strrchr(addr, ':');
	if (!colon || sscanf(colon + 1, "%u", &port) != 1 || port == 0 || port > 65535)
		return -1;
	n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
		addr++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(ip))
		return -1;
	memcpy(ip, addr, n);
	ip[n] = '\0';
	memset(&h->addr, 0, sizeof(h->addr));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&h->addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&h->addr;

	if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((unsigned short)port);
		h->addr_len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((unsigned short)port);
		h->addr_len = sizeof(*v6);
	} else {
		return -1;
	}
	return 0;
}

int burl_option(const char *key, const char *value, const char **err)
{
	*err = NULL;
	if (strcmp(key, "imap-host") == 0) {
		if (host_count == HOSTS_MAX || parse_host(value, &hosts[host_count]) < 0)
			*err = "imap-host=NAME=ADDR:PORT (an IP address; at most 16)";
		else
			host_count++;
		return 1;
	}
	if (strcmp(key, "burl-user") == 0) {
		if (!*value || strlen(value) > IMAPURL_USER_MAX)
			*err = "burl-user=NAME";
		else
			snprintf(login_user, sizeof(login_user), "%s", value);
		return 1;
	}
	if (strcmp(key, "imap-tls") == 0) {
		if (strcmp(value, "starttls") == 0)
			use_tls = true;
		else if (strcmp(value, "none") == 0)
			use_tls = false;
		else
			*err = "imap-tls=starttls|none";
		return 1;
	}
	if (strcmp(key, "imap-ca") == 0) {
		if (!*value || strlen(value) >= sizeof(ca_path) || access(value, R_OK) < 0)
			*err = "imap-ca=PATH: a readable file of trusted certificates (PEM)";
		else
			snprintf(ca_path, sizeof(ca_path), "%s", value);
		return 1;
	}
	if (strcmp(key, "burl-password-file") == 0) {
		FILE *f = fopen(value, "re");

		if (!f || !fgets(login_password, sizeof(login_password), f))
			*err = "burl-password-file: cannot read its first line";
		login_password[strcspn(login_password, "\r\n")] = '\0';
		if (f)
			fclose(f);
		return 1;
	}
	return 0;
}

const char *burl_start_config(const char *hostname)
{
	if (host_count == 0) {
		char def[IMAPURL_HOST_MAX + 32];

		snprintf(def, sizeof(def), "%s=127.0.0.1:143", hostname);
		if (parse_host(def, &hosts[0]) == 0)
			host_count = 1;
	}
	if (!login_user[0] || !login_password[0])
		return "BURL is off: give -o burl-user=NAME -o burl-password-file=PATH";
	if (use_tls && !client_ctx) {
		client_ctx = SSL_CTX_new(TLS_client_method());
		if (!client_ctx || SSL_CTX_set_min_proto_version(client_ctx, TLS1_2_VERSION) != 1 ||
		    (ca_path[0] ? SSL_CTX_load_verify_locations(client_ctx, ca_path, NULL)
				: SSL_CTX_set_default_verify_paths(client_ctx)) != 1) {
			ERR_clear_error();
			SSL_CTX_free(client_ctx);
			client_ctx = NULL;
			login_user[0] = '\0';
			return "BURL is off: cannot load the certificates to trust for imap-tls=starttls "
			       "(-o imap-ca=PATH)";
		}
		SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
	}
	return NULL;
}

bool burl_available(void)
{
	return login_user[0] && login_password[0];
}

static void finish(struct burl_fetch *f, const char *err)
{
	burl_done cb = f->cb;
	void *arg = f->arg;
	char *data = err ? NULL : f->data;
	size_t len = f->data_len;

	if (err)
		free(f->data);
	f->data = NULL;
	burl_fetch_cancel(f);
	cb(arg, data, len, err);
}

static int send_all(struct burl_fetch *f, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n = f->ssl ? SSL_write(f->ssl, s, (int)len) : send(f->fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && !f->ssl && errno == EINTR)
			continue;
		if (n <= 0) {
			ERR_clear_error();
			return -1; /* commands are small: a full socket buffer here is a broken peer */
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/* >0 bytes read, 0 nothing more for now, -1 closed or failed */
static ssize_t receive(struct burl_fetch *f, char *buf, size_t len)
{
	ssize_t n;

	if (!f->ssl) {
		n = recv(f->fd, buf, len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return n > 0 ? n : -1;
	}
	n = SSL_read(f->ssl, buf, len > 1u << 30 ? 1 << 30 : (int)len);
	if (n > 0)
		return n;
	switch (SSL_get_error(f->ssl, (int)n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

/* An IMAP quoted string; false when S cannot be one */
static bool quote(const char *s, char *out, size_t size)
{
	size_t o = 0;

	out[o++] = '"';
	for (; *s; s++) {
		if (*s == '\r' || *s == '\n' || o + 3 >= size)
			return false;
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o++] = '"';
	out[o] = '\0';
	return true;
}

/* One response: a line and any literals it carries. Its length, 0 while incomplete; the
 * last literal's place in LIT_OFF and LIT_LEN. */
static size_t response_unit(const char *buf, size_t len, size_t *lit_off, size_t *lit_len)
{
	size_t pos = 0;

	*lit_off = *lit_len = 0;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end, e;

		if (!nl)
			return 0;
		end = (size_t)(nl - buf);
		e = end > pos && buf[end - 1] == '\r' ? end - 1 : end;
		if (e > pos && buf[e - 1] == '}') {
			size_t open = e - 1;
			unsigned long long n;

			while (open > pos && buf[open] != '{')
				open--;
			if (buf[open] == '{' && sscanf(buf + open + 1, "%llu}", &n) == 1 && n <= REPLY_MAX) {
				if (len - (end + 1) < n)
					return 0;
				*lit_off = end + 1;
				*lit_len = (size_t)n;
				pos = end + 1 + (size_t)n;
				continue;
			}
		}
		return end + 1;
	}
}

static const char *send_login(struct burl_fetch *f)
{
	char cmd[2 * URL_MAX + 64], a[2 * IMAPURL_USER_MAX + 8], b[2 * sizeof(login_password) + 8];
	const char *err = NULL;

	if (!quote(login_user, a, sizeof(a)) || !quote(login_password, b, sizeof(b)))
		err = "bad BURL credentials";
	else if (snprintf(cmd, sizeof(cmd), "L LOGIN %s %s\r\n", a, b), send_all(f, cmd) < 0)
		err = "the IMAP server went away";
	explicit_bzero(b, sizeof(b));
	explicit_bzero(cmd, sizeof(cmd));
	f->state = LOGIN;
	return err;
}

static const char *step(struct burl_fetch *f, const char *line, size_t unit, size_t lit_off,
			size_t lit_len, bool *done)
{
	char cmd[2 * URL_MAX + 64];

	(void)unit;
	*done = false;
	switch (f->state) {
	case CONNECTING:
		return "internal state";
	case GREETING:
		if (strncmp(line, "* OK", 4) != 0)
			return "the IMAP server did not greet";
		if (use_tls) {
			if (send_all(f, "S STARTTLS\r\n") < 0)
				return "the IMAP server went away";
			f->state = STARTTLS;
			return NULL;
		}
		if (strstr(line, "LOGINDISABLED"))
			return "the IMAP server wants TLS before LOGIN, and imap-tls=none";
		return send_login(f);
	case STARTTLS:
		if (line[0] == '*')
			return NULL;
		if (strncmp(line, "S OK", 4) != 0)
			return "the IMAP server refused STARTTLS (imap-tls=starttls needs it)";
		*done = true; /* the caller starts the handshake */
		return NULL;
	case HANDSHAKE:
		return "the IMAP server spoke during the TLS handshake";
	case LOGIN:
		if (line[0] == '*')
			return NULL;
		if (strncmp(line, "L OK", 4) != 0)
			return "the IMAP server refused the submit identity's login";
		{
			char q[2 * URL_MAX + 8];

			if (!quote(f->url, q, sizeof(q)))
				return "the URL cannot be quoted";
			snprintf(cmd, sizeof(cmd), "F URLFETCH %s\r\n", q);
		}
		if (send_all(f, cmd) < 0)
			return "the IMAP server went away";
		f->state = FETCHING;
		return NULL;
	case FETCHING:
		if (strncasecmp(line, "* URLFETCH ", 11) == 0) {
			if (lit_len && !f->data) {
				if (!(f->data = malloc(lit_len + 1)))
					return "out of memory";
				memcpy(f->data, f->in + lit_off, lit_len);
				f->data_len = lit_len;
			}
			return NULL;
		}
		if (line[0] == '*')
			return NULL;
		if (strncmp(line, "F OK", 4) != 0)
			return "the IMAP server refused URLFETCH";
		if (!f->data)
			return "the IMAP server would not resolve the URL (bad, expired, or not for this identity)";
		send_all(f, "Z LOGOUT\r\n");
		*done = true;
		return NULL;
	}
	return NULL;
}

static void on_io(void *arg);

/* Watch for what the connection waits on: TLS may need to write to make progress. */
static int watch(struct burl_fetch *f, bool writable)
{
	if (writable == f->watching_write)
		return 0;
	srv_unwatch(f->fd);
	f->watching_write = writable;
	return srv_watch(f->fd, writable, on_io, f);
}

static void handshake(struct burl_fetch *f)
{
	int r = SSL_connect(f->ssl);
	char why[200];

	if (r == 1) {
		const char *err = send_login(f);

		if (err || watch(f, false) < 0)
			finish(f, err ? err : "cannot watch the IMAP connection");
		return;
	}
	switch (SSL_get_error(f->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		if (watch(f, false) < 0)
			finish(f, "cannot watch the IMAP connection");
		return;
	case SSL_ERROR_WANT_WRITE:
		if (watch(f, true) < 0)
			finish(f, "cannot watch the IMAP connection");
		return;
	default:
		if (SSL_get_verify_result(f->ssl) != X509_V_OK)
			snprintf(why, sizeof(why), "TLS with the IMAP server failed: its certificate: %s",
				 X509_verify_cert_error_string(SSL_get_verify_result(f->ssl)));
		else
			snprintf(why, sizeof(why), "TLS with the IMAP server failed");
		ERR_clear_error();
		srv_log("BURL: %s (%s)", why, f->host->name);
		finish(f, "TLS with the IMAP server failed");
	}
}

static void start_tls(struct burl_fetch *f)
{
	f->in_len = 0; /* anything sent with the STARTTLS answer is not trusted (RFC 3501 6.2.1) */
	f->state = HANDSHAKE;
	f->ssl = SSL_new(client_ctx);
	if (!f->ssl || SSL_set_fd(f->ssl, f->fd) != 1 || SSL_set1_host(f->ssl, f->host->name) != 1 ||
	    SSL_set_tlsext_host_name(f->ssl, f->host->name) != 1) {
		ERR_clear_error();
		finish(f, "cannot set up TLS to the IMAP server");
		return;
	}
	handshake(f);
}

static void on_readable(struct burl_fetch *f)
{
	for (;;) {
		if (f->in_cap - f->in_len < 4096) {
			size_t cap = f->in_cap ? f->in_cap * 2 : 16384;
			char *bigger;

			if (cap > REPLY_MAX) {
				finish(f, "the IMAP server's answer is too large");
				return;
			}
			if (!(bigger = realloc(f->in, cap))) {
				finish(f, "out of memory");
				return;
			}
			f->in = bigger;
			f->in_cap = cap;
		}
		ssize_t n = receive(f, f->in + f->in_len, f->in_cap - f->in_len);

		if (n < 0) {
			finish(f, "the IMAP server closed the connection");
			return;
		}
		if (n == 0)
			break;
		f->in_len += (size_t)n;
	}
	for (;;) {
		size_t lit_off, lit_len, unit = response_unit(f->in, f->in_len, &lit_off, &lit_len);
		char line[256];
		const char *err;
		bool done;

		if (!unit)
			return;
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(f->in, "\r\n"), f->in);
		err = step(f, line, unit, lit_off, lit_len, &done);
		if (!err && done && f->state == STARTTLS) {
			start_tls(f);
			return;
		}
		if (err || done) {
			finish(f, err);
			return;
		}
		memmove(f->in, f->in + unit, f->in_len - unit);
		f->in_len -= unit;
	}
}

static void on_connected(struct burl_fetch *f)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
		finish(f, "cannot connect to the IMAP server");
		return;
	}
	f->state = GREETING;
	if (watch(f, false) < 0)
		finish(f, "cannot watch the IMAP connection");
}

static void on_io(void *arg)
{
	struct burl_fetch *f = arg;

	if (f->state == CONNECTING)
		on_connected(f);
	else if (f->state == HANDSHAKE)
		handshake(f);
	else
		on_readable(f);
}

struct burl_fetch *burl_fetch_start(const char *url, size_t len, burl_done cb, void *arg,
				    const char **err)
{
	struct imapurl u;
	const struct imap_host *h = NULL;
	struct burl_fetch *f;

	if (!burl_available()) {
		*err = "BURL is not configured";
		return NULL;
	}
	if (len > URL_MAX) {
		*err = "URL too long";
		return NULL;
	}
	if (imapurl_parse(url, len, &u, err) < 0)
		return NULL;
	if (u.relative || !u.mechanism[0] || u.access == URLAUTH_NONE) {
		*err = "BURL takes an absolute IMAP URL authorized with URLAUTH";
		return NULL;
	}
	for (size_t i = 0; i < host_count; i++)
		if (strcasecmp(hosts[i].name, u.host) == 0)
			h = &hosts[i];
	if (!h) {
		*err = "the URL names an IMAP server this submission server does not trust";
		return NULL;
	}
	if (!(f = calloc(1, sizeof(*f)))) {
		*err = "out of memory";
		return NULL;
	}
	memcpy(f->url, url, len);
	f->url[len] = '\0';
	f->cb = cb;
	f->arg = arg;
	f->host = h;
	f->watching_write = true;
	f->fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0 || (connect(f->fd, (const struct sockaddr *)&h->addr, h->addr_len) < 0 &&
			  errno != EINPROGRESS) ||
	    srv_watch(f->fd, true, on_io, f) < 0) {
		if (f->fd >= 0)
			close(f->fd);
		free(f);
		*err = "cannot connect to the IMAP server";
		return NULL;
	}
	f->state = CONNECTING;
	return f;
}

void burl_fetch_cancel(struct burl_fetch *f)
{
	if (!f)
		return;
	if (f->ssl) {
		SSL_set_quiet_shutdown(f->ssl, 1);
		SSL_free(f->ssl);
	}
	if (f->fd >= 0) {
		srv_unwatch(f->fd);
		close(f->fd);
	}
	free(f->in);
	free(f->data);
	free(f);
}
