/* lemongate-imapd: the IMAP side of the testbed's lemonade servers (RFC 3501 subset so far:
 * greeting, CAPABILITY, NOOP, LOGIN, LOGOUT). It advertises only what it implements. */
#include "servers/core/server.h"
#include "servers/core/words.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define IMAP_TAG_MAX  64
#define IMAP_WORD_MAX 256

struct imap_state {
	bool authenticated;
	char user[IMAP_WORD_MAX];
};

static void capability_line(struct srv_conn *c)
{
	srv_printf(c, "* CAPABILITY IMAP4rev1%s\r\n",
		   srv_config()->allow_plaintext_auth ? "" : " LOGINDISABLED");
}

static void imap_open(struct srv_conn *c)
{
	srv_printf(c, "* OK [CAPABILITY IMAP4rev1%s] %s lemongate-imapd ready\r\n",
		   srv_config()->allow_plaintext_auth ? "" : " LOGINDISABLED", srv_config()->hostname);
}

static bool valid_tag(const char *tag)
{
	if (!*tag)
		return false;
	for (; *tag; tag++)
		if ((unsigned char)*tag <= 0x20 || (unsigned char)*tag >= 0x7f ||
		    strchr("(){%*\"\\+", *tag))
			return false;
	return true;
}

static void do_login(struct srv_conn *c, struct imap_state *st, const char *tag, const char *args)
{
	char user[IMAP_WORD_MAX], pass[IMAP_WORD_MAX];

	if (st->authenticated) {
		srv_printf(c, "%s BAD already authenticated\r\n", tag);
		return;
	}
	if (!srv_config()->allow_plaintext_auth) {
		srv_printf(c, "%s NO [PRIVACYREQUIRED] LOGIN is disabled on this connection\r\n", tag);
		return;
	}
	if (!args || srv_next_astring(&args, user, sizeof(user)) < 0 ||
	    srv_next_astring(&args, pass, sizeof(pass)) < 0 || *args) {
		srv_printf(c, "%s BAD syntax: LOGIN user password\r\n", tag);
		return;
	}
	if (!srv_auth_check(user, pass)) {
		srv_log("%s: login failed for '%s'", srv_peer(c), user);
		srv_printf(c, "%s NO [AUTHENTICATIONFAILED] invalid credentials\r\n", tag);
		return;
	}
	st->authenticated = true;
	strcpy(st->user, user);
	srv_log("%s: login user=%s", srv_peer(c), user);
	srv_printf(c, "%s OK [CAPABILITY IMAP4rev1] LOGIN completed\r\n", tag);
}

static void imap_line(struct srv_conn *c, char *line, size_t len)
{
	struct imap_state *st = srv_state(c);
	char *sp, *cmd, *args = NULL;
	const char *tag = line;

	(void)len;
	sp = strchr(line, ' ');
	if (!sp) {
		srv_printf(c, "* BAD expected: tag command\r\n");
		return;
	}
	*sp = '\0';
	if (!valid_tag(tag)) {
		srv_printf(c, "* BAD invalid tag\r\n");
		return;
	}
	if (strlen(tag) > IMAP_TAG_MAX) {
		srv_printf(c, "* BAD tag too long\r\n");
		return;
	}
	cmd = sp + 1;
	sp = strchr(cmd, ' ');
	if (sp) {
		*sp = '\0';
		args = sp + 1;
	}
	if (strcasecmp(cmd, "CAPABILITY") == 0 && !args) {
		capability_line(c);
		srv_printf(c, "%s OK CAPABILITY completed\r\n", tag);
	} else if (strcasecmp(cmd, "NOOP") == 0 && !args) {
		srv_printf(c, "%s OK NOOP completed\r\n", tag);
	} else if (strcasecmp(cmd, "LOGOUT") == 0 && !args) {
		srv_printf(c, "* BYE %s lemongate-imapd logging out\r\n", srv_config()->hostname);
		srv_printf(c, "%s OK LOGOUT completed\r\n", tag);
		srv_close_after_flush(c);
	} else if (strcasecmp(cmd, "LOGIN") == 0) {
		do_login(c, st, tag, args);
	} else {
		for (char *p = cmd; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		srv_printf(c, "%s BAD unknown command or wrong arguments: %.32s\r\n", tag, cmd);
	}
}

static void imap_too_long(struct srv_conn *c)
{
	srv_printf(c, "* BYE line too long (limit %d bytes)\r\n", SRV_MAX_LINE);
}

int main(int argc, char **argv)
{
	static const struct srv_proto imap = {
		.name = "lemongate-imapd",
		.default_port = 143,
		.state_size = sizeof(struct imap_state),
		.on_open = imap_open,
		.on_line = imap_line,
		.on_line_too_long = imap_too_long,
	};

	return srv_main(argc, argv, &imap);
}
