/* lemongate-submitd: the Submission side of the testbed's lemonade servers (RFC 6409 subset
 * so far: greeting, EHLO/HELO, NOOP, RSET, QUIT). It advertises only what it implements. */
#include "servers/core/server.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

struct submit_state {
	bool greeted;
};

static void submit_open(struct srv_conn *c)
{
	srv_printf(c, "220 %s ESMTP lemongate-submitd ready\r\n", srv_config()->hostname);
}

static bool valid_domain_arg(const char *s)
{
	if (!*s || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static void submit_line(struct srv_conn *c, char *line, size_t len)
{
	struct submit_state *st = srv_state(c);
	char *arg = strchr(line, ' ');

	(void)len;
	if (arg)
		*arg++ = '\0';
	if (strcasecmp(line, "EHLO") == 0 || strcasecmp(line, "HELO") == 0) {
		bool ehlo = toupper((unsigned char)line[0]) == 'E';

		if (!arg || !valid_domain_arg(arg)) {
			srv_printf(c, "501 5.5.4 syntax: %s domain\r\n", ehlo ? "EHLO" : "HELO");
			return;
		}
		st->greeted = true;
		if (ehlo)
			srv_printf(c, "250-%s greets %s\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
				   srv_config()->hostname, arg);
		else
			srv_printf(c, "250 %s greets %s\r\n", srv_config()->hostname, arg);
	} else if (strcasecmp(line, "NOOP") == 0) {
		srv_printf(c, "250 2.0.0 OK\r\n");
	} else if (strcasecmp(line, "RSET") == 0 && !arg) {
		srv_printf(c, "250 2.0.0 OK\r\n");
	} else if (strcasecmp(line, "QUIT") == 0 && !arg) {
		srv_printf(c, "221 2.0.0 %s closing connection\r\n", srv_config()->hostname);
		srv_close_after_flush(c);
	} else if (*line == '\0') {
		srv_printf(c, "500 5.5.2 empty command\r\n");
	} else {
		srv_printf(c, "502 5.5.1 command not implemented\r\n");
	}
}

static void submit_too_long(struct srv_conn *c)
{
	srv_printf(c, "500 5.5.2 line too long (limit %d bytes)\r\n", SRV_MAX_LINE);
}

int main(int argc, char **argv)
{
	static const struct srv_proto submit = {
		.name = "lemongate-submitd",
		.default_port = 587,
		.state_size = sizeof(struct submit_state),
		.on_open = submit_open,
		.on_line = submit_line,
		.on_line_too_long = submit_too_long,
	};

	return srv_main(argc, argv, &submit);
}
