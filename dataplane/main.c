/* lemongated: start-up, threads, signals and the main loop. The packet path itself is in
 * nfq.c (queue I/O) -> engine.c (parse, flow, NAT, verdict). */
#define _GNU_SOURCE /* signalfd, pipe2 */
#include "dataplane/clock.h"
#include "dataplane/control.h"
#include "dataplane/engine.h"
#include "dataplane/log.h"
#include "dataplane/nfq.h"
#include "dataplane/portledger.h"
#include "dataplane/replay.h"
#include "dataplane/steer.h"
#include "dataplane/knat.h"
#include "lg_control_proto.h"
#include "policy/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <netinet/in.h>
#include <unistd.h>

#define LG_DEFAULT_CONFIG "/etc/lemongate/lemongate.conf"
#define LG_VERSION        "0.1.0"
#define SWEEP_INTERVAL_MS 1000
#define TICK_MS           100 /* how late a held SYN may be answered, at most */

struct options {
	const char *config;
	const char *log_file;
	const char *pid_file;
	const char *socket;
	const char *replay_in, *replay_out;
	uint64_t seed;
	bool check_only, foreground, test_clock;
};

struct queue_thread {
	pthread_t tid;
	struct lg_nfq *q;
	struct lg_engine *engine;
	atomic_bool *stop;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: lemongated [-tf] [-c FILE] [-l LOGFILE] [-p PIDFILE] [-s SOCKET] [--test-clock]\n"
		"  -c FILE        configuration (default " LG_DEFAULT_CONFIG ")\n"
		"  -t             check the configuration, print the effective policy, and exit\n"
		"  -f             stay in the foreground, log to stderr\n"
		"  -l LOGFILE     log to LOGFILE instead of stderr/syslog\n"
		"  -p PIDFILE     write the daemon's pid to PIDFILE\n"
		"  -s SOCKET      control socket path (default: per network namespace, see README)\n"
		"  --test-clock   accept 'lemongatectl clock advance' (tests only)\n"
		"  --replay IN.pcap [--write OUT.pcap]\n"
		"                 offline: run the packet path over a capture (no root, no kernel)\n"
		"                 and write what would be forwarded, translated\n"
		"  --seed N       with --replay: reproducible hash key and public ports\n"
		"  -V             print the version\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "test-clock", no_argument, NULL, 'T' },
		{ "replay", required_argument, NULL, 'R' },
		{ "write", required_argument, NULL, 'W' },
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->config = LG_DEFAULT_CONFIG;
	while ((ch = getopt_long(argc, argv, "c:tfl:p:s:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 't': o->check_only = true; break;
		case 'f': o->foreground = true; break;
		case 'l': o->log_file = optarg; break;
		case 'p': o->pid_file = optarg; break;
		case 's': o->socket = optarg; break;
		case 'T': o->test_clock = true; break;
		case 'R': o->replay_in = optarg; break;
		case 'W': o->replay_out = optarg; break;
		case 'S': {
			char *end;

			o->seed = strtoull(optarg, &end, 10);
			if (*end || o->seed == 0) {
				fprintf(stderr, "lemongated: --seed takes a positive integer\n");
				return -1;
			}
			break;
		}
		case 'h': usage(stdout); exit(0);
		case 'V': printf("lemongated %s\n", LG_VERSION); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "lemongated: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	if ((o->replay_out || o->seed) && !o->replay_in) {
		fprintf(stderr, "lemongated: --write and --seed need --replay\n");
		return -1;
	}
	return 0;
}

static bool daemon_answers(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return live;
}

/* Fork; the parent waits until the child reports ready (exit 0) or dies (exit 1), so that
 * whoever started us knows the rules are in place and the control socket answers. */
static int daemonize(void)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		lg_log_fatal("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		lg_log_fatal("fork: %s", strerror(errno));
	if (pid > 0) {
		close(p[1]);
		exit(read(p[0], &c, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		lg_log_fatal("chdir /: %s", strerror(errno));
	return p[1];
}

static void notify_ready(int fd)
{
	int devnull = open("/dev/null", O_RDWR);

	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		close(devnull);
	}
	lg_log_copy_to_stderr(false);
	if (write(fd, "R", 1) != 1)
		lg_log(LG_LOG_WARN, "could not tell the parent we are ready");
	close(fd);
}

static enum lg_verdict engine_handler(void *arg, uint8_t *pkt, size_t len, uint32_t mark,
				      bool *modified, size_t *len_out)
{
	return lg_engine_packet_knat(arg, pkt, len, lg_clock_now_ns(), mark & LG_KNAT_PKTMARK,
				     modified, len_out);
}

static int offload_flow(void *arg, bool on, const struct lg_flow *f)
{
	struct lg_knat_flow k = { .in_addr = f->in_addr, .rem_addr = f->rem_addr,
				  .pub_addr = f->pub_addr, .in_port = f->in_port,
				  .rem_port = f->rem_port, .pub_port = f->pub_port };

	static atomic_bool told;
	int rc;

	if (!on) {
		lg_knat_withdraw(arg, &k);
		return 0;
	}
	rc = lg_knat_offload(arg, &k);
	/* once: the flows go on, translated here; the count is in stats (offloads_refused) */
	if (rc < 0 && !atomic_exchange(&told, true))
		lg_log(LG_LOG_WARN, "the kernel refused a flow's NAT offload (%s); such flows stay "
		       "translated here", rc > -4096 ? strerror(-rc) : "ipset error");
	return rc;
}

static void *queue_main(void *arg)
{
	struct queue_thread *t = arg;

	lg_nfq_run(t->q, engine_handler, t->engine, t->stop);
	lg_engine_thread_done(t->engine);
	return NULL;
}

static int replay(const struct options *o, const struct lg_policy *pol)
{
	struct lg_engine *engine = lg_engine_create(pol, o->seed);
	struct lg_replay_stats st;
	struct lg_engine_stats es;
	char err[512];
	int rc;

	if (!engine) {
		fprintf(stderr, "lemongated: cannot allocate a flow table of %u flows\n", pol->max_flows);
		return 1;
	}
	rc = lg_replay_run(engine, o->replay_in, o->replay_out, &st, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "lemongated: replay: %s\n", err);
	lg_engine_stats(engine, &es);
	printf("replay %s: %llu packets read, %llu not steered (not TCP, ICMP or an ICMPv6 error), %llu accepted "
	       "(%llu translated), %llu dropped\n",
	       o->replay_in, (unsigned long long)st.read, (unsigned long long)st.not_steered,
	       (unsigned long long)st.accepted, (unsigned long long)st.modified,
	       (unsigned long long)st.dropped);
	for (int r = 0; r < LG_DROP_REASON_COUNT; r++)
		if (es.dropped[r])
			printf("  dropped %s: %llu\n", lg_drop_reason_name((enum lg_drop_reason)r),
			       (unsigned long long)es.dropped[r]);
	for (int m = 1; m < LG_PKT_STATUS_COUNT; m++)
		if (es.malformed[m])
			printf("  malformed %s: %llu\n", lg_pkt_status_name((enum lg_pkt_status)m),
			       (unsigned long long)es.malformed[m]);
	printf("flows: %llu created, %llu expired, %llu active\n",
	       (unsigned long long)es.flows_created, (unsigned long long)es.flows_expired,
	       (unsigned long long)es.flows_active);
	if (st.seconds > 0 && st.read > 0)
		printf("packet path: %.0f packets/s\n", (double)(st.accepted + st.dropped) / st.seconds);
	lg_engine_destroy(engine);
	return rc < 0 ? 1 : 0;
}

static void log_mapping(bool created, uint32_t in_addr, uint16_t in_port, uint32_t pub_addr,
			uint16_t pub_port, void *arg)
{
	char line[128];

	(void)arg;
	lg_mapping_log_format(created, in_addr, in_port, pub_addr, pub_port, line, sizeof(line));
	lg_log(LG_LOG_INFO, "%s", line);
}

/* Our own ICMP errors leave through raw sockets: IPv4 packets complete with their headers,
 * ICMPv6 messages to which the kernel adds the header and checksum. */
struct icmp_sockets {
	int fd4, fd6; /* fd6 -1 without IPv6 filtering */
};

static void send_raw(const uint8_t *pkt, size_t len, const struct lg_icmp_dest *to, void *arg)
{
	const struct icmp_sockets *s = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = to->addr4 };
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6 };
	ssize_t rc;

	if (to->family == 6) {
		if (s->fd6 < 0)
			return;
		memcpy(&sa6.sin6_addr, to->addr6, 16);
		rc = sendto(s->fd6, pkt, len, 0, (struct sockaddr *)&sa6, sizeof(sa6));
	} else {
		rc = sendto(s->fd4, pkt, len, 0, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (rc < 0)
		lg_log(LG_LOG_WARN, "sending ICMP: %s", strerror(errno));
}

struct reload_ctx {
	const char *config;
	struct lg_engine *engine;
};

static void log_mapping(bool created, uint32_t in_addr, uint16_t in_port, uint32_t pub_addr,
			uint16_t pub_port, void *arg);

/* The logging settings: live, at start and at each reload. */
static void apply_logging(const struct lg_policy *pol, struct lg_engine *engine)
{
	lg_log_set_level((enum lg_log_level)pol->log_level);
	lg_engine_set_mapping_log(engine, pol->log_mappings_off ? NULL : log_mapping, NULL);
}

/* Read the configuration file again and hand it to the engine: all or nothing. Every
 * diagnostic is logged; MSG gets them on one line for lemongatectl. */
static int reload_policy(void *arg, char *msg, size_t msglen)
{
	const struct reload_ctx *r = arg;
	struct lg_policy pol;
	struct lg_diags diags;
	char err[512];
	size_t used = 0;
	int rc = lg_policy_load(r->config, &pol, &diags);

	msg[0] = '\0';
	for (size_t i = 0; i < diags.count; i++) {
		const struct lg_diag *d = &diags.items[i];
		bool error = d->level == LG_DIAG_ERROR;

		lg_log(error ? LG_LOG_ERR : LG_LOG_WARN, "reload: %s:%u:%u: %s: %s", diags.file, d->line,
		       d->col, error ? "error" : "warning", d->msg);
		if (used < msglen)
			used += (size_t)snprintf(msg + used, msglen - used, "%s%s:%u:%u: %s: %s",
						 used ? "; " : "", diags.file, d->line, d->col,
						 error ? "error" : "warning", d->msg);
	}
	if (rc < 0) {
		lg_log(LG_LOG_ERR, "reload of %s refused: nothing changed", r->config);
		if (!msg[0])
			snprintf(msg, msglen, "%s: cannot be read", r->config);
		return -1;
	}
	if (lg_engine_reload(r->engine, &pol, err, sizeof(err)) < 0) {
		lg_log(LG_LOG_ERR, "reload of %s refused, nothing changed: %s", r->config, err);
		snprintf(msg, msglen, "%s: %s; nothing changed", r->config, err);
		return -1;
	}
	apply_logging(&pol, r->engine);
	lg_log(LG_LOG_INFO, "policy reloaded from %s: in force for new flows and the timers of all",
	       r->config);
	return 0;
}

/* The port ledger, so that ports in use now rest after a restart or a crash (RFC 6888 REQ-8).
 * Without one the daemon still runs, and says what that costs. */
static struct lg_portledger *open_port_ledger(const struct lg_policy *pol, struct lg_engine *engine)
{
	char path[LG_PATH_MAX + 8], err[LG_PATH_MAX + 128];
	const uint32_t *addrs;
	size_t n = lg_policy_public(pol, &addrs), resting = 0;
	uint32_t *rest_left;
	struct lg_portledger *l;

	if (pol->port_state_off)
		return NULL;
	if (pol->port_state[0])
		snprintf(path, sizeof(path), "%s", pol->port_state);
	else if (lg_port_state_default_path(path, sizeof(path)) == 0)
		mkdir(LG_CTL_DIR, 0700);
	else
		path[0] = '\0';
	rest_left = malloc(n * LG_PORTLEDGER_PORTS * sizeof(*rest_left));
	l = path[0] && rest_left ? lg_portledger_open(path, addrs, n, pol->port_rest,
						      (uint32_t)time(NULL), rest_left, err, sizeof(err))
				 : NULL;
	if (!l) {
		lg_log(LG_LOG_WARN, "port ledger: %s; ports in use at a restart may be reused at once",
		       path[0] && rest_left ? err : "no path or no memory");
		free(rest_left);
		return NULL;
	}
	for (size_t p = 0; p < n * LG_PORTLEDGER_PORTS; p++)
		resting += rest_left[p] != 0;
	lg_engine_set_port_ledger(engine, l, rest_left, lg_clock_now_ns());
	lg_log(LG_LOG_INFO, "port ledger %s: %zu port%s left by the previous run rest up to %u s",
	       path, resting, resting == 1 ? "" : "s", pol->port_rest);
	free(rest_left);
	return l;
}

static void write_pid_file(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		lg_log_fatal("pid file %s: %s", path, strerror(errno));
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

int main(int argc, char **argv)
{
	static atomic_bool stop;
	struct options o;
	struct lg_policy pol;
	struct lg_diags diags;
	char sock_path[LG_PATH_MAX], err[256];
	struct queue_thread threads[LG_MAX_QUEUES];
	struct lg_nfq *queues[LG_MAX_QUEUES];
	struct lg_portledger *ledger;
	struct lg_control *ctl;
	struct lg_engine *engine;
	struct lg_knat *knat = NULL;
	struct lg_control_ctx ctx;
	sigset_t sigs;
	int sfd, ready_fd = -1;
	struct icmp_sockets icmp;
	struct reload_ctx reload_ctx;
	char config_abs[PATH_MAX];
	uint64_t last_sweep;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	if (lg_policy_load(o.config, &pol, &diags) < 0) {
		lg_diags_print(&diags, stderr);
		fprintf(stderr, "lemongated: %s: %zu error%s\n", o.config, diags.errors,
			diags.errors == 1 ? "" : "s");
		return 1;
	}
	lg_diags_print(&diags, stderr);
	if (o.check_only) {
		lg_policy_summary(&pol, stdout);
		printf("%s: configuration ok\n", o.config);
		return 0;
	}
	if (o.replay_in)
		return replay(&o, &pol);

	if (o.socket)
		snprintf(sock_path, sizeof(sock_path), "%s", o.socket);
	else if (pol.control_socket[0])
		snprintf(sock_path, sizeof(sock_path), "%s", pol.control_socket);
	else if (lg_control_default_path(sock_path, sizeof(sock_path)) < 0)
		lg_log_fatal("cannot work out the control socket path; give -s SOCKET");
	if (daemon_answers(sock_path))
		lg_log_fatal("another lemongated answers on %s", sock_path);

	if (!o.foreground)
		ready_fd = daemonize();
	if (lg_log_open(o.log_file, !o.foreground) < 0)
		lg_log_fatal("log file %s: %s", o.log_file, strerror(errno));
	lg_log_copy_to_stderr(!o.foreground); /* start-up failures reach whoever started us */

	/* Signals wait in the signalfd from here on, so a TERM during start-up still cleans up. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0)
		lg_log_fatal("signalfd: %s", strerror(errno));

	lg_clock_init(o.test_clock);
	engine = lg_engine_create(&pol, 0);
	if (!engine)
		lg_log_fatal("cannot allocate a flow table of %u flows", pol.max_flows);
	{
		struct lg_engine_stats es;

		lg_engine_stats(engine, &es);
		lg_log(LG_LOG_INFO, "flow table: %u flows, %llu MiB allocated at start (%.1f bytes a flow)",
		       pol.max_flows, (unsigned long long)(es.table_bytes >> 20),
		       (double)es.table_bytes / pol.max_flows);
	}
	apply_logging(&pol, engine);
	ledger = open_port_ledger(&pol, engine);
	for (uint16_t i = 0; i < pol.queue_count; i++) {
		struct lg_nfq_config qc = { .queue_num = (uint16_t)(pol.queue_first + i),
					    .length = pol.queue_length,
					    .fail_open = pol.queue_fail_open,
					    .gso = true };
		char warn[256];

		queues[i] = lg_nfq_open(&qc, err, sizeof(err), warn, sizeof(warn));
		if (!queues[i])
			lg_log_fatal("%s", err);
		if (warn[0])
			lg_log(LG_LOG_WARN, "%s", warn);
	}
	icmp.fd4 = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (icmp.fd4 < 0)
		lg_log_fatal("raw socket for ICMP: %s", strerror(errno));
	icmp.fd6 = -1;
	if (pol.inside6_count) {
		icmp.fd6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
		if (icmp.fd6 < 0)
			lg_log_fatal("raw socket for ICMPv6: %s", strerror(errno));
	}
	if (pol.offload_after) {
		lg_steer_remove(); /* an earlier run's rules may still use the offload's set */
		knat = lg_knat_open(pol.max_flows, err, sizeof(err));
		if (knat)
			lg_engine_set_offload(engine, offload_flow, knat);
		else
			lg_log(LG_LOG_WARN, "kernel NAT offload off, every packet translated here: %s",
			       err);
	}
	if (lg_steer_install(&pol, knat != NULL, err, sizeof(err)) < 0)
		lg_log_fatal("steering rules: %s", err);
	ctl = lg_control_open(sock_path, pol.control_group[0] ? (long)pol.control_gid : -1, err,
			      sizeof(err));
	if (!ctl) {
		lg_steer_remove();
		lg_log_fatal("control socket: %s", err);
	}
	if (o.pid_file)
		write_pid_file(o.pid_file);
	for (uint16_t i = 0; i < pol.queue_count; i++) {
		threads[i] = (struct queue_thread){ .q = queues[i], .engine = engine, .stop = &stop };
		if (pthread_create(&threads[i].tid, NULL, queue_main, &threads[i]) != 0) {
			lg_steer_remove();
			lg_log_fatal("cannot start queue thread %u", i);
		}
	}
	/* the daemon works from /: a reload must find the file the start did */
	if (!realpath(o.config, config_abs))
		snprintf(config_abs, sizeof(config_abs), "%s", o.config);
	reload_ctx = (struct reload_ctx){ .config = config_abs, .engine = engine };
	ctx = (struct lg_control_ctx){ .engine = engine, .queues = queues, .reload = reload_policy,
				       .reload_arg = &reload_ctx,
				       .queue_count = pol.queue_count,
				       .started_ns = lg_clock_now_ns(), .knat = knat,
				       .send_icmp = send_raw,
				       .send_icmp_arg = &icmp };
	lg_log(LG_LOG_INFO, "started: %u queue%s from %u, control socket %s%s", pol.queue_count,
	       pol.queue_count == 1 ? "" : "s", pol.queue_first, sock_path,
	       o.test_clock ? ", test clock on" : "");
	if (ready_fd >= 0)
		notify_ready(ready_fd);

	last_sweep = lg_clock_now_ns();
	while (!atomic_load(&stop)) {
		struct pollfd fds[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = lg_control_fd(ctl), .events = POLLIN },
		};
		uint64_t now;

		if (poll(fds, 2, TICK_MS) < 0 && errno != EINTR)
			lg_log_fatal("poll: %s", strerror(errno));
		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					char msg[1024];

					reload_policy(&reload_ctx, msg, sizeof(msg));
				} else
					atomic_store(&stop, true);
			}
		}
		if (fds[1].revents & POLLIN)
			lg_control_serve(ctl, &ctx);
		now = lg_clock_now_ns();
		lg_engine_due(engine, now, send_raw, &icmp);
		if (now - last_sweep >= SWEEP_INTERVAL_MS * 1000000ull) {
			lg_engine_expire(engine, now);
			last_sweep = now;
		}
	}

	lg_log(LG_LOG_INFO, "stopping");
	for (uint16_t i = 0; i < pol.queue_count; i++)
		pthread_join(threads[i].tid, NULL);
	lg_steer_remove();
	lg_engine_set_offload(engine, NULL, NULL);
	lg_knat_close(knat); /* after the rules that use its set */
	for (uint16_t i = 0; i < pol.queue_count; i++)
		lg_nfq_close(queues[i]);
	lg_control_close(ctl);
	close(icmp.fd4);
	if (icmp.fd6 >= 0)
		close(icmp.fd6);
	if (o.pid_file)
		unlink(o.pid_file);
	lg_engine_destroy(engine);
	lg_portledger_close(ledger); /* mappings still held stay marked in use: they rest after a restart */
	lg_log(LG_LOG_INFO, "stopped, rules removed");
	return 0;
}
