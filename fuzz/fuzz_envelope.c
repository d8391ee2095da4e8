/* libFuzzer target: the text after "MAIL FROM:" and "RCPT TO:", and an IMAP URL as BURL,
 * CATENATE and URLFETCH receive them. The parsers must refuse with a reason and never crash or
 * read outside the text; what they accept must be consistent. */
#include "servers/mail/imapurl.h"
#include "servers/submit/envelope.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct smtp_mail m;
	struct smtp_rcpt r;
	struct imapurl u;
	const char *err;

	memcpy(text, data, size);
	text[size] = '\0';
	if (smtp_parse_mail(text, &m, &err) == 0) {
		if (strlen(m.from) > SMTP_ADDR_MAX || m.size > SMTP_SIZE_MAX)
			abort();
	} else if (!err || strlen(err) < 4) {
		abort();
	}
	if (smtp_parse_rcpt(text, &r, &err) == 0) {
		if (!r.to[0] || ((r.notify & NOTIFY_NEVER) && r.notify != NOTIFY_NEVER))
			abort();
	} else if (!err) {
		abort();
	}
	/* the URL parser gets the exact bytes, no terminator */
	char *exact = malloc(size ? size : 1);

	memcpy(exact, data, size);
	if (imapurl_parse(exact, size, &u, &err) == 0) {
		if (!u.uid || u.rump_len > size || (u.token[0] && !u.rump_len))
			abort();
	} else if (!err) {
		abort();
	}
	free(exact);
	free(text);
	return 0;
}
