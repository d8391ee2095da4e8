/* lemongate policy: the operator's configuration, its parser and its validator.
 * Linked by lemongated (to run) and by lemongatectl (to check files). */
#ifndef LG_POLICY_H
#define LG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LG_IFNAME_MAX     16
#define LG_PATH_MAX       108 /* sun_path */
#define LG_MAX_PREFIXES   32
#define LG_MAX_PUBLIC     16
#define LG_MAX_DIAGS      64
#define LG_MAX_QUEUES     16
#define LG_MAX_MAIL_PORTS 16
#define LG_MAX_OBSERVED_PORTS 32
#define LG_MAX_OBSERVED 262143u /* mail sessions observed at once: the observer's handle space */
#define LG_DEFAULT_OFFLOAD_AFTER 32
#define LG_DEFAULT_OBSERVED 16384u
#define LG_MAX_PORT_TIMEOUTS 15
#define LG_MAX_FLOWS      16000000u
#define LG_QUEUE_LENGTH_MIN 64u
#define LG_QUEUE_LENGTH_MAX 1048576u

/* Floors that RFC 5382 REQ-5 and RFC 5383 section 7 put on idle timers, in seconds. */
#define LG_EST_IDLE_FLOOR   7440u /* 2h4m */
#define LG_TRANS_IDLE_FLOOR 240u  /* 4m */
/* RFC 5508 REQ-2: ICMP query (echo) sessions, at least 60 s idle. */
#define LG_QUERY_IDLE_FLOOR 60u
#define LG_QUERY_IDLE_MAX   86400u

struct lg_prefix4 {
	uint32_t addr; /* network byte order, host bits zero */
	uint8_t len;
};

struct lg_prefix6 {
	uint8_t addr[16]; /* host bits zero */
	uint8_t len;
};

/* Firewall rules: evaluated for each new flow (and new echo session), first match decides, no
 * match passes. The packets of a flow a rule let in are not looked at again (stateful). */
#define LG_MAX_RULES      128
#define LG_MAX_RULE_ITEMS 8

enum lg_rule_action { LG_RULE_PASS, LG_RULE_BLOCK, LG_RULE_BLOCK_RETURN };
enum lg_rule_dir { LG_RULE_OUT, LG_RULE_IN };
enum lg_rule_proto { LG_RULE_ANY, LG_RULE_TCP, LG_RULE_ICMP };

/* An address or prefix of either family. */
struct lg_addrmatch {
	uint8_t family; /* 4 or 6 */
	uint8_t len;
	uint8_t addr[16]; /* IPv4: the first 4 bytes, network order */
};

struct lg_rule {
	enum lg_rule_action action;
	enum lg_rule_dir dir;
	enum lg_rule_proto proto;
	/* empty lists match anything */
	struct lg_addrmatch from[LG_MAX_RULE_ITEMS], to[LG_MAX_RULE_ITEMS];
	uint16_t port_lo[LG_MAX_RULE_ITEMS], port_hi[LG_MAX_RULE_ITEMS]; /* host order */
	uint8_t from_count, to_count, port_count;
	unsigned line;
};

/* RFC 4787 section 5 / RFC 5382 section 4.3: which inbound packets a mapping admits. */
enum lg_filtering {
	LG_FILTER_ENDPOINT_INDEPENDENT = 0, /* any remote endpoint (the default: transparency) */
	LG_FILTER_ADDRESS_DEPENDENT,        /* only remote addresses the mapping has sent to */
};

/* What to do about an unsolicited inbound SYN once it has been held 6 s (RFC 5382 REQ-4). */
enum lg_unsolicited {
	LG_UNSOLICITED_ICMP = 0, /* ICMP port unreachable (3/3), the RFC's SHOULD */
	LG_UNSOLICITED_SILENT,   /* drop silently (REQ-4a: when policy forbids answering) */
};

/* How a new outbound flow that cannot be had (no port, quota, full table) is refused. RFC 5508
 * REQ-8 asks for 3/13; RFC 6888 REQ-11 prefers 3/1 for carrier-grade NATs (I5508-R8, C6888-R11). */
enum lg_refusal {
	LG_REFUSAL_HOST_UNREACHABLE = 0, /* ICMP 3/1, the default (CGN) */
	LG_REFUSAL_ADMIN_PROHIBITED,     /* ICMP 3/13 */
	LG_REFUSAL_SILENT,               /* dropped, no answer */
};

/* What a full flow table does with a new flow. */
enum lg_overload {
	LG_OVERLOAD_EVICT = 0, /* evict: transitory flows, then the longest idle, mail flows last */
	LG_OVERLOAD_DROP_NEW,  /* evict transitory flows only; never an established one */
};

/* The mail services observed passively (issue 8), told apart by the server's port. */
enum lg_mail_service {
	LG_MAIL_NONE,
	LG_MAIL_IMAP,
	LG_MAIL_SUBMISSION,
	LG_MAIL_SMTP,
	LG_MAIL_IMAPS,
	LG_MAIL_SUBMISSIONS,
	LG_MAIL_SIEVE,
	LG_MAIL_SERVICES
};

struct lg_observed_port {
	uint16_t port;   /* host order */
	uint8_t service; /* enum lg_mail_service */
};

/* A longer established idle timer for flows to one remote port (a service). */
struct lg_port_timeout {
	uint16_t port; /* host order */
	uint32_t secs;
};

struct lg_policy {
	char inside_if[LG_IFNAME_MAX];
	char outside_if[LG_IFNAME_MAX];
	struct lg_prefix4 nat_inside[LG_MAX_PREFIXES];
	size_t nat_inside_count;
	uint32_t nat_public; /* network byte order: the first public address; 0 = unset */
	uint32_t nat_pool[LG_MAX_PUBLIC]; /* every public address, nat_pool[0] == nat_public */
	size_t nat_pool_count;            /* 0: nat_public alone */
	uint16_t port_lo, port_hi;
	uint32_t host_quota; /* mappings (public ports) per inside address, RFC 6888 REQ-4 */
	uint32_t port_rest;  /* seconds a released public port rests before reuse, REQ-8 */
	char port_state[LG_PATH_MAX]; /* the port ledger (REQ-8 across restarts); empty: default */
	bool port_state_off;          /* 'nat port-state none' */
	enum lg_filtering filtering;
	enum lg_unsolicited unsolicited_syn;
	enum lg_refusal refusal;
	uint16_t queue_first, queue_count;
	uint32_t queue_length; /* packets the kernel holds for each queue before it drops */
	bool queue_fail_open;  /* a full queue or a dead daemon passes packets untouched */
	uint32_t max_flows;
	enum lg_overload overload;
	uint16_t mail_ports[LG_MAX_MAIL_PORTS]; /* host order: flows to these are evicted last */
	size_t mail_port_count;
	struct lg_observed_port observed[LG_MAX_OBSERVED_PORTS]; /* server ports of mail services */
	size_t observed_count;
	uint32_t observe_sessions; /* mail sessions observed at once, at most; 0: none */
	uint32_t offload_after; /* packets an established flow carries before the kernel
				 * translates it (dataplane/knat.h); 0: never */
	uint32_t timeout_established; /* seconds */
	uint32_t timeout_transitory;  /* seconds */
	uint32_t timeout_query;       /* seconds: ICMP echo sessions */
	struct lg_port_timeout port_timeouts[LG_MAX_PORT_TIMEOUTS];
	size_t port_timeout_count;
	char control_socket[LG_PATH_MAX]; /* empty: the per-netns default */
	char control_group[32];           /* may read (flows, stats...); empty: root only */
	uint8_t log_level;                /* 0 error, 1 warning, 2 info (default), 3 debug */
	bool log_mappings_off;            /* 'log mappings off' (RFC 6888 REQ-12 asks for them) */
	uint32_t control_gid;
	/* IPv6: stateful filtering of TCP, without translation, for these inside prefixes */
	struct lg_prefix6 inside6[LG_MAX_PREFIXES];
	size_t inside6_count;
	uint32_t max_flows6;
	struct lg_rule rules[LG_MAX_RULES];
	size_t rule_count;
};

/* What the rules say about a new flow or echo session. OUT: FROM is the inside host, TO the
 * remote, PORT the remote port. IN: FROM is the remote, TO the inside host (its own address,
 * after translation), PORT the inside port. Addresses of FAMILY 4 (4 bytes, network order) or
 * 6 (16 bytes); PORT in host order, ignored for ICMP. *LINE: the deciding rule's, 0 if none. */
struct lg_flow_desc {
	enum lg_rule_dir dir;
	enum lg_rule_proto proto; /* LG_RULE_TCP or LG_RULE_ICMP */
	uint8_t family;
	const uint8_t *from, *to;
	uint16_t port;
};
/* A rule as the configuration would write it: "block return out proto tcp to {...} port 25". */
void lg_rule_format(const struct lg_rule *r, char *buf, size_t size);
enum lg_rule_action lg_policy_rules_verdict(const struct lg_policy *pol, const struct lg_flow_desc *d,
					    unsigned *line);

enum lg_diag_level { LG_DIAG_ERROR, LG_DIAG_WARNING };

struct lg_diag {
	enum lg_diag_level level;
	unsigned line, col;
	char msg[160];
};

struct lg_diags {
	char file[256];
	struct lg_diag items[LG_MAX_DIAGS];
	size_t count;
	size_t errors, warnings;
	size_t dropped; /* diagnostics beyond LG_MAX_DIAGS */
};

void lg_policy_defaults(struct lg_policy *pol);
/* The per-service timer for remote port PORT (network order): its index + 1, or 0. */
unsigned lg_policy_port_timeout(const struct lg_policy *pol, uint16_t port_be);
/* The mail service whose server listens on PORT (host order), or LG_MAIL_NONE. */
enum lg_mail_service lg_policy_mail_service(const struct lg_policy *pol, uint16_t port);
/* The well-known port of mail service S: 143, 587, 25, 993, 465, 4190; 0 for LG_MAIL_NONE. */
uint16_t lg_mail_default_port(enum lg_mail_service s);
/* "imap", "submission", "smtp", "imaps", "submissions", "sieve"; "none" for anything else. */
const char *lg_mail_service_name(enum lg_mail_service s);
/* Is PORT (network order) one of the policy's mail ports? */
bool lg_policy_is_mail_port(const struct lg_policy *pol, uint16_t port_be);

/* Parse a configuration held in memory. NAME is used in diagnostics.
 * Returns 0 when the result is valid (warnings allowed), -1 on any error;
 * POL is then unspecified and must not be used. */
int lg_policy_parse(const char *name, const char *text, size_t len,
		    struct lg_policy *pol, struct lg_diags *diags);

/* Read and parse PATH. Same return convention; an unreadable file is an error
 * reported in DIAGS at line 0. */
int lg_policy_load(const char *path, struct lg_policy *pol, struct lg_diags *diags);

/* Print every diagnostic as "FILE:LINE:COL: error|warning: message". */
void lg_diags_print(const struct lg_diags *diags, FILE *out);

/* Print a human summary of the effective policy. */
void lg_policy_summary(const struct lg_policy *pol, FILE *out);

/* Settings a running daemon cannot take from a reload (interfaces, addresses and ports the
 * steering rules and existing mappings are built on, table sizes, queues, paths): the names
 * of those that differ between OLD and NEW, comma-separated, into BUF. Returns how many. */
size_t lg_policy_fixed_changes(const struct lg_policy *old, const struct lg_policy *new_pol,
			       char *buf, size_t size);

bool lg_policy_is_inside(const struct lg_policy *pol, uint32_t addr_be);
/* The public addresses: nat_pool, or nat_public alone. Returns how many (at least 1 once set). */
size_t lg_policy_public(const struct lg_policy *pol, const uint32_t **addrs);
bool lg_policy_is_inside6(const struct lg_policy *pol, const uint8_t addr[16]);

/* Durations: "90", "90s", "4m", "2h4m", "1d2h", "30d". Returns 0 or -1. */
int lg_duration_parse(const char *text, uint64_t *seconds);
/* Format seconds as the shortest "1d2h3m4s" form ("0s" for zero). */
void lg_duration_format(uint64_t seconds, char *buf, size_t size);

/* A decimal number LO..HI, digits only (no sign, blank or suffix). 0 or -1. */
int lg_uint_parse(const char *text, unsigned long lo, unsigned long hi, unsigned long *out);

/* "10.77.0.0/24" or "10.77.0.2" (a /32). Rejects set host bits. 0 or -1. */
int lg_prefix4_parse(const char *text, struct lg_prefix4 *out);
int lg_addr4_parse(const char *text, uint32_t *addr_be);
/* "2001:db8:77::/64" or an address (a /128). Rejects set host bits. 0 or -1. */
int lg_prefix6_parse(const char *text, struct lg_prefix6 *out);
bool lg_prefix6_contains(const struct lg_prefix6 *p, const uint8_t addr[16]);

/* The control socket's default path for the calling process's network namespace:
 * LG_CTL_DIR/lemongated.sock in the initial namespace, and
 * LG_CTL_DIR/lemongated-netns-INODE.sock in any other, so that a daemon in each namespace
 * (as in the testbed) has its own socket and lemongatectl run there finds it. 0 or -1. */
int lg_control_default_path(char *buf, size_t size);
/* The port ledger's default path, the same way: LG_CTL_DIR/lemongated[-netns-INODE].ports. */
int lg_port_state_default_path(char *buf, size_t size);

#endif
