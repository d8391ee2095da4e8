/* make bench: the flow table against liburcu's cds_lfht, measured side by side in one run,
 * then the whole packet path: bytes per flow from the process, the worst pause of a packet
 * thread while a million flows expire, and pcap replay packets/s. Figures, not assertions:
 * machines here are noisy, so targets are read from the output, never enforced by a test. */
#define _GNU_SOURCE
#include "dataplane/checksum.h"
#include "dataplane/engine.h"
#include "dataplane/flowtab.h"
#include "dataplane/replay.h"
#include "policy/policy.h"

#include <urcu-qsbr.h> /* the QSBR flavour: its fastest readers, as our table uses QSBR */
#include <urcu/rculfhash.h>

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, resident = 0;

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Key I: a distinct inside tuple (a, b = remote) for every I, as a gateway would see them. */
static struct lg_flowkey key_of(uint32_t i)
{
	struct lg_flowkey k = { .a_addr = htonl(0x0a000000u | (i >> 6)),
				.b_addr = htonl(0xc6336400u | (i % 251)),
				.a_port = htons((uint16_t)(1024 + (i & 63) * 997 % 60000)),
				.b_port = htons(143) };
	return k;
}

/* Lookup order: a fixed pseudo-random walk over the N keys (a multiplicative permutation). */
static uint32_t probe_index(uint64_t j, uint32_t n)
{
	return (uint32_t)((j * 2654435761u + 12345) % n);
}

/* ---- ours ---- */

struct ours_job {
	struct lg_flowtab *t;
	uint32_t from, to, n;
	uint64_t lookups;
	bool batch;
	size_t found;
};

static void *ours_insert(void *arg)
{
	struct ours_job *j = arg;

	for (uint32_t i = j->from; i < j->to; i++) {
		struct lg_flowkey k = key_of(i);
		struct lg_flow *f = lg_flowtab_alloc(j->t);

		f->in_addr = k.a_addr;
		f->in_port = k.a_port;
		f->rem_addr = k.b_addr;
		f->rem_port = k.b_port;
		f->pub_port = (uint16_t)i;
		j->found += lg_flowtab_publish(j->t, f) == LG_FLOWTAB_OK;
	}
	return NULL;
}

static void *ours_lookup(void *arg)
{
	struct ours_job *j = arg;
	struct lg_qsbr *q = lg_flowtab_qsbr(j->t);
	int me = lg_qsbr_register(q);
	struct lg_flowkey keys[16];
	struct lg_flow *out[16];

	lg_qsbr_online(q, me);
	for (uint64_t x = 0; x < j->lookups; x += 16) {
		for (int k = 0; k < 16; k++)
			keys[k] = key_of(probe_index(x + k + (uint64_t)j->from * 7, j->n));
		if (j->batch) {
			lg_flowtab_find_inside_batch(j->t, keys, 16, out);
		} else {
			for (int k = 0; k < 16; k++)
				out[k] = lg_flowtab_find_inside(j->t, keys[k].a_addr, keys[k].a_port,
								keys[k].b_addr, keys[k].b_port);
		}
		for (int k = 0; k < 16; k++)
			j->found += out[k] != NULL;
		if ((x & 1023) == 0)
			lg_qsbr_quiescent(q, me);
	}
	lg_qsbr_offline(q, me);
	lg_qsbr_unregister(q, me);
	return NULL;
}

/* ---- cds_lfht ---- */

struct node {
	struct cds_lfht_node node;
	struct lg_flowkey key;
};

static unsigned long hash_key(const struct lg_flowkey *k)
{
	/* the same kind of keyed multiply-xorshift as ours, so the hash is not what differs */
	uint64_t a = ((uint64_t)k->a_addr << 32) | k->b_addr, b = ((uint64_t)k->a_port << 16) | k->b_port;
	uint64_t h = (a ^ 0x1234567ull) * 0x9e3779b97f4a7c15ull;

	h ^= (b + 0x9e37ull) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 31;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 29;
	return (unsigned long)h;
}

static int match_key(struct cds_lfht_node *n, const void *key)
{
	const struct node *nd = caa_container_of(n, struct node, node);

	return memcmp(&nd->key, key, sizeof(nd->key)) == 0;
}

struct lfht_job {
	struct cds_lfht *ht;
	struct node *nodes;
	uint32_t from, to, n;
	uint64_t lookups;
	size_t found;
};

static void *lfht_insert(void *arg)
{
	struct lfht_job *j = arg;

	rcu_register_thread();
	for (uint32_t i = j->from; i < j->to; i++) {
		struct node *nd = &j->nodes[i];

		nd->key = key_of(i);
		cds_lfht_node_init(&nd->node);
		rcu_read_lock();
		j->found += cds_lfht_add_unique(j->ht, hash_key(&nd->key), match_key, &nd->key,
						&nd->node) == &nd->node;
		rcu_read_unlock();
		if ((i & 1023) == 0)
			rcu_quiescent_state();
	}
	rcu_unregister_thread();
	return NULL;
}

static void *lfht_lookup(void *arg)
{
	struct lfht_job *j = arg;

	rcu_register_thread();
	for (uint64_t x = 0; x < j->lookups; x++) {
		struct lg_flowkey k = key_of(probe_index(x + (uint64_t)j->from * 7, j->n));
		struct cds_lfht_iter it;

		rcu_read_lock();
		cds_lfht_lookup(j->ht, hash_key(&k), match_key, &k, &it);
		j->found += cds_lfht_iter_get_node(&it) != NULL;
		rcu_read_unlock();
		if ((x & 1023) == 0)
			rcu_quiescent_state();
	}
	rcu_unregister_thread();
	return NULL;
}

/* Run FN over THREADS jobs of SIZE bytes at JOBS; returns wall seconds. */
static double run_threads(void *(*fn)(void *), void *jobs, size_t size, int threads)
{
	pthread_t tid[2];
	double t0 = now_s();

	for (int i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, fn, (char *)jobs + (size_t)i * size);
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	return now_s() - t0;
}

struct figures {
	double ins, look, look_batch;
	double bytes_per_flow;
};

static struct figures bench_ours(uint32_t n, int threads, uint64_t lookups)
{
	struct figures fig = { 0 };
	size_t rss0 = rss_bytes();
	struct lg_flowtab *t = lg_flowtab_create(n, 0);
	struct ours_job j[2];
	double secs;
	size_t ok = 0;

	if (!t) {
		fprintf(stderr, "bench: cannot make a table of %u flows\n", n);
		exit(1);
	}
	for (int i = 0; i < threads; i++)
		j[i] = (struct ours_job){ .t = t, .from = n / (uint32_t)threads * (uint32_t)i,
					  .to = i == threads - 1 ? n : n / (uint32_t)threads * (uint32_t)(i + 1),
					  .n = n };
	secs = run_threads(ours_insert, j, sizeof(j[0]), threads);
	for (int i = 0; i < threads; i++)
		ok += j[i].found;
	if (ok != n)
		fprintf(stderr, "bench: only %zu of %u flows inserted\n", ok, n);
	fig.ins = n / secs;
	fig.bytes_per_flow = (double)(rss_bytes() - rss0) / n;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < threads; i++)
			j[i] = (struct ours_job){ .t = t, .from = (uint32_t)i, .n = n,
						  .lookups = lookups, .batch = pass == 1 };
		secs = run_threads(ours_lookup, j, sizeof(j[0]), threads);
		for (int i = 0; i < threads; i++)
			if (j[i].found != lookups)
				fprintf(stderr, "bench: ours found %zu of %llu\n", j[i].found,
					(unsigned long long)lookups);
		if (pass == 0)
			fig.look = (double)lookups * threads / secs;
		else
			fig.look_batch = (double)lookups * threads / secs;
	}
	lg_flowtab_destroy(t);
	return fig;
}

static struct figures bench_lfht(uint32_t n, int threads, uint64_t lookups)
{
	struct figures fig = { 0 };
	size_t rss0 = rss_bytes();
	unsigned long size = 1;
	struct cds_lfht *ht;
	struct node *nodes;
	struct lfht_job j[2];
	double secs;

	while (size < n)
		size <<= 1;
	/* sized for N up front, as ours is: no resize inside the measurement */
	ht = cds_lfht_new(size, size, size, 0, NULL);
	nodes = calloc(n, sizeof(*nodes));
	if (!ht || !nodes) {
		fprintf(stderr, "bench: cds_lfht of %u flows failed\n", n);
		exit(1);
	}
	for (int i = 0; i < threads; i++)
		j[i] = (struct lfht_job){ .ht = ht, .nodes = nodes,
					  .from = n / (uint32_t)threads * (uint32_t)i,
					  .to = i == threads - 1 ? n : n / (uint32_t)threads * (uint32_t)(i + 1),
					  .n = n };
	secs = run_threads(lfht_insert, j, sizeof(j[0]), threads);
	fig.ins = n / secs;
	fig.bytes_per_flow = (double)(rss_bytes() - rss0) / n;
	for (int i = 0; i < threads; i++)
		j[i] = (struct lfht_job){ .ht = ht, .nodes = nodes, .from = (uint32_t)i, .n = n,
					  .lookups = lookups };
	secs = run_threads(lfht_lookup, j, sizeof(j[0]), threads);
	for (int i = 0; i < threads; i++)
		if (j[i].found != lookups)
			fprintf(stderr, "bench: cds_lfht found %zu of %llu\n", j[i].found,
				(unsigned long long)lookups);
	fig.look = (double)lookups * threads / secs;
	/* nodes are freed with the process: destroying 10 M nodes one by one is not measured */
	return fig;
}

static void table_comparison(void)
{
	static const uint32_t sizes[] = { 1000000, 10000000 };

	printf("== flow table vs liburcu cds_lfht (QSBR flavour), keys looked up in random order\n");
	printf("%-8s %-3s %14s %14s %14s %14s %14s %9s %9s\n", "flows", "thr", "ours ins/s",
	       "lfht ins/s", "ours look/s", "ours batch/s", "lfht look/s", "look x", "batch x");
	for (size_t s = 0; s < 2; s++) {
		for (int threads = 1; threads <= 2; threads++) {
			uint64_t lookups = 8000000;
			struct figures o = bench_ours(sizes[s], threads, lookups);
			struct figures l = bench_lfht(sizes[s], threads, lookups);

			printf("%-8u %-3d %14.0f %14.0f %14.0f %14.0f %14.0f %8.2fx %8.2fx\n", sizes[s],
			       threads, o.ins, l.ins, o.look, o.look_batch, l.look, o.look / l.look,
			       o.look_batch / l.look);
			if (threads == 1)
				printf("         bytes per flow, measured from RSS: ours %.1f, cds_lfht %.1f\n",
				       o.bytes_per_flow, l.bytes_per_flow);
			fflush(stdout);
		}
	}
}

/* ---- the whole packet path ---- */

static size_t tcp_packet(uint8_t *b, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
			 uint8_t flags, uint32_t seq)
{
	uint32_t seq_be = htonl(seq);
	uint16_t csum;

	memset(b, 0, 40);
	b[0] = 0x45;
	b[3] = 40;
	b[8] = 64;
	b[9] = 6;
	memcpy(b + 12, &src, 4);
	memcpy(b + 16, &dst, 4);
	csum = lg_csum_ipv4_header(b, 20);
	memcpy(b + 10, &csum, 2);
	memcpy(b + 20, &sport, 2);
	memcpy(b + 22, &dport, 2);
	memcpy(b + 24, &seq_be, 4);
	b[32] = 0x50;
	b[33] = flags;
	b[34] = 0xff;
	b[35] = 0xff;
	csum = lg_csum_l4_ipv4(src, dst, 6, b + 20, 20);
	memcpy(b + 36, &csum, 2);
	return 40;
}

static void bench_policy(struct lg_policy *pol, uint32_t max_flows)
{
	lg_policy_defaults(pol);
	strcpy(pol->inside_if, "in");
	strcpy(pol->outside_if, "out");
	pol->nat_inside[0].addr = htonl(0x0a000000u);
	pol->nat_inside[0].len = 8;
	pol->nat_inside_count = 1;
	pol->nat_public = htonl(0xc6336401u); /* 198.51.100.1; remotes are 198.51.x.y, 203.0.113.1 */
	pol->port_lo = 1024;
	pol->port_hi = 65535;
	pol->host_quota = 0;
	pol->max_flows = max_flows;
}

/* Flow I of a gateway's population: 50,000 inside endpoints (one public port each, as
 * endpoint-independent mapping gives them), each talking to I / 50,000 + 1 remotes. */
#define ENDPOINTS 50000u

static uint32_t inside_host(uint32_t i)
{
	return htonl(0x0a000000u | ((i % ENDPOINTS) / 1000 + 1));
}

static uint16_t inside_port(uint32_t i)
{
	return htons((uint16_t)(10000 + (i % ENDPOINTS) % 1000));
}

static uint32_t remote_of(uint32_t i)
{
	return htonl(0xc6330000u | (2 + i / ENDPOINTS));
}

struct pauser {
	struct lg_engine *e;
	uint32_t flows;
	uint64_t t_ns;
	atomic_int stop;
	_Atomic uint64_t worst_ns, packets, over_100us;
};

/* A packet thread sending on flows that stay alive, timing each packet. */
static void *packet_thread(void *arg)
{
	struct pauser *p = arg;
	uint8_t buf[64];
	uint64_t seq = 1;

	while (!atomic_load(&p->stop)) {
		uint32_t i = (uint32_t)(seq % p->flows);
		size_t len = tcp_packet(buf, inside_host(i), inside_port(i), htonl(0xcb007101u),
					htons(143), 0x10, (uint32_t)seq);
		bool mod;
		size_t out;
		uint64_t t0 = now_ns(), dt;

		lg_engine_packet(p->e, buf, len, p->t_ns, &mod, &out);
		dt = now_ns() - t0;
		if (dt > atomic_load(&p->worst_ns))
			atomic_store(&p->worst_ns, dt);
		if (dt > 100000)
			atomic_fetch_add(&p->over_100us, 1);
		atomic_fetch_add(&p->packets, 1);
		seq++;
	}
	lg_engine_thread_done(p->e);
	return NULL;
}

static void *spinner(void *arg)
{
	atomic_int *stop = arg;
	volatile uint64_t x = 0;

	while (!atomic_load(stop))
		x++;
	return NULL;
}

static void expiry_pause(void)
{
	const uint32_t n = 1000000, keep = 1000;
	const uint64_t S = 1000000000ull, t0 = 1000 * S;
	struct lg_policy pol;
	struct lg_engine *e;
	struct lg_engine_stats st;
	struct pauser p = { 0 };
	pthread_t tid;
	uint8_t buf[64];
	double secs;
	size_t ended;

	bench_policy(&pol, n + keep + 16);
	e = lg_engine_create(&pol, 0);
	for (uint32_t i = 0; i < n + keep; i++) {
		bool mod;
		size_t len, out;
		uint32_t dst = i < keep ? htonl(0xcb007101u) : remote_of(i);
		uint16_t dport = i < keep ? htons(143) : htons(80);

		len = tcp_packet(buf, inside_host(i), inside_port(i), dst, dport, 0x02, 1);
		lg_engine_packet(e, buf, len, t0, &mod, &out);
	}
	lg_engine_stats(e, &st);
	printf("== expiry of 1 M flows at once, a packet thread busy meanwhile\n");
	printf("flows held: %llu (table %llu bytes for %llu: %.1f bytes a flow)\n",
	       (unsigned long long)st.flows_active, (unsigned long long)st.table_bytes,
	       (unsigned long long)st.flows_capacity, (double)st.table_bytes / st.flows_capacity);
	/* the first KEEP flows see traffic up to the expiry time; the million others are idle */
	for (uint32_t i = 0; i < keep; i++) {
		bool mod;
		size_t out, len = tcp_packet(buf, inside_host(i), inside_port(i), htonl(0xcb007101u),
					     htons(143), 0x10, 2);

		lg_engine_packet(e, buf, len, t0 + 200 * S, &mod, &out);
	}
	p.e = e;
	p.flows = keep;
	p.t_ns = t0 + 300 * S;
	pthread_create(&tid, NULL, packet_thread, &p);
	usleep(100000);
	/* the same packet thread, first with nothing else running, then during the expiry */
	atomic_store(&p.worst_ns, 0);
	atomic_store(&p.packets, 0);
	atomic_store(&p.over_100us, 0);
	usleep(200000);
	printf("packet thread alone for 0.2 s: %llu packets, worst single packet %.1f us, "
	       "%llu over 100 us\n", (unsigned long long)atomic_load(&p.packets),
	       atomic_load(&p.worst_ns) / 1000.0, (unsigned long long)atomic_load(&p.over_100us));
	/* then with another thread burning the other CPU: what sharing the machine costs */
	{
		atomic_int spin_stop = 0;
		pthread_t spin;

		atomic_store(&p.worst_ns, 0);
		atomic_store(&p.packets, 0);
		atomic_store(&p.over_100us, 0);
		pthread_create(&spin, NULL, spinner, &spin_stop);
		usleep(200000);
		atomic_store(&spin_stop, 1);
		pthread_join(spin, NULL);
		printf("packet thread beside a busy thread for 0.2 s: %llu packets, worst single "
		       "packet %.1f us, %llu over 100 us\n", (unsigned long long)atomic_load(&p.packets),
		       atomic_load(&p.worst_ns) / 1000.0,
		       (unsigned long long)atomic_load(&p.over_100us));
	}
	atomic_store(&p.worst_ns, 0);
	atomic_store(&p.packets, 0);
	atomic_store(&p.over_100us, 0);
	secs = now_s();
	ended = lg_engine_expire(e, t0 + 300 * S);
	secs = now_s() - secs;
	atomic_store(&p.stop, 1);
	pthread_join(tid, NULL);
	printf("ended %zu flows in %.3f s (%.0f flows/s); packet thread meanwhile: %llu packets, "
	       "worst single packet %.1f us, %llu over 100 us\n",
	       ended, secs, ended / secs, (unsigned long long)atomic_load(&p.packets),
	       atomic_load(&p.worst_ns) / 1000.0, (unsigned long long)atomic_load(&p.over_100us));
	lg_engine_destroy(e);
}

static void replay_speed(void)
{
	const uint32_t flows = 200000, data = 8;
	char path[] = "/tmp/lemongate-bench-XXXXXX";
	int fd = mkstemp(path);
	pcap_t *dead = pcap_open_dead(DLT_RAW, 65535);
	pcap_dumper_t *d;
	struct lg_policy pol;
	struct lg_engine *e;
	struct lg_replay_stats st;
	char err[256];
	uint64_t packets = 0;

	if (fd < 0 || !dead) {
		perror("bench: replay file");
		return;
	}
	close(fd);
	d = pcap_dump_open(dead, path);
	for (uint32_t i = 0; i < flows; i++) {
		uint32_t ih = inside_host(i), rh = remote_of(i);
		uint16_t ip = inside_port(i), rp = htons(143);
		struct pcap_pkthdr h = { .ts = { .tv_sec = 1000 + i / 10000 } };
		uint8_t buf[64];

		h.caplen = h.len = (bpf_u_int32)tcp_packet(buf, ih, ip, rh, rp, 0x02, 1);
		pcap_dump((u_char *)d, &h, buf);
		packets++;
		for (uint32_t k = 0; k < data; k++) {
			h.caplen = h.len = (bpf_u_int32)tcp_packet(buf, ih, ip, rh, rp, 0x18, 2 + k);
			pcap_dump((u_char *)d, &h, buf);
			packets++;
		}
	}
	pcap_dump_close(d);
	pcap_close(dead);
	bench_policy(&pol, flows + 16);
	e = lg_engine_create(&pol, 1);
	if (lg_replay_run(e, path, NULL, &st, err, sizeof(err)) < 0)
		fprintf(stderr, "bench: replay: %s\n", err);
	else
		printf("== pcap replay through the whole packet path\n%llu packets (%u flows, %u "
		       "segments each after the SYN), %llu accepted: %.0f packets/s\n",
		       (unsigned long long)st.read, flows, data, (unsigned long long)st.accepted,
		       st.read / st.seconds);
	lg_engine_destroy(e);
	unlink(path);
	(void)packets;
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;

	printf("lemongate bench, %ld CPUs online\n", sysconf(_SC_NPROCESSORS_ONLN));
	if (!quick)
		table_comparison();
	expiry_pause();
	replay_speed();
	return 0;
}
