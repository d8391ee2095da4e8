/* The configuration language: one statement per line, words separated by blanks,
 * '#' starts a comment, "double quotes" group a word. The grammar is in README.md. */
#include "policy/policy.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LG_MAX_WORDS     40
#define LG_MAX_WORD_LEN  256
#define LG_MAX_FILE_SIZE (1u << 20)

struct word {
	char text[LG_MAX_WORD_LEN];
	unsigned col;
};

struct stmt {
	struct word w[LG_MAX_WORDS];
	size_t n;
	unsigned line;
};

/* Line on which each single-valued setting was given; 0 = not given. */
struct seen {
	unsigned inside_if, outside_if, nat_public, nat_ports, nat_filtering, nat_unsolicited, nat_quota;
	unsigned nat_port_rest, nat_refusal, nat_port_state;
	unsigned queue, max_flows, overload, mail_ports;
	unsigned timeout_est, timeout_trans, timeout_query, control_socket, control_group, max_flows6;
	unsigned log_level, log_mappings;
	unsigned observe[LG_MAIL_SERVICES], observe_sessions, offload;
};

static void diag_add(struct lg_diags *d, enum lg_diag_level level, unsigned line,
		     unsigned col, const char *fmt, ...)
{
	va_list ap;
	struct lg_diag *item;

	if (level == LG_DIAG_ERROR)
		d->errors++;
	else
		d->warnings++;
	if (d->count >= LG_MAX_DIAGS) {
		d->dropped++;
		return;
	}
	item = &d->items[d->count++];
	item->level = level;
	item->line = line;
	item->col = col;
	va_start(ap, fmt);
	vsnprintf(item->msg, sizeof(item->msg), fmt, ap);
	va_end(ap);
}

#define ERR(d, line, col, ...) diag_add(d, LG_DIAG_ERROR, line, col, __VA_ARGS__)

/* Split one line into words. Returns 0, or -1 after reporting a lexical error. */
static int lex_line(const char *s, size_t len, unsigned line, struct stmt *st,
		    struct lg_diags *d)
{
	size_t i = 0;

	st->n = 0;
	st->line = line;
	while (i < len) {
		struct word *w;
		size_t wl = 0;
		unsigned col;

		while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
			i++;
		if (i >= len || s[i] == '#')
			break;
		col = (unsigned)i + 1;
		if (st->n >= LG_MAX_WORDS) {
			ERR(d, line, col, "too many words in one statement (at most %d)", LG_MAX_WORDS);
			return -1;
		}
		w = &st->w[st->n];
		w->col = col;
		if (s[i] == '"') {
			i++;
			while (i < len && s[i] != '"') {
				if ((unsigned char)s[i] < 0x20) {
					ERR(d, line, (unsigned)i + 1, "control character in quoted string");
					return -1;
				}
				if (wl + 1 >= LG_MAX_WORD_LEN) {
					ERR(d, line, col, "word longer than %d characters", LG_MAX_WORD_LEN - 1);
					return -1;
				}
				w->text[wl++] = s[i++];
			}
			if (i >= len) {
				ERR(d, line, col, "unterminated quoted string");
				return -1;
			}
			i++;
		} else {
			while (i < len && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '#') {
				if ((unsigned char)s[i] < 0x20 || s[i] == '"') {
					ERR(d, line, (unsigned)i + 1, "unexpected character 0x%02x",
					    (unsigned char)s[i]);
					return -1;
				}
				if (wl + 1 >= LG_MAX_WORD_LEN) {
					ERR(d, line, col, "word longer than %d characters", LG_MAX_WORD_LEN - 1);
					return -1;
				}
				w->text[wl++] = s[i++];
			}
		}
		w->text[wl] = '\0';
		st->n++;
	}
	return 0;
}

static bool expect_args(const struct stmt *st, size_t want, const char *usage, struct lg_diags *d)
{
	if (st->n == want)
		return true;
	if (st->n < want)
		ERR(d, st->line, st->w[st->n - 1].col, "missing argument; expected: %s", usage);
	else
		ERR(d, st->line, st->w[want].col, "unexpected '%s'; expected: %s",
		    st->w[want].text, usage);
	return false;
}

static bool once(unsigned *seen_line, const struct stmt *st, const char *what, struct lg_diags *d)
{
	if (*seen_line) {
		ERR(d, st->line, st->w[0].col, "'%s' given twice (first on line %u)", what, *seen_line);
		return false;
	}
	*seen_line = st->line;
	return true;
}

static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= LG_IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == ':' || (unsigned char)s[i] <= ' ')
			return false;
	return true;
}

static void do_interface(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
			 struct lg_diags *d)
{
	const char *usage = "interface inside|outside NAME";
	char *dst;

	if (!expect_args(st, 3, usage, d))
		return;
	if (strcmp(st->w[1].text, "inside") == 0) {
		if (!once(&seen->inside_if, st, "interface inside", d))
			return;
		dst = pol->inside_if;
	} else if (strcmp(st->w[1].text, "outside") == 0) {
		if (!once(&seen->outside_if, st, "interface outside", d))
			return;
		dst = pol->outside_if;
	} else {
		ERR(d, st->line, st->w[1].col, "expected 'inside' or 'outside', got '%s'", st->w[1].text);
		return;
	}
	if (!valid_ifname(st->w[2].text)) {
		ERR(d, st->line, st->w[2].col, "'%s' is not a valid interface name", st->w[2].text);
		return;
	}
	strcpy(dst, st->w[2].text);
}

static void do_nat(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		   struct lg_diags *d)
{
	const char *what = st->n > 1 ? st->w[1].text : "";

	if (st->n < 3) {
		ERR(d, st->line, st->w[st->n - 1].col,
		    "missing argument; expected: nat inside PREFIX... | nat public ADDR... | nat ports LO-HI"
		    " | nat quota N | nat filtering MODE | nat unsolicited-syn icmp|silent"
		    " | nat port-rest DURATION | nat refusal host-unreachable|admin-prohibited|silent");
		return;
	}
	if (strcmp(what, "inside") == 0) {
		for (size_t i = 2; i < st->n; i++) {
			struct lg_prefix4 p;

			if (lg_prefix4_parse(st->w[i].text, &p) < 0) {
				ERR(d, st->line, st->w[i].col,
				    "'%s' is not an IPv4 prefix (like 10.77.0.0/24, host bits zero)",
				    st->w[i].text);
				continue;
			}
			if (pol->nat_inside_count >= LG_MAX_PREFIXES) {
				ERR(d, st->line, st->w[i].col, "too many inside prefixes (at most %d)",
				    LG_MAX_PREFIXES);
				return;
			}
			pol->nat_inside[pol->nat_inside_count++] = p;
		}
	} else if (strcmp(what, "public") == 0) {
		if (!once(&seen->nat_public, st, "nat public", d))
			return;
		for (size_t i = 2; i < st->n; i++) {
			uint32_t a;

			if (lg_addr4_parse(st->w[i].text, &a) < 0 || a == 0) {
				ERR(d, st->line, st->w[i].col, "'%s' is not an IPv4 address", st->w[i].text);
				continue;
			}
			for (size_t k = 0; k < pol->nat_pool_count; k++)
				if (pol->nat_pool[k] == a) {
					ERR(d, st->line, st->w[i].col, "public address '%s' given twice",
					    st->w[i].text);
					a = 0;
				}
			if (!a)
				continue;
			if (pol->nat_pool_count >= LG_MAX_PUBLIC) {
				ERR(d, st->line, st->w[i].col, "too many public addresses (at most %d)",
				    LG_MAX_PUBLIC);
				return;
			}
			pol->nat_pool[pol->nat_pool_count++] = a;
		}
		pol->nat_public = pol->nat_pool_count ? pol->nat_pool[0] : 0;
	} else if (strcmp(what, "ports") == 0) {
		const char *text = st->w[2].text, *dash = strchr(text, '-');
		char lo_text[8];
		unsigned long lo, hi;

		if (!expect_args(st, 3, "nat ports LO-HI", d) ||
		    !once(&seen->nat_ports, st, "nat ports", d))
			return;
		if (!dash || (size_t)(dash - text) >= sizeof(lo_text)) {
			ERR(d, st->line, st->w[2].col, "expected a port range LO-HI, got '%s'", text);
			return;
		}
		memcpy(lo_text, text, (size_t)(dash - text));
		lo_text[dash - text] = '\0';
		if (lg_uint_parse(lo_text, 1024, 65535, &lo) < 0 ||
		    lg_uint_parse(dash + 1, 1024, 65535, &hi) < 0 || lo > hi) {
			ERR(d, st->line, st->w[2].col,
			    "port range '%s' must be LO-HI with 1024 <= LO <= HI <= 65535", text);
			return;
		}
		pol->port_lo = (uint16_t)lo;
		pol->port_hi = (uint16_t)hi;
	} else if (strcmp(what, "filtering") == 0) {
		if (!expect_args(st, 3, "nat filtering endpoint-independent|address-dependent", d) ||
		    !once(&seen->nat_filtering, st, "nat filtering", d))
			return;
		if (strcmp(st->w[2].text, "endpoint-independent") == 0)
			pol->filtering = LG_FILTER_ENDPOINT_INDEPENDENT;
		else if (strcmp(st->w[2].text, "address-dependent") == 0)
			pol->filtering = LG_FILTER_ADDRESS_DEPENDENT;
		else
			ERR(d, st->line, st->w[2].col,
			    "filtering '%s' is not endpoint-independent or address-dependent (RFC 5382 "
			    "REQ-3 recommends one of these two; N5382-R3)", st->w[2].text);
	} else if (strcmp(what, "quota") == 0) {
		unsigned long n;

		if (!expect_args(st, 3, "nat quota N", d) || !once(&seen->nat_quota, st, "nat quota", d))
			return;
		if (lg_uint_parse(st->w[2].text, 1, 65535, &n) < 0) {
			ERR(d, st->line, st->w[2].col, "quota '%s' must be 1..65535 ports per inside host",
			    st->w[2].text);
			return;
		}
		pol->host_quota = (uint32_t)n;
	} else if (strcmp(what, "port-rest") == 0) {
		uint64_t secs;

		if (!expect_args(st, 3, "nat port-rest DURATION", d) ||
		    !once(&seen->nat_port_rest, st, "nat port-rest", d))
			return;
		if (lg_duration_parse(st->w[2].text, &secs) < 0 || secs > 86400) {
			ERR(d, st->line, st->w[2].col,
			    "port-rest '%s' must be a duration up to 1d (RFC 6888 REQ-8, C6888-R8)",
			    st->w[2].text);
			return;
		}
		pol->port_rest = (uint32_t)secs;
	} else if (strcmp(what, "unsolicited-syn") == 0) {
		if (!expect_args(st, 3, "nat unsolicited-syn icmp|silent", d) ||
		    !once(&seen->nat_unsolicited, st, "nat unsolicited-syn", d))
			return;
		if (strcmp(st->w[2].text, "icmp") == 0)
			pol->unsolicited_syn = LG_UNSOLICITED_ICMP;
		else if (strcmp(st->w[2].text, "silent") == 0)
			pol->unsolicited_syn = LG_UNSOLICITED_SILENT;
		else
			ERR(d, st->line, st->w[2].col,
			    "unsolicited-syn '%s' is not icmp or silent (N5382-R4, R4a)", st->w[2].text);
	} else if (strcmp(what, "port-state") == 0) {
		const char *path = st->w[2].text;

		if (!expect_args(st, 3, "nat port-state PATH|none", d) ||
		    !once(&seen->nat_port_state, st, "nat port-state", d))
			return;
		if (strcmp(path, "none") == 0) {
			pol->port_state_off = true;
			diag_add(d, LG_DIAG_WARNING, st->line, st->w[2].col,
				 "without a port ledger, ports in use when the daemon stops or crashes "
				 "may be given to new flows at once after a restart (C6888-R8)");
		} else if (path[0] != '/' || strlen(path) >= LG_PATH_MAX || strpbrk(path, " \t")) {
			ERR(d, st->line, st->w[2].col,
			    "port-state '%s' must be an absolute path shorter than %d bytes without "
			    "blanks, or none", path, LG_PATH_MAX);
		} else {
			memcpy(pol->port_state, path, strlen(path) + 1); /* length checked above */
		}
	} else if (strcmp(what, "refusal") == 0) {
		if (!expect_args(st, 3, "nat refusal host-unreachable|admin-prohibited|silent", d) ||
		    !once(&seen->nat_refusal, st, "nat refusal", d))
			return;
		if (strcmp(st->w[2].text, "host-unreachable") == 0)
			pol->refusal = LG_REFUSAL_HOST_UNREACHABLE;
		else if (strcmp(st->w[2].text, "admin-prohibited") == 0)
			pol->refusal = LG_REFUSAL_ADMIN_PROHIBITED;
		else if (strcmp(st->w[2].text, "silent") == 0)
			pol->refusal = LG_REFUSAL_SILENT;
		else
			ERR(d, st->line, st->w[2].col,
			    "refusal '%s' is not host-unreachable (ICMP 3/1, RFC 6888 REQ-11), "
			    "admin-prohibited (3/13, RFC 5508 REQ-8) or silent (I5508-R8, C6888-R11)",
			    st->w[2].text);
	} else {
		ERR(d, st->line, st->w[1].col,
		    "unknown nat setting '%s' (inside, public, ports, quota, filtering, unsolicited-syn, "
		    "port-rest, port-state, refusal)",
		    what);
	}
}

/* timeout port PORT DURATION: a longer established timer for one service (never shorter). */
static void do_port_timeout(const struct stmt *st, struct lg_policy *pol, struct lg_diags *d)
{
	unsigned long port;
	uint64_t secs;

	if (!expect_args(st, 4, "timeout port PORT DURATION", d))
		return;
	if (lg_uint_parse(st->w[2].text, 1, 65535, &port) < 0) {
		ERR(d, st->line, st->w[2].col, "port '%s' must be 1..65535", st->w[2].text);
		return;
	}
	for (size_t i = 0; i < pol->port_timeout_count; i++)
		if (pol->port_timeouts[i].port == port) {
			ERR(d, st->line, st->w[2].col, "timeout for port %lu given twice", port);
			return;
		}
	if (pol->port_timeout_count == LG_MAX_PORT_TIMEOUTS) {
		ERR(d, st->line, st->w[0].col, "more than %d per-port timeouts", LG_MAX_PORT_TIMEOUTS);
		return;
	}
	if (lg_duration_parse(st->w[3].text, &secs) < 0 || secs > UINT32_MAX) {
		ERR(d, st->line, st->w[3].col, "'%s' is not a duration (like 2h4m, 300s)", st->w[3].text);
		return;
	}
	if (secs < LG_EST_IDLE_FLOOR) {
		ERR(d, st->line, st->w[3].col,
		    "established idle timeout %s for port %lu is below 2h4m (7440 s), which RFC 5382 "
		    "REQ-5 and RFC 5383 section 7 forbid (N5382-R5, L5383-7); only longer ones may be "
		    "set per service", st->w[3].text, port);
		return;
	}
	pol->port_timeouts[pol->port_timeout_count++] =
		(struct lg_port_timeout){ .port = (uint16_t)port, .secs = (uint32_t)secs };
}

/* RFC 5508 REQ-2: an ICMP query session lasts at least 60 s idle. */
static void do_query_timeout(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
			     struct lg_diags *d)
{
	uint64_t secs;

	if (!once(&seen->timeout_query, st, "timeout icmp-query", d))
		return;
	if (lg_duration_parse(st->w[2].text, &secs) < 0 || secs > LG_QUERY_IDLE_MAX) {
		ERR(d, st->line, st->w[2].col, "'%s' is not a duration up to 1d", st->w[2].text);
		return;
	}
	if (secs < LG_QUERY_IDLE_FLOOR) {
		ERR(d, st->line, st->w[2].col,
		    "ICMP query timeout %s is below 60 s, which RFC 5508 REQ-2 forbids (I5508-R2)",
		    st->w[2].text);
		return;
	}
	pol->timeout_query = (uint32_t)secs;
}

static void do_timeout(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		       struct lg_diags *d)
{
	uint64_t secs;
	bool est;

	if (st->n >= 2 && strcmp(st->w[1].text, "port") == 0) {
		do_port_timeout(st, pol, d);
		return;
	}
	if (!expect_args(st, 3, "timeout established|transitory|icmp-query DURATION", d))
		return;
	if (strcmp(st->w[1].text, "icmp-query") == 0) {
		do_query_timeout(st, pol, seen, d);
		return;
	}
	if (strcmp(st->w[1].text, "established") == 0)
		est = true;
	else if (strcmp(st->w[1].text, "transitory") == 0)
		est = false;
	else {
		ERR(d, st->line, st->w[1].col,
		    "unknown timeout '%s' (established, transitory, icmp-query, port); RFC 5383 "
		    "section 4.1 (L5383-4.1a) forbids duration or age limits", st->w[1].text);
		return;
	}
	if (!once(est ? &seen->timeout_est : &seen->timeout_trans, st,
		  est ? "timeout established" : "timeout transitory", d))
		return;
	if (lg_duration_parse(st->w[2].text, &secs) < 0 || secs > UINT32_MAX) {
		ERR(d, st->line, st->w[2].col, "'%s' is not a duration (like 2h4m, 300s)", st->w[2].text);
		return;
	}
	if (est && secs < LG_EST_IDLE_FLOOR) {
		ERR(d, st->line, st->w[2].col,
		    "established idle timeout %s is below 2h4m (7440 s), which RFC 5382 REQ-5 and "
		    "RFC 5383 section 7 forbid (N5382-R5, L5383-7)", st->w[2].text);
		return;
	}
	if (!est && secs < LG_TRANS_IDLE_FLOOR) {
		ERR(d, st->line, st->w[2].col,
		    "transitory idle timeout %s is below 4m (240 s), which RFC 5382 REQ-5 forbids "
		    "(N5382-R5)", st->w[2].text);
		return;
	}
	if (est)
		pol->timeout_established = (uint32_t)secs;
	else
		pol->timeout_transitory = (uint32_t)secs;
}

/* queue NUM [count N] [length L] [failure open|closed], the options in any order */
static void do_queue(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		     struct lg_diags *d)
{
	unsigned long first, count = 1, length = pol->queue_length;
	bool fail_open = pol->queue_fail_open;

	if (st->n < 2 || st->n % 2 != 0) {
		ERR(d, st->line, st->w[0].col,
		    "expected: queue NUM [count N] [length L] [failure open|closed]");
		return;
	}
	if (!once(&seen->queue, st, "queue", d))
		return;
	if (lg_uint_parse(st->w[1].text, 0, 65535, &first) < 0) {
		ERR(d, st->line, st->w[1].col, "queue number '%s' must be 0..65535", st->w[1].text);
		return;
	}
	for (size_t i = 2; i + 1 < st->n; i += 2) {
		const struct word *key = &st->w[i], *val = &st->w[i + 1];

		if (strcmp(key->text, "count") == 0) {
			if (lg_uint_parse(val->text, 1, LG_MAX_QUEUES, &count) < 0) {
				ERR(d, st->line, val->col, "queue count '%s' must be 1..%d", val->text,
				    LG_MAX_QUEUES);
				return;
			}
		} else if (strcmp(key->text, "length") == 0) {
			if (lg_uint_parse(val->text, LG_QUEUE_LENGTH_MIN, LG_QUEUE_LENGTH_MAX,
					  &length) < 0) {
				ERR(d, st->line, val->col, "queue length '%s' must be %u..%u", val->text,
				    LG_QUEUE_LENGTH_MIN, LG_QUEUE_LENGTH_MAX);
				return;
			}
		} else if (strcmp(key->text, "failure") == 0) {
			if (strcmp(val->text, "open") == 0)
				fail_open = true;
			else if (strcmp(val->text, "closed") == 0)
				fail_open = false;
			else {
				ERR(d, st->line, val->col, "queue failure '%s': expected open or closed",
				    val->text);
				return;
			}
		} else {
			ERR(d, st->line, key->col, "expected 'count', 'length' or 'failure', got '%s'",
			    key->text);
			return;
		}
	}
	if (first + count > 65536) {
		ERR(d, st->line, st->w[1].col, "queues %lu..%lu run past 65535", first,
		    first + count - 1);
		return;
	}
	pol->queue_first = (uint16_t)first;
	pol->queue_count = (uint16_t)count;
	pol->queue_length = (uint32_t)length;
	pol->queue_fail_open = fail_open;
}

static void do_max_flows(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
			 struct lg_diags *d)
{
	unsigned long n;

	if (!expect_args(st, 2, "max-flows N", d) || !once(&seen->max_flows, st, "max-flows", d))
		return;
	if (lg_uint_parse(st->w[1].text, 16, LG_MAX_FLOWS, &n) < 0) {
		ERR(d, st->line, st->w[1].col, "max-flows '%s' must be 16..%u", st->w[1].text,
		    LG_MAX_FLOWS);
		return;
	}
	pol->max_flows = (uint32_t)n;
}

static void do_overload(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
			struct lg_diags *d)
{
	if (!expect_args(st, 2, "overload evict|drop-new", d) ||
	    !once(&seen->overload, st, "overload", d))
		return;
	if (strcmp(st->w[1].text, "evict") == 0)
		pol->overload = LG_OVERLOAD_EVICT;
	else if (strcmp(st->w[1].text, "drop-new") == 0)
		pol->overload = LG_OVERLOAD_DROP_NEW;
	else
		ERR(d, st->line, st->w[1].col, "overload '%s': expected evict or drop-new",
		    st->w[1].text);
}

static void do_mail(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		    struct lg_diags *d)
{
	if (st->n < 3 || strcmp(st->w[1].text, "ports") != 0) {
		ERR(d, st->line, st->w[0].col, "expected: mail ports PORT...");
		return;
	}
	if (!once(&seen->mail_ports, st, "mail ports", d))
		return;
	if (st->n - 2 > LG_MAX_MAIL_PORTS) {
		ERR(d, st->line, st->w[2 + LG_MAX_MAIL_PORTS].col, "more than %d mail ports",
		    LG_MAX_MAIL_PORTS);
		return;
	}
	pol->mail_port_count = 0;
	for (size_t i = 2; i < st->n; i++) {
		unsigned long port;

		if (lg_uint_parse(st->w[i].text, 1, 65535, &port) < 0) {
			ERR(d, st->line, st->w[i].col, "mail port '%s' must be 1..65535", st->w[i].text);
			continue;
		}
		pol->mail_ports[pol->mail_port_count++] = (uint16_t)port;
	}
}

static void do_control(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		       struct lg_diags *d)
{
	if (!expect_args(st, 3, "control socket PATH | control group NAME", d))
		return;
	if (strcmp(st->w[1].text, "group") == 0) {
		struct group gr, *found = NULL;
		char buf[4096];

		if (!once(&seen->control_group, st, "control group", d))
			return;
		if (strlen(st->w[2].text) >= sizeof(pol->control_group) ||
		    getgrnam_r(st->w[2].text, &gr, buf, sizeof(buf), &found) != 0 || !found) {
			ERR(d, st->line, st->w[2].col, "no group '%s' on this system", st->w[2].text);
			return;
		}
		strcpy(pol->control_group, st->w[2].text);
		pol->control_gid = (uint32_t)gr.gr_gid;
		return;
	}
	if (strcmp(st->w[1].text, "socket") != 0) {
		ERR(d, st->line, st->w[1].col, "expected 'socket' or 'group', got '%s'", st->w[1].text);
		return;
	}
	if (!once(&seen->control_socket, st, "control socket", d))
		return;
	if (st->w[2].text[0] != '/' || strlen(st->w[2].text) >= LG_PATH_MAX ||
	    strpbrk(st->w[2].text, " \t")) {
		ERR(d, st->line, st->w[2].col,
		    "control socket must be an absolute path under %d bytes, without blanks", LG_PATH_MAX);
		return;
	}
	strcpy(pol->control_socket, st->w[2].text);
}

/* ipv6 inside PREFIX... | ipv6 max-flows N */
static void do_ipv6(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		    struct lg_diags *d)
{
	const char *what = st->n > 1 ? st->w[1].text : "";

	if (st->n < 3) {
		ERR(d, st->line, st->w[st->n - 1].col,
		    "missing argument; expected: ipv6 inside PREFIX... | ipv6 max-flows N");
		return;
	}
	if (strcmp(what, "inside") == 0) {
		for (size_t i = 2; i < st->n; i++) {
			struct lg_prefix6 p;

			if (lg_prefix6_parse(st->w[i].text, &p) < 0) {
				ERR(d, st->line, st->w[i].col,
				    "'%s' is not an IPv6 prefix (like 2001:db8:77::/64, host bits zero)",
				    st->w[i].text);
				continue;
			}
			if (pol->inside6_count >= LG_MAX_PREFIXES) {
				ERR(d, st->line, st->w[i].col, "too many ipv6 inside prefixes (at most %d)",
				    LG_MAX_PREFIXES);
				return;
			}
			pol->inside6[pol->inside6_count++] = p;
		}
	} else if (strcmp(what, "max-flows") == 0) {
		unsigned long n;

		if (!expect_args(st, 3, "ipv6 max-flows N", d) ||
		    !once(&seen->max_flows6, st, "ipv6 max-flows", d))
			return;
		if (lg_uint_parse(st->w[2].text, 1, LG_MAX_FLOWS, &n) < 0) {
			ERR(d, st->line, st->w[2].col, "ipv6 max-flows '%s' must be 1..%u",
			    st->w[2].text, LG_MAX_FLOWS);
			return;
		}
		pol->max_flows6 = (uint32_t)n;
	} else {
		ERR(d, st->line, st->w[1].col, "unknown ipv6 setting '%s' (inside, max-flows)", what);
	}
}

/* One list argument starting at word *I: a word ("143" or "143,587") or a brace group
 * ("{ 143 587 }", braces may touch the items). ITEM gets each; *I ends past the list. */
static bool list_items(const struct stmt *st, size_t *i,
		       bool (*item)(const char *text, unsigned col, void *arg, struct lg_diags *d),
		       void *arg, struct lg_diags *d)
{
	bool braced = st->w[*i].text[0] == '{', closed = !braced, first = true;
	unsigned open_col = st->w[*i].col;

	do {
		char piece[LG_MAX_WORD_LEN], *save = NULL, *tok;
		const struct word *w = &st->w[*i];
		size_t len;

		snprintf(piece, sizeof(piece), "%s", w->text + (first && braced ? 1 : 0));
		first = false;
		len = strlen(piece);
		if (braced && len && piece[len - 1] == '}') {
			piece[--len] = '\0';
			closed = true;
		}
		for (tok = strtok_r(piece, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			if (!item(tok, w->col, arg, d))
				return false;
		(*i)++;
	} while (!closed && *i < st->n);
	if (!closed) {
		ERR(d, st->line, open_col, "'{' without its '}'");
		return false;
	}
	return true;
}

struct addr_list {
	struct lg_addrmatch *items;
	uint8_t *count;
	unsigned line;
};

static bool addr_item(const char *text, unsigned col, void *arg, struct lg_diags *d)
{
	struct addr_list *l = arg;
	struct lg_prefix4 p4;
	struct lg_prefix6 p6;
	struct lg_addrmatch m;

	memset(&m, 0, sizeof(m));
	if (strcmp(text, "any") == 0)
		return true; /* matches everything: the list stays as it is */
	if (lg_prefix4_parse(text, &p4) == 0) {
		m.family = 4;
		m.len = p4.len;
		memcpy(m.addr, &p4.addr, 4);
	} else if (lg_prefix6_parse(text, &p6) == 0) {
		m.family = 6;
		m.len = p6.len;
		memcpy(m.addr, p6.addr, 16);
	} else {
		ERR(d, l->line, col, "'%s' is not an address or prefix (IPv4 or IPv6, host bits zero)",
		    text);
		return false;
	}
	if (*l->count >= LG_MAX_RULE_ITEMS) {
		ERR(d, l->line, col, "too many addresses in one list (at most %d)", LG_MAX_RULE_ITEMS);
		return false;
	}
	l->items[(*l->count)++] = m;
	return true;
}

struct port_list {
	struct lg_rule *r;
	unsigned line;
};

static bool port_item(const char *text, unsigned col, void *arg, struct lg_diags *d)
{
	struct port_list *l = arg;
	const char *dash = strchr(text, '-');
	char lo_text[8];
	unsigned long lo, hi;

	if (dash && (size_t)(dash - text) < sizeof(lo_text)) {
		memcpy(lo_text, text, (size_t)(dash - text));
		lo_text[dash - text] = '\0';
		if (lg_uint_parse(lo_text, 1, 65535, &lo) < 0 || lg_uint_parse(dash + 1, 1, 65535, &hi) < 0 ||
		    lo > hi)
			goto bad;
	} else if (dash || lg_uint_parse(text, 1, 65535, &lo) < 0) {
		goto bad;
	} else {
		hi = lo;
	}
	if (l->r->port_count >= LG_MAX_RULE_ITEMS) {
		ERR(d, l->line, col, "too many ports in one list (at most %d)", LG_MAX_RULE_ITEMS);
		return false;
	}
	l->r->port_lo[l->r->port_count] = (uint16_t)lo;
	l->r->port_hi[l->r->port_count++] = (uint16_t)hi;
	return true;
bad:
	ERR(d, l->line, col, "'%s' is not a port (1..65535) or a range LO-HI", text);
	return false;
}

/* Is outbound TCP to PORT from anywhere to anywhere passed by a rule before INDEX? */
static bool passed_before(const struct lg_policy *pol, size_t index, uint16_t port)
{
	for (size_t i = 0; i < index; i++) {
		const struct lg_rule *r = &pol->rules[i];
		bool port_in = r->port_count == 0;

		for (uint8_t k = 0; k < r->port_count; k++)
			port_in |= port >= r->port_lo[k] && port <= r->port_hi[k];
		if (r->dir == LG_RULE_OUT && r->proto != LG_RULE_ICMP && port_in && !r->from_count &&
		    !r->to_count)
			return r->action == LG_RULE_PASS;
	}
	return false;
}

/* RFC 5383 section 3: IMAP and Submission must stay reachable from inside. */
static void warn_mail_blocked(const struct lg_policy *pol, size_t index, const struct stmt *st,
			      struct lg_diags *d)
{
	static const struct {
		uint16_t port;
		const char *name;
	} mail[] = { { 143, "IMAP" }, { 587, "Submission" } };
	const struct lg_rule *r = &pol->rules[index];

	if (r->action == LG_RULE_PASS || r->dir != LG_RULE_OUT || r->proto == LG_RULE_ICMP)
		return;
	for (size_t m = 0; m < sizeof(mail) / sizeof(mail[0]); m++) {
		bool port_in = r->port_count == 0;

		for (uint8_t k = 0; k < r->port_count; k++)
			port_in |= mail[m].port >= r->port_lo[k] && mail[m].port <= r->port_hi[k];
		if (port_in && !passed_before(pol, index, mail[m].port))
			diag_add(d, LG_DIAG_WARNING, st->line, st->w[0].col,
				 "this rule blocks outbound TCP to port %u (%s)%s; RFC 5383 section 3 "
				 "requires it reachable from inside (L5383-3)",
				 mail[m].port, mail[m].name,
				 r->from_count || r->to_count ? " for some hosts" : "");
	}
}

/* log level error|warning|info|debug | log mappings on|off */
static void do_log(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		   struct lg_diags *d)
{
	static const char *const levels[] = { "error", "warning", "info", "debug" };

	if (!expect_args(st, 3, "log level error|warning|info|debug | log mappings on|off", d))
		return;
	if (strcmp(st->w[1].text, "level") == 0) {
		if (!once(&seen->log_level, st, "log level", d))
			return;
		for (uint8_t i = 0; i < 4; i++)
			if (strcmp(st->w[2].text, levels[i]) == 0) {
				pol->log_level = i;
				return;
			}
		ERR(d, st->line, st->w[2].col, "log level '%s' is not error, warning, info or debug",
		    st->w[2].text);
	} else if (strcmp(st->w[1].text, "mappings") == 0) {
		if (!once(&seen->log_mappings, st, "log mappings", d))
			return;
		if (strcmp(st->w[2].text, "on") == 0) {
			pol->log_mappings_off = false;
		} else if (strcmp(st->w[2].text, "off") == 0) {
			pol->log_mappings_off = true;
			diag_add(d, LG_DIAG_WARNING, st->line, st->w[2].col,
				 "without the mapping log, abuse from a public address and port cannot be "
				 "traced to an inside host (RFC 6888 REQ-12, C6888-LOG)");
		} else {
			ERR(d, st->line, st->w[2].col, "log mappings '%s' is not on or off", st->w[2].text);
		}
	} else {
		ERR(d, st->line, st->w[1].col, "unknown log setting '%s' (level, mappings)",
		    st->w[1].text);
	}
}

/* pass|block [return] in|out [proto tcp|icmp|any] [from LIST] [to LIST] [port LIST] */
static void do_rule(const struct stmt *st, struct lg_policy *pol, struct lg_diags *d)
{
	static const char usage[] =
		"pass|block [return] in|out [proto tcp|icmp|any] [from ADDRS] [to ADDRS] [port PORTS]";
	struct lg_rule r;
	size_t i = 1;
	bool seen_proto = false, seen_from = false, seen_to = false, seen_port = false;

	memset(&r, 0, sizeof(r));
	r.line = st->line;
	r.action = strcmp(st->w[0].text, "pass") == 0 ? LG_RULE_PASS : LG_RULE_BLOCK;
	if (r.action == LG_RULE_BLOCK && i < st->n && strcmp(st->w[i].text, "return") == 0) {
		r.action = LG_RULE_BLOCK_RETURN;
		i++;
	}
	if (i >= st->n || (strcmp(st->w[i].text, "in") != 0 && strcmp(st->w[i].text, "out") != 0)) {
		ERR(d, st->line, i < st->n ? st->w[i].col : st->w[st->n - 1].col,
		    "expected 'in' or 'out'; usage: %s", usage);
		return;
	}
	r.dir = strcmp(st->w[i++].text, "in") == 0 ? LG_RULE_IN : LG_RULE_OUT;
	while (i < st->n) {
		const struct word *key = &st->w[i++];
		bool *seen = strcmp(key->text, "proto") == 0 ? &seen_proto
			     : strcmp(key->text, "from") == 0 ? &seen_from
			     : strcmp(key->text, "to") == 0	  ? &seen_to
			     : strcmp(key->text, "port") == 0 ? &seen_port
							      : NULL;

		if (!seen) {
			ERR(d, st->line, key->col, "unexpected '%s'; usage: %s", key->text, usage);
			return;
		}
		if (*seen) {
			ERR(d, st->line, key->col, "'%s' given twice in one rule", key->text);
			return;
		}
		*seen = true;
		if (i >= st->n) {
			ERR(d, st->line, key->col, "'%s' needs a value; usage: %s", key->text, usage);
			return;
		}
		if (strcmp(key->text, "proto") == 0) {
			const char *v = st->w[i].text;

			if (strcmp(v, "tcp") == 0)
				r.proto = LG_RULE_TCP;
			else if (strcmp(v, "icmp") == 0)
				r.proto = LG_RULE_ICMP;
			else if (strcmp(v, "any") == 0)
				r.proto = LG_RULE_ANY;
			else {
				ERR(d, st->line, st->w[i].col, "protocol '%s' is not tcp, icmp or any", v);
				return;
			}
			i++;
		} else if (strcmp(key->text, "port") == 0) {
			struct port_list l = { &r, st->line };

			if (!list_items(st, &i, port_item, &l, d))
				return;
		} else {
			bool from = strcmp(key->text, "from") == 0;
			struct addr_list l = { from ? r.from : r.to, from ? &r.from_count : &r.to_count,
					       st->line };

			if (!list_items(st, &i, addr_item, &l, d))
				return;
		}
	}
	if (seen_port && r.proto == LG_RULE_ICMP) {
		ERR(d, st->line, st->w[0].col, "ICMP has no ports: drop 'port' or use proto tcp");
		return;
	}
	if (pol->rule_count >= LG_MAX_RULES) {
		ERR(d, st->line, st->w[0].col, "too many rules (at most %d)", LG_MAX_RULES);
		return;
	}
	pol->rules[pol->rule_count] = r;
	warn_mail_blocked(pol, pol->rule_count, st, d);
	pol->rule_count++;
}

struct observed_list {
	struct lg_policy *pol;
	uint8_t service;
	unsigned line;
};

static bool observed_item(const char *text, unsigned col, void *arg, struct lg_diags *d)
{
	struct observed_list *l = arg;
	struct lg_policy *pol = l->pol;
	unsigned long port;

	if (lg_uint_parse(text, 1, 65535, &port) < 0) {
		ERR(d, l->line, col, "port '%s' must be 1..65535", text);
		return false;
	}
	for (size_t i = 0; i < pol->observed_count; i++)
		if (pol->observed[i].port == port && pol->observed[i].service == l->service) {
			ERR(d, l->line, col, "port %lu given twice", port);
			return false;
		}
	if (pol->observed_count >= LG_MAX_OBSERVED_PORTS) {
		ERR(d, l->line, col, "more than %d observed ports in all", LG_MAX_OBSERVED_PORTS);
		return false;
	}
	pol->observed[pol->observed_count].port = (uint16_t)port;
	pol->observed[pol->observed_count++].service = l->service;
	return true;
}

/* observe SERVICE ports LIST|none: the server ports of a mail service, in place of its
 * well-known one. observe sessions N: how many mail sessions are followed at once. */
static void do_observe(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		       struct lg_diags *d)
{
	enum lg_mail_service svc = LG_MAIL_NONE;
	size_t i = 3, kept = 0;

	if (st->n >= 2 && strcmp(st->w[1].text, "sessions") == 0) {
		unsigned long n;

		if (!expect_args(st, 3, "observe sessions N", d) ||
		    !once(&seen->observe_sessions, st, "observe sessions", d))
			return;
		if (lg_uint_parse(st->w[2].text, 0, LG_MAX_OBSERVED, &n) < 0) {
			ERR(d, st->line, st->w[2].col,
			    "observe sessions '%s' must be 0 (observe nothing)..%u", st->w[2].text,
			    LG_MAX_OBSERVED);
			return;
		}
		pol->observe_sessions = (uint32_t)n;
		return;
	}
	for (enum lg_mail_service m = LG_MAIL_IMAP; m < LG_MAIL_SERVICES && st->n >= 2; m++)
		if (strcmp(st->w[1].text, lg_mail_service_name(m)) == 0)
			svc = m;
	if (st->n < 4 || svc == LG_MAIL_NONE || strcmp(st->w[2].text, "ports") != 0) {
		ERR(d, st->line, st->w[st->n >= 2 && svc == LG_MAIL_NONE ? 1 : 0].col,
		    "expected: observe imap|submission|smtp|imaps|submissions|sieve ports PORT...|none, "
		    "or observe sessions N");
		return;
	}
	if (!once(&seen->observe[svc], st, "this service's observed ports", d))
		return;
	/* the statement replaces the service's well-known port */
	for (size_t k = 0; k < pol->observed_count; k++)
		if (pol->observed[k].service != svc)
			pol->observed[kept++] = pol->observed[k];
	pol->observed_count = kept;
	if (st->n == 4 && strcmp(st->w[3].text, "none") == 0)
		return;
	{
		struct observed_list l = { pol, (uint8_t)svc, st->line };

		while (i < st->n)
			if (!list_items(st, &i, observed_item, &l, d))
				return;
	}
}

/* offload after N | offload off: when an established flow's translation goes to the kernel. */
static void do_offload(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		       struct lg_diags *d)
{
	unsigned long n;

	if (!once(&seen->offload, st, "offload", d))
		return;
	if (st->n == 2 && strcmp(st->w[1].text, "off") == 0) {
		pol->offload_after = 0;
		return;
	}
	if (st->n != 3 || strcmp(st->w[1].text, "after") != 0) {
		ERR(d, st->line, st->w[st->n >= 2 ? 1 : 0].col, "expected: offload after N, or offload off");
		return;
	}
	if (lg_uint_parse(st->w[2].text, 1, UINT32_MAX, &n) < 0) {
		ERR(d, st->line, st->w[2].col, "offload after '%s': packets, 1..%u", st->w[2].text,
		    UINT32_MAX);
		return;
	}
	pol->offload_after = (uint32_t)n;
}

static void statement(const struct stmt *st, struct lg_policy *pol, struct seen *seen,
		      struct lg_diags *d)
{
	const char *kw = st->w[0].text;

	if (strcmp(kw, "interface") == 0)
		do_interface(st, pol, seen, d);
	else if (strcmp(kw, "nat") == 0)
		do_nat(st, pol, seen, d);
	else if (strcmp(kw, "timeout") == 0)
		do_timeout(st, pol, seen, d);
	else if (strcmp(kw, "queue") == 0)
		do_queue(st, pol, seen, d);
	else if (strcmp(kw, "max-flows") == 0)
		do_max_flows(st, pol, seen, d);
	else if (strcmp(kw, "overload") == 0)
		do_overload(st, pol, seen, d);
	else if (strcmp(kw, "mail") == 0)
		do_mail(st, pol, seen, d);
	else if (strcmp(kw, "observe") == 0)
		do_observe(st, pol, seen, d);
	else if (strcmp(kw, "offload") == 0)
		do_offload(st, pol, seen, d);
	else if (strcmp(kw, "control") == 0)
		do_control(st, pol, seen, d);
	else if (strcmp(kw, "ipv6") == 0)
		do_ipv6(st, pol, seen, d);
	else if (strcmp(kw, "pass") == 0 || strcmp(kw, "block") == 0)
		do_rule(st, pol, d);
	else if (strcmp(kw, "log") == 0)
		do_log(st, pol, seen, d);
	else if (strcmp(kw, "alg") == 0 || strcmp(kw, "inspect") == 0 || strcmp(kw, "rewrite") == 0 ||
		 strcmp(kw, "strip") == 0 || strcmp(kw, "proxy") == 0 || strcmp(kw, "fixup") == 0)
		ERR(d, st->line, st->w[0].col,
		    "'%s' is refused: lemongate passes IMAP and SMTP byte for byte and never "
		    "rewrites payload (N5382-R6, L5383-6a)",
		    kw);
	else if (strcmp(kw, "max-age") == 0 || strcmp(kw, "lifetime") == 0 ||
		 strcmp(kw, "max-duration") == 0 || strcmp(kw, "session-limit") == 0)
		ERR(d, st->line, st->w[0].col,
		    "'%s' is refused: no flow is ever ended for its age or duration (RFC 5383 section "
		    "4.1, L5383-4.1a)", kw);
	else
		ERR(d, st->line, st->w[0].col, "unknown statement '%s'", kw);
}

static void validate(struct lg_policy *pol, const struct seen *seen, unsigned eof_line,
		     struct lg_diags *d)
{
	if (!seen->inside_if)
		ERR(d, eof_line, 1, "missing 'interface inside NAME'");
	if (!seen->outside_if)
		ERR(d, eof_line, 1, "missing 'interface outside NAME'");
	if (seen->inside_if && seen->outside_if && strcmp(pol->inside_if, pol->outside_if) == 0)
		ERR(d, seen->outside_if, 1, "inside and outside interface are both '%s'", pol->inside_if);
	if (pol->nat_inside_count == 0)
		ERR(d, eof_line, 1, "missing 'nat inside PREFIX'");
	if (!seen->nat_public)
		ERR(d, eof_line, 1, "missing 'nat public ADDR'");
	for (size_t i = 0; i < pol->nat_pool_count; i++)
		if (lg_policy_is_inside(pol, pol->nat_pool[i]))
			ERR(d, seen->nat_public, 1, "a public address lies inside a 'nat inside' prefix");
	/* a port carries one protocol: the observer must know which one to follow */
	for (size_t i = 0; i < pol->observed_count; i++)
		for (size_t k = i + 1; k < pol->observed_count; k++) {
			const struct lg_observed_port *a = &pol->observed[i], *b = &pol->observed[k];
			unsigned line = seen->observe[b->service] ? seen->observe[b->service]
								  : seen->observe[a->service];

			if (a->port != b->port)
				continue;
			ERR(d, line, 1,
			    "port %u observed as both %s and %s", a->port,
			    lg_mail_service_name((enum lg_mail_service)a->service),
			    lg_mail_service_name((enum lg_mail_service)b->service));
		}
}

int lg_policy_parse(const char *name, const char *text, size_t len, struct lg_policy *pol,
		    struct lg_diags *d)
{
	struct stmt *st;
	struct seen seen = { 0 };
	unsigned line = 0;
	size_t pos = 0;

	memset(d, 0, sizeof(*d));
	snprintf(d->file, sizeof(d->file), "%s", name);
	lg_policy_defaults(pol);
	st = malloc(sizeof(*st));
	if (!st) {
		ERR(d, 0, 0, "out of memory");
		return -1;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - (text + pos)) : len - pos;

		line++;
		if (memchr(text + pos, '\0', line_len)) {
			ERR(d, line, 1, "NUL byte in configuration");
		} else if (lex_line(text + pos, line_len, line, st, d) == 0 && st->n > 0) {
			statement(st, pol, &seen, d);
		}
		pos += line_len + (nl ? 1 : 0);
	}
	free(st);
	validate(pol, &seen, line + (line == 0), d);
	return d->errors ? -1 : 0;
}

int lg_policy_load(const char *path, struct lg_policy *pol, struct lg_diags *d)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;
	int rc;

	if (!f) {
		int e = errno;

		memset(d, 0, sizeof(*d));
		snprintf(d->file, sizeof(d->file), "%s", path);
		ERR(d, 0, 0, "cannot open: %s", strerror(e));
		return -1;
	}
	buf = malloc(LG_MAX_FILE_SIZE + 1);
	if (!buf) {
		fclose(f);
		memset(d, 0, sizeof(*d));
		snprintf(d->file, sizeof(d->file), "%s", path);
		ERR(d, 0, 0, "out of memory");
		return -1;
	}
	n = fread(buf, 1, LG_MAX_FILE_SIZE + 1, f);
	if (ferror(f) || n > LG_MAX_FILE_SIZE) {
		bool too_big = !ferror(f);

		fclose(f);
		free(buf);
		memset(d, 0, sizeof(*d));
		snprintf(d->file, sizeof(d->file), "%s", path);
		ERR(d, 0, 0, too_big ? "file larger than 1 MiB" : "read error");
		return -1;
	}
	fclose(f);
	rc = lg_policy_parse(path, buf, n, pol, d);
	free(buf);
	return rc;
}
