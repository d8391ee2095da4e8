#!/usr/bin/env bash
# ICMP through lemongated with real Linux endpoints: a frag-needed (3/4) from a router on the
# outside about an established IMAP session reaches the client translated and lowers its path
# MTU (N5382-R9); soft errors (3/0, 3/1, 3/5) and others never end the flow or the session
# (N5382-R10, L5383-4.2b); an error from the client about a segment it received reaches the
# server translated (I5508-R5). Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" servers start >/dev/null || fail "servers start"
"$LGTB" gateway start >/dev/null || fail "gateway start"
# The outside "router" that reports trouble: another address on the server's network.
in_server ip addr add 198.51.100.77/24 dev eth0

# An IMAP session held open by the client; it sends a NOOP whenever asked.
session_start 198.51.100.2
client=$SESSION_PID
cport=$(cat "$TB_TMP/port")

# inject TYPE CODE REST-HEX: capture the client's next segment on the server side, then send
# from 198.51.100.77 an ICMP error quoting it with the sequence number the client expects next.
inject() {
	local type=$1 code=$2 rest=$3 n=$4
	in_server /usr/bin/python3 - "$type" "$code" "$rest" "$TB_TMP/captured$n" <<'PY' &
import socket, struct, sys
t, c, rest, out = int(sys.argv[1]), int(sys.argv[2]), bytes.fromhex(sys.argv[3]), sys.argv[4]
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
cap.bind(("eth0", 0))
cap.settimeout(8)
open(out + ".ready", "w").close()
while True:
    frame = cap.recv(2048)
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] == 6 and ip[12:16] == socket.inet_aton("198.51.100.1") and \
       struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] == 143:
        break
total = struct.unpack("!H", ip[2:4])[0]
doff = (ip[ihl + 12] >> 4) * 4
seq = struct.unpack("!I", ip[ihl + 4:ihl + 8])[0] + total - ihl - doff
quote = bytearray(ip[:ihl + 8])
quote[ihl + 4:ihl + 8] = struct.pack("!I", seq & 0xffffffff)  # the client's snd_nxt
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
icmp = bytearray(struct.pack("!BBH", t, c, 0) + rest + bytes(quote))
icmp[2:4] = struct.pack("!H", csum(bytes(icmp)))
src = socket.inet_aton("198.51.100.77"); dst = socket.inet_aton("198.51.100.1")
hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, src, dst))
hdr[10:12] = struct.pack("!H", csum(bytes(hdr)))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.sendto(bytes(hdr) + bytes(icmp), ("198.51.100.1", 0))
open(out, "w").write("sent\n")
PY
	local injector=$!
	wait_until 5 test -e "$TB_TMP/captured$n.ready" || return 1
	noop "$n" || return 1
	wait "$injector" && test -s "$TB_TMP/captured$n"
}

check "session up" noop 0
before=$(ctl stats | awk '$1 == "icmp_frag_needed_translated" {print $2}')
check "inject ICMP 3/4 (MTU 1280) from a router about the session" inject 3 4 00000500 1
check "N5382-R9: the gateway translated the frag-needed" \
	wait_until 3 bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^icmp_frag_needed_translated +$((before + 1))$'"
check "stats count it by type and code" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -q '^icmp family=ipv4 type=3 code=4 count=1$'"
check "N5382-R9: the client's path MTU to the server dropped to 1280" \
	wait_until 3 bash -c "ip netns exec lg-client ip route get 198.51.100.2 | grep -q 'mtu 1280'"
check "N5382-R10: data flows after the 3/4" noop 2

n=3
for tc in "3 0" "3 1" "3 5" "3 3" "3 13" "11 0" "12 0"; do
	set -- $tc
	inject "$1" "$2" 00000000 $n >/dev/null
	check "N5382-R10: after ICMP $1/$2 the flow is still established" \
		bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --inside 10.77.0.2:$cport --state established | grep -q '^1 flow$'"
	n=$((n + 1))
	check "N5382-R10, L5383-4.2b: and the session still answers after $1/$2" noop $n
	n=$((n + 1))
done
check "every injected error was translated" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^icmp_errors_translated_in +8$'"

# I5508-R5: the client reports a problem about a segment it received: the server must see it
# from the public address, quoting the public endpoint.
pub=$(ctl flows --inside "10.77.0.2:$cport" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["public"])')
in_server /usr/bin/python3 - "$TB_TMP/r5" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(6)
open(sys.argv[1] + ".ready", "w").close()
while True:
    pkt, addr = s.recvfrom(2048)
    ihl = (pkt[0] & 15) * 4
    if pkt[ihl] == 3 and pkt[ihl + 1] == 3:
        inner = pkt[ihl + 8:]
        iihl = (inner[0] & 15) * 4
        open(sys.argv[1], "w").write("%s %s:%d\n" % (addr[0], socket.inet_ntoa(inner[16:20]),
                                     int.from_bytes(inner[iihl + 2:iihl + 4], "big")))
        break
PY
listener=$!
wait_until 5 test -e "$TB_TMP/r5.ready"
in_client /usr/bin/python3 - "$cport" <<'PY'
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst = socket.inet_aton("198.51.100.2"), socket.inet_aton("10.77.0.2")
inner = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 60, 1, 0, 63, 6, 0, src, dst))
inner[10:12] = struct.pack("!H", csum(bytes(inner)))
inner += struct.pack("!HHI", 143, int(sys.argv[1]), 12345)
icmp = bytearray(struct.pack("!BBHI", 3, 3, 0, 0) + bytes(inner))
icmp[2:4] = struct.pack("!H", csum(bytes(icmp)))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
raw.sendto(bytes(icmp), ("198.51.100.2", 0))
PY
wait "$listener"
check "I5508-R5: the server gets the client's error from 198.51.100.1 quoting $pub" \
	grep -q "^198.51.100.1 $pub\$" "$TB_TMP/r5"

touch "$TB_TMP/quit"
wait "$client"

# I5508-R7: cli2 (10.77.0.3:41200) has a mapping from talking to the server and refuses
# hairpinned SYNs with port unreachable; cli (10.77.0.2) connecting to that mapping's public
# endpoint must get the error, translated, and fail at once rather than time out.
in_client iptables -A INPUT -d 10.77.0.3 -p tcp --dport 41200 -s 198.51.100.1 --syn \
	-j REJECT --reject-with icmp-port-unreachable
in_client /usr/bin/python3 - "$TB_TMP" <<'PY' &
import os, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.3", 41200)); s.settimeout(5)
s.connect(("198.51.100.2", 143)); s.recv(200)
open(os.path.join(sys.argv[1], "r7.ready"), "w").close()
time.sleep(8)
PY
r7_pid=$!
wait_until 5 test -e "$TB_TMP/r7.ready" || fail "cli2's session for the hairpin"
r7_pub=$(grep -h 'connect from 198.51.100.1' /run/lgtb/lemongate-imapd.log | tail -1 | awk '{print $NF}')
in_client /usr/bin/python3 - "$r7_pub" "$TB_TMP/r7.out" <<'PY'
import errno, socket, sys, time
host, port = sys.argv[1].split(":")
s = socket.socket(); s.bind(("10.77.0.2", 0)); s.settimeout(4)
t0 = time.monotonic()
try:
    s.connect((host, int(port))); r = "connected"
except OSError as e:
    r = errno.errorcode.get(e.errno, "timeout") if e.errno else "timeout"
open(sys.argv[2], "w").write("%s %.1f\n" % (r, time.monotonic() - t0))
PY
kill "$r7_pid" 2>/dev/null; wait "$r7_pid" 2>/dev/null
check "I5508-R7: cli's hairpinned connect is refused by cli2's ICMP error, translated back to cli" \
	grep -q '^ECONNREFUSED 0\.' "$TB_TMP/r7.out"
check "I5508-R7: the hairpinned error is counted" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^icmp_errors_hairpinned +[1-9]'"

# C6888-R4, R11: with a quota of 2 ports per inside host, a third connection is refused at once
# with host unreachable, and the two it holds keep working.
"$LGTB" gateway stop
sed 's/^nat quota .*/nat quota 2/' "$TB_ROOT/testbed/lemongate-testbed.conf" >"$TB_TMP/quota.conf"
grep -q '^nat quota 2$' "$TB_TMP/quota.conf" || fail "quota config written"
"$LGTB" gateway start "$TB_TMP/quota.conf" >/dev/null || fail "gateway start with quota"
in_client /usr/bin/python3 - "$TB_TMP/quota.out" <<'PY'
import errno, socket, sys, time
held = [socket.create_connection(("198.51.100.2", 143), timeout=5) for _ in range(2)]
for s in held:
    s.recv(200)
t0 = time.monotonic()
try:
    socket.create_connection(("198.51.100.2", 587), timeout=10)
    third = "connected"
except OSError as e:
    third = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "timeout"
elapsed = time.monotonic() - t0
ok = 0
for i, s in enumerate(held):
    s.sendall(b"q%d NOOP\r\n" % i)
    ok += s.recv(200).startswith(b"q%d OK" % i)
open(sys.argv[1], "w").write("%s %.1f %d\n" % (third, elapsed, ok))
PY
cat "$TB_TMP/quota.out"
check "C6888-R11: the third connection is refused with host unreachable" grep -q '^EHOSTUNREACH ' "$TB_TMP/quota.out"
check "C6888-R11: refused at once, not after a timeout" \
	awk '{ exit !($2 < 2.0) }' "$TB_TMP/quota.out"
check "C6888-R4: the two held connections keep working" grep -q ' 2$' "$TB_TMP/quota.out"
check "the refusal is counted" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^drop_host_quota +[1-9]'"

# I5508-R8: with 'nat refusal admin-prohibited' the refused SYN is answered with ICMP 3/13.
"$LGTB" gateway stop
printf 'nat refusal admin-prohibited\n' >>"$TB_TMP/quota.conf"
"$LGTB" gateway start "$TB_TMP/quota.conf" >/dev/null || fail "gateway start with refusal admin-prohibited"
in_client /usr/bin/python3 - "$TB_TMP/r8.out" <<'PY'
import socket, struct, sys, time
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
held = [socket.create_connection(("198.51.100.2", 143), timeout=5) for _ in range(2)]
try:
    socket.create_connection(("198.51.100.2", 587), timeout=3)
    third = "connected"
except OSError as e:
    third = "refused"
raw.settimeout(0.5)
seen = "none"
deadline = time.time() + 3
while time.time() < deadline and seen == "none":
    try:
        pkt = raw.recv(2048)
    except socket.timeout:
        continue
    ihl = (pkt[0] & 15) * 4
    icmp = pkt[ihl:]
    inner = icmp[8:]
    iihl = (inner[0] & 15) * 4
    if icmp[0] == 3 and struct.unpack("!H", inner[iihl + 2:iihl + 4])[0] == 587:
        seen = "%d/%d" % (icmp[0], icmp[1])
open(sys.argv[1], "w").write("%s %s\n" % (third, seen))
PY
check "I5508-R8: the SYN that gets no session is refused with ICMP 3/13" grep -qx 'refused 3/13' "$TB_TMP/r8.out"
check "I5508-R8: and counted" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^icmp_admin_prohibited_sent +[1-9]'"

"$LGTB" down
tb_finish
