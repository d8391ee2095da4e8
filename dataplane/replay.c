#include "dataplane/replay.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define REPLAY_MAX_PKT (65535 + 64)

static bool is_ip(uint16_t ethertype)
{
	return ethertype == ETHERTYPE_IPV4 || ethertype == ETHERTYPE_IPV6;
}

/* Offset of the IP header in a frame of LINKTYPE, or -1 if the frame is not IPv4 or IPv6. */
static long ip_offset(int linktype, const uint8_t *frame, size_t caplen)
{
	size_t off;
	uint16_t type;

	switch (linktype) {
	case DLT_EN10MB:
		off = 12;
		for (;;) {
			if (caplen < off + 2)
				return -1;
			type = (uint16_t)(frame[off] << 8 | frame[off + 1]);
			if (type != ETHERTYPE_VLAN && type != ETHERTYPE_QINQ)
				break;
			off += 4; /* skip one 802.1Q tag */
		}
		return is_ip(type) ? (long)(off + 2) : -1;
	case DLT_LINUX_SLL:
		if (caplen < 16)
			return -1;
		type = (uint16_t)(frame[14] << 8 | frame[15]);
		return is_ip(type) ? 16 : -1;
	case DLT_LINUX_SLL2:
		if (caplen < 20)
			return -1;
		type = (uint16_t)(frame[0] << 8 | frame[1]);
		return is_ip(type) ? 20 : -1;
	case DLT_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
		return (caplen > 0 && ((frame[0] >> 4) == 4 || (frame[0] >> 4) == 6)) ? 0 : -1;
	default:
		return -1;
	}
}

static bool supported_linktype(int lt)
{
	return lt == DLT_EN10MB || lt == DLT_LINUX_SLL || lt == DLT_LINUX_SLL2 || lt == DLT_RAW ||
	       lt == DLT_IPV4 || lt == DLT_IPV6;
}

/* Would the steering rules queue this packet? IPv4 TCP and ICMP; IPv6 TCP and ICMPv6 errors
 * (an extension header in front is left for the engine to walk). */
static bool steered(const uint8_t *ip, size_t len)
{
	if ((ip[0] >> 4) == 4)
		return len >= 20 && (ip[9] == 6 || ip[9] == 1);
	if (len < 40)
		return false;
	if (ip[6] == 58)
		return len >= 41 && ip[40] >= 1 && ip[40] <= 4;
	return ip[6] == 6 || ip[6] == 0 || ip[6] == 43 || ip[6] == 60;
}

static double wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int lg_replay_run(struct lg_engine *engine, const char *in, const char *out,
		  struct lg_replay_stats *st, char *err, size_t errlen)
{
	static uint8_t buf[REPLAY_MAX_PKT];
	char perr[PCAP_ERRBUF_SIZE] = "";
	pcap_t *rd, *wr_handle = NULL;
	pcap_dumper_t *wr = NULL;
	struct pcap_pkthdr *hdr;
	const u_char *data;
	uint64_t clock_ns = 0, last_sweep = 0;
	int linktype, rc;
	double t0;

	memset(st, 0, sizeof(*st));
	rd = pcap_open_offline_with_tstamp_precision(in, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!rd) {
		snprintf(err, errlen, "%s: %s", in, perr);
		return -1;
	}
	linktype = pcap_datalink(rd);
	if (!supported_linktype(linktype)) {
		snprintf(err, errlen, "%s: link type %s is not supported (Ethernet, raw IPv4/IPv6, Linux cooked)",
			 in, pcap_datalink_val_to_name(linktype) ? pcap_datalink_val_to_name(linktype) : "?");
		pcap_close(rd);
		return -1;
	}
	if (out) {
		wr_handle = pcap_open_dead_with_tstamp_precision(linktype, REPLAY_MAX_PKT,
								 PCAP_TSTAMP_PRECISION_NANO);
		wr = wr_handle ? pcap_dump_open(wr_handle, out) : NULL;
		if (!wr) {
			snprintf(err, errlen, "%s: %s", out, wr_handle ? pcap_geterr(wr_handle) : "out of memory");
			if (wr_handle)
				pcap_close(wr_handle);
			pcap_close(rd);
			return -1;
		}
	}

	t0 = wall_seconds();
	while ((rc = pcap_next_ex(rd, &hdr, &data)) == 1) {
		long l3 = ip_offset(linktype, data, hdr->caplen);
		uint64_t ts = (uint64_t)hdr->ts.tv_sec * 1000000000ull + (uint64_t)hdr->ts.tv_usec;
		size_t caplen = hdr->caplen < REPLAY_MAX_PKT ? hdr->caplen : REPLAY_MAX_PKT;
		size_t out_len;
		bool modified;
		enum lg_verdict v;

		st->read++;
		/* the capture's clock, never going backwards: it drives every timer */
		if (ts > clock_ns)
			clock_ns = ts;
		if (l3 < 0 || (size_t)l3 >= caplen || !steered(data + l3, caplen - (size_t)l3)) {
			st->not_steered++;
			continue;
		}
		memcpy(buf, data, caplen);
		v = lg_engine_packet(engine, buf + l3, caplen - (size_t)l3, clock_ns, &modified, &out_len);
		if (v != LG_VERDICT_ACCEPT) {
			st->dropped++;
			continue;
		}
		st->accepted++;
		st->modified += modified;
		if (wr) {
			struct pcap_pkthdr oh = *hdr;

			oh.caplen = (bpf_u_int32)((size_t)l3 + out_len);
			if (modified || hdr->len == hdr->caplen)
				oh.len = oh.caplen;
			pcap_dump((u_char *)wr, &oh, buf);
		}
		if (clock_ns - last_sweep >= 1000000000ull) {
			lg_engine_expire(engine, clock_ns);
			last_sweep = clock_ns;
		}
	}
	st->seconds = wall_seconds() - t0;
	if (rc == PCAP_ERROR) {
		snprintf(err, errlen, "%s: after %llu packets: %s", in, (unsigned long long)st->read,
			 pcap_geterr(rd));
	}
	if (wr) {
		pcap_dump_close(wr);
		pcap_close(wr_handle);
	}
	pcap_close(rd);
	return rc == PCAP_ERROR ? -1 : 0;
}
