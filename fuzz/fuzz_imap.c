/* libFuzzer target: arbitrary bytes as what an IMAP client sends to lemongate-imapd, after
 * the greeting. The whole command layer runs (imapd.c, built with main renamed), with the
 * mail store on a scratch directory and this file standing in for the network core: lines
 * and literals are handed over exactly as servers/core/server.c would. Nothing may crash,
 * leak, hang or read outside the input. The seed corpus (fuzz/corpus/imap) holds sessions
 * that reach every command. */
#include "servers/core/server.h"
#include "servers/mail/store.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int imapd_main(int argc, char **argv);

struct srv_conn {
	void *state;
	size_t want_bytes;
	bool closing, tls;
	size_t out_bytes;
};

static const struct srv_proto *proto;
static struct srv_config config = { .hostname = "fuzz", .allow_plaintext_auth = true };
static char scratch[64];

void srv_write(struct srv_conn *c, const void *data, size_t len)
{
	(void)data;
	c->out_bytes += len;
}

void srv_printf(struct srv_conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->out_bytes += (size_t)n;
}

void srv_close_after_flush(struct srv_conn *c) { c->closing = true; }
void srv_read_bytes(struct srv_conn *c, size_t len) { c->want_bytes = len; }
int srv_starttls(struct srv_conn *c) { c->tls = true; return 0; }
bool srv_tls_available(void) { return true; }
bool srv_tls_active(const struct srv_conn *c) { return c->tls; }
void srv_set_timeout(struct srv_conn *c, unsigned seconds) { (void)c; (void)seconds; }
void *srv_state(struct srv_conn *c) { return c->state; }
const char *srv_peer(const struct srv_conn *c) { (void)c; return "fuzz"; }
const struct srv_config *srv_config(void) { return &config; }
void srv_log(const char *fmt, ...) { (void)fmt; }
size_t srv_conn_count(void) { return 1; }
int srv_watch(int fd, bool writable, void (*cb)(void *arg), void *arg)
{
	(void)fd; (void)writable; (void)cb; (void)arg;
	return 0;
}
void srv_unwatch(int fd) { (void)fd; }
bool srv_auth_check(const char *user, const char *pass)
{
	return strcmp(pass, "secret") == 0 && (!strcmp(user, "alice") || !strcmp(user, "bob"));
}
bool srv_user_exists(const char *user) { return !strcmp(user, "alice") || !strcmp(user, "bob"); }

int srv_main(int argc, char **argv, const struct srv_proto *p)
{
	(void)argc;
	(void)argv;
	proto = p;
	return 0;
}

static void remove_scratch(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_imap: could not remove %s\n", scratch);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *args[] = { "lemongate-imapd", NULL };
	const char *msg;

	(void)argc;
	(void)argv;
	snprintf(scratch, sizeof(scratch), "%s/lg-fuzz-imap-%d",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
	mkdir(scratch, 0700);
	atexit(remove_scratch);
	config.data_dir = scratch;
	imapd_main(1, args);
	if ((msg = proto->on_start())) {
		fprintf(stderr, "fuzz_imap: %s\n", msg);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_conn conn = { 0 };
	char *copy = malloc(size + 1);
	size_t i = 0;

	conn.state = calloc(1, proto->state_size + 1);
	proto->on_open(&conn);
	/* the fuzzer's first byte picks whether the session starts already in TLS */
	conn.tls = size > 0 && (data[0] & 1);
	while (i < size && !conn.closing) {
		if (conn.want_bytes) {
			size_t n = size - i < conn.want_bytes ? size - i : conn.want_bytes;

			conn.want_bytes -= n;
			proto->on_bytes(&conn, (const char *)data + i, n, conn.want_bytes == 0);
			i += n;
			continue;
		}
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		size_t end = nl ? (size_t)(nl - data) : size, len = end - i;

		if (len > SRV_MAX_LINE) {
			proto->on_line_too_long(&conn);
			break;
		}
		memcpy(copy, data + i, len);
		if (len && copy[len - 1] == '\r')
			len--;
		copy[len] = '\0';
		if (memchr(copy, '\0', len))
			len = copy[0] = 0;
		proto->on_line(&conn, copy, len);
		i = end + 1;
	}
	proto->on_close(&conn);
	if (mbox_open_count() != 0) {
		fprintf(stderr, "fuzz_imap: a mailbox stayed open after the session ended\n");
		abort();
	}
	free(conn.state);
	free(copy);
	return 0;
}
