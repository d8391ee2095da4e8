#!/usr/bin/env bash
# Live reload (issue 6): 1,000 connections through lemongated survive a reload by SIGHUP and by
# `lemongatectl policy reload`, none lost, traffic continuing; the new timers apply to them at
# once (test clock); a bad file or a setting that needs a restart changes nothing and says why.
# Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

CONNS=1000
cp "$TB_ROOT/testbed/lemongate-testbed.conf" "$TB_TMP/gw.conf"
"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" gateway start --test-clock "$TB_TMP/gw.conf" >/dev/null || fail "gateway start"

# An echo server on the server host, for many connections at once.
in_server /usr/bin/python3 - <<'PY' &
import resource, selectors, socket
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
sel = selectors.DefaultSelector()
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("198.51.100.2", 2143)); ls.listen(2048); ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ)
while True:
    for key, _ in sel.select(120):
        if key.fileobj is ls:
            c, _ = ls.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
        else:
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if data:
                key.fileobj.sendall(data)
            else:
                sel.unregister(key.fileobj); key.fileobj.close()
PY
disown
wait_until 5 bash -c "ip netns exec lg-server ss -Hltn | grep -q ':2143 '" || fail "echo server listens"

# The client: CONNS connections held open; for each file roundN that appears it sends a line
# on every connection (or on the first K if the file holds K) and writes to roundN.out how many
# echoed it back.
in_client /usr/bin/python3 - "$TB_TMP" "$CONNS" <<'PY' &
import os, resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
tmp, n = sys.argv[1], int(sys.argv[2])
conns = []
for i in range(n):
    s = socket.create_connection(("198.51.100.2", 2143), timeout=5)
    conns.append(s)
open(os.path.join(tmp, "opened"), "w").write("%d\n" % len(conns))
r = 0
deadline = time.time() + 120
while time.time() < deadline and not os.path.exists(os.path.join(tmp, "quit")):
    req = os.path.join(tmp, "round%d" % r)
    if os.path.exists(req):
        ok = 0
        # a number in the file: try only that many connections, with a short timeout
        want = open(req).read().strip()
        limit, wait = (int(want), 1) if want else (n, 3)
        for i, s in enumerate(conns[:limit]):
            msg = b"r%d c%d\n" % (r, i)
            try:
                s.settimeout(wait); s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    part = s.recv(100)
                    if not part:
                        break
                    got += part
                ok += got == msg
            except OSError:
                pass
        open(os.path.join(tmp, "round%d.out" % r), "w").write("%d\n" % ok)
        r += 1
    time.sleep(0.05)
PY
disown
wait_until 60 test -s "$TB_TMP/opened" || fail "the client opened its connections"
check "$CONNS connections opened through lemongated" grep -qx "$CONNS" "$TB_TMP/opened"

round=0
traffic() { # every connection echoes a line
	touch "$TB_TMP/round$round"
	wait_until 60 test -s "$TB_TMP/round$round.out"
	local got
	got=$(cat "$TB_TMP/round$round.out" 2>/dev/null)
	round=$((round + 1))
	[ "$got" = "$CONNS" ] || { echo "  only $got of $CONNS echoed"; return 1; }
}
established() { ctl flows --port 2143 --state established | tail -1; }
timeouts() { ctl flows --port 2143 --json | /usr/bin/python3 -c 'import json,sys; print(sorted({f["expires_in"] > 7440 for f in json.load(sys.stdin)}))'; }

check "traffic on all $CONNS before any reload" traffic
check "the gateway tracks all $CONNS" test "$(established)" = "$CONNS flows"

# SIGHUP with a longer established timer: applies to the existing flows at once.
sed -i 's/^timeout established .*/timeout established 3h/' "$TB_TMP/gw.conf"
kill -HUP "$(cat /run/lgtb/lemongated.pid)"
check "SIGHUP reloads the policy" wait_until 5 grep -q 'policy reloaded from' /run/lgtb/lemongated.log
check "after SIGHUP: all $CONNS flows still there" test "$(established)" = "$CONNS flows"
check "after SIGHUP: traffic on all $CONNS" traffic
check "the new 3h timer applies to the existing flows" test "$(timeouts)" = "[True]"
ctl clock advance 2h30m >/dev/null
check "2h30m idle on the test clock: past the old 2h4m, within the new 3h, none lost" \
	test "$(established)" = "$CONNS flows"
check "and traffic continues on all $CONNS" traffic

# lemongatectl policy reload, with a bad file: refused, nothing changed, the errors said.
cp "$TB_TMP/gw.conf" "$TB_TMP/good.conf"
sed -i 's/^timeout established .*/timeout established 1h/' "$TB_TMP/gw.conf"
printf 'bogus statement\n' >>"$TB_TMP/gw.conf"
ctl policy reload >"$TB_TMP/bad.out" 2>&1
check "a bad file is refused (exit 1)" test $? -eq 1
check "the refusal names the file, line and requirement" \
	grep -q "gw.conf:[0-9]*:[0-9]*: error: .*N5382-R5" "$TB_TMP/bad.out"
check "the refusal names the unknown statement" grep -q "unknown statement 'bogus'" "$TB_TMP/bad.out"
check "after the refused reload: all flows there" test "$(established)" = "$CONNS flows"
check "and the 3h timer still in force" test "$(timeouts)" = "[True]"
check "and traffic on all $CONNS" traffic

# A setting that needs a restart: refused by name.
sed 's/^nat public .*/nat public 198.51.100.9/' "$TB_TMP/good.conf" >"$TB_TMP/gw.conf"
ctl policy reload >"$TB_TMP/fixed.out" 2>&1
check "a new public address is refused on reload (exit 1)" test $? -eq 1
check "the refusal says it needs a restart" grep -q "need a restart: nat public" "$TB_TMP/fixed.out"

# lemongatectl policy reload with a good file.
sed 's/^timeout established .*/timeout established 2h4m/' "$TB_TMP/good.conf" >"$TB_TMP/gw.conf"
check "lemongatectl policy reload applies a good file" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' policy reload | grep -q 'result=applied'"
check "after it: all $CONNS flows there" test "$(established)" = "$CONNS flows"
check "the 2h4m timer is back" test "$(timeouts)" = "[False]"
check "traffic on all $CONNS after the last reload" traffic

# A rule added by reload: existing flows are kept unless --reevaluate, which ends them; new
# connections are refused at once (block return: ICMP 3/13).
cp "$TB_TMP/gw.conf" "$TB_TMP/good.conf"
printf 'block return out proto tcp to 198.51.100.2 port 2143\n' >>"$TB_TMP/gw.conf"
check "a reload with a block rule is applied" ctl policy reload
check "without --reevaluate the $CONNS flows are kept" test "$(established)" = "$CONNS flows"
check "and their traffic passes" traffic
in_client /usr/bin/python3 - >"$TB_TMP/new.out" <<'PY'
import errno, socket, time
t0 = time.monotonic()
try:
    socket.create_connection(("198.51.100.2", 2143), timeout=4); print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, "timeout") if e.errno else "timeout", round(time.monotonic() - t0, 1))
PY
check "a new connection the rule blocks is refused at once (3/13)" grep -q '^EHOSTUNREACH 0\.' "$TB_TMP/new.out"
ctl policy reload --reevaluate >"$TB_TMP/reeval.out"
check "reload --reevaluate ends the $CONNS flows the rule refuses" grep -q "flows_ended=$CONNS" "$TB_TMP/reeval.out"
check "none left" test "$(established)" = "0 flows"
echo 5 >"$TB_TMP/round$round"
wait_until 20 test -s "$TB_TMP/round$round.out"
check "and their traffic no longer passes (5 tried, none echoed)" grep -qx 0 "$TB_TMP/round$round.out"
touch "$TB_TMP/quit"
tb_finish
