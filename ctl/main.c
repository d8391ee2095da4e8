/* lemongatectl: the operator's command line for lemongated. */
#include "ctl/client.h"
#include "ctl/reply.h"
#include "policy/policy.h"

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Exit codes, documented in README.md. */
enum { EXIT_OK = 0, EXIT_DAEMON_ERROR = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_CONFIG = 4 };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: lemongatectl [-s SOCKET] [--json] COMMAND\n"
		"commands:\n"
		"  flows [FILTERS]       one line per flow; FILTERS: --proto tcp|udp|icmp,\n"
		"                        --inside ADDR[:PORT]|PREFIX, --remote ADDR[:PORT]|PREFIX,\n"
		"                        --port N, --service NAME, --state STATE,\n"
		"                        --idle-over DURATION, --sort idle|age|bytes, --limit N\n"
		"  flow ID               one flow in detail\n"
		"  mappings              NAT mappings and ICMP echo sessions\n"
		"  stats [--watch SECS]  counters: packets, drops by reason, flows, queues; --watch\n"
		"                        prints them again every SECS seconds with rates, until ^C\n"
		"  policy show           the policy in force in the daemon\n"
		"  flush [--yes]         end every flow, mapping and echo session; without --yes,\n"
		"                        only say what that would end\n"
		"  ping                  is the daemon there?\n"
		"  clock advance DUR     move the test clock (daemon started with --test-clock)\n"
		"  policy check FILE     check a configuration file, print the effective policy\n"
		"  policy reload [--reevaluate]\n"
		"                        make the daemon read its configuration file again: all of it\n"
		"                        or nothing; every flow is kept unless --reevaluate, which ends\n"
		"                        the flows the new rules refuse\n"
		"  socket                print the default control socket path for this namespace\n");
}

static int fetch(const char *sock, const char *request, struct lg_reply *reply)
{
	char err[256];
	char *text = lg_ctl_request(sock, request, err, sizeof(err));

	if (!text) {
		fprintf(stderr, "lemongatectl: %s\n", err);
		return EXIT_UNREACHABLE;
	}
	if (lg_reply_parse(text, reply) < 0) {
		fprintf(stderr, "lemongatectl: malformed reply from the daemon\n");
		lg_reply_free(reply);
		return EXIT_DAEMON_ERROR;
	}
	if (!reply->ok) {
		fprintf(stderr, "lemongatectl: %s\n", reply->error);
		lg_reply_free(reply);
		return EXIT_DAEMON_ERROR;
	}
	return EXIT_OK;
}

/* flush without --yes states the damage and changes nothing; with it, does it. */
static int flush(const char *sock, bool yes, bool json)
{
	struct lg_reply reply;
	int rc = fetch(sock, yes ? "flush confirm" : "flush preview", &reply);
	const struct lg_record *rec;

	if (rc != EXIT_OK)
		return rc;
	rec = reply.count ? &reply.records[0] : NULL;
	if (json) {
		lg_render_json_array(&reply, "flush", stdout);
	} else if (yes) {
		printf("flushed: %s flows and %s echo sessions ended\n",
		       rec ? lg_record_get(rec, "flows_ended") : "?",
		       rec ? lg_record_get(rec, "echo_sessions_ended") : "?");
	} else {
		printf("flush would end %s IPv4 flows, %s IPv6 flows, %s NAT mappings and %s echo "
		       "sessions.\nEvery connection through the gateway would stop: its next packets are "
		       "dropped as unknown, idle mail clients hang until they time out, and NATed\n"
		       "sessions can never resume. Run 'lemongatectl flush --yes' to do it.\n",
		       rec ? lg_record_get(rec, "flows") : "?", rec ? lg_record_get(rec, "flows6") : "?",
		       rec ? lg_record_get(rec, "mappings") : "?",
		       rec ? lg_record_get(rec, "echo_sessions") : "?");
	}
	lg_reply_free(&reply);
	return yes ? EXIT_OK : EXIT_USAGE;
}

static volatile sig_atomic_t watching = 1;

static void stop_watching(int sig)
{
	(void)sig;
	watching = 0;
}

/* stats --watch SECS: the counters again and again, each with its rate since the last time. */
static int watch_stats(const char *sock, const char *secs_text)
{
	struct lg_reply prev = { 0 }, cur;
	unsigned long secs;
	bool have_prev = false;
	int rc = EXIT_OK;

	if (lg_uint_parse(secs_text, 1, 3600, &secs) < 0) {
		fprintf(stderr, "lemongatectl: stats --watch: '%s' is not 1..3600 seconds\n", secs_text);
		return EXIT_USAGE;
	}
	signal(SIGINT, stop_watching);
	signal(SIGTERM, stop_watching);
	while (watching) {
		time_t now = time(NULL);
		char when[32];

		if ((rc = fetch(sock, "stats", &cur)) != EXIT_OK)
			break;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
		printf("-- %s, every %lus\n", when, secs);
		lg_render_stats_watch(&cur, have_prev ? &prev : NULL, (double)secs, stdout);
		fflush(stdout);
		if (have_prev)
			lg_reply_free(&prev);
		prev = cur;
		have_prev = true;
		for (unsigned long t = 0; t < secs * 10 && watching; t++) {
			struct timespec tenth = { 0, 100000000 };

			nanosleep(&tenth, NULL);
		}
	}
	if (have_prev)
		lg_reply_free(&prev);
	return rc;
}

/* Turn "--inside 10.77.0.2" / "--inside=10.77.0.2" pairs into the daemon's "inside=10.77.0.2"
 * words, appended to REQ. 0, or -1 after printing why. */
static int flows_request(int argc, char **argv, char *req, size_t size)
{
	static const char *const names[] = { "proto", "inside", "remote", "port", "service", "state",
					     "idle-over", "sort", "limit" };

	snprintf(req, size, "flows");
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *value = NULL, *name;
		size_t nlen, used = strlen(req);
		bool known = false;
		int w;

		if (strncmp(arg, "--", 2) != 0) {
			fprintf(stderr, "lemongatectl: flows: unexpected '%s'\n", arg);
			return -1;
		}
		name = arg + 2;
		nlen = strcspn(name, "=");
		if (name[nlen] == '=')
			value = name + nlen + 1;
		else if (i + 1 < argc)
			value = argv[++i];
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			known |= strlen(names[k]) == nlen && strncmp(names[k], name, nlen) == 0;
		if (!known) {
			fprintf(stderr, "lemongatectl: flows: unknown filter '--%.*s'\n", (int)nlen, name);
			return -1;
		}
		if (!value || !*value || strpbrk(value, " \t\n=")) {
			fprintf(stderr, "lemongatectl: flows: --%.*s needs a value without blanks\n",
				(int)nlen, name);
			return -1;
		}
		/* the daemon spells idle-over as idle_over: keys stay identifiers on the wire */
		w = snprintf(req + used, size - used, " %.*s=%s", (int)nlen, name, value);
		if (w < 0 || (size_t)w >= size - used) {
			fprintf(stderr, "lemongatectl: flows: too many filters\n");
			return -1;
		}
		for (char *p = req + used + 1; *p != '='; p++)
			if (*p == '-')
				*p = '_';
	}
	return 0;
}

static void print_flow_detail(const struct lg_reply *r)
{
	for (size_t i = 0; i < r->count; i++)
		for (size_t k = 0; k < r->records[i].count; k++)
			printf("%-18s %s\n", r->records[i].fields[k].key, r->records[i].fields[k].value);
}

static void print_records_text(const struct lg_reply *r)
{
	for (size_t i = 0; i < r->count; i++) {
		const struct lg_record *rec = &r->records[i];
		const char *name = lg_record_get(rec, "name"), *value = lg_record_get(rec, "value");

		if (strcmp(rec->kind, "stat") == 0 && name && value) {
			printf("%-32s %s\n", name, value);
			continue;
		}
		printf("%s", rec->kind);
		for (size_t k = 0; k < rec->count; k++)
			printf(" %s=%s", rec->fields[k].key, rec->fields[k].value);
		printf("\n");
	}
}

static void print_stats_json(const struct lg_reply *r)
{
	bool first = true;

	printf("{\n  \"counters\": {");
	for (size_t i = 0; i < r->count; i++) {
		const struct lg_record *rec = &r->records[i];
		const char *name = lg_record_get(rec, "name"), *value = lg_record_get(rec, "value");

		if (strcmp(rec->kind, "stat") != 0 || !name || !value)
			continue;
		printf(first ? "\n    " : ",\n    ");
		first = false;
		lg_json_string(name, stdout);
		printf(": %s", value);
	}
	printf("\n  },\n  \"icmp\": ");
	lg_render_json_array(r, "icmp", stdout);
	printf(",\n  \"queues\": ");
	lg_render_json_array(r, "queue", stdout);
	printf("}\n");
}

static int policy_check(const char *file, bool json)
{
	struct lg_policy pol;
	struct lg_diags d;
	int rc = lg_policy_load(file, &pol, &d);

	if (json) {
		printf("{\"file\": ");
		lg_json_string(file, stdout);
		printf(", \"ok\": %s, \"diagnostics\": [", rc == 0 ? "true" : "false");
		for (size_t i = 0; i < d.count; i++) {
			printf(i ? ", {" : "{");
			printf("\"line\": %u, \"col\": %u, \"level\": \"%s\", \"message\": ", d.items[i].line,
			       d.items[i].col, d.items[i].level == LG_DIAG_ERROR ? "error" : "warning");
			lg_json_string(d.items[i].msg, stdout);
			printf("}");
		}
		printf("]}\n");
	} else {
		lg_diags_print(&d, stderr);
		if (rc == 0) {
			lg_policy_summary(&pol, stdout);
			printf("%s: configuration ok\n", file);
		}
	}
	return rc == 0 ? EXIT_OK : EXIT_CONFIG;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char sock[LG_PATH_MAX];
	const char *sock_flag = NULL;
	struct lg_reply reply;
	bool json = false;
	int ch, rc;
	const char *cmd;

	while ((ch = getopt_long(argc, argv, "+s:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': sock_flag = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	/* --json may also follow the command, as in "flows --json" */
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof(char *));
			argc--;
			i--;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (sock_flag)
		snprintf(sock, sizeof(sock), "%s", sock_flag);
	else if (lg_control_default_path(sock, sizeof(sock)) < 0) {
		fprintf(stderr, "lemongatectl: cannot work out the socket path; use -s SOCKET\n");
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;

	if (strcmp(cmd, "socket") == 0 && argc == 1) {
		printf("%s\n", sock);
		return EXIT_OK;
	}
	if (strcmp(cmd, "policy") == 0 && argc == 3 && strcmp(argv[1], "check") == 0)
		return policy_check(argv[2], json);
	if (strcmp(cmd, "policy") == 0 && (argc == 2 || argc == 3) && strcmp(argv[1], "reload") == 0) {
		if (argc == 3 && strcmp(argv[2], "--reevaluate") != 0) {
			fprintf(stderr, "lemongatectl: policy reload: unexpected '%s' (--reevaluate)\n",
				argv[2]);
			return EXIT_USAGE;
		}
		if ((rc = fetch(sock, argc == 3 ? "policy reload reevaluate" : "policy reload", &reply)) !=
		    EXIT_OK)
			return rc;
		if (json)
			lg_render_json_array(&reply, "reload", stdout);
		else
			print_records_text(&reply);
		lg_reply_free(&reply);
		return EXIT_OK;
	}
	if (strcmp(cmd, "clock") == 0 && argc == 3 && strcmp(argv[1], "advance") == 0) {
		char req[128];
		uint64_t secs;

		if (lg_duration_parse(argv[2], &secs) < 0) {
			fprintf(stderr, "lemongatectl: '%s' is not a duration (like 2h3m)\n", argv[2]);
			return EXIT_USAGE;
		}
		snprintf(req, sizeof(req), "clock advance %llus", (unsigned long long)secs);
		if ((rc = fetch(sock, req, &reply)) != EXIT_OK)
			return rc;
		if (json)
			lg_render_json_array(&reply, "clock", stdout);
		else
			print_records_text(&reply);
		lg_reply_free(&reply);
		return EXIT_OK;
	}
	if (strcmp(cmd, "flows") == 0) {
		char req[1000];

		if (flows_request(argc, argv, req, sizeof(req)) < 0)
			return EXIT_USAGE;
		if ((rc = fetch(sock, req, &reply)) != EXIT_OK)
			return rc;
		if (json)
			lg_render_json_array(&reply, "flow", stdout);
		else
			lg_render_flows_text(&reply, stdout);
		lg_reply_free(&reply);
		return EXIT_OK;
	}
	if (strcmp(cmd, "flow") == 0 && argc == 2) {
		char req[64];

		if (strlen(argv[1]) > 20 || strspn(argv[1], "0123456789") != strlen(argv[1])) {
			fprintf(stderr, "lemongatectl: flow ID: '%s' is not a flow id\n", argv[1]);
			return EXIT_USAGE;
		}
		snprintf(req, sizeof(req), "flow %s", argv[1]);
		if ((rc = fetch(sock, req, &reply)) != EXIT_OK)
			return rc;
		if (json)
			lg_render_json_array(&reply, "flow", stdout);
		else
			print_flow_detail(&reply);
		lg_reply_free(&reply);
		return EXIT_OK;
	}
	if (strcmp(cmd, "mappings") == 0 && argc == 1) {
		if ((rc = fetch(sock, "mappings", &reply)) != EXIT_OK)
			return rc;
		if (json)
			lg_render_json_array(&reply, "mapping", stdout);
		else
			lg_render_mappings_text(&reply, stdout);
		lg_reply_free(&reply);
		return EXIT_OK;
	}
	if (strcmp(cmd, "policy") == 0 && argc == 2 && strcmp(argv[1], "show") == 0) {
		if ((rc = fetch(sock, "policy show", &reply)) != EXIT_OK)
			return rc;
		if (json)
			lg_render_policy_json(&reply, stdout);
		else
			lg_render_policy_text(&reply, stdout);
		lg_reply_free(&reply);
		return EXIT_OK;
	}
	if (strcmp(cmd, "flush") == 0 && (argc == 1 || (argc == 2 && strcmp(argv[1], "--yes") == 0)))
		return flush(sock, argc == 2, json);
	if (strcmp(cmd, "stats") == 0 && argc == 3 && strcmp(argv[1], "--watch") == 0)
		return watch_stats(sock, argv[2]);
	if (argc != 1 || (strcmp(cmd, "stats") != 0 && strcmp(cmd, "ping") != 0)) {
		fprintf(stderr, "lemongatectl: unknown command or wrong arguments: %s\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((rc = fetch(sock, cmd, &reply)) != EXIT_OK)
		return rc;
	if (strcmp(cmd, "stats") == 0) {
		if (json)
			print_stats_json(&reply);
		else
			print_records_text(&reply);
	} else {
		if (json)
			lg_render_json_array(&reply, "daemon", stdout);
		else
			print_records_text(&reply);
	}
	lg_reply_free(&reply);
	return EXIT_OK;
}
