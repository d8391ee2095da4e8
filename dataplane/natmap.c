#include "dataplane/natmap.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#define PORTS 65536

/* Indexed by public port (host order): one public address has at most one mapping a port. */
struct mapping {
	uint32_t in_addr;  /* network byte order */
	uint16_t in_port;  /* network byte order */
	uint32_t refs;     /* flows using it; 0 = no mapping on this port */
	uint32_t flows;    /* its flows: record + 1, linked by map_next */
	uint32_t next;     /* port + 1 in its inside-endpoint chain; 0 ends it */
};

/* Mappings held by one inside address, for the quota. */
struct host {
	uint32_t addr, mappings;
	uint32_t next; /* index + 1 in its chain */
};

struct lg_natmap {
	struct mapping maps[PORTS];
	uint32_t map_chains[PORTS];  /* by inside endpoint: port + 1 */
	uint32_t rest_until[PORTS];  /* a released port is not drawn before this second; 0 never used */
	struct host hosts[PORTS];    /* at most one per mapping */
	uint32_t host_chains[PORTS];
	uint32_t host_free[PORTS];
	size_t host_free_top, count;
	uint32_t pub_addr, quota, hold_s;
	uint16_t port_lo, port_hi;
	uint64_t key, rng;
	lg_mapping_hook *hook;
	void *hook_arg;
	struct lg_portledger *ledger;
	size_t ledger_section;
};

static uint32_t mix(uint64_t key, uint64_t a)
{
	uint64_t h = (a ^ key) * 0x9e3779b97f4a7c15ull;

	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return (uint32_t)h;
}

static uint32_t endpoint_chain(const struct lg_natmap *m, uint32_t addr, uint16_t port)
{
	return mix(m->key, ((uint64_t)addr << 16) | port) % PORTS;
}

static uint32_t host_chain(const struct lg_natmap *m, uint32_t addr)
{
	return mix(m->key ^ 0x85ebca6bu, addr) % PORTS;
}

static uint64_t next_random(struct lg_natmap *m)
{
	/* xorshift64*: ports must be unpredictable to outsiders, not cryptographic */
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return m->rng * 0x2545f4914f6cdd1dull;
}

struct lg_natmap *lg_natmap_create(uint32_t pub_addr, uint16_t port_lo, uint16_t port_hi,
				   uint32_t host_quota, uint32_t hold_s, uint64_t seed)
{
	struct lg_natmap *m;

	if (port_lo > port_hi || port_lo == 0)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (seed) {
		m->key = seed * 0x9e3779b97f4a7c15ull + 7;
		m->rng = seed ^ 0x5851f42d4c957f2dull;
	} else if (getrandom(&m->key, sizeof(m->key), 0) != sizeof(m->key) ||
		   getrandom(&m->rng, sizeof(m->rng), 0) != sizeof(m->rng)) {
		free(m);
		return NULL;
	}
	m->rng |= 1;
	for (size_t i = 0; i < PORTS; i++)
		m->host_free[i] = (uint32_t)(PORTS - 1 - i);
	m->host_free_top = PORTS;
	m->pub_addr = pub_addr;
	m->quota = host_quota ? host_quota : UINT32_MAX;
	m->hold_s = hold_s;
	m->port_lo = port_lo;
	m->port_hi = port_hi;
	return m;
}

void lg_natmap_set_limits(struct lg_natmap *m, uint32_t host_quota, uint32_t hold_s)
{
	m->quota = host_quota ? host_quota : UINT32_MAX;
	m->hold_s = hold_s;
}

void lg_natmap_destroy(struct lg_natmap *m)
{
	free(m);
}

void lg_natmap_set_hook(struct lg_natmap *m, lg_mapping_hook *fn, void *arg)
{
	m->hook = fn;
	m->hook_arg = arg;
}

static struct host *host_find(struct lg_natmap *m, uint32_t addr)
{
	for (uint32_t i = m->host_chains[host_chain(m, addr)]; i; i = m->hosts[i - 1].next)
		if (m->hosts[i - 1].addr == addr)
			return &m->hosts[i - 1];
	return NULL;
}

/* Count one more mapping for ADDR; false when it is at its quota. */
static bool host_take(struct lg_natmap *m, uint32_t addr)
{
	struct host *h = host_find(m, addr);
	uint32_t c, idx;

	if (h) {
		if (h->mappings >= m->quota)
			return false;
		h->mappings++;
		return true;
	}
	if (m->host_free_top == 0)
		return false;
	idx = m->host_free[--m->host_free_top];
	c = host_chain(m, addr);
	m->hosts[idx] = (struct host){ .addr = addr, .mappings = 1, .next = m->host_chains[c] };
	m->host_chains[c] = idx + 1;
	return true;
}

static void host_release(struct lg_natmap *m, uint32_t addr)
{
	uint32_t *link = &m->host_chains[host_chain(m, addr)];

	while (*link) {
		struct host *h = &m->hosts[*link - 1];

		if (h->addr == addr) {
			if (--h->mappings == 0) {
				m->host_free[m->host_free_top++] = *link - 1;
				*link = h->next;
			}
			return;
		}
		link = &h->next;
	}
}

/* The port (host order) of an endpoint's mapping, or 0. */
static uint16_t find_port(const struct lg_natmap *m, uint32_t addr, uint16_t port)
{
	for (uint32_t p = m->map_chains[endpoint_chain(m, addr, port)]; p; p = m->maps[p - 1].next)
		if (m->maps[p - 1].in_addr == addr && m->maps[p - 1].in_port == port)
			return (uint16_t)(p - 1);
	return 0;
}

/* A random starting point, then the next free and rested port: O(range) only when the range
 * is nearly exhausted. */
static uint16_t draw_port(struct lg_natmap *m, uint32_t now_s)
{
	uint32_t range = (uint32_t)m->port_hi - m->port_lo + 1;
	uint32_t start = (uint32_t)(next_random(m) % range);

	for (uint32_t k = 0; k < range; k++) {
		uint16_t p = (uint16_t)(m->port_lo + (start + k) % range);

		if (m->maps[p].refs == 0 &&
		    (m->rest_until[p] == 0 || (int32_t)(now_s - m->rest_until[p]) >= 0))
			return p;
	}
	return 0;
}

bool lg_natmap_attach(struct lg_natmap *m, struct lg_flowtab *t, struct lg_flow *f,
		      uint32_t now_s, enum lg_natmap_error *err)
{
	uint16_t port = find_port(m, f->in_addr, f->in_port);
	struct mapping *mp;

	if (!port) {
		uint32_t c;

		if (!host_take(m, f->in_addr)) {
			*err = LG_NATMAP_QUOTA;
			return false;
		}
		port = draw_port(m, now_s);
		if (!port) {
			host_release(m, f->in_addr);
			*err = LG_NATMAP_NO_PORT;
			return false;
		}
		mp = &m->maps[port];
		c = endpoint_chain(m, f->in_addr, f->in_port);
		*mp = (struct mapping){ .in_addr = f->in_addr, .in_port = f->in_port,
					.next = m->map_chains[c] };
		m->map_chains[c] = (uint32_t)port + 1;
		m->count++;
		if (m->ledger)
			lg_portledger_used(m->ledger, m->ledger_section, port);
		if (m->hook)
			m->hook(true, f->in_addr, f->in_port, m->pub_addr, htons(port), m->hook_arg);
	}
	mp = &m->maps[port];
	mp->refs++;
	f->pub_addr = m->pub_addr;
	f->pub_port = htons(port);
	f->map_next = mp->flows;
	mp->flows = lg_flowtab_index_of(t, f) + 1;
	return true;
}

static void unchain(struct lg_natmap *m, uint16_t port)
{
	const struct mapping *mp = &m->maps[port];
	uint32_t *link = &m->map_chains[endpoint_chain(m, mp->in_addr, mp->in_port)];

	while (*link && *link != (uint32_t)port + 1)
		link = &m->maps[*link - 1].next;
	if (*link)
		*link = mp->next;
}

void lg_natmap_detach(struct lg_natmap *m, struct lg_flowtab *t, struct lg_flow *f, uint32_t now_s)
{
	uint16_t port = ntohs(f->pub_port);
	struct mapping *mp = &m->maps[port];
	uint32_t rec = lg_flowtab_index_of(t, f) + 1, *link = &mp->flows;

	if (mp->refs == 0)
		return;
	while (*link && *link != rec)
		link = &lg_flowtab_record(t, *link - 1)->map_next;
	if (!*link)
		return; /* not one of this mapping's flows */
	*link = f->map_next;
	if (--mp->refs > 0)
		return;
	unchain(m, port);
	host_release(m, mp->in_addr);
	m->rest_until[port] = now_s + m->hold_s;
	m->count--;
	if (m->ledger)
		lg_portledger_released(m->ledger, m->ledger_section, port, (uint32_t)time(NULL));
	if (m->hook)
		m->hook(false, mp->in_addr, mp->in_port, m->pub_addr, f->pub_port, m->hook_arg);
}

bool lg_natmap_owner(const struct lg_natmap *m, uint16_t pub_port, uint32_t *in_addr,
		     uint16_t *in_port)
{
	const struct mapping *mp = &m->maps[ntohs(pub_port)];

	if (mp->refs == 0)
		return false;
	*in_addr = mp->in_addr;
	*in_port = mp->in_port;
	return true;
}

bool lg_natmap_port_of(const struct lg_natmap *m, uint32_t in_addr, uint16_t in_port,
		       uint16_t *pub_port)
{
	uint16_t p = find_port(m, in_addr, in_port);

	if (!p)
		return false;
	*pub_port = htons(p);
	return true;
}

bool lg_natmap_sent_to(const struct lg_natmap *m, struct lg_flowtab *t, uint16_t pub_port,
		       uint32_t rem_addr)
{
	const struct mapping *mp = &m->maps[ntohs(pub_port)];

	for (uint32_t r = mp->refs ? mp->flows : 0; r; r = lg_flowtab_record(t, r - 1)->map_next)
		if (lg_flowtab_record(t, r - 1)->rem_addr == rem_addr)
			return true;
	return false;
}

size_t lg_natmap_count(const struct lg_natmap *m)
{
	return m->count;
}

void lg_natmap_each(const struct lg_natmap *m,
		    bool (*fn)(uint32_t in_addr, uint16_t in_port, uint16_t pub_port, uint32_t flows,
			       void *arg),
		    void *arg)
{
	for (uint32_t p = 1; p < PORTS; p++)
		if (m->maps[p].refs &&
		    !fn(m->maps[p].in_addr, m->maps[p].in_port, htons((uint16_t)p), m->maps[p].refs, arg))
			return;
}

uint32_t lg_natmap_address(const struct lg_natmap *m)
{
	return m->pub_addr;
}

void lg_natmap_set_ledger(struct lg_natmap *m, struct lg_portledger *ledger, size_t section,
			  const uint32_t *rest_left, uint32_t now_s)
{
	m->ledger = ledger;
	m->ledger_section = section;
	for (uint32_t p = 0; p < PORTS; p++) {
		uint32_t until = now_s + rest_left[p];

		/* a rest_until of 0 means "never used": a rest ending at second 0 is one more */
		if (rest_left[p] && (m->rest_until[p] == 0 || (int32_t)(until - m->rest_until[p]) > 0))
			m->rest_until[p] = until ? until : 1;
		if (m->maps[p].refs)
			lg_portledger_used(ledger, section, (uint16_t)p);
	}
}
