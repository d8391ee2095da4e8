/* The packet path without its I/O: parse -> flow lookup -> state -> NAT -> verdict.
 * Fed by the NFQUEUE threads and by pcap replay; every function is safe to call from several
 * threads at once. A packet of a known flow takes no lock but that flow's own; making,
 * ending and evicting flows, mappings and timers take the engine's writer lock. A thread's
 * first call gives it a slot of its own (counters, reclamation); at most 63 threads hold one
 * at once, others share a slot under a lock. A thread that ends calls lg_engine_thread_done. */
#ifndef LG_ENGINE_H
#define LG_ENGINE_H

#include "dataplane/flowtab.h"
#include "dataplane/natmap.h"
#include "dataplane/observe.h"
#include "dataplane/packet.h"
#include "policy/policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lg_verdict { LG_VERDICT_ACCEPT, LG_VERDICT_DROP };

enum lg_drop_reason {
	LG_DROP_MALFORMED,    /* see malformed[] for the detail */
	LG_DROP_NO_FLOW_OUT,  /* outbound non-SYN without a flow */
	LG_DROP_UNSOLICITED,  /* inbound without a flow or a mapping that admits it */
	LG_DROP_FILTERED,     /* inbound SYN to a mapping, refused by address-dependent filtering */
	LG_DROP_ICMP_NO_FLOW, /* an ICMP error about no flow of ours (RFC 5508 REQ-4: silently) */
	LG_DROP_UNSUPPORTED,  /* ICMP queries other than echo, errors about other protocols */
	LG_DROP_TABLE_FULL,
	LG_DROP_NO_PORT,      /* no public port (or echo id) free */
	LG_DROP_QUOTA,        /* the inside host holds its quota of public ports */
	LG_DROP_INDEX_FULL,   /* the flow index has no room within its probe bound */
	LG_DROP_RULE,         /* a new flow or echo session a 'block' rule refuses */
	LG_DROP_REASON_COUNT
};

/* ICMP errors passed on, by family, type and code: the codes RFC 792, RFC 1812 and RFC 4443
 * define for the error types we translate, and one "other" bucket per family. */
#define LG_ICMP_KINDS 43
struct lg_icmp_kind {
	uint8_t family, type, code;
	bool other; /* any type or code not listed */
};
/* The kind of index I (0..LG_ICMP_KINDS-1), and the index of a message (never fails: the
 * family's "other" bucket takes what is not listed). */
struct lg_icmp_kind lg_icmp_kind_of(unsigned i);
unsigned lg_icmp_kind_index(uint8_t family, uint8_t type, uint8_t code);

struct lg_engine_stats {
	uint64_t packets_in, packets_out, bytes_in, bytes_out;
	uint64_t verdict_accept_packets, verdict_accept_bytes; /* every packet handed to us, */
	uint64_t verdict_drop_packets, verdict_drop_bytes;     /* by its verdict */
	uint64_t passed_untranslated; /* queued but neither from inside nor to our public address */
	uint64_t dropped[LG_DROP_REASON_COUNT];
	uint64_t malformed[LG_PKT_STATUS_COUNT];
	uint64_t flows_created, flows_expired;
	uint64_t evicted_transitory; /* table full: a flow opening or closing made room */
	uint64_t evicted_idle;       /* table full: the longest-idle flow not to a mail port */
	uint64_t evicted_mail;       /* table full, nothing else left: the longest-idle mail flow */
	uint64_t hairpinned;        /* inside-to-public-address packets turned back inside */
	uint64_t rst_out_of_window; /* passed on, but not believed: no state change, no refresh */
	uint64_t syn_held;          /* unsolicited inbound SYNs remembered for 6 s */
	uint64_t syn_hold_superseded; /* the inside opened the same connection within 6 s */
	uint64_t syn_hold_silent;   /* 6 s passed, policy says no answer */
	uint64_t syn_hold_overflow; /* forgotten unanswered: too many held at once */
	uint64_t icmp_port_unreachable_sent;
	uint64_t icmp_errors_in, icmp_errors_out; /* translated toward inside / outside */
	uint64_t icmp_errors_hairpinned;          /* inside to inside (RFC 5508 REQ-7) */
	uint64_t icmp_by_kind[LG_ICMP_KINDS];     /* all of the above, by type and code */
	uint64_t icmp_host_unreachable_sent;      /* 3/1 for a refused new flow (RFC 6888 REQ-11) */
	uint64_t icmp_admin_prohibited_sent;      /* 3/13 (or ICMPv6 1/1): policy, 'block return' */
	uint64_t flows_ended_by_rule;             /* reload --reevaluate */
	uint64_t inbound_refused_by_inside;       /* opened from outside, RST from inside: ended */
	uint64_t mail_sessions_observed;          /* mail flows given an observer */
	uint64_t mail_observer_pool_full;         /* mail flows left unobserved: pool full */
	uint64_t icmp_refusals_suppressed;        /* more refusals at once than we answer */
	uint64_t icmp_frag_needed;                /* of those, 3/4: path-MTU discovery */
	uint64_t icmp_echo_out, icmp_echo_in;     /* echo requests and replies translated */
	uint64_t echo_sessions_expired;
	uint64_t flows_offloaded;   /* translations handed to the kernel (lg_knat) */
	uint64_t offloads_refused;  /* the kernel would not take one: we kept translating */
	uint64_t packets_kernel_nat; /* passed with their headers left for the kernel to translate */
	uint64_t flows_active, flows_capacity, mappings_active, echo_sessions_active;
	uint64_t flows6_active, flows6_capacity; /* IPv6 flows, in a table of their own */
	uint64_t table_bytes; /* allocated at start for CAPACITY flows, indexes included */
};

/* A copy of one flow for the control socket. */
struct lg_flow_view {
	struct lg_flow flow;
	uint32_t pub_addr;
	uint8_t family; /* 4, or 6: the addresses are in6 and rem6, and public is inside */
	uint8_t in6[16], rem6[16];
	bool observed;  /* a mail session: OBS says what was seen of it */
	struct lg_obs_view obs;
	uint8_t service; /* enum lg_mail_service: what the server's port carries, by the policy */
	uint64_t idle_s, age_s, expires_in_s, timeout_s;
};

struct lg_engine;

/* SEED: 0 for a random hash key and port sequence, else reproducible (see flowtab.h). */
struct lg_engine *lg_engine_create(const struct lg_policy *pol, uint64_t seed);
void lg_engine_destroy(struct lg_engine *e);

/* Decide on one IPv4 or IPv6 packet of CAPLEN bytes at BUF, rewriting it in place.
 * *LEN_OUT is the length to hand back when *MODIFIED is set. */
enum lg_verdict lg_engine_packet(struct lg_engine *e, uint8_t *buf, size_t caplen,
				 uint64_t now_ns, bool *modified, size_t *len_out);
/* The same for a packet the kernel will translate itself (it carries one of our conntrack
 * entries, lg_knat): judged and tracked as any other, its headers left alone. */
enum lg_verdict lg_engine_packet_knat(struct lg_engine *e, uint8_t *buf, size_t caplen,
				      uint64_t now_ns, bool kernel_nat, bool *modified,
				      size_t *len_out);

/* An ICMP error of ours, ready to send: an IPv4 packet, headers included, to ADDR4; or an
 * ICMPv6 message to ADDR6 for a raw ICMPv6 socket (the kernel adds the IPv6 header, picks the
 * source address and fills in the checksum). */
struct lg_icmp_dest {
	uint8_t family; /* 4 or 6 */
	uint32_t addr4; /* network byte order */
	uint8_t addr6[16];
};
typedef void lg_icmp_send_fn(const uint8_t *pkt, size_t len, const struct lg_icmp_dest *to,
			     void *arg);

/* Send the ICMP errors that are due: host unreachable (3/1) or administratively prohibited
 * (3/13), by policy, for new flows refused since the last call (RFC 6888 REQ-11, RFC 5508
 * REQ-8), and port unreachable (ICMP 3/3, ICMPv6 1/4) for unsolicited SYNs held 6 s by NOW_NS
 * unless the policy says silent. SEND gets each. Returns how many held SYNs fell due. */
size_t lg_engine_due(struct lg_engine *e, uint64_t now_ns, lg_icmp_send_fn *send, void *arg);

/* Remove flows idle past their deadline, a bounded batch at a time so that flow creation is
 * never held up for long, and recycle the records of removed flows. Returns how many. */
size_t lg_engine_expire(struct lg_engine *e, uint64_t now_ns);
/* Give up the calling thread's slot. */
void lg_engine_thread_done(struct lg_engine *e);

/* Call FN with a copy of every live flow until it returns false. A flow made or ended
 * meanwhile may or may not be seen; none is seen twice. */
void lg_engine_flows_each(struct lg_engine *e, uint64_t now_ns,
			  bool (*fn)(const struct lg_flow_view *v, void *arg), void *arg);
/* Snapshot flows into OUT (at most MAX); returns the number written. */
size_t lg_engine_flows(struct lg_engine *e, uint64_t now_ns, struct lg_flow_view *out, size_t max);

void lg_engine_stats(struct lg_engine *e, struct lg_engine_stats *out);

/* Report every mapping created and released (RFC 6888 section 4 logging: protocol, inside
 * and public endpoints, never the destination). FN runs under the writer lock. */
void lg_engine_set_mapping_log(struct lg_engine *e, lg_mapping_hook *fn, void *arg);
/* Kernel NAT offload (lg_knat): ON hands established flow F's translation to the kernel (0,
 * or a negative errno: refused), !ON takes it back. Called under the writer lock, so a flow
 * never ends while its offload is under way. Without a hook nothing is offloaded. */
typedef int lg_offload_hook(void *arg, bool on, const struct lg_flow *f);
void lg_engine_set_offload(struct lg_engine *e, lg_offload_hook *fn, void *arg);
/* "mapping create proto=tcp inside=A:P public=A:P" (or "release"): the stable log format. */
void lg_mapping_log_format(bool created, uint32_t in_addr, uint16_t in_port, uint32_t pub_addr,
			   uint16_t pub_port, char *buf, size_t size);
const char *lg_drop_reason_name(enum lg_drop_reason reason);

/* Mail sessions being observed, by service and phase. */
void lg_engine_mail_counts(struct lg_engine *e, uint64_t by_phase[LG_MAIL_SERVICES][LG_PHASE_COUNT]);

/* A NAT mapping or ICMP echo session, for lemongatectl mappings. */
struct lg_mapping_view {
	uint8_t proto;            /* LG_IPPROTO_TCP or LG_IPPROTO_ICMP */
	uint32_t in_addr, pub_addr; /* network byte order */
	uint16_t in_port, pub_port; /* network byte order; ICMP: the echo ids */
	uint32_t flows;           /* TCP: flows on it */
	uint64_t idle_s;          /* ICMP: seconds since the last echo */
};
/* Call FN for every mapping and echo session until it returns false. Main thread only. */
void lg_engine_mappings_each(struct lg_engine *e, uint64_t now_ns,
			     bool (*fn)(const struct lg_mapping_view *v, void *arg), void *arg);

/* End every flow, mapping and echo session (lemongatectl flush). Returns the flows ended;
 * *ECHOES, if given, gets the echo sessions ended. */
size_t lg_engine_flush(struct lg_engine *e, uint64_t now_ns, size_t *echoes);

/* The policy in force, for lemongatectl policy show. Valid until the next reload: the daemon's
 * main thread, which does the reloads, is the only caller. */
const struct lg_policy *lg_engine_policy(const struct lg_engine *e);

/* Live reload: NEW takes over at once, for new flows and for the timers, filtering and
 * answers of existing ones, whose per-port facts (mail port, service timer) are worked out
 * again; no flow, mapping or echo session is dropped. Settings a running engine cannot take
 * (lg_policy_fixed_changes) must be equal: -1 with their names in ERR otherwise, and nothing
 * changes. Call from one thread at a time (the daemon's main loop). */
int lg_engine_reload(struct lg_engine *e, const struct lg_policy *new_pol, char *err, size_t errlen);
/* End the flows the rules in force now refuse (reload --reevaluate); returns how many. */
size_t lg_engine_reevaluate(struct lg_engine *e, uint64_t now_ns);

/* Record public ports in LEDGER from now on (section I for the policy's public address I), and
 * rest those the previous run left (REST_LEFT, from lg_portledger_open, a section per address)
 * before any is drawn again (RFC 6888 REQ-8 across restarts). */
void lg_engine_set_port_ledger(struct lg_engine *e, struct lg_portledger *ledger,
			       const uint32_t *rest_left, uint64_t now_ns);

#endif
