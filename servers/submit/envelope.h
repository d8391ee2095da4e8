/* SMTP envelope arguments of lemongate-submitd: MAIL FROM and RCPT TO paths with their ESMTP
 * parameters (SIZE, BODY, RET, ENVID, AUTH; NOTIFY, ORCPT). Pure parsing, no I/O. */
#ifndef LG_SUBMIT_ENVELOPE_H
#define LG_SUBMIT_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_ADDR_MAX  254
#define SMTP_XTEXT_MAX 500
#define SMTP_SIZE_MAX  (64u << 20)

enum smtp_body { BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };
enum smtp_ret { RET_UNSET, RET_FULL, RET_HDRS };

#define NOTIFY_NEVER   0x1u
#define NOTIFY_SUCCESS 0x2u
#define NOTIFY_FAILURE 0x4u
#define NOTIFY_DELAY   0x8u

struct smtp_mail {
	char from[SMTP_ADDR_MAX + 1];  /* "" for the null sender <> */
	uint64_t size;                 /* SIZE=, 0 when not given */
	enum smtp_body body;
	enum smtp_ret ret;
	char envid[SMTP_XTEXT_MAX + 1];
	char auth[SMTP_XTEXT_MAX + 1];
};

struct smtp_rcpt {
	char to[SMTP_ADDR_MAX + 1];
	unsigned notify;               /* 0 when not given */
	char orcpt[SMTP_XTEXT_MAX + 1]; /* "rfc822;xtext" as given */
};

/* ARGS is what follows "MAIL FROM:" / "RCPT TO:". 0, or -1 with an SMTP reply ("501 5.1.7
 * ...") in *ERR. */
int smtp_parse_mail(const char *args, struct smtp_mail *m, const char **err);
int smtp_parse_rcpt(const char *args, struct smtp_rcpt *r, const char **err);
/* xtext (RFC 3461 4): printable ASCII but '+' and '=', with "+XX" hex escapes. */
bool smtp_xtext_valid(const char *s);
/* Split local@domain (the last '@'); false when there is no such split. */
bool smtp_split_address(const char *addr, char *local, size_t lsize, char *domain, size_t dsize);

#endif
