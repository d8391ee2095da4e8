/* The users file: "name:sha256:HEX" lines, HEX the SHA-256 of the password; '#' comments. */
#ifndef LG_SRV_USERS_H
#define LG_SRV_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct srv_users;

/* NULL with a "file:line: message" in ERR on any error. */
struct srv_users *srv_users_load(const char *path, char *err, size_t errlen);
struct srv_users *srv_users_parse(const char *name, const char *text, char *err, size_t errlen);
bool srv_users_check(const struct srv_users *u, const char *user, const char *pass);
bool srv_users_exists(const struct srv_users *u, const char *user);
void srv_users_free(struct srv_users *u);

#endif
