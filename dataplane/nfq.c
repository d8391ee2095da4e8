/* recvmmsg */
#define _GNU_SOURCE
#include "dataplane/nfq.h"

#include "dataplane/checksum.h"
#include "dataplane/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <sys/socket.h>

/* The most the kernel copies (0xffff less the attribute header): a longer packet would come
 * truncated, and its rewrite would cut it short. TCP's GSO packets stay below it. */
#define NFQ_COPY_RANGE   (0xffff - 4)
#define NFQ_NL_HDR_ROOM  8192
#define NFQ_MSG_ROOM     (NFQ_COPY_RANGE + NFQ_NL_HDR_ROOM) /* one queued packet's message */
#define NFQ_BATCH        64        /* messages taken per receive call */
/* Verdicts gathered for one send: their headers in one buffer, the rewritten packets left
 * where they were received and pointed at (no copy in userspace). */
#define NFQ_VERDICT_BYTES (1u << 20) /* packet bytes per send */
#define NFQ_VHDR_ROOM    (NFQ_BATCH * 2 * 128)
#define NFQ_VHDR_MAX     128 /* one verdict's headers, payload attribute header included */
#define NFQ_MAX_IOV      (NFQ_BATCH * 4)
#define NFQ_SNDBUF       (4 * NFQ_VERDICT_BYTES)
/* The kernel charges a queued message its buffer's true size, about 4 KB for a small packet:
 * room for the whole queue, within bounds a machine can spare. */
#define NFQ_RCVBUF_PER_PACKET 4096u
#define NFQ_RCVBUF_MIN   (8u << 20)
#define NFQ_RCVBUF_MAX   (256u << 20)
#define NFQ_STOP_POLL_MS 200
#define NFQ_PROC_PATH    "/proc/net/netfilter/nfnetlink_queue"

struct lg_nfq {
	struct mnl_socket *nl;
	unsigned portid;
	uint32_t seq;
	struct lg_nfq_config cfg;
	lg_nfq_handler *handler;
	void *handler_arg;
	uint8_t *rx;  /* NFQ_BATCH messages of NFQ_MSG_ROOM */
	struct mmsghdr msgs[NFQ_BATCH];
	struct iovec iov[NFQ_BATCH];
	char vhdr[NFQ_VHDR_ROOM];
	size_t vhdr_len;
	struct iovec viov[NFQ_MAX_IOV];
	int viov_count;
	size_t vbytes;
	/* accepted untouched, verdict not written yet: consecutive ids ending at run_last */
	uint32_t run_last;
	size_t run_len;
	struct lg_nfq_stats st;
};

#define BUMP(q, field) atomic_fetch_add_explicit(&(q)->st.field, 1, memory_order_relaxed)
#define ADD(q, field, n) atomic_fetch_add_explicit(&(q)->st.field, (n), memory_order_relaxed)

static void flush_verdicts(struct lg_nfq *q)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct msghdr mh = { .msg_name = &kernel, .msg_namelen = sizeof(kernel),
			     .msg_iov = q->viov, .msg_iovlen = (size_t)q->viov_count };

	if (!q->viov_count)
		return;
	if (sendmsg(mnl_socket_get_fd(q->nl), &mh, 0) < 0) {
		BUMP(q, send_errors);
		lg_log(LG_LOG_WARN, "queue %u: sending verdicts: %s", q->cfg.queue_num,
		       strerror(errno));
	}
	BUMP(q, sends);
	q->vhdr_len = 0;
	q->viov_count = 0;
	q->vbytes = 0;
}

static void push_iov(struct lg_nfq *q, const void *base, size_t len)
{
	struct iovec *last = q->viov_count ? &q->viov[q->viov_count - 1] : NULL;

	if (last && (const char *)last->iov_base + last->iov_len == (const char *)base) {
		last->iov_len += len; /* headers written back to back share one entry */
		return;
	}
	q->viov[q->viov_count++] = (struct iovec){ (void *)(uintptr_t)base, len };
}

/* One verdict message; PKT (LEN bytes) is sent from where it lies, so it must stay put until
 * the next flush (packets live in the receive buffers until the batch is done). */
static void put_verdict(struct lg_nfq *q, int type, uint32_t id, int nf_verdict, const void *pkt,
			size_t len)
{
	static const char zeros[4];
	struct nlmsghdr *nlh;
	size_t hdr_len, padded;

	if (q->vhdr_len + NFQ_VHDR_MAX > NFQ_VHDR_ROOM || q->viov_count + 3 > NFQ_MAX_IOV ||
	    q->vbytes + len > NFQ_VERDICT_BYTES)
		flush_verdicts(q);
	nlh = nfq_nlmsg_put(q->vhdr + q->vhdr_len, type, q->cfg.queue_num);
	nfq_nlmsg_verdict_put(nlh, (int)id, nf_verdict);
	if (!pkt) {
		push_iov(q, nlh, nlh->nlmsg_len);
		q->vhdr_len += NLMSG_ALIGN(nlh->nlmsg_len);
		return;
	}
	/* the payload attribute's header here, its data from the packet, then the padding */
	{
		struct nlattr *a = (struct nlattr *)((char *)nlh + nlh->nlmsg_len);

		a->nla_type = NFQA_PAYLOAD;
		a->nla_len = (uint16_t)(sizeof(*a) + len);
	}
	hdr_len = nlh->nlmsg_len + sizeof(struct nlattr);
	padded = MNL_ALIGN(sizeof(struct nlattr) + len);
	nlh->nlmsg_len = (uint32_t)(nlh->nlmsg_len + padded);
	push_iov(q, nlh, hdr_len);
	push_iov(q, pkt, len);
	if (padded - sizeof(struct nlattr) > len)
		push_iov(q, zeros, padded - sizeof(struct nlattr) - len);
	q->vhdr_len += hdr_len;
	q->vbytes += len;
}

/* The run of untouched accepts becomes one verdict. A batch verdict covers every packet of
 * the queue up to its id; every earlier one has had its verdict written before it. */
static void end_run(struct lg_nfq *q)
{
	if (!q->run_len)
		return;
	put_verdict(q, q->run_len > 1 ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, q->run_last,
		    NF_ACCEPT, NULL, 0);
	if (q->run_len > 1)
		BUMP(q, batch_verdicts);
	q->run_len = 0;
}

static void verdict(struct lg_nfq *q, uint32_t id, enum lg_verdict v, const void *pkt, size_t len)
{
	if (v == LG_VERDICT_ACCEPT) {
		BUMP(q, accepted);
		if (!pkt) {
			if (q->run_len && id != q->run_last + 1)
				end_run(q);
			q->run_last = id;
			q->run_len++;
			return;
		}
	} else {
		BUMP(q, dropped);
	}
	end_run(q);
	put_verdict(q, NFQNL_MSG_VERDICT, id, v == LG_VERDICT_ACCEPT ? NF_ACCEPT : NF_DROP, pkt, len);
}

/* Packets that arrive while we wait for an acknowledgement (rules left by an earlier run):
 * the engine is not running yet, so they are dropped and counted. */
static int on_packet_early(const struct nlmsghdr *nlh, void *data)
{
	struct lg_nfq *q = data;
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	const struct nfqnl_msg_packet_hdr *ph;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK;
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	BUMP(q, received);
	verdict(q, ntohl(ph->packet_id), LG_VERDICT_DROP, NULL, 0);
	flush_verdicts(q);
	return MNL_CB_OK;
}

/* Send one configuration message and wait for the kernel's answer. 0, or -1 with errno. */
static int configure(struct lg_nfq *q, struct nlmsghdr *nlh)
{
	char buf[NFQ_MSG_ROOM];
	uint32_t seq = ++q->seq;

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(q->nl, buf, sizeof(buf));
		int rc;

		if (n < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue;
			return -1; /* EAGAIN: no answer within the receive timeout */
		}
		rc = mnl_cb_run(buf, (size_t)n, seq, q->portid, on_packet_early, q);
		if (rc == MNL_CB_ERROR)
			return -1;
		if (rc == MNL_CB_STOP)
			return 0;
	}
}

static int set_flags(struct lg_nfq *q, uint32_t flags)
{
	char buf[NFQ_NL_HDR_ROOM];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->cfg.queue_num);

	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
	return configure(q, nlh);
}

static size_t rcvbuf_for(uint32_t length)
{
	uint64_t want = (uint64_t)length * NFQ_RCVBUF_PER_PACKET;

	if (want < NFQ_RCVBUF_MIN)
		want = NFQ_RCVBUF_MIN;
	if (want > NFQ_RCVBUF_MAX)
		want = NFQ_RCVBUF_MAX;
	return (size_t)want;
}

static void set_buffer(int fd, int force_opt, int opt, int size)
{
	/* FORCE passes the rmem_max/wmem_max limits (we run as root); else take what we may */
	if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

struct lg_nfq *lg_nfq_open(const struct lg_nfq_config *cfg, char *err, size_t errlen,
			   char *warn, size_t warnlen)
{
	struct lg_nfq *q = calloc(1, sizeof(*q));
	char buf[NFQ_NL_HDR_ROOM];
	struct nlmsghdr *nlh;
	struct timeval tv = { 0, NFQ_STOP_POLL_MS * 1000 };
	int fd;

	if (warn && warnlen)
		warn[0] = '\0';
	if (!q || !(q->rx = malloc((size_t)NFQ_BATCH * NFQ_MSG_ROOM))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	q->cfg = *cfg;
	for (size_t i = 0; i < NFQ_BATCH; i++) {
		q->iov[i] = (struct iovec){ q->rx + i * NFQ_MSG_ROOM, NFQ_MSG_ROOM };
		q->msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &q->iov[i], .msg_iovlen = 1 };
	}
	q->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!q->nl || mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netlink socket: %s", strerror(errno));
		goto fail;
	}
	q->portid = mnl_socket_get_portid(q->nl);
	fd = mnl_socket_get_fd(q->nl);
	set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)rcvbuf_for(cfg->length));
	set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, NFQ_SNDBUF);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		snprintf(err, errlen, "SO_RCVTIMEO: %s", strerror(errno));
		goto fail;
	}

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, cfg->queue_num);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	if (configure(q, nlh) < 0) {
		snprintf(err, errlen, "bind queue %u: %s%s", cfg->queue_num, strerror(errno),
			 errno == EBUSY ? " (another program holds it)" : "");
		goto fail;
	}
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, cfg->queue_num);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, NFQ_COPY_RANGE);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, cfg->length);
	if (configure(q, nlh) < 0) {
		snprintf(err, errlen, "configure queue %u: %s", cfg->queue_num, strerror(errno));
		goto fail;
	}
	if (cfg->fail_open && set_flags(q, NFQA_CFG_F_FAIL_OPEN) < 0) {
		snprintf(err, errlen, "queue %u: fail-open refused by the kernel: %s", cfg->queue_num,
			 strerror(errno));
		goto fail;
	}
	if (cfg->gso && set_flags(q, NFQA_CFG_F_GSO) < 0) {
		q->cfg.gso = false;
		if (warn && warnlen)
			snprintf(warn, warnlen,
				 "queue %u: the kernel refused GSO packets whole (%s): every large "
				 "packet is split before it is queued, which is much slower",
				 cfg->queue_num, strerror(errno));
	}
	return q;
fail:
	lg_nfq_close(q);
	return NULL;
}

static int on_packet(const struct nlmsghdr *nlh, void *data)
{
	struct lg_nfq *q = data;
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;
	uint32_t id, skbinfo = 0, mark = 0;
	uint8_t *payload;
	uint16_t plen;
	bool modified;
	size_t out_len;
	enum lg_verdict v;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK; /* not a packet message: nothing to answer */
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	id = ntohl(ph->packet_id);
	BUMP(q, received);
	if (!attr[NFQA_PAYLOAD]) {
		verdict(q, id, LG_VERDICT_DROP, NULL, 0);
		return MNL_CB_OK;
	}
	if (attr[NFQA_SKB_INFO])
		skbinfo = ntohl(mnl_attr_get_u32(attr[NFQA_SKB_INFO]));
	if (skbinfo & NFQA_SKB_GSO)
		BUMP(q, gso);
	payload = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
	plen = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
	if (attr[NFQA_CAP_LEN] && ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN])) > plen) {
		/* we hold only the start of it: no rewrite could hand it back whole */
		BUMP(q, truncated);
		verdict(q, id, LG_VERDICT_DROP, NULL, 0);
		return MNL_CB_OK;
	}
	if (attr[NFQA_MARK])
		mark = ntohl(mnl_attr_get_u32(attr[NFQA_MARK]));
	v = q->handler(q->handler_arg, payload, plen, mark, &modified, &out_len);
	/* A partial checksum holds only the pseudo-header sum, meant for offload to finish; a
	 * rewrite adjusted it as a whole one, so it is computed afresh (shared/NFQUEUE-NOTES.md:
	 * incremental updates of such packets fail at the receiver). A GSO packet's checksums
	 * are recomputed by the kernel when it is segmented. */
	if (modified && (skbinfo & NFQA_SKB_CSUMNOTREADY) && !(skbinfo & NFQA_SKB_GSO) &&
	    lg_csum_fill_tcp4(payload, out_len) == 0)
		BUMP(q, csum_completed);
	verdict(q, id, v, modified ? payload : NULL, out_len);
	return MNL_CB_OK;
}

void lg_nfq_run(struct lg_nfq *q, lg_nfq_handler *fn, void *arg, atomic_bool *stop)
{
	int fd = mnl_socket_get_fd(q->nl);

	q->handler = fn;
	q->handler_arg = arg;
	while (!atomic_load(stop)) {
		int n = recvmmsg(fd, q->msgs, NFQ_BATCH, MSG_WAITFORONE, NULL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* the kernel could not hand us packets: counted by it, never fatal */
				BUMP(q, enobufs);
				continue;
			}
			BUMP(q, recv_errors);
			lg_log(LG_LOG_WARN, "queue %u: recv: %s", q->cfg.queue_num, strerror(errno));
			continue;
		}
		BUMP(q, receives);
		for (int i = 0; i < n; i++) {
			/* an error answer to a verdict lands here as NLMSG_ERROR: counted */
			if (mnl_cb_run(q->iov[i].iov_base, q->msgs[i].msg_len, 0, q->portid, on_packet,
				       q) < 0)
				BUMP(q, send_errors);
		}
		end_run(q);
		flush_verdicts(q);
	}
}

const struct lg_nfq_stats *lg_nfq_stats(const struct lg_nfq *q)
{
	return &q->st;
}

uint16_t lg_nfq_number(const struct lg_nfq *q)
{
	return q->cfg.queue_num;
}

int lg_nfq_kernel_drops(const struct lg_nfq *q, uint64_t *queue_full, uint64_t *user_dropped)
{
	FILE *f = fopen(NFQ_PROC_PATH, "r");
	char line[256];
	int rc = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned num, portid, total, mode, range;
		unsigned long long full, user;

		/* queue, portid, queued, copy mode, copy range, queue dropped, user dropped, ... */
		if (sscanf(line, "%u %u %u %u %u %llu %llu", &num, &portid, &total, &mode, &range,
			   &full, &user) == 7 &&
		    num == q->cfg.queue_num) {
			*queue_full = full;
			*user_dropped = user;
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

void lg_nfq_close(struct lg_nfq *q)
{
	if (!q)
		return;
	if (q->nl) {
		char buf[NFQ_NL_HDR_ROOM];
		struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->cfg.queue_num);

		nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
		mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len);
		mnl_socket_close(q->nl);
	}
	free(q->rx);
	free(q);
}
