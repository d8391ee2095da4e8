/* Talking to lemongated over its control socket. */
#ifndef LG_CTL_CLIENT_H
#define LG_CTL_CLIENT_H

#include <stddef.h>

/* Send "lemongate-ctl/1 REQUEST" to the socket at PATH and return the whole reply
 * (malloc'd, NUL-terminated), or NULL with a message in ERR. */
char *lg_ctl_request(const char *path, const char *request, char *err, size_t errlen);

#endif
