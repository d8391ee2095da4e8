#!/usr/bin/env bash
# IPv6 through lemongated with real Linux endpoints: stateful filtering without translation.
# A session from inside reaches the server from the client's own address; ctl lists it as an
# IPv6 flow; unsolicited inbound SYNs are dropped while endpoint-independent filtering admits
# a SYN to a live inside endpoint; the flow survives 2h3m idle on the test clock and ends after
# 2h4m (N5382-R5); an ICMPv6 packet too big about it reaches the client, lowers its path MTU
# and ends nothing (N5382-R9, R10). Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

CLIENT6=2001:db8:77::2
SERVER6=2001:db8:100::2
ROUTER6=2001:db8:100::77

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" gateway start --test-clock >/dev/null || fail "gateway start --test-clock"
in_server ip addr add $ROUTER6/64 dev eth0 nodad

stat_of() { ctl stats | awk -v n="$1" '$1 == n { print $2 }'; }

# An IMAP-like line server on the server's IPv6 address: a greeting, then "TAG OK" per line;
# it writes each client's address to peers.
in_server /usr/bin/python3 - "$SERVER6" "$TB_TMP/peers" <<'PY' &
import socket, sys, threading
addr, peers = sys.argv[1], sys.argv[2]
ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, 143)); ls.listen(16)
def serve(c, peer):
    open(peers, "a").write(peer[0] + "\n")
    f = c.makefile("rwb"); f.write(b"* OK IPv6 test server ready\r\n"); f.flush()
    for line in f:
        f.write(line.split(b" ")[0] + b" OK\r\n"); f.flush()
ls.settimeout(60)
while True:
    try:
        c, peer = ls.accept()
    except socket.timeout:
        break
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
PY
disown
wait_until 5 bash -c "ip netns exec lg-server ss -Hltn | grep -q '\[$SERVER6\]:143'" || fail "IPv6 test server listens"

# The client's session, held open; it sends a NOOP whenever asked.
session_start "$SERVER6" 143 "$CLIENT6"
cport=$(cat "$TB_TMP/port" 2>/dev/null)

check "IPv6: the client's session gets the greeting through lemongated" grep -q '^\* OK' "$TB_TMP/greeting"
check "IPv6: the server sees the client's own address (filtered, never translated)" \
	grep -qx "$CLIENT6" "$TB_TMP/peers"
check "IPv6: data flows both ways" noop 0
check "IPv6: ctl lists the flow as tcp6, public endpoint = inside endpoint, established" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows | grep -Eq '^tcp6 +\[$CLIENT6\]:$cport +\[$CLIENT6\]:$cport +\[$SERVER6\]:143 +established '"
check "IPv6: ctl flows --json gives the family and the bracketed endpoints" in_gw /usr/bin/python3 -c '
import json, subprocess, sys
out = subprocess.run([sys.argv[1], "flows", "--json"], capture_output=True, text=True).stdout
f = [f for f in json.loads(out) if f["family"] == "ipv6"][0]
sys.exit(f["inside"] != "[%s]:%s" % (sys.argv[2], sys.argv[3]))' \
	"$BUILD/lemongatectl" "$CLIENT6" "$cport"
check "IPv6: ctl flows --inside PREFIX selects it" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --inside 2001:db8:77::/64 | grep -q '^1 flow$'"
check "IPv6: ctl flows --inside [ADDR]:PORT selects it" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --inside '[$CLIENT6]:$cport' | grep -q '^1 flow$'"
check "IPv6: stats count the IPv6 table" test "$(stat_of flows6_active)" = 1

# An inbound SYN to an inside port nobody opened: dropped, held 6 s, then answered with ICMPv6
# port unreachable, so the connect fails, refused, after 6 s. A SYN to the client's live
# endpoint is admitted (endpoint-independent filtering) and the client's kernel answers it with
# a RST: refused at once.
connect_from_server() { # PORT TIMEOUT -> prints "refused|timeout|connected SECONDS"
	in_server /usr/bin/python3 - "$CLIENT6" "$1" "$2" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(float(sys.argv[3]))
t0 = time.monotonic()
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); r = "connected"
except ConnectionRefusedError:
    r = "refused"
except (socket.timeout, TimeoutError):
    r = "timeout"
print("%s %.1f" % (r, time.monotonic() - t0))
PY
}
before=$(stat_of drop_unsolicited_inbound)
unsolicited=$(connect_from_server 2222 12)
echo "unsolicited SYN: $unsolicited"
check "N5382-R4 (IPv6): an unsolicited inbound SYN is refused with ICMPv6 port unreachable" \
	test "${unsolicited% *}" = refused
check "N5382-R4 (IPv6): but only after 6 s" awk -v t="${unsolicited#* }" 'BEGIN { exit !(t >= 5.9 && t < 9) }'
check "N5382-R4 (IPv6): it was dropped and counted" test "$(stat_of drop_unsolicited_inbound)" -gt "${before:-0}"
check "N5382-R4 (IPv6): the answer is counted" test "$(stat_of icmp_port_unreachable_sent)" -ge 1
admitted=$(connect_from_server "$cport" 3)
check "N5382-R3 (IPv6): a SYN to the live inside endpoint is admitted (the client's RST comes back at once)" \
	test "${admitted% *}" = refused -a "${admitted#* }" \< 1
check "N7857-S7.1 (IPv6): the attempt the client refused is ended at once, keeping nothing alive" \
	test "$(stat_of inbound_refused_by_inside)" -ge 1 -a "$(stat_of flows6_active)" -eq 1

# N5382-R5 on the test clock.
# (the admitted probe's flow, reset at once, is transitory and goes; the session must not)
ctl clock advance 2h3m >/dev/null
check "N5382-R5 (IPv6): the session's flow is still there after 2h3m idle" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --inside '[$CLIENT6]:$cport' --remote '[$SERVER6]:143' | grep -q '^1 flow$'"
check "N5382-R5 (IPv6): the session answers after 2h3m idle" noop 1

# N5382-R9/R10: packet too big from a router about the session, quoting the client's next
# segment with the sequence number the client expects (Linux ignores errors out of window).
in_server /usr/bin/python3 - "$CLIENT6" "$SERVER6" "$ROUTER6" "$TB_TMP/ptb" <<'PY' &
import socket, struct, sys
client, server, router, out = sys.argv[1:5]
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
cap.bind(("eth0", 0)); cap.settimeout(8)
open(out + ".ready", "w").close()
c6, s6, r6 = (socket.inet_pton(socket.AF_INET6, a) for a in (client, server, router))
while True:
    ip = cap.recv(4096)[14:]
    if ip[6] == 6 and ip[8:24] == c6 and struct.unpack("!H", ip[42:44])[0] == 143:
        break
plen = struct.unpack("!H", ip[4:6])[0]
doff = (ip[52] >> 4) * 4
seq = (struct.unpack("!I", ip[44:48])[0] + plen - doff) & 0xffffffff
quote = bytearray(ip[:40 + plen])[:1232]
quote[44:48] = struct.pack("!I", seq)
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
msg = bytearray(struct.pack("!BBHI", 2, 0, 0, 1280) + bytes(quote))
pseudo = r6 + c6 + struct.pack("!I3xB", len(msg), 58)
msg[2:4] = struct.pack("!H", csum(pseudo + bytes(msg)))
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
raw.bind((router, 0))
raw.sendto(bytes(msg), (client, 0))
open(out, "w").write("sent\n")
PY
injector=$!
wait_until 5 test -e "$TB_TMP/ptb.ready"
before=$(stat_of icmp_frag_needed_translated)
noop 2 >/dev/null
wait "$injector"
check "IPv6: a packet too big was sent about the session" test -s "$TB_TMP/ptb"
check "N5382-R9 (IPv6): the gateway passed the packet too big" \
	wait_until 3 bash -c "[ \"\$(ip netns exec lg-gw '$BUILD/lemongatectl' stats | awk '\$1 == \"icmp_frag_needed_translated\" {print \$2}')\" -gt ${before:-0} ]"
check "N5382-R9 (IPv6): the client's path MTU to the server dropped to 1280" \
	wait_until 3 bash -c "ip netns exec lg-client ip -6 route get $SERVER6 | grep -q 'mtu 1280'"
check "N5382-R10 (IPv6): the flow is still established" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --inside '[$CLIENT6]:$cport' --state established | grep -q '^1 flow$'"
check "N5382-R10 (IPv6): and the session still answers" noop 3

check "IPv6: clock advance 2h5m expires the idle flow" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' clock advance 2h5m | grep -q 'expired=1'"
touch "$TB_TMP/noop4"
wait_until 8 test -s "$TB_TMP/noop4.out" # the client's own 3 s timeout, or an answer
check_not "IPv6: after expiry the session's traffic no longer passes" grep -qs '^n4 OK' "$TB_TMP/noop4.out"
check "IPv6: its segments are dropped as without a flow" test "$(stat_of drop_no_flow_outbound)" -gt 0

touch "$TB_TMP/quit"
"$LGTB" gateway stop >/dev/null
check "IPv6: the ip6tables chains are gone after stop" \
	bash -c "! ip netns exec lg-gw ip6tables -t mangle -S | grep -q LEMONGATE"
tb_finish
