#include "dataplane/portledger.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEDGER_MAGIC "LGPORTS2"
#define IN_USE 0xffffffffu /* else: the wall-clock second of its release, 0 = never used */

struct ledger_header {
	char magic[8];
	uint32_t count;
	uint32_t addrs[LG_PORTLEDGER_MAX_ADDRS];
	uint32_t reserved;
};

struct lg_portledger {
	struct ledger_header *map;
	uint32_t *ports; /* COUNT sections of LG_PORTLEDGER_PORTS */
	size_t bytes;
	int fd;
};

static size_t file_bytes(size_t n)
{
	return sizeof(struct ledger_header) + n * LG_PORTLEDGER_PORTS * sizeof(uint32_t);
}

/* The previous run's section for ADDR in OLD (a whole valid file of OLD_BYTES), or NULL. */
static const uint32_t *old_section(const unsigned char *old, size_t old_bytes, uint32_t addr)
{
	struct ledger_header h;

	if (!old || old_bytes < sizeof(h))
		return NULL;
	memcpy(&h, old, sizeof(h));
	if (memcmp(h.magic, LEDGER_MAGIC, 8) != 0 || h.count > LG_PORTLEDGER_MAX_ADDRS ||
	    old_bytes != file_bytes(h.count))
		return NULL;
	for (uint32_t i = 0; i < h.count; i++)
		if (h.addrs[i] == addr)
			return (const uint32_t *)(old + sizeof(h)) + (size_t)i * LG_PORTLEDGER_PORTS;
	return NULL;
}

/* What the previous run left of one section: rests to keep, and the section as it now is. */
static void carry_over(const uint32_t *before, uint32_t *now, uint32_t *rest, uint32_t hold_s,
		       uint32_t now_wall)
{
	for (uint32_t p = 0; p < LG_PORTLEDGER_PORTS; p++) {
		uint32_t v = before ? before[p] : 0;

		rest[p] = 0;
		now[p] = 0;
		if (v == IN_USE || v > now_wall) {
			/* its connection may live on at the ends (or the clock went back): a full
			 * rest from now */
			rest[p] = hold_s;
			now[p] = now_wall;
		} else if (v && now_wall - v < hold_s) {
			rest[p] = hold_s - (now_wall - v);
			now[p] = v;
		}
	}
}

struct lg_portledger *lg_portledger_open(const char *path, const uint32_t *addrs, size_t n,
					 uint32_t hold_s, uint32_t now_wall, uint32_t *rest_left,
					 char *err, size_t errlen)
{
	struct lg_portledger *l = calloc(1, sizeof(*l));
	unsigned char *old = NULL;
	size_t old_bytes = 0;
	struct stat st;

	if (!l || n == 0 || n > LG_PORTLEDGER_MAX_ADDRS) {
		snprintf(err, errlen, l ? "%zu public addresses: 1..%d" : "out of memory", n,
			 LG_PORTLEDGER_MAX_ADDRS);
		free(l);
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
	/* the previous run's ledger, read whole before the file is laid out for this one */
	if (st.st_size > 0 && (size_t)st.st_size <= file_bytes(LG_PORTLEDGER_MAX_ADDRS)) {
		old_bytes = (size_t)st.st_size;
		old = malloc(old_bytes);
		if (!old || pread(l->fd, old, old_bytes, 0) != (ssize_t)old_bytes) {
			free(old);
			old = NULL;
			old_bytes = 0;
		}
	}
	l->bytes = file_bytes(n);
	if (ftruncate(l->fd, 0) < 0 || ftruncate(l->fd, (off_t)l->bytes) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	l->map = mmap(NULL, l->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);
	if (l->map == MAP_FAILED) {
		l->map = NULL;
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	l->ports = (uint32_t *)(l->map + 1);
	memcpy(l->map->magic, LEDGER_MAGIC, 8);
	l->map->count = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		l->map->addrs[i] = addrs[i];
		carry_over(old_section(old, old_bytes, addrs[i]), l->ports + i * LG_PORTLEDGER_PORTS,
			   rest_left + i * LG_PORTLEDGER_PORTS, hold_s, now_wall);
	}
	free(old);
	return l;
fail:
	free(old);
	lg_portledger_close(l);
	return NULL;
}

void lg_portledger_close(struct lg_portledger *l)
{
	if (!l)
		return;
	if (l->map)
		munmap(l->map, l->bytes);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

void lg_portledger_used(struct lg_portledger *l, size_t section, uint16_t port)
{
	l->ports[section * LG_PORTLEDGER_PORTS + port] = IN_USE;
}

void lg_portledger_released(struct lg_portledger *l, size_t section, uint16_t port,
			    uint32_t now_wall)
{
	l->ports[section * LG_PORTLEDGER_PORTS + port] = now_wall ? now_wall : 1;
}
