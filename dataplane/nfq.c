#include "dataplane/nfq.h"

#include "dataplane/clock.h"
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
#include <sys/socket.h>

#define NFQ_COPY_RANGE  0xffff
#define NFQ_MAXLEN      4096
#define NFQ_RCVBUF      (8 * 1024 * 1024)
#define NFQ_NL_HDR_ROOM 8192
#define NFQ_RECV_BUF    (NFQ_COPY_RANGE + NFQ_NL_HDR_ROOM)
#define NFQ_STOP_POLL_MS 200

struct lg_nfq {
	struct mnl_socket *nl;
	unsigned portid;
	uint16_t queue_num;
	struct lg_engine *engine;
	char *recv_buf;
	char verdict_buf[NFQ_NL_HDR_ROOM + NFQ_COPY_RANGE];
	struct lg_nfq_stats st;
};

static int send_config(struct lg_nfq *q, struct nlmsghdr *nlh)
{
	return mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0 ? -1 : 0;
}

struct lg_nfq *lg_nfq_open(uint16_t queue_num, char *err, size_t errlen)
{
	struct lg_nfq *q = calloc(1, sizeof(*q));
	char buf[NFQ_NL_HDR_ROOM];
	struct nlmsghdr *nlh;
	struct timeval tv = { 0, NFQ_STOP_POLL_MS * 1000 };
	int one = 1, rcvbuf = NFQ_RCVBUF, fd;

	if (!q || !(q->recv_buf = malloc(NFQ_RECV_BUF))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	q->queue_num = queue_num;
	q->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!q->nl || mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netlink socket: %s", strerror(errno));
		goto fail;
	}
	q->portid = mnl_socket_get_portid(q->nl);

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_num);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	if (send_config(q, nlh) < 0) {
		snprintf(err, errlen, "bind queue %u: %s", queue_num, strerror(errno));
		goto fail;
	}
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_num);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, NFQ_COPY_RANGE);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, NFQ_MAXLEN);
	if (send_config(q, nlh) < 0) {
		snprintf(err, errlen, "configure queue %u: %s", queue_num, strerror(errno));
		goto fail;
	}
	fd = mnl_socket_get_fd(q->nl);
	/* Without NFQA_CFG_F_GSO the kernel hands us complete checksums, so incremental
	 * updates are valid (see shared/NFQUEUE-NOTES.md); GSO comes with the fast-path work. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		snprintf(err, errlen, "SO_RCVTIMEO: %s", strerror(errno));
		goto fail;
	}
	return q;
fail:
	lg_nfq_close(q);
	return NULL;
}

static void send_verdict(struct lg_nfq *q, uint32_t id, enum lg_verdict v, const void *pkt,
			 size_t len)
{
	struct nlmsghdr *nlh = nfq_nlmsg_put(q->verdict_buf, NFQNL_MSG_VERDICT, q->queue_num);

	nfq_nlmsg_verdict_put(nlh, (int)id, v == LG_VERDICT_ACCEPT ? NF_ACCEPT : NF_DROP);
	if (pkt)
		nfq_nlmsg_verdict_put_pkt(nlh, pkt, (uint32_t)len);
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		atomic_fetch_add(&q->st.send_errors, 1);
	atomic_fetch_add(v == LG_VERDICT_ACCEPT ? &q->st.accepted : &q->st.dropped, 1);
}

static int on_packet(const struct nlmsghdr *nlh, void *data)
{
	struct lg_nfq *q = data;
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;
	uint8_t *payload;
	uint16_t plen;
	bool modified;
	size_t out_len;
	enum lg_verdict v;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK; /* not a packet message: nothing to answer */
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	atomic_fetch_add(&q->st.received, 1);
	if (!attr[NFQA_PAYLOAD]) {
		send_verdict(q, ntohl(ph->packet_id), LG_VERDICT_DROP, NULL, 0);
		return MNL_CB_OK;
	}
	payload = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
	plen = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
	v = lg_engine_packet(q->engine, payload, plen, lg_clock_now_ns(), &modified, &out_len);
	send_verdict(q, ntohl(ph->packet_id), v, modified ? payload : NULL, out_len);
	return MNL_CB_OK;
}

void lg_nfq_run(struct lg_nfq *q, struct lg_engine *engine, atomic_bool *stop)
{
	q->engine = engine;
	while (!atomic_load(stop)) {
		ssize_t n = mnl_socket_recvfrom(q->nl, q->recv_buf, NFQ_RECV_BUF);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				atomic_fetch_add(&q->st.enobufs, 1);
				continue;
			}
			atomic_fetch_add(&q->st.recv_errors, 1);
			lg_log(LG_LOG_WARN, "queue %u: recv: %s", q->queue_num, strerror(errno));
			continue;
		}
		if (mnl_cb_run(q->recv_buf, (size_t)n, 0, q->portid, on_packet, q) < 0 &&
		    errno != 0 && errno != ENOENT)
			atomic_fetch_add(&q->st.recv_errors, 1);
	}
}

const struct lg_nfq_stats *lg_nfq_stats(const struct lg_nfq *q)
{
	return &q->st;
}

uint16_t lg_nfq_number(const struct lg_nfq *q)
{
	return q->queue_num;
}

void lg_nfq_close(struct lg_nfq *q)
{
	if (!q)
		return;
	if (q->nl) {
		char buf[NFQ_NL_HDR_ROOM];
		struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->queue_num);

		nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
		mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len);
		mnl_socket_close(q->nl);
	}
	free(q->recv_buf);
	free(q);
}
