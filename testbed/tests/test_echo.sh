#!/usr/bin/env bash
# ICMP echo through lemongated (RFC 5508 section 3): ping from inside works and is translated
# (I5508-R1: the server has no route back to the inside, so a reply can only come through
# the NAT); two inside hosts using the same echo id get separate sessions; a session lives
# at least 60 s idle on the test clock (I5508-R2); the gateway's own ping is left alone. Root.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" gateway start --test-clock >/dev/null || fail "gateway start --test-clock"

stat_of() { ctl stats | awk -v n="$1" '$1 == n { print $2 }'; }

check "I5508-R1: ping from inside to the server gets its replies" \
	in_client ping -c 2 -i 0.2 -W 2 -q 198.51.100.2
check "I5508-R1: echo requests and replies were translated" \
	test "$(stat_of icmp_echo_out)" -ge 2 -a "$(stat_of icmp_echo_in)" -ge 2
check "the gateway's own ping is not disturbed" in_gw ping -c 1 -W 2 -q 198.51.100.2

# The raw-socket helpers, one script:
#   icmp.py echo SRC DST ID SEQ   send one echo request, exit 0 once its reply comes (2 s)
#   icmp.py late DIR              learn the id of the next echo from 198.51.100.1, then reply to
#                                 it each time DIR/sendN appears (ready: DIR/ready)
#   icmp.py catch SECONDS READY   exit 0 if an echo reply id 5151 seq 77 arrives in time
cat >"$TB_TMP/icmp.py" <<'PY'
import os, socket, struct, sys, time

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def echo_msg(kind, ident, seq, body):
    hdr = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    return struct.pack("!BBHHH", kind, 0, csum(hdr + body), ident, seq) + body

def icmp_of(pkt):
    ihl = (pkt[0] & 15) * 4
    return pkt[ihl:], struct.unpack("!BBHHH", pkt[ihl:ihl + 8])

def wait_reply(s, seconds, match):
    s.settimeout(0.2)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            pkt, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        if match(pkt):
            return True
    return False

s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
mode = sys.argv[1]
if mode == "echo":
    src, dst, ident, seq = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    s.bind((src, 0))
    s.sendto(echo_msg(8, ident, seq, b"lemongate echo test"), (dst, 0))
    def mine(pkt):
        msg, (t, c, ck, i, q) = icmp_of(pkt)
        return t == 0 and i == ident and q == seq and csum(msg) == 0 and pkt[16:20] == socket.inet_aton(src)
    sys.exit(0 if wait_reply(s, 2, mine) else 1)
elif mode == "late":
    d = sys.argv[2]
    s.settimeout(5)
    open(os.path.join(d, "ready"), "w").close()
    while True:
        pkt, addr = s.recvfrom(2048)
        msg, (t, c, ck, ident, q) = icmp_of(pkt)
        if t == 8 and addr[0] == "198.51.100.1":
            break
    open(os.path.join(d, "pubid"), "w").write(str(ident))
    deadline, n = time.time() + 30, 0
    while time.time() < deadline and n < 2:
        if os.path.exists(os.path.join(d, "send%d" % n)):
            s.sendto(echo_msg(0, ident, 77, b"late reply"), ("198.51.100.1", 0))
            open(os.path.join(d, "sent%d" % n), "w").close()
            n += 1
        time.sleep(0.05)
elif mode == "catch":
    open(sys.argv[3], "w").close()
    def late(pkt):
        msg, (t, c, ck, i, q) = icmp_of(pkt)
        return t == 0 and i == 5151 and q == 77
    sys.exit(0 if wait_reply(s, float(sys.argv[2]), late) else 1)
PY

# Both inside hosts ping at once with the same echo id (raw sockets choose it).
in_client /usr/bin/python3 "$TB_TMP/icmp.py" echo 10.77.0.2 198.51.100.2 4242 1 &
a=$!
in_client /usr/bin/python3 "$TB_TMP/icmp.py" echo 10.77.0.3 198.51.100.2 4242 1 &
b=$!
wait $a; ra=$?
wait $b; rb=$?
check "two inside hosts pinging with the same id both get their replies" test $ra -eq 0 -a $rb -eq 0
check "and each has its own session" test "$(stat_of echo_sessions_active)" -ge 3

# I5508-R2: the server answers 59 s after the last echo: still translated. The test clock moves
# 58 s; real time between the steps below adds well under a second (the engine unit test
# checks 59 s exactly, on a clock it controls). A raw socket on the server learns the public
# id of the client's echo, then replies late.
mkdir -p "$TB_TMP/late"
in_server /usr/bin/python3 "$TB_TMP/icmp.py" late "$TB_TMP/late" &
late=$!
wait_until 5 test -e "$TB_TMP/late/ready"
in_client /usr/bin/python3 "$TB_TMP/icmp.py" echo 10.77.0.2 198.51.100.2 5151 1
check "the server saw the client's echo from the public address" \
	wait_until 5 test -s "$TB_TMP/late/pubid"
ctl clock advance 58s >/dev/null
# late_reply N SECONDS: the server sends late reply N; 0 if the client gets it in time
late_reply() {
	in_client /usr/bin/python3 "$TB_TMP/icmp.py" catch "$2" "$TB_TMP/catch$1" &
	local catch=$!
	wait_until 5 test -e "$TB_TMP/catch$1"
	touch "$TB_TMP/late/send$1"
	wait $catch
}
check "I5508-R2: a reply 59 s after the echo is still translated to the client" late_reply 0 3

ctl clock advance 62s >/dev/null
before=$(stat_of passed_untranslated)
check_not "a reply 62 s after the last one finds no session" late_reply 1 2
check "and is left to the gateway, counted untranslated" \
	wait_until 3 test "$(stat_of passed_untranslated)" -gt "$before"
check "the idle sessions expired" test "$(stat_of echo_sessions_active)" -eq 0
kill $late 2>/dev/null
wait $late 2>/dev/null

tb_finish
