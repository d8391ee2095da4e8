#!/usr/bin/env bash
# make bench, part 2: the whole packet path through the testbed (root), four gateways measured
# side by side, interleaved round by round (this machine's speed drifts; see
# shared/NFQUEUE-NOTES.md):
#   kernel   plain kernel forwarding (the server gets a route back to the inside prefix)
#   masq     kernel conntrack NAT: iptables MASQUERADE
#   nfq      build/bench/nfq_accept: an NFQUEUE reader that accepts everything, with
#            lemongated's own queue I/O (same batching, GSO, buffers)
#   lemongate lemongated with NAT, tracking and inspection, testbed addresses (the kernel
#            translates established bulk flows: dataplane/knat.h)
#   lg-nooffload the same with 'offload off': every packet translated by lemongated
# Figures: iperf3 TCP throughput with 1 and 8 streams, small-packet rate (packets/s the
# gateway forwards, both ways, while 64 connections exchange 64-byte requests and responses,
# one in flight each, so the stack cannot merge them), TCP connections per second
# (bench/connrate). Each is the median over BENCH_ROUNDS rounds (default 5: this machine's
# speed drifts by tenths of its figures from one round to the next).
# Prints lemongate/nfq and lemongate/masq; the target is lemongate/nfq >= 0.9 for throughput
# and packet rate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${LG_BUILD:-$ROOT/build}
LGTB=$ROOT/testbed/lgtb
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECONDS:-3}
CONN_SECS=2
CONN_PORT=9000
SERVER=198.51.100.2
VARIANTS=(${BENCH_VARIANTS:-kernel masq nfq lemongate lg-nooffload})
WORK=$(mktemp -d /tmp/lg-bench.XXXXXX)
CONF=$WORK/bench.conf
CONF_NOOFFLOAD=$WORK/bench-nooffload.conf

[ "$(id -u)" -eq 0 ] || { echo "bench/path.sh: run as root (network namespaces)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "bench/path.sh: iperf3 missing (scripts/setup.sh)" >&2; exit 1; }
for b in lemongated lemongatectl bench/nfq_accept bench/connrate; do
	[ -x "$BUILD/$b" ] || { echo "bench/path.sh: $BUILD/$b not built (make bench)" >&2; exit 1; }
done

in_ns() { local ns=$1; shift; ip netns exec "lg-$ns" "$@"; }

NFQ_PID=""
cleanup() {
	set +e
	[ -n "$NFQ_PID" ] && kill "$NFQ_PID" 2>/dev/null
	"$LGTB" down >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

# The testbed's configuration, with room for the connection test: every connection is a new
# mapping, each kept 4 minutes after its reset (RFC 7857 section 2.2).
sed -e 's/^nat ports .*/nat ports 1024-65535/' -e 's/^nat quota .*/nat quota 64512/' \
	-e 's/^max-flows .*/max-flows 1048576/' "$ROOT/testbed/lemongate-testbed.conf" >"$CONF"
{ grep -v '^offload' "$CONF"; echo "offload off"; } >"$CONF_NOOFFLOAD"

"$LGTB" up >/dev/null
in_ns server iperf3 -s -D
in_ns server "$BUILD/bench/connrate" serve $CONN_PORT >"$WORK/connrate.out" 2>&1 &
for _ in $(seq 50); do grep -q ready "$WORK/connrate.out" 2>/dev/null && break; sleep 0.1; done

variant_up() {
	case $1 in
	kernel) ip -n lg-server route add 10.77.0.0/24 via 198.51.100.1 ;;
	masq) in_ns gw iptables -w -t nat -A POSTROUTING -o gw-out -s 10.77.0.0/24 -j MASQUERADE ;;
	nfq)
		ip -n lg-server route add 10.77.0.0/24 via 198.51.100.1
		# as lemongated's rules: untracked, queued after routing
		in_ns gw iptables -w -t raw -A PREROUTING -p tcp -j CT --notrack
		in_ns gw iptables -w -t mangle -A FORWARD -p tcp -j NFQUEUE --queue-num 0
		# not through in_ns: a function in the background is a subshell, and $! its pid
		ip netns exec lg-gw "$BUILD/bench/nfq_accept" 0 >"$WORK/nfq.out" 2>"$WORK/nfq.err" &
		NFQ_PID=$!
		for _ in $(seq 50); do grep -q ready "$WORK/nfq.out" 2>/dev/null && break; sleep 0.1; done
		;;
	lemongate) "$LGTB" gateway start "$CONF" >/dev/null ;;
	lg-nooffload) "$LGTB" gateway start "$CONF_NOOFFLOAD" >/dev/null ;;
	esac
}

variant_down() {
	case $1 in
	kernel) ip -n lg-server route del 10.77.0.0/24 ;;
	masq)
		in_ns gw iptables -w -t nat -D POSTROUTING -o gw-out -s 10.77.0.0/24 -j MASQUERADE
		in_ns gw conntrack -F >/dev/null 2>&1 || true
		;;
	nfq)
		kill "$NFQ_PID"; wait "$NFQ_PID" 2>/dev/null || true; NFQ_PID=""
		in_ns gw iptables -w -t mangle -D FORWARD -p tcp -j NFQUEUE --queue-num 0
		in_ns gw iptables -w -t raw -D PREROUTING -p tcp -j CT --notrack
		ip -n lg-server route del 10.77.0.0/24
		;;
	lemongate | lg-nooffload) "$LGTB" gateway stop >/dev/null ;;
	esac
}

# One iperf3 run; the server takes a moment after the previous test ("busy"): try again.
iperf() {
	local try
	for try in 1 2 3 4 5; do
		in_ns client iperf3 -c $SERVER -t "$SECS" "$@" -J >"$WORK/iperf.json" 2>/dev/null && return 0
		sleep 1
	done
	echo "bench/path.sh: iperf3 $* failed 5 times" >&2
	return 1
}

# iperf3 throughput in Gbit/s; 0 when the run failed
throughput() {
	iperf "$@" || { echo 0; return; }
	/usr/bin/python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
if "sum_received" not in r.get("end", {}):
    sys.stderr.write("bench/path.sh: iperf3: %s\n" % r.get("error", "no result"))
    print(0)
else:
    print("%.2f" % (r["end"]["sum_received"]["bits_per_second"] / 1e9))' "$WORK/iperf.json"
}

# packets/s the gateway forwards, both ways, under 64-byte request/response traffic
gw_packets() {
	in_ns gw cat /sys/class/net/gw-in/statistics/rx_packets /sys/class/net/gw-out/statistics/rx_packets |
		awk '{ n += $1 } END { print n }'
}

small_packets() {
	local before after
	before=$(gw_packets)
	in_ns client "$BUILD/bench/connrate" rr $SERVER $CONN_PORT "$SECS" 64 >/dev/null || { echo 0; return; }
	after=$(gw_packets)
	echo $(((after - before) / SECS))
}

connections() {
	in_ns client "$BUILD/bench/connrate" run $SERVER $CONN_PORT $CONN_SECS 4 | awk '{print $6}'
}

declare -A R
for round in $(seq "$ROUNDS"); do
	for v in "${VARIANTS[@]}"; do
		variant_up "$v"
		R[$v,tput1,$round]=$(throughput)
		R[$v,tput8,$round]=$(throughput -P 8)
		R[$v,pps,$round]=$(small_packets)
		R[$v,cps,$round]=$(connections)
		variant_down "$v"
		echo "round $round $v: 1 stream ${R[$v,tput1,$round]} Gbit/s, 8 streams" \
			"${R[$v,tput8,$round]} Gbit/s, ${R[$v,pps,$round]} packets/s," \
			"${R[$v,cps,$round]} connections/s" >&2
	done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A M
for v in "${VARIANTS[@]}"; do
	for m in tput1 tput8 pps cps; do
		vals=()
		for round in $(seq "$ROUNDS"); do vals+=("${R[$v,$m,$round]}"); done
		M[$v,$m]=$(median "${vals[@]}")
	done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "packet path through the testbed, median of $ROUNDS rounds (${SECS} s iperf3 runs, ${CONN_SECS} s connection runs):"
printf '%-12s %14s %14s %18s %16s\n' gateway "1 stream Gb/s" "8 streams Gb/s" "small packets/s" "connections/s"
for v in "${VARIANTS[@]}"; do
	printf '%-12s %14s %14s %18s %16s\n' "$v" "${M[$v,tput1]}" "${M[$v,tput8]}" "${M[$v,pps]}" "${M[$v,cps]}"
done
printf '%-16s %8s %8s %8s %8s\n' ratio "1 str" "8 str" "pkts/s" "conn/s"
for pair in "lemongate nfq" "lemongate masq" "lg-nooffload nfq"; do
	set -- $pair
	[ -n "${M[$1,tput1]:-}" ] && [ -n "${M[$2,tput1]:-}" ] || continue
	printf '%-16s %8s %8s %8s %8s\n' "$1/$2" "$(ratio "${M[$1,tput1]}" "${M[$2,tput1]}")" \
		"$(ratio "${M[$1,tput8]}" "${M[$2,tput8]}")" "$(ratio "${M[$1,pps]}" "${M[$2,pps]}")" \
		"$(ratio "${M[$1,cps]}" "${M[$2,cps]}")"
done
