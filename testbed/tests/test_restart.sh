#!/usr/bin/env bash
# C6888-R8 across state loss: lemongated is killed (SIGKILL, as in a crash) while a connection
# holds a public port, and started again. Over a two-port range, the new run gives new flows
# the other port, refuses a third rather than reuse the held one within 120 s, and hands it
# out again once its rest is over (test clock). Then the same after a clean stop. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" servers start >/dev/null || fail "servers start"
sed 's/^nat ports .*/nat ports 20000-20001/' "$TB_ROOT/testbed/lemongate-testbed.conf" >"$TB_TMP/two.conf"
grep -q '^nat ports 20000-20001$' "$TB_TMP/two.conf" || fail "two-port config written"
"$LGTB" gateway start --test-clock "$TB_TMP/two.conf" >/dev/null || fail "gateway start"

# open_conn NAME: a connection from the client held open in the background; NAME.local gets
# its local port once the greeting came, NAME.err the error if refused.
open_conn() {
	in_client /usr/bin/python3 - "$TB_TMP/$1" <<'PY' &
import errno, socket, sys, time
out = sys.argv[1]
try:
    s = socket.create_connection(("198.51.100.2", 143), timeout=4)
    s.recv(200)
    open(out + ".local", "w").write(str(s.getsockname()[1]))
except OSError as e:
    open(out + ".err", "w").write(errno.errorcode.get(e.errno, "timeout") if e.errno else "timeout")
    sys.exit(0)
time.sleep(60)
PY
	disown
	wait_until 6 bash -c "test -s '$TB_TMP/$1.local' || test -s '$TB_TMP/$1.err'"
}
public_ports() { in_server ss -Htn state established "( sport = :143 )" | awk '{print $4}' | sed 's/.*://' | sort -u; }

open_conn a
check "first run: a connection is made" test -s "$TB_TMP/a.local"
held=$(public_ports)
check "it holds one of the two public ports" bash -c "[ '$held' = 20000 ] || [ '$held' = 20001 ]"

kill -KILL "$(cat /run/lgtb/lemongated.pid)"
wait_until 3 bash -c "! kill -0 $(cat /run/lgtb/lemongated.pid) 2>/dev/null"
"$LGTB" gateway start --test-clock "$TB_TMP/two.conf" >/dev/null || fail "gateway start after SIGKILL"
check "the new run read the ledger the crashed one left" grep -q 'port ledger .*: 1 port left by the previous run' /run/lgtb/lemongated.log

open_conn b
check "after the crash a new connection is made" test -s "$TB_TMP/b.local"
check "C6888-R8: it got the other port, not the one the crashed run held" \
	test "$(public_ports | tr '\n' ' ')" = "20000 20001 "
open_conn c
check "C6888-R8: a third connection is refused rather than given the held port within 120 s" \
	grep -q EHOSTUNREACH "$TB_TMP/c.err"
ctl clock advance 121s >/dev/null
open_conn d
check "C6888-R8: after its 120 s rest the held port is given out again" test -s "$TB_TMP/d.local"

# A clean stop leaves the ports it held resting for the next run too.
"$LGTB" gateway stop >/dev/null
"$LGTB" gateway start --test-clock "$TB_TMP/two.conf" >/dev/null || fail "gateway start after stop"
check "after a clean stop the held ports rest as well" \
	grep -q 'port ledger .*: 2 ports left by the previous run' /run/lgtb/lemongated.log
open_conn e
check "C6888-R8: no port for a new connection while both rest" grep -q EHOSTUNREACH "$TB_TMP/e.err"
tb_finish
