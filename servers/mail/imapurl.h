/* IMAP URLs (RFC 5092) that name one message or part, with URLAUTH (RFC 4467): the form
 * CATENATE, GENURLAUTH, URLFETCH and BURL use. Shared by both servers: imapd resolves them,
 * submitd finds the IMAP server a BURL points at. No I/O. */
#ifndef LG_MAIL_IMAPURL_H
#define LG_MAIL_IMAPURL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAPURL_USER_MAX 64
#define IMAPURL_HOST_MAX 255
#define IMAPURL_NAME_MAX 512
#define IMAPURL_SECTION_MAX 256

enum imapurl_access { URLAUTH_NONE, URLAUTH_SUBMIT, URLAUTH_USER, URLAUTH_AUTHUSER, URLAUTH_ANONYMOUS };

struct imapurl {
	bool relative;                         /* "/mailbox/;UID=n": this server, this user */
	char user[IMAPURL_USER_MAX + 1];       /* the mailbox owner; "" when absent */
	char host[IMAPURL_HOST_MAX + 1];
	unsigned port;                         /* 0 when absent */
	char mailbox[IMAPURL_NAME_MAX];        /* modified UTF-7, as the store names it */
	uint32_t uidvalidity;                  /* 0 when absent */
	uint32_t uid;
	char section[IMAPURL_SECTION_MAX];     /* "" for the whole message */
	bool partial;
	uint32_t partial_offset, partial_length; /* length 0: to the end */
	int64_t expire;                        /* seconds since the epoch; 0 when absent */
	enum imapurl_access access;
	char access_user[IMAPURL_USER_MAX + 1]; /* for submit+ and user+ */
	size_t rump_len;    /* the URL up to the verifier: what the token authenticates */
	char mechanism[33]; /* "" when the URL carries no verifier */
	char token[129];    /* hex */
};

/* Parse URL (LEN bytes); 0, or -1 with a reason in *ERR. */
int imapurl_parse(const char *url, size_t len, struct imapurl *u, const char **err);

/* UTF-8 to modified UTF-7 (RFC 3501 5.1.3); -1 when IN is not UTF-8 or OUT is too small. */
int imapurl_utf8_to_mutf7(const char *in, size_t len, char *out, size_t size);

#endif
