#!/usr/bin/env bash
# Walking-skeleton testbed test: a client behind lemongated reaches the server through NAT,
# the server sees the public address, data flows both ways, lemongatectl shows the flow,
# and lemongated cleans up its rules. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up || { fail "lgtb up"; tb_finish; exit 1; }
ok "lgtb up"
check "servers start" "$LGTB" servers start

# Without lemongated the server cannot answer: it has no route to 10.77.0.0/24.
check_not "no NAT, no connection (server has no route to the inside net)" \
	in_client timeout 3 bash -c 'exec 3<>/dev/tcp/198.51.100.2/143 && read -r -t 2 line <&3'

# A bad configuration is refused with file:line and leaves nothing behind.
printf 'interface inside gw-in\ninterface outside gw-out\nnat inside 10.77.0.0/24\nnat public 198.51.100.1\ntimeout established 1h\n' >"$TB_TMP/bad.conf"
if "$LGTB" gateway start "$TB_TMP/bad.conf" 2>"$TB_TMP/bad.err"; then
	fail "bad configuration refused"
else
	ok "bad configuration refused"
fi
check "bad configuration error names file:line:col and N5382-R5" \
	grep -q "bad.conf:5:[0-9]*: error: .*N5382-R5" "$TB_TMP/bad.err"
check_not "no rules left after a refused start" bash -c "ip netns exec lg-gw iptables-save | grep -q LEMONGATE"

sock=$("$LGTB" gateway start)
check "gateway start prints the control socket path" test -S "$sock"
check "lemongatectl finds the socket without flags" ctl ping
check "rules installed in lg-gw" bash -c "ip netns exec lg-gw iptables-save | grep -q 'LEMONGATE-OUT-FROM-IN.*NFQUEUE'"
# An operator's own rules after our jump still see the packets we untrack: our chains decide
# by goto and hand each packet back to the built-in chain.
in_gw iptables -w -t raw -A PREROUTING -p tcp --dport 143
in_gw iptables -w -t raw -A PREROUTING -p tcp --sport 143
operator_count() { in_gw iptables -w -t raw -L PREROUTING -v -x -n | awk -v p="$1" '$0 ~ p { print $1 }'; }

# An IMAP session held open while we look at it from the gateway and the server.
in_client bash -c '
	exec 3<>/dev/tcp/198.51.100.2/143 || exit 1
	read -r -t 5 greeting <&3 && echo "$greeting"
	printf "a1 CAPABILITY\r\n" >&3
	read -r -t 5 l <&3 && echo "$l"
	read -r -t 5 l <&3 && echo "$l"
	printf "a2 LOGIN alice secret\r\n" >&3
	read -r -t 5 l <&3 && echo "$l"
	for i in $(seq 100); do [ -e "$1/release" ] && break; sleep 0.1; done
	printf "a3 LOGOUT\r\n" >&3
	cat <&3
' client "$TB_TMP" >"$TB_TMP/imap.out" 2>&1 &
client_pid=$!
wait_until 5 grep -q "^a2 " "$TB_TMP/imap.out"
check "data server->client: IMAP greeting through NAT" grep -q '^\* OK .*lemongate-imapd ready' "$TB_TMP/imap.out"
check "data both ways: CAPABILITY answered" grep -q '^a1 OK CAPABILITY' "$TB_TMP/imap.out"
check "LOGIN alice/secret through NAT" grep -q '^a2 OK' "$TB_TMP/imap.out"
check "an operator's raw rule after ours sees the outbound packets" test "$(operator_count 'dpt:143')" -gt 0
check "an operator's raw rule after ours sees the inbound packets" test "$(operator_count 'spt:143')" -gt 0
in_gw iptables -w -t raw -D PREROUTING -p tcp --dport 143
in_gw iptables -w -t raw -D PREROUTING -p tcp --sport 143

cport=$(in_client ss -Htn state established '( dport = :143 )' | awk '{print $3}' | sed 's/.*://' | head -1)
check "client has an established connection" test -n "$cport"
srv_peer=$(grep -o 'connect from [0-9.:]*' /run/lgtb/lemongate-imapd.log | tail -1 | awk '{print $3}')
check "server sees the NAT public address 198.51.100.1 as source" test "${srv_peer%:*}" = 198.51.100.1
pub_port=${srv_peer#*:}

ctl flows >"$TB_TMP/flows.txt"
cat "$TB_TMP/flows.txt"
check "ctl flows lists inside 10.77.0.2:$cport -> public $srv_peer -> remote 198.51.100.2:143, established" \
	grep -Eq "^tcp +10\.77\.0\.2:$cport +$srv_peer +198\.51\.100\.2:143 +established " "$TB_TMP/flows.txt"

ctl flows --json >"$TB_TMP/flows.json"
check "ctl flows --json is a JSON array with the same flow" /usr/bin/python3 - "$TB_TMP/flows.json" "$cport" "$srv_peer" <<'PY'
import json, sys
flows = json.load(open(sys.argv[1]))
cport, pub = sys.argv[2], sys.argv[3]
match = [f for f in flows if f["inside"] == "10.77.0.2:" + cport]
assert len(match) == 1, flows
f = match[0]
assert f["public"] == pub and f["remote"] == "198.51.100.2:143", f
assert f["proto"] == "tcp" and f["state"] == "established", f
assert isinstance(f["idle"], int) and isinstance(f["age"], int), f
assert f["packets_out"] >= 3 and f["packets_in"] >= 3, f
PY

check "flows --inside filters to the client's flow" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --inside 10.77.0.2:$cport --state established | grep -q '^1 flow$'"
check "flows --remote for another server lists none" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --remote 203.0.113.1 | grep -q '^0 flows$'"
check_not "flows with an unknown state is refused" ctl flows --state open
flow_id=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$TB_TMP/flows.json")
check "flow ID shows both tuples and the timer" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flow $flow_id | grep -q '^timer *established'"

check "C6888-LOG: the mapping is logged with inside and public endpoints" \
	grep -q "mapping create proto=tcp inside=10.77.0.2:$cport public=$srv_peer\$" /run/lgtb/lemongated.log
check_not "C6888-R12: the log holds no destination address" grep -q '198\.51\.100\.2' /run/lgtb/lemongated.log

touch "$TB_TMP/release"
wait "$client_pid"
check "LOGOUT completes through NAT" grep -q '^a3 OK LOGOUT' "$TB_TMP/imap.out"
check "flow moves to a closing state after FINs" \
	wait_until 3 bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows | grep -q '10.77.0.2:$cport .*fin_rcv'"

# Submission on 587 through the same path.
in_client bash -c '
	exec 3<>/dev/tcp/198.51.100.2/587 || exit 1
	read -r -t 5 l <&3 && echo "$l"
	printf "EHLO client.lg.test\r\n" >&3
	while read -r -t 5 l <&3; do echo "$l"; case $l in "250 "*) break ;; esac; done
	printf "QUIT\r\n" >&3
	cat <&3
' >"$TB_TMP/submit.out" 2>&1
check "Submission greeting through NAT" grep -q '^220 .*ESMTP lemongate-submitd' "$TB_TMP/submit.out"
check "EHLO keywords reach the client intact" bash -c "grep -q '^250-ENHANCEDSTATUSCODES' '$TB_TMP/submit.out' && grep -q '^250-STARTTLS' '$TB_TMP/submit.out' && grep -q '^250 BINARYMIME' '$TB_TMP/submit.out'"
check "QUIT answered" grep -q '^221 ' "$TB_TMP/submit.out"

# N5382-R1: one inside endpoint, two destinations, one public mapping (R7: another endpoint
# gets another). Real sockets bound to the same source port with SO_REUSEADDR.
in_client /usr/bin/python3 - "$TB_TMP/eim.out" <<'PY'
import socket, sys
def connect(src_port, dst_port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.77.0.2", src_port))
    s.settimeout(5)
    s.connect(("198.51.100.2", dst_port))
    greeting = s.recv(200)
    assert greeting, "no greeting"
    return s
held = [connect(41000, 143), connect(41000, 587), connect(41001, 143)]
open(sys.argv[1], "w").write("connected\n")
for s in held:
    s.close()
PY
check "three connections from fixed source ports" grep -q connected "$TB_TMP/eim.out"
eim_143=$(grep -h 'connect from' /run/lgtb/lemongate-imapd.log | tail -2 | head -1 | awk '{print $NF}')
eim_other=$(grep -h 'connect from' /run/lgtb/lemongate-imapd.log | tail -1 | awk '{print $NF}')
eim_587=$(grep -h 'connect from' /run/lgtb/lemongate-submitd.log | tail -1 | awk '{print $NF}')
check "N5382-R1: 10.77.0.2:41000 appears as $eim_143 to both 143 and 587" test "$eim_143" = "$eim_587"
check "N5382-R7: 10.77.0.2:41001 gets another mapping ($eim_other)" test "$eim_other" != "$eim_143"

# N5382-R3, default endpoint-independent filtering: once 10.77.0.2:41002 has a mapping (from an
# IMAP connection), the server can open a new connection to that public port and reach a
# listener on 10.77.0.2:41002.
in_client /usr/bin/python3 - "$TB_TMP" <<'PY' &
import os, socket, sys
tmp = sys.argv[1]
out = socket.socket()
out.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
out.bind(("10.77.0.2", 41002))
out.settimeout(5)
out.connect(("198.51.100.2", 143))
out.recv(200)
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("10.77.0.2", 41002))
lst.listen(1)
lst.settimeout(8)
open(os.path.join(tmp, "eif.ready"), "w").write("ready\n")
conn, peer = lst.accept()
conn.sendall(b"hello from inside\n")
open(os.path.join(tmp, "eif.peer"), "w").write("%s:%d\n" % peer)
PY
eif_pid=$!
wait_until 5 test -e "$TB_TMP/eif.ready"
eif_pub=$(grep -h 'connect from' /run/lgtb/lemongate-imapd.log | tail -1 | awk '{print $NF}')
in_server /usr/bin/python3 - "${eif_pub#*:}" "$TB_TMP/eif.got" <<'PY'
import socket, sys
s = socket.create_connection(("198.51.100.1", int(sys.argv[1])), timeout=5)
open(sys.argv[2], "wb").write(s.recv(100))
PY
wait "$eif_pid"
check "N5382-R3: EIF: the server reaches the inside listener through its mapping $eif_pub" \
	grep -q 'hello from inside' "$TB_TMP/eif.got"
check "the inside listener sees the server's own address" grep -q '^198.51.100.2:' "$TB_TMP/eif.peer"

# N5382-R8/R8a: hairpinning. cli2 (10.77.0.3:41100) has a mapping from talking to the server
# and listens on that port; cli (10.77.0.2) connects to the mapping's public endpoint and must
# reach cli2, which must see cli's public endpoint as the source.
in_client /usr/bin/python3 - "$TB_TMP" <<'PY' &
import os, socket, sys
tmp = sys.argv[1]
out = socket.socket()
out.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
out.bind(("10.77.0.3", 41100))
out.settimeout(5)
out.connect(("198.51.100.2", 143))
out.recv(200)
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("10.77.0.3", 41100))
lst.listen(1)
lst.settimeout(8)
open(os.path.join(tmp, "hp.ready"), "w").close()
conn, peer = lst.accept()
conn.settimeout(5)
data = conn.recv(100)
conn.sendall(b"cli2 got " + data)
open(os.path.join(tmp, "hp.peer"), "w").write("%s:%d\n" % peer)
conn.recv(100)
PY
hp_pid=$!
wait_until 5 test -e "$TB_TMP/hp.ready"
hp_pub=$(grep -h 'connect from' /run/lgtb/lemongate-imapd.log | tail -1 | awk '{print $NF}')
in_client /usr/bin/python3 - "$hp_pub" "$TB_TMP/hp.got" <<'PY'
import socket, sys
host, port = sys.argv[1].split(":")
s = socket.socket()
s.bind(("10.77.0.2", 0))
s.settimeout(5)
s.connect((host, int(port)))
s.sendall(b"hello")
open(sys.argv[2], "w").write(s.recv(100).decode() + " from=%s:%d\n" % s.getsockname())
s.close()
PY
wait "$hp_pid"
cat "$TB_TMP/hp.got" "$TB_TMP/hp.peer" 2>/dev/null
check "N5382-R8: cli reaches cli2 through cli2's public endpoint $hp_pub, data both ways" \
	grep -q '^cli2 got hello' "$TB_TMP/hp.got"
check "N5382-R8a: cli2 sees the public address as the source, not 10.77.0.2" \
	grep -q '^198\.51\.100\.1:' "$TB_TMP/hp.peer"

ctl stats >"$TB_TMP/stats.txt"
check "stats count ten flows created" grep -Eq '^flows_created +10$' "$TB_TMP/stats.txt"
check "stats count hairpinned packets" grep -Eq '^hairpinned +[1-9]' "$TB_TMP/stats.txt"
check "stats count no malformed drops" grep -Eq '^drop_malformed +0$' "$TB_TMP/stats.txt"
check_not "clock advance refused without --test-clock" ctl clock advance 1h
check_not "malformed control request refused" bash -c "printf 'GET / HTTP/1.0\n' | ip netns exec lg-gw python3 -c '
import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
r=s.recv(4096).decode(); print(r); sys.exit(0 if r.startswith(\"ok\") else 1)' '$sock'"
check "daemon still answers after a malformed request" ctl ping

check "gateway stop" "$LGTB" gateway stop
check_not "rules removed on SIGTERM" bash -c "ip netns exec lg-gw iptables-save | grep -q LEMONGATE"
check_not "control socket removed" test -e "$sock"
check_not "no NAT after stop" in_client timeout 3 bash -c 'exec 3<>/dev/tcp/198.51.100.2/143 && read -r -t 2 line <&3'

# SIGINT cleans up too.
"$LGTB" gateway start >/dev/null
pid=$(cat /run/lgtb/lemongated.pid)
kill -INT "$pid"
check "lemongated exits on SIGINT" wait_until 5 bash -c "! kill -0 $pid 2>/dev/null"
check_not "rules removed on SIGINT" bash -c "ip netns exec lg-gw iptables-save | grep -q LEMONGATE"

# Idle timers on the test clock (N5382-R5): an established flow survives 2h3m idle, not 2h5m.
"$LGTB" gateway start --test-clock >/dev/null
in_client bash -c '
	exec 3<>/dev/tcp/198.51.100.2/143 || exit 1
	read -r -t 5 l <&3 && echo "$l"
	while [ ! -e "$1/advance1" ]; do sleep 0.1; done
	printf "b1 NOOP\r\n" >&3
	read -r -t 5 l <&3 && echo "$l"
	touch "$1/noop1"
	while [ ! -e "$1/advance2" ]; do sleep 0.1; done
	printf "b2 NOOP\r\n" >&3
	read -r -t 3 l <&3 && echo "$l"
	touch "$1/noop2"
' client "$TB_TMP" >"$TB_TMP/idle.out" 2>&1 &
client_pid=$!
wait_until 5 grep -q 'OK' "$TB_TMP/idle.out"
check "clock advance 2h3m accepted with --test-clock, nothing expires" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' clock advance 2h3m | grep -q 'expired=0'"
check "N5382-R5: flow kept after 2h3m idle" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows | grep -q ' established '"
touch "$TB_TMP/advance1"
wait_until 6 test -e "$TB_TMP/noop1"
check "N5382-R5: data flows after 2h3m idle" grep -q '^b1 OK NOOP' "$TB_TMP/idle.out"
check "clock advance 2h5m expires the idle flow" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' clock advance 2h5m | grep -q 'expired=1'"
check "flow gone after 2h5m idle" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows | grep -q '^0 flows'"
touch "$TB_TMP/advance2"
wait "$client_pid"
check_not "expired flow no longer passes traffic" grep -q '^b2 OK' "$TB_TMP/idle.out"

# N5382-R4: the server connects to a public port no mapping holds. Nothing may come back
# within 6 s (test clock); after 6 s an ICMP port unreachable ends the attempt.
check "no mapping on public port 59999" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --port 59999 | grep -q '^0 flows$'"
in_server /usr/bin/python3 - "$TB_TMP/r4.out" <<'PY' &
import errno, socket, sys, time
s = socket.socket()
s.settimeout(30)
t0 = time.monotonic()
try:
    s.connect(("198.51.100.1", 59999))
    result = "connected"
except ConnectionRefusedError:
    result = "refused"
except socket.timeout:
    result = "timeout"
except OSError as e:
    result = "error %s" % errno.errorcode.get(e.errno, e.errno)
open(sys.argv[1], "w").write("%s %.1f\n" % (result, time.monotonic() - t0))
PY
r4_pid=$!
check "the SYN is held" wait_until 3 bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^syn_held +1$'"
ctl clock advance 5s >/dev/null
# clock advance sends whatever falls due before it returns, so the counter is final here
check "N5382-R4: no answer 5 s (test clock) after the SYN" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^icmp_port_unreachable_sent +0$'"
check_not "N5382-R4: the connection is still waiting" test -s "$TB_TMP/r4.out"
ctl clock advance 1s >/dev/null
check "N5382-R4: answered as the clock reaches 6 s" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^icmp_port_unreachable_sent +1$'"
check "N5382-R4: ICMP port unreachable after 6 s refuses the connection" \
	wait_until 5 grep -q '^refused' "$TB_TMP/r4.out"
wait "$r4_pid"
check "stats count the ICMP sent" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^icmp_port_unreachable_sent +1$'"
"$LGTB" gateway stop

check "lgtb down" "$LGTB" down
check_not "namespaces removed" bash -c "ip netns list | grep -q '^lg-'"

tb_finish
