/* lemongate-submitd: message submission (RFC 6409) for the testbed's lemonade servers.
 * EHLO offers PIPELINING, SIZE, 8BITMIME, DSN, ENHANCEDSTATUSCODES, STARTTLS, AUTH PLAIN,
 * BURL imap, CHUNKING and BINARYMIME, and each is implemented: commands are answered in
 * order however they were pipelined (input waits while a BURL fetch runs), BDAT chunks are
 * read as counted bytes, DSN parameters stay on the envelope, and no message gets its 250
 * before it is on disk (deliver.c). */
#include "servers/core/server.h"
#include "servers/mail/store.h"
#include "servers/submit/burl.h"
#include "servers/submit/deliver.h"
#include "servers/submit/envelope.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define COMMAND_TIMEOUT_S (10 * 60) /* RFC 5321 4.5.3.2: 5 minutes at least */
#define BURL_TIMEOUT_S    60
#define RCPT_MAX          100
#define BAD_COMMANDS_MAX  20
#define USER_MAX          64

enum chunking { CHUNK_NONE, CHUNK_DATA, CHUNK_BDAT };

struct submit_state {
	struct srv_conn *c;
	char helo[256];
	bool greeted, esmtp;
	char user[USER_MAX + 1];
	bool authenticating;

	bool in_mail;
	struct smtp_mail mail;
	struct smtp_rcpt *rcpts;
	size_t rcpt_count;
	enum chunking chunking;  /* DATA, or BDAT/BURL (which cannot be mixed with DATA) */
	char *msg;
	size_t msg_len, msg_cap;
	bool too_big;

	bool in_data;            /* between 354 and "." */
	uint64_t chunk_size;     /* the BDAT being read */
	bool chunk_last, chunk_discard;
	struct burl_fetch *burl;
	bool burl_last;
	unsigned bad_commands;
};

static struct submit_state *state_of(struct srv_conn *c)
{
	return srv_state(c);
}

static bool auth_allowed(const struct submit_state *st)
{
	return srv_tls_active(st->c) || srv_config()->allow_plaintext_auth;
}

static void reset_transaction(struct submit_state *st)
{
	st->in_mail = false;
	free(st->rcpts);
	st->rcpts = NULL;
	st->rcpt_count = 0;
	free(st->msg);
	st->msg = NULL;
	st->msg_len = st->msg_cap = 0;
	st->chunking = CHUNK_NONE;
	st->too_big = false;
	st->in_data = false;
}

static void append(struct submit_state *st, const char *data, size_t len)
{
	if (st->too_big || st->msg_len + len > SMTP_SIZE_MAX) {
		st->too_big = true;
		return;
	}
	if (st->msg_len + len > st->msg_cap) {
		size_t cap = st->msg_cap ? st->msg_cap : 65536;
		char *bigger;

		while (cap < st->msg_len + len)
			cap *= 2;
		if (!(bigger = realloc(st->msg, cap))) {
			st->too_big = true;
			return;
		}
		st->msg = bigger;
		st->msg_cap = cap;
	}
	memcpy(st->msg + st->msg_len, data, len);
	st->msg_len += len;
}

/* ---- the end of a transaction: trace header, delivery, 250 only once on disk ---- */

static void queue_id(char *out, size_t size)
{
	unsigned char r[6];

	RAND_bytes(r, sizeof(r));
	snprintf(out, size, "%lx%02x%02x%02x%02x%02x%02x", (unsigned long)time(NULL), r[0], r[1], r[2],
		 r[3], r[4], r[5]);
}

static void finish_message(struct submit_state *st)
{
	char id[48], received[1024], date[64];
	time_t now = time(NULL);
	struct tm tm;

	if (st->too_big) {
		srv_printf(st->c, "552 5.3.4 message larger than the limit (64 MiB)\r\n");
		reset_transaction(st);
		return;
	}
	if (st->mail.size && st->msg_len > st->mail.size + st->mail.size / 10 + 1024)
		srv_log("%s: message of %zu bytes announced as SIZE=%llu", srv_peer(st->c), st->msg_len,
			(unsigned long long)st->mail.size);
	queue_id(id, sizeof(id));
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 5321 4.4 trace, with the RFC 3848 protocol name */
	snprintf(received, sizeof(received),
		 "Received: from %s (%s)\r\n\tby %s (lemongate-submitd) with ESMTP%s%s id %s%s%s%s;\r\n\t%s\r\n",
		 st->helo, srv_peer(st->c), srv_config()->hostname, srv_tls_active(st->c) ? "S" : "",
		 st->user[0] ? "A" : "", id, st->rcpt_count == 1 ? "\r\n\tfor <" : "",
		 st->rcpt_count == 1 ? st->rcpts[0].to : "", st->rcpt_count == 1 ? ">" : "", date);
	if (deliver_message(id, &st->mail, st->rcpts, st->rcpt_count, received, st->msg, st->msg_len) < 0)
		srv_printf(st->c, "451 4.3.0 message not stored, try again later\r\n");
	else
		srv_printf(st->c, "250 2.0.0 %s message accepted (%zu bytes)\r\n", id, st->msg_len);
	srv_log("%s: %s from=<%s> user=%s size=%zu rcpts=%zu", srv_peer(st->c), id, st->mail.from,
		st->user, st->msg_len, st->rcpt_count);
	reset_transaction(st);
}

/* ---- commands ---- */

static void ehlo(struct submit_state *st, const char *arg, bool esmtp)
{
	const struct srv_config *cfg = srv_config();

	reset_transaction(st);
	snprintf(st->helo, sizeof(st->helo), "%s", arg);
	st->greeted = true;
	st->esmtp = esmtp;
	if (!esmtp) {
		srv_printf(st->c, "250 %s greets %s\r\n", cfg->hostname, arg);
		return;
	}
	srv_printf(st->c, "250-%s greets %s\r\n250-PIPELINING\r\n250-SIZE %u\r\n250-8BITMIME\r\n"
		   "250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n", cfg->hostname, arg, SMTP_SIZE_MAX);
	if (srv_tls_available() && !srv_tls_active(st->c))
		srv_printf(st->c, "250-STARTTLS\r\n");
	if (auth_allowed(st) && !st->user[0])
		srv_printf(st->c, "250-AUTH PLAIN\r\n");
	/* RFC 4468 3: BURL without arguments until the client may use it */
	if (burl_available())
		srv_printf(st->c, "250-BURL%s\r\n", st->user[0] ? " imap" : "");
	srv_printf(st->c, "250-CHUNKING\r\n250 BINARYMIME\r\n");
}

static void auth_plain(struct submit_state *st, const char *b64)
{
	unsigned char raw[1024];
	size_t len = strlen(b64);
	int n;
	const char *authz, *authc, *pass;

	if (strcmp(b64, "*") == 0) {
		srv_printf(st->c, "501 5.0.0 authentication cancelled\r\n");
		return;
	}
	if (len == 1 && b64[0] == '=')
		len = 0;
	if (len % 4 || len / 4 * 3 >= sizeof(raw) ||
	    (n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len)) < 0) {
		srv_printf(st->c, "501 5.5.2 invalid base64\r\n");
		return;
	}
	n -= (len >= 1 && b64[len - 1] == '=') + (len >= 2 && b64[len - 2] == '=');
	raw[n] = '\0';
	authz = (const char *)raw;
	authc = authz + strlen(authz) + 1;
	pass = authc < (const char *)raw + n ? authc + strlen(authc) + 1 : NULL;
	if (!pass || pass > (const char *)raw + n || pass + strlen(pass) != (const char *)raw + n ||
	    strlen(authc) > USER_MAX || (*authz && strcmp(authz, authc) != 0) ||
	    !srv_auth_check(authc, pass)) {
		explicit_bzero(raw, sizeof(raw));
		srv_log("%s: authentication failed", srv_peer(st->c));
		srv_printf(st->c, "535 5.7.8 authentication credentials invalid\r\n");
		return;
	}
	snprintf(st->user, sizeof(st->user), "%s", authc);
	explicit_bzero(raw, sizeof(raw));
	srv_log("%s: AUTH PLAIN user=%s%s", srv_peer(st->c), st->user,
		srv_tls_active(st->c) ? " tls" : "");
	srv_printf(st->c, "235 2.7.0 authentication successful\r\n");
}

static void cmd_auth(struct submit_state *st, char *arg)
{
	char *ir;

	if (!st->esmtp) {
		srv_printf(st->c, "503 5.5.1 EHLO first\r\n");
		return;
	}
	if (st->user[0]) {
		srv_printf(st->c, "503 5.5.1 already authenticated\r\n");
		return;
	}
	if (st->in_mail) {
		srv_printf(st->c, "503 5.5.1 AUTH is not allowed during a mail transaction\r\n");
		return;
	}
	if (!auth_allowed(st)) {
		srv_printf(st->c, "538 5.7.11 encryption required: STARTTLS first\r\n");
		return;
	}
	if (!arg || !*arg) {
		srv_printf(st->c, "501 5.5.4 syntax: AUTH mechanism [initial-response]\r\n");
		return;
	}
	ir = strchr(arg, ' ');
	if (ir)
		*ir++ = '\0';
	if (strcasecmp(arg, "PLAIN") != 0) {
		srv_printf(st->c, "504 5.5.4 unsupported mechanism (PLAIN is offered)\r\n");
		return;
	}
	if (!ir) {
		st->authenticating = true;
		srv_printf(st->c, "334 \r\n");
		return;
	}
	auth_plain(st, ir);
}

static bool transaction_ready(struct submit_state *st, const char *what)
{
	if (!st->in_mail) {
		srv_printf(st->c, "503 5.5.1 %s needs MAIL first\r\n", what);
		return false;
	}
	if (st->rcpt_count == 0) {
		srv_printf(st->c, "554 5.5.1 %s: no valid recipients\r\n", what);
		return false;
	}
	return true;
}

static void cmd_mail(struct submit_state *st, const char *arg)
{
	const char *err;

	if (!st->greeted) {
		srv_printf(st->c, "503 5.5.1 EHLO or HELO first\r\n");
		return;
	}
	if (!st->user[0]) { /* RFC 6409 4.3: submission needs an authenticated client */
		srv_printf(st->c, "530 5.7.0 authentication required\r\n");
		return;
	}
	if (st->in_mail) {
		srv_printf(st->c, "503 5.5.1 a mail transaction is already open (RSET first)\r\n");
		return;
	}
	if (!arg || strncasecmp(arg, "FROM:", 5) != 0) {
		srv_printf(st->c, "501 5.5.4 syntax: MAIL FROM:<address> [parameters]\r\n");
		return;
	}
	if (smtp_parse_mail(arg + 5, &st->mail, &err) < 0) {
		srv_printf(st->c, "%s\r\n", err);
		return;
	}
	if (st->mail.body == BODY_BINARYMIME && !st->esmtp) {
		srv_printf(st->c, "503 5.5.1 BODY=BINARYMIME needs EHLO\r\n");
		return;
	}
	st->in_mail = true;
	srv_printf(st->c, "250 2.1.0 sender <%s> OK\r\n", st->mail.from);
}

static void cmd_rcpt(struct submit_state *st, const char *arg)
{
	struct smtp_rcpt r;
	const char *err;
	char user[USER_MAX + 1];

	if (!st->in_mail) {
		srv_printf(st->c, "503 5.5.1 RCPT needs MAIL first\r\n");
		return;
	}
	if (st->chunking != CHUNK_NONE) {
		srv_printf(st->c, "503 5.5.1 RCPT after the message has begun\r\n");
		return;
	}
	if (!arg || strncasecmp(arg, "TO:", 3) != 0) {
		srv_printf(st->c, "501 5.5.4 syntax: RCPT TO:<address> [parameters]\r\n");
		return;
	}
	if (smtp_parse_rcpt(arg + 3, &r, &err) < 0) {
		srv_printf(st->c, "%s\r\n", err);
		return;
	}
	if (st->rcpt_count >= RCPT_MAX) {
		srv_printf(st->c, "452 4.5.3 too many recipients (at most %d)\r\n", RCPT_MAX);
		return;
	}
	if (deliver_is_local_domain(r.to) && !deliver_local_user(r.to, user, sizeof(user))) {
		srv_printf(st->c, "550 5.1.1 <%s>: no such user here\r\n", r.to);
		return;
	}
	struct smtp_rcpt *more = realloc(st->rcpts, (st->rcpt_count + 1) * sizeof(*more));

	if (!more) {
		srv_printf(st->c, "452 4.3.1 out of memory\r\n");
		return;
	}
	st->rcpts = more;
	st->rcpts[st->rcpt_count++] = r;
	srv_printf(st->c, "250 2.1.5 recipient <%s> OK\r\n", r.to);
}

static void cmd_data(struct submit_state *st, const char *arg)
{
	if (arg) {
		srv_printf(st->c, "501 5.5.4 DATA takes no arguments\r\n");
		return;
	}
	if (!transaction_ready(st, "DATA"))
		return;
	if (st->chunking == CHUNK_BDAT || st->mail.body == BODY_BINARYMIME) {
		srv_printf(st->c, "503 5.5.1 DATA cannot follow BDAT/BURL or carry BINARYMIME (RFC 3030)\r\n");
		return;
	}
	st->chunking = CHUNK_DATA;
	st->in_data = true;
	srv_printf(st->c, "354 end the message with a line holding only \".\"\r\n");
}

static void data_line(struct submit_state *st, const char *line, size_t len)
{
	if (len == 1 && line[0] == '.') {
		st->in_data = false;
		finish_message(st);
		return;
	}
	if (line[0] == '.') { /* RFC 5321 4.5.2: a leading dot was doubled */
		line++;
		len--;
	}
	append(st, line, len);
	append(st, "\r\n", 2);
}

/* "SIZE [LAST]" of BDAT */
static int parse_bdat(const char *arg, uint64_t *size, bool *last)
{
	char *end;
	unsigned long long n;

	if (!arg || !isdigit((unsigned char)arg[0]))
		return -1;
	errno = 0;
	n = strtoull(arg, &end, 10);
	if (errno || end - arg > 20)
		return -1;
	*size = n;
	*last = false;
	if (*end == '\0')
		return 0;
	if (strcasecmp(end, " LAST") == 0) {
		*last = true;
		return 0;
	}
	return -1;
}

static void chunk_done(struct submit_state *st);

static void cmd_bdat(struct submit_state *st, const char *arg)
{
	uint64_t size;
	bool last;

	if (parse_bdat(arg, &size, &last) < 0) {
		/* the chunk's length is unknown: the stream cannot be followed any more */
		srv_printf(st->c, "501 5.5.4 syntax: BDAT size [LAST]; closing\r\n");
		srv_close_after_flush(st->c);
		return;
	}
	st->chunk_size = size;
	st->chunk_last = last;
	/* the announced bytes are read even when the chunk is refused: the stream stays in step */
	st->chunk_discard = !st->in_mail || st->rcpt_count == 0 || st->chunking == CHUNK_DATA;
	if (!st->chunk_discard)
		st->chunking = CHUNK_BDAT;
	if (size > SMTP_SIZE_MAX || st->msg_len + size > SMTP_SIZE_MAX)
		st->too_big = true;
	if (size == 0)
		chunk_done(st);
	else
		srv_read_bytes(st->c, (size_t)size);
}

static void chunk_done(struct submit_state *st)
{
	if (st->chunk_discard) {
		if (!st->in_mail)
			srv_printf(st->c, "503 5.5.1 BDAT needs MAIL first\r\n");
		else if (st->rcpt_count == 0)
			srv_printf(st->c, "554 5.5.1 BDAT: no valid recipients\r\n");
		else
			srv_printf(st->c, "503 5.5.1 BDAT cannot follow DATA\r\n");
		return;
	}
	if (st->chunk_last) {
		finish_message(st);
		return;
	}
	if (st->too_big) {
		srv_printf(st->c, "552 5.3.4 message larger than the limit (64 MiB)\r\n");
		reset_transaction(st);
		return;
	}
	srv_printf(st->c, "250 2.0.0 %llu octets received\r\n", (unsigned long long)st->chunk_size);
}

static void burl_finished(void *arg, char *data, size_t len, const char *err)
{
	struct submit_state *st = arg;

	st->burl = NULL;
	srv_set_timeout(st->c, COMMAND_TIMEOUT_S);
	if (!data) {
		srv_log("%s: BURL failed: %s", srv_peer(st->c), err);
		srv_printf(st->c, "554 5.6.6 BURL: %s\r\n", err);
		reset_transaction(st); /* RFC 3030 4: a failed chunk fails the transaction */
	} else {
		append(st, data, len);
		free(data);
		if (st->burl_last)
			finish_message(st);
		else if (st->too_big) {
			srv_printf(st->c, "552 5.3.4 message larger than the limit (64 MiB)\r\n");
			reset_transaction(st);
		} else
			srv_printf(st->c, "250 2.0.0 %zu octets fetched\r\n", len);
	}
	srv_pause(st->c, false);
}

static void cmd_burl(struct submit_state *st, const char *arg)
{
	const char *sp, *err;
	size_t len;

	if (!st->user[0] || !burl_available()) {
		srv_printf(st->c, "503 5.5.1 BURL needs AUTH first\r\n");
		return;
	}
	if (!arg || !*arg) {
		srv_printf(st->c, "501 5.5.4 syntax: BURL imap-url [LAST]\r\n");
		return;
	}
	if (!transaction_ready(st, "BURL"))
		return;
	if (st->chunking == CHUNK_DATA) {
		srv_printf(st->c, "503 5.5.1 BURL cannot follow DATA\r\n");
		return;
	}
	sp = strchr(arg, ' ');
	len = sp ? (size_t)(sp - arg) : strlen(arg);
	if (sp && strcasecmp(sp, " LAST") != 0) {
		srv_printf(st->c, "501 5.5.4 syntax: BURL imap-url [LAST]\r\n");
		return;
	}
	st->burl_last = sp != NULL;
	st->chunking = CHUNK_BDAT;
	st->burl = burl_fetch_start(arg, len, burl_finished, st, &err);
	if (!st->burl) {
		srv_printf(st->c, "554 5.7.8 BURL: %s\r\n", err);
		reset_transaction(st);
		return;
	}
	srv_pause(st->c, true);
	srv_set_timeout(st->c, BURL_TIMEOUT_S);
}

static void submit_line(struct srv_conn *c, char *line, size_t len)
{
	struct submit_state *st = state_of(c);
	char *arg;

	if (st->in_data) {
		data_line(st, line, len);
		return;
	}
	if (st->authenticating) {
		st->authenticating = false;
		auth_plain(st, line);
		return;
	}
	arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	if (strcasecmp(line, "EHLO") == 0 || strcasecmp(line, "HELO") == 0) {
		bool esmtp = toupper((unsigned char)line[0]) == 'E';

		if (!arg || !*arg || strlen(arg) > 255 || strpbrk(arg, " \t")) {
			srv_printf(c, "501 5.5.4 syntax: %s domain\r\n", esmtp ? "EHLO" : "HELO");
			return;
		}
		ehlo(st, arg, esmtp);
	} else if (strcasecmp(line, "STARTTLS") == 0) {
		if (arg || srv_tls_active(c) || !srv_tls_available()) {
			srv_printf(c, arg ? "501 5.5.4 STARTTLS takes no arguments\r\n"
					  : "503 5.5.1 TLS is not available or already active\r\n");
			return;
		}
		srv_printf(c, "220 2.0.0 ready to start TLS\r\n");
		srv_starttls(c);
		/* RFC 3207 4.2: forget everything learned before TLS */
		reset_transaction(st);
		st->greeted = st->esmtp = false;
		st->user[0] = '\0';
	} else if (strcasecmp(line, "AUTH") == 0) {
		cmd_auth(st, arg);
	} else if (strcasecmp(line, "MAIL") == 0) {
		cmd_mail(st, arg);
	} else if (strcasecmp(line, "RCPT") == 0) {
		cmd_rcpt(st, arg);
	} else if (strcasecmp(line, "DATA") == 0) {
		cmd_data(st, arg);
	} else if (strcasecmp(line, "BDAT") == 0) {
		cmd_bdat(st, arg);
	} else if (strcasecmp(line, "BURL") == 0) {
		cmd_burl(st, arg);
	} else if (strcasecmp(line, "RSET") == 0 && !arg) {
		reset_transaction(st);
		srv_printf(c, "250 2.0.0 reset\r\n");
	} else if (strcasecmp(line, "NOOP") == 0) {
		srv_printf(c, "250 2.0.0 OK\r\n");
	} else if (strcasecmp(line, "VRFY") == 0) {
		srv_printf(c, "252 2.5.0 cannot verify, but will accept and attempt delivery\r\n");
	} else if (strcasecmp(line, "HELP") == 0) {
		srv_printf(c, "214 2.0.0 lemongate-submitd: see RFC 6409\r\n");
	} else if (strcasecmp(line, "QUIT") == 0 && !arg) {
		srv_printf(c, "221 2.0.0 %s closing connection\r\n", srv_config()->hostname);
		srv_close_after_flush(c);
	} else {
		srv_printf(c, *line ? "500 5.5.2 command not recognized\r\n" : "500 5.5.2 empty command\r\n");
		if (++st->bad_commands >= BAD_COMMANDS_MAX) {
			srv_printf(c, "421 4.7.0 too many bad commands, closing\r\n");
			srv_close_after_flush(c);
		}
	}
}

static void submit_bytes(struct srv_conn *c, const char *data, size_t len, bool last)
{
	struct submit_state *st = state_of(c);

	if (!st->chunk_discard && !st->too_big)
		append(st, data, len);
	if (last)
		chunk_done(st);
}

static void submit_open(struct srv_conn *c)
{
	struct submit_state *st = state_of(c);

	st->c = c;
	srv_set_timeout(c, COMMAND_TIMEOUT_S);
	srv_printf(c, "220 %s ESMTP lemongate-submitd ready\r\n", srv_config()->hostname);
}

static void submit_close(struct srv_conn *c)
{
	struct submit_state *st = state_of(c);

	burl_fetch_cancel(st->burl);
	st->burl = NULL;
	reset_transaction(st);
}

static void submit_too_long(struct srv_conn *c)
{
	srv_printf(c, "500 5.5.2 line too long (limit %d bytes)\r\n", SRV_MAX_LINE);
}

static void submit_timeout(struct srv_conn *c)
{
	struct submit_state *st = state_of(c);

	srv_printf(c, st->burl ? "421 4.4.2 the IMAP server did not answer the BURL fetch\r\n"
			       : "421 4.4.2 idle too long, closing\r\n");
}

static char spool_dir[4096];

static const char *submit_option(const char *key, const char *value)
{
	const char *err;

	if (burl_option(key, value, &err))
		return err;
	if (strcmp(key, "local-domains") == 0)
		return deliver_set_local_domains(value) < 0 ? "local-domains=DOMAIN[,DOMAIN...]" : NULL;
	if (strcmp(key, "spool") == 0) {
		snprintf(spool_dir, sizeof(spool_dir), "%s", value);
		return NULL;
	}
	return "unknown option (submitd knows local-domains, spool, imap-host, imap-tls, imap-ca, burl-user, burl-password-file)";
}

static const char *submit_start(void)
{
	static char err[512];
	const char *burl;

	if (!srv_config()->data_dir)
		return "no mail store: give -d DIR";
	if (store_init(srv_config()->data_dir, err, sizeof(err)) < 0)
		return err;
	if (!spool_dir[0])
		snprintf(spool_dir, sizeof(spool_dir), "%s/.spool", srv_config()->data_dir);
	if (deliver_set_spool(spool_dir, err, sizeof(err)) < 0)
		return err;
	deliver_default_local_domains(srv_config()->hostname);
	if ((burl = burl_start_config(srv_config()->hostname)))
		srv_log("%s", burl);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct srv_proto submit = {
		.name = "lemongate-submitd",
		.default_port = 587,
		.state_size = sizeof(struct submit_state),
		.on_option = submit_option,
		.on_start = submit_start,
		.on_open = submit_open,
		.on_line = submit_line,
		.on_bytes = submit_bytes,
		.on_line_too_long = submit_too_long,
		.on_timeout = submit_timeout,
		.on_close = submit_close,
	};

	return srv_main(argc, argv, &submit);
}
