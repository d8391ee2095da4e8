#include "dataplane/knat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

/* The conntrack entry outlives any idle time we keep a flow for: the kernel refreshes it to
 * its own established timeout on every packet, and we delete it when the flow ends. */
#define KNAT_CT_TIMEOUT 432000u
#define KNAT_BUF 1024
#define KNAT_MIN_HASH 1024u
#define KNAT_ANSWER_WAIT_S 1

struct lg_knat {
	pthread_mutex_t lock;
	struct mnl_socket *nl;
	uint32_t portid, seq;
	struct lg_knat_stats st;
};

static struct nlmsghdr *start(char *buf, uint16_t subsys, uint16_t cmd, uint16_t flags,
			      uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (uint16_t)((subsys << 8) | cmd);
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	nfg->version = subsys == NFNL_SUBSYS_IPSET ? IPSET_PROTOCOL : NFNETLINK_V0;
	nfg->res_id = 0;
	return nlh;
}

/* Send BUF's LEN bytes (one or more requests, sequence numbers FIRST..LAST) and collect
 * their acknowledgements: 0, or the first error as a negative errno. */
static int transact(struct lg_knat *k, const char *buf, size_t len, uint32_t first, uint32_t last)
{
	char reply[MNL_SOCKET_BUFFER_SIZE];
	int result = 0;

	if (mnl_socket_sendto(k->nl, buf, len) < 0)
		return -errno;
	for (uint32_t want = first; want <= last;) {
		ssize_t got = mnl_socket_recvfrom(k->nl, reply, sizeof(reply));
		int n = (int)got;

		if (got < 0)
			return result ? result : -errno;
		for (const struct nlmsghdr *nlh = (const struct nlmsghdr *)reply; mnl_nlmsg_ok(nlh, n);
		     nlh = mnl_nlmsg_next(nlh, &n)) {
			const struct nlmsgerr *e;

			if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq < first ||
			    nlh->nlmsg_seq > last)
				continue; /* a stale answer to an earlier, abandoned request */
			e = mnl_nlmsg_get_payload(nlh);
			if (e->error && !result)
				result = e->error;
			want = nlh->nlmsg_seq + 1;
		}
	}
	return result;
}

static void put_tuple(struct nlmsghdr *nlh, uint16_t type, uint32_t src, uint16_t sport,
		      uint32_t dst, uint16_t dport)
{
	struct nlattr *tuple = mnl_attr_nest_start(nlh, type), *ip, *proto;

	ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, src);
	mnl_attr_put_u32(nlh, CTA_IP_V4_DST, dst);
	mnl_attr_nest_end(nlh, ip);
	proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_TCP);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, sport);
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, dport);
	mnl_attr_nest_end(nlh, proto);
	mnl_attr_nest_end(nlh, tuple);
}

/* The entry conntrack would have made for F had its own NAT chosen our mapping: original
 * tuple inside -> remote, reply remote -> inside before translation (the kernel turns it
 * into remote -> public when it applies the source NAT), established, liberal about windows
 * (it never saw the handshake; our own tracking judges the segments). */
static int ct_create(struct lg_knat *k, const struct lg_knat_flow *f)
{
	char buf[KNAT_BUF];
	uint32_t seq = ++k->seq;
	struct nlmsghdr *nlh = start(buf, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW,
				     NLM_F_CREATE | NLM_F_EXCL, seq);
	struct nf_ct_tcp_flags liberal = { IP_CT_TCP_FLAG_BE_LIBERAL, IP_CT_TCP_FLAG_BE_LIBERAL };
	struct nlattr *nat, *proto, *info, *tcp;

	put_tuple(nlh, CTA_TUPLE_ORIG, f->in_addr, f->in_port, f->rem_addr, f->rem_port);
	put_tuple(nlh, CTA_TUPLE_REPLY, f->rem_addr, f->rem_port, f->in_addr, f->in_port);
	nat = mnl_attr_nest_start(nlh, CTA_NAT_SRC);
	mnl_attr_put_u32(nlh, CTA_NAT_V4_MINIP, f->pub_addr);
	mnl_attr_put_u32(nlh, CTA_NAT_V4_MAXIP, f->pub_addr);
	proto = mnl_attr_nest_start(nlh, CTA_NAT_PROTO);
	mnl_attr_put_u16(nlh, CTA_PROTONAT_PORT_MIN, f->pub_port);
	mnl_attr_put_u16(nlh, CTA_PROTONAT_PORT_MAX, f->pub_port);
	mnl_attr_nest_end(nlh, proto);
	mnl_attr_nest_end(nlh, nat);
	mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(KNAT_CT_TIMEOUT));
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(LG_KNAT_CTMARK));
	/* CONFIRMED: the kernel sets it on an entry made this way and refuses a change of it */
	mnl_attr_put_u32(nlh, CTA_STATUS, htonl(IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED));
	info = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
	tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
	mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, TCP_CONNTRACK_ESTABLISHED);
	mnl_attr_put(nlh, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, sizeof(liberal), &liberal);
	mnl_attr_put(nlh, CTA_PROTOINFO_TCP_FLAGS_REPLY, sizeof(liberal), &liberal);
	mnl_attr_nest_end(nlh, tcp);
	mnl_attr_nest_end(nlh, info);
	return transact(k, buf, nlh->nlmsg_len, seq, seq);
}

static int ct_delete(struct lg_knat *k, const struct lg_knat_flow *f)
{
	char buf[KNAT_BUF];
	uint32_t seq = ++k->seq;
	struct nlmsghdr *nlh = start(buf, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, 0, seq);

	put_tuple(nlh, CTA_TUPLE_ORIG, f->in_addr, f->in_port, f->rem_addr, f->rem_port);
	return transact(k, buf, nlh->nlmsg_len, seq, seq);
}

/* Every entry with our mark, left by an earlier run or by us. */
static int ct_flush_ours(struct lg_knat *k)
{
	char buf[KNAT_BUF];
	uint32_t seq = ++k->seq;
	struct nlmsghdr *nlh = start(buf, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, 0, seq);

	mnl_attr_put_u32(nlh, CTA_MARK, htonl(LG_KNAT_CTMARK));
	mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(0xffffffffu));
	return transact(k, buf, nlh->nlmsg_len, seq, seq);
}

static struct nlmsghdr *set_msg(char *buf, uint16_t cmd, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *nlh = start(buf, NFNL_SUBSYS_IPSET, cmd, flags, seq);

	mnl_attr_put_u8(nlh, IPSET_ATTR_PROTOCOL, IPSET_PROTOCOL);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, LG_KNAT_SET);
	return nlh;
}

/* ipset insists on the byte-order and nesting flags being set on what it parses. */
static void put_net32(struct nlmsghdr *nlh, uint16_t type, uint32_t v_net)
{
	mnl_attr_put_u32(nlh, type | NLA_F_NET_BYTEORDER, v_net);
}

static struct nlattr *nest(struct nlmsghdr *nlh, uint16_t type)
{
	return mnl_attr_nest_start(nlh, type | NLA_F_NESTED);
}

static void put_addr(struct nlmsghdr *nlh, uint16_t type, uint32_t addr)
{
	struct nlattr *ip = nest(nlh, type);

	put_net32(nlh, IPSET_ATTR_IPADDR_IPV4, addr);
	mnl_attr_nest_end(nlh, ip);
}

static int set_destroy(struct lg_knat *k)
{
	char buf[KNAT_BUF];
	uint32_t seq = ++k->seq;
	struct nlmsghdr *nlh = set_msg(buf, IPSET_CMD_DESTROY, 0, seq);

	return transact(k, buf, nlh->nlmsg_len, seq, seq);
}

/* hash:ip,port,ip, one element per direction of a flow: outbound (inside address, inside
 * port, remote address) matched as src,src,dst; inbound (public address, public port, remote
 * address) as dst,dst,src. The remote port is not in it: two flows from one inside endpoint
 * to one remote host share their elements, and a packet of the one not offloaded is then
 * tracked without our entry, so it goes unmarked and is translated here as before. */
static int set_create(struct lg_knat *k, uint32_t max_flows)
{
	char buf[KNAT_BUF];
	uint32_t seq = ++k->seq, elements = max_flows > UINT32_MAX / 2 ? UINT32_MAX : 2 * max_flows;
	struct nlmsghdr *nlh = set_msg(buf, IPSET_CMD_CREATE, NLM_F_CREATE | NLM_F_EXCL, seq);
	struct nlattr *data;

	mnl_attr_put_strz(nlh, IPSET_ATTR_TYPENAME, "hash:ip,port,ip");
	mnl_attr_put_u8(nlh, IPSET_ATTR_REVISION, 1);
	mnl_attr_put_u8(nlh, IPSET_ATTR_FAMILY, NFPROTO_IPV4);
	data = nest(nlh, IPSET_ATTR_DATA);
	put_net32(nlh, IPSET_ATTR_HASHSIZE, htonl(KNAT_MIN_HASH));
	put_net32(nlh, IPSET_ATTR_MAXELEM, htonl(elements));
	mnl_attr_nest_end(nlh, data);
	return transact(k, buf, nlh->nlmsg_len, seq, seq);
}

/* Both directions of F added to (CMD IPSET_CMD_ADD) or deleted from the set, in one send.
 * Without NLM_F_EXCL, adding what is there or deleting what is not is no error. */
static int set_flow(struct lg_knat *k, uint16_t cmd, const struct lg_knat_flow *f)
{
	char buf[2 * KNAT_BUF];
	size_t len = 0;
	uint32_t first = k->seq + 1;

	for (int dir = 0; dir < 2; dir++) {
		struct nlmsghdr *nlh = set_msg(buf + len, cmd, 0, ++k->seq);
		struct nlattr *data = nest(nlh, IPSET_ATTR_DATA);

		put_addr(nlh, IPSET_ATTR_IP, dir ? f->pub_addr : f->in_addr);
		mnl_attr_put_u16(nlh, IPSET_ATTR_PORT | NLA_F_NET_BYTEORDER,
				 dir ? f->pub_port : f->in_port);
		mnl_attr_put_u8(nlh, IPSET_ATTR_PROTO, IPPROTO_TCP);
		put_addr(nlh, IPSET_ATTR_IP2, f->rem_addr);
		mnl_attr_nest_end(nlh, data);
		len += MNL_ALIGN(nlh->nlmsg_len);
	}
	return transact(k, buf, len, first, k->seq);
}

/* ipset answers with errno values and with codes of its own above IPSET_ERR_PRIVATE. */
static const char *set_error(int rc)
{
	switch (-rc) {
	case IPSET_ERR_PROTOCOL:
		return "the kernel's ipset speaks another protocol version";
	case IPSET_ERR_FIND_TYPE:
		return "the kernel has no hash:ip,port,ip sets";
	case IPSET_ERR_BUSY:
		return "a rule still uses it";
	default:
		return -rc < IPSET_ERR_PRIVATE ? strerror(-rc) : "ipset error";
	}
}

static void bump(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

struct lg_knat *lg_knat_open(uint32_t max_flows, char *err, size_t errlen)
{
	struct lg_knat *k = calloc(1, sizeof(*k));
	int rc;

	if (!k) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&k->lock, NULL);
	k->seq = (uint32_t)time(NULL);
	k->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!k->nl || mnl_socket_bind(k->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netfilter netlink socket: %s", strerror(errno));
		goto fail;
	}
	k->portid = mnl_socket_get_portid(k->nl);
	/* The kernel acknowledges a request before our send returns; an answer still missing a
	 * second later was lost (a full receive buffer drops it), and waiting on would stall the
	 * packet thread that asked: the request counts as failed. */
	if (setsockopt(mnl_socket_get_fd(k->nl), SOL_SOCKET, SO_RCVTIMEO,
		       &(struct timeval){ .tv_sec = KNAT_ANSWER_WAIT_S }, sizeof(struct timeval)) < 0) {
		snprintf(err, errlen, "netfilter netlink socket: SO_RCVTIMEO: %s", strerror(errno));
		goto fail;
	}
	rc = ct_flush_ours(k);
	if (rc < 0 && rc != -ENOENT) {
		snprintf(err, errlen, "conntrack over netlink: %s", strerror(-rc));
		goto fail;
	}
	rc = set_destroy(k);
	if (rc < 0 && rc != -ENOENT) {
		snprintf(err, errlen, "ipset %s: cannot replace it: %s", LG_KNAT_SET, set_error(rc));
		goto fail;
	}
	rc = set_create(k, max_flows);
	if (rc < 0) {
		snprintf(err, errlen, "ipset %s: cannot create it: %s", LG_KNAT_SET, set_error(rc));
		goto fail;
	}
	return k;
fail:
	lg_knat_close(k);
	return NULL;
}

int lg_knat_offload(struct lg_knat *k, const struct lg_knat_flow *f)
{
	int rc;

	pthread_mutex_lock(&k->lock);
	rc = ct_create(k, f);
	if (rc == 0) {
		rc = set_flow(k, IPSET_CMD_ADD, f);
		if (rc < 0) {
			set_flow(k, IPSET_CMD_DEL, f);
			ct_delete(k, f);
		}
	}
	pthread_mutex_unlock(&k->lock);
	bump(rc == 0 ? &k->st.offloaded : &k->st.failed);
	return rc;
}

void lg_knat_withdraw(struct lg_knat *k, const struct lg_knat_flow *f)
{
	pthread_mutex_lock(&k->lock);
	/* the set first: from then on the flow's packets are untracked and rewritten by us */
	set_flow(k, IPSET_CMD_DEL, f);
	ct_delete(k, f);
	pthread_mutex_unlock(&k->lock);
	bump(&k->st.withdrawn);
}

const struct lg_knat_stats *lg_knat_stats(const struct lg_knat *k)
{
	return &k->st;
}

void lg_knat_close(struct lg_knat *k)
{
	if (!k)
		return;
	if (k->nl) {
		ct_flush_ours(k);
		set_destroy(k);
		mnl_socket_close(k->nl);
	}
	pthread_mutex_destroy(&k->lock);
	free(k);
}
