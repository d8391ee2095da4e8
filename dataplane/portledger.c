#include "dataplane/portledger.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORTS 65536
#define LEDGER_MAGIC "LGPORTS1"
#define IN_USE 0xffffffffu /* else: the wall-clock second of its release, 0 = never used */

struct ledger_file {
	char magic[8];
	uint32_t pub_addr;
	uint32_t reserved;
	uint32_t port[PORTS];
};

struct lg_portledger {
	struct ledger_file *map;
	int fd;
};

struct lg_portledger *lg_portledger_open(const char *path, uint32_t pub_addr, uint32_t hold_s,
					 uint32_t now_wall, uint32_t *rest_left, char *err,
					 size_t errlen)
{
	struct lg_portledger *l = calloc(1, sizeof(*l));
	struct stat st;
	bool fresh;

	memset(rest_left, 0, PORTS * sizeof(*rest_left));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0 || fstat(l->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	fresh = st.st_size != (off_t)sizeof(struct ledger_file);
	if (fresh && (ftruncate(l->fd, 0) < 0 || ftruncate(l->fd, sizeof(struct ledger_file)) < 0)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	l->map = mmap(NULL, sizeof(struct ledger_file), PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);
	if (l->map == MAP_FAILED) {
		l->map = NULL;
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	if (fresh || memcmp(l->map->magic, LEDGER_MAGIC, 8) != 0 || l->map->pub_addr != pub_addr) {
		memset(l->map, 0, sizeof(*l->map));
		memcpy(l->map->magic, LEDGER_MAGIC, 8);
		l->map->pub_addr = pub_addr;
		return l;
	}
	for (uint32_t p = 0; p < PORTS; p++) {
		uint32_t v = l->map->port[p];

		if (v == IN_USE) {
			/* its connection may live on at the ends: a full rest from now */
			rest_left[p] = hold_s;
			l->map->port[p] = now_wall;
		} else if (v && v <= now_wall && now_wall - v < hold_s) {
			rest_left[p] = hold_s - (now_wall - v);
		} else if (v > now_wall) {
			rest_left[p] = hold_s; /* the clock went back: trust nothing */
			l->map->port[p] = now_wall;
		}
	}
	return l;
fail:
	lg_portledger_close(l);
	return NULL;
}

void lg_portledger_close(struct lg_portledger *l)
{
	if (!l)
		return;
	if (l->map)
		munmap(l->map, sizeof(struct ledger_file));
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

void lg_portledger_used(struct lg_portledger *l, uint16_t port)
{
	l->map->port[port] = IN_USE;
}

void lg_portledger_released(struct lg_portledger *l, uint16_t port, uint32_t now_wall)
{
	l->map->port[port] = now_wall ? now_wall : 1;
}
