#include "dataplane/echomap.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ID_SPACE   65536
#define REMOTES    4     /* addresses a session remembers for address-dependent filtering */
#define NO_SLOT    0     /* public id 0 is never handed out: it marks an empty chain link */

struct slot {
	uint32_t in_addr;
	uint32_t last_s;
	uint32_t remotes[REMOTES];
	uint16_t in_id;
	uint16_t next;        /* next public id in the same inside-hash chain */
	uint8_t live;
	uint8_t remote_next;
};

/* Sessions per inside address, for the quota: open addressing, linear probing, deletion by
 * shifting back (no tombstones). Twice the id space, so it is never more than half full. */
#define HOST_SLOTS (2 * ID_SPACE)

struct host_count {
	uint32_t addr;
	uint32_t sessions; /* 0: empty slot */
};

struct lg_echomap {
	uint32_t timeout_s, quota;
	struct host_count hosts[HOST_SLOTS];
	size_t active;
	uint64_t rng;
	uint64_t hash_key; /* fixed at start: chains are found by it */
	uint16_t heads[ID_SPACE]; /* inside (addr, id) hash -> first public id of its chain */
	struct slot slots[ID_SPACE]; /* by public id (host order) */
};

static uint64_t next_random(struct lg_echomap *m)
{
	/* xorshift64*: ids need to be hard to guess from outside, not cryptographic */
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return m->rng * 0x2545f4914f6cdd1dull;
}

static uint16_t inside_hash(const struct lg_echomap *m, uint32_t addr, uint16_t id)
{
	uint64_t h = ((uint64_t)addr << 16 | id) ^ m->hash_key;

	h *= 0x9e3779b97f4a7c15ull;
	return (uint16_t)(h >> 48);
}

static uint32_t host_home(const struct lg_echomap *m, uint32_t addr)
{
	return (uint32_t)((((uint64_t)addr ^ m->hash_key) * 0x9e3779b97f4a7c15ull) >> 47) &
	       (HOST_SLOTS - 1);
}

/* ADDR's slot, or the empty one where it would go. */
static uint32_t host_slot(const struct lg_echomap *m, uint32_t addr)
{
	uint32_t i = host_home(m, addr);

	while (m->hosts[i].sessions && m->hosts[i].addr != addr)
		i = (i + 1) & (HOST_SLOTS - 1);
	return i;
}

static bool host_take(struct lg_echomap *m, uint32_t addr)
{
	struct host_count *h = &m->hosts[host_slot(m, addr)];

	if (m->quota && h->sessions >= m->quota)
		return false;
	h->addr = addr;
	h->sessions++;
	return true;
}

static void host_release(struct lg_echomap *m, uint32_t addr)
{
	uint32_t i = host_slot(m, addr), j = i;

	if (!m->hosts[i].sessions || --m->hosts[i].sessions)
		return;
	/* the slot is empty now: move back any later entry of the run that may not stay behind it */
	for (;;) {
		uint32_t home;

		j = (j + 1) & (HOST_SLOTS - 1);
		if (!m->hosts[j].sessions)
			return;
		home = host_home(m, m->hosts[j].addr);
		if (((j - home) & (HOST_SLOTS - 1)) >= ((j - i) & (HOST_SLOTS - 1))) {
			m->hosts[i] = m->hosts[j];
			m->hosts[j].sessions = 0;
			i = j;
		}
	}
}

struct lg_echomap *lg_echomap_create(uint32_t timeout_s, uint32_t quota, uint64_t seed)
{
	struct lg_echomap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->timeout_s = timeout_s;
	m->quota = quota;
	if (!seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)(uintptr_t)m ^ 0x5deece66dull;
	m->rng = seed | 1;
	m->hash_key = next_random(m);
	return m;
}

void lg_echomap_set_limits(struct lg_echomap *m, uint32_t timeout_s, uint32_t quota)
{
	m->timeout_s = timeout_s;
	m->quota = quota;
}

void lg_echomap_destroy(struct lg_echomap *m)
{
	free(m);
}

/* Whole seconds on both sides: an idle time of TIMEOUT counted here may really be a little
 * less, so a session ends only past it (RFC 5508 REQ-2 asks for at least the timeout). */
static bool alive(const struct lg_echomap *m, const struct slot *s, uint32_t now_s)
{
	return s->live && (int32_t)(now_s - s->last_s) <= (int32_t)m->timeout_s;
}

static void fill(const struct slot *s, uint16_t pub, struct lg_echo_session *out)
{
	out->in_addr = s->in_addr;
	out->in_id = s->in_id;
	out->pub_id = htons(pub);
	out->last_s = s->last_s;
}

static void unlink_slot(struct lg_echomap *m, uint16_t pub)
{
	struct slot *s = &m->slots[pub];
	uint16_t *link = &m->heads[inside_hash(m, s->in_addr, s->in_id)];

	while (*link != NO_SLOT && *link != pub)
		link = &m->slots[*link].next;
	if (*link == pub)
		*link = s->next;
	host_release(m, s->in_addr);
	s->live = 0;
	s->next = NO_SLOT;
	m->active--;
}

static void remember_remote(struct slot *s, uint32_t rem)
{
	for (int i = 0; i < REMOTES; i++)
		if (s->remotes[i] == rem)
			return;
	s->remotes[s->remote_next] = rem;
	s->remote_next = (uint8_t)((s->remote_next + 1) % REMOTES);
}

bool lg_echomap_outbound(struct lg_echomap *m, uint32_t in_addr, uint16_t in_id, uint32_t rem_addr,
			 uint32_t now_s, struct lg_echo_session *out)
{
	uint16_t h = inside_hash(m, in_addr, in_id), pub;
	struct slot *s;

	for (pub = m->heads[h]; pub != NO_SLOT; pub = m->slots[pub].next) {
		s = &m->slots[pub];
		if (s->in_addr == in_addr && s->in_id == in_id)
			break;
	}
	if (pub != NO_SLOT && !alive(m, &m->slots[pub], now_s)) {
		unlink_slot(m, pub);
		pub = NO_SLOT;
	}
	if (pub == NO_SLOT) {
		/* a random free id, then the next free one after it */
		uint16_t start = (uint16_t)(next_random(m) % (ID_SPACE - 1) + 1);
		size_t tries;

		for (tries = 0, pub = start; tries < ID_SPACE - 1; tries++) {
			s = &m->slots[pub];
			if (!s->live)
				break;
			if (!alive(m, s, now_s)) {
				unlink_slot(m, pub);
				break;
			}
			pub = (uint16_t)(pub == ID_SPACE - 1 ? 1 : pub + 1);
		}
		if (tries == ID_SPACE - 1 || !host_take(m, in_addr))
			return false;
		s = &m->slots[pub];
		memset(s, 0, sizeof(*s));
		s->in_addr = in_addr;
		s->in_id = in_id;
		s->live = 1;
		s->next = m->heads[h];
		m->heads[h] = pub;
		m->active++;
	}
	s = &m->slots[pub];
	s->last_s = now_s;
	remember_remote(s, rem_addr);
	fill(s, pub, out);
	return true;
}

bool lg_echomap_inbound(struct lg_echomap *m, uint16_t pub_id, uint32_t rem_addr,
			bool address_dependent, uint32_t now_s, struct lg_echo_session *out)
{
	uint16_t pub = ntohs(pub_id);
	struct slot *s = &m->slots[pub];
	bool admitted = !address_dependent;

	if (pub == NO_SLOT || !alive(m, s, now_s))
		return false;
	for (int i = 0; i < REMOTES && !admitted; i++)
		admitted = s->remotes[i] == rem_addr && rem_addr != 0;
	if (!admitted)
		return false;
	s->last_s = now_s;
	fill(s, pub, out);
	return true;
}

bool lg_echomap_by_public(const struct lg_echomap *m, uint16_t pub_id, uint32_t now_s,
			  struct lg_echo_session *out)
{
	uint16_t pub = ntohs(pub_id);

	if (pub == NO_SLOT || !alive(m, &m->slots[pub], now_s))
		return false;
	fill(&m->slots[pub], pub, out);
	return true;
}

size_t lg_echomap_expire(struct lg_echomap *m, uint32_t now_s)
{
	size_t ended = 0;

	for (uint32_t pub = 1; pub < ID_SPACE && m->active; pub++) {
		if (m->slots[pub].live && !alive(m, &m->slots[pub], now_s)) {
			unlink_slot(m, (uint16_t)pub);
			ended++;
		}
	}
	return ended;
}

size_t lg_echomap_active(const struct lg_echomap *m)
{
	return m->active;
}

void lg_echomap_each(const struct lg_echomap *m, uint32_t now_s,
		     bool (*fn)(const struct lg_echo_session *s, void *arg), void *arg)
{
	for (uint32_t pub = 1; pub < ID_SPACE; pub++) {
		struct lg_echo_session s;

		if (!alive(m, &m->slots[pub], now_s))
			continue;
		fill(&m->slots[pub], (uint16_t)pub, &s);
		if (!fn(&s, arg))
			return;
	}
}

size_t lg_echomap_flush(struct lg_echomap *m)
{
	size_t ended = 0;

	for (uint32_t pub = 1; pub < ID_SPACE && m->active; pub++)
		if (m->slots[pub].live) {
			unlink_slot(m, (uint16_t)pub);
			ended++;
		}
	return ended;
}
