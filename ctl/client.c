#include "ctl/client.h"

#include "lg_control_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_CLIENT_TIMEOUT_S 10
#define CTL_REPLY_MAX        (256u << 20)

char *lg_ctl_request(const char *path, const char *request, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { CTL_CLIENT_TIMEOUT_S, 0 };
	char line[LG_CTL_MAX_REQUEST + 2];
	size_t used = 0, cap = 65536;
	char *buf;
	int fd, n;

	n = snprintf(line, sizeof(line), "%s %s\n", LG_CTL_MAGIC, request);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		snprintf(err, errlen, "request too long");
		return NULL;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long");
		return NULL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s (is lemongated running here?)", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (write(fd, line, (size_t)n) != n) {
		snprintf(err, errlen, "write to %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	buf = malloc(cap);
	while (buf) {
		ssize_t r;

		if (used + 1 >= cap) {
			char *bigger = cap < CTL_REPLY_MAX ? realloc(buf, cap * 2) : NULL;

			if (!bigger) {
				snprintf(err, errlen, "reply too large");
				free(buf);
				close(fd);
				return NULL;
			}
			buf = bigger;
			cap *= 2;
		}
		r = read(fd, buf + used, cap - 1 - used);
		if (r < 0) {
			snprintf(err, errlen, "read from %s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	close(fd);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	buf[used] = '\0';
	return buf;
}
