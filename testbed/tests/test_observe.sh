#!/usr/bin/env bash
# Passive observation (issue 8) through lemongated with real endpoints: an IMAP session is
# seen through its greeting, LOGIN, IDLE (and how long it has idled, on the test clock), DONE
# and STARTTLS; a Submission session's EHLO keywords are seen; a ManageSieve session (4190)
# is seen through its greeting and STARTTLS; IMAP on a port the configuration adds (observe
# imap ports 143 1143) is followed as IMAP; lemongatectl shows it all and stats count sessions
# by service and phase. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
sed 's/^queue 0$/queue 0\nobserve imap ports 143 1143/' "$TB_ROOT/testbed/lemongate-testbed.conf" >"$TB_TMP/observe.conf"
"$LGTB" gateway start --test-clock "$TB_TMP/observe.conf" >/dev/null || fail "gateway start --test-clock"
check "the configuration adds 1143 to IMAP's observed ports" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' policy show | grep -q '^observe_ports .*imap:143,imap:1143'"

# A small IMAP server with STARTTLS and IDLE; after STARTTLS it only echoes (no real TLS is
# needed: the observer must stop at the OK, whatever follows).
in_server /usr/bin/python3 - <<'PY' &
import socket
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("198.51.100.2", 143)); ls.listen(4); ls.settimeout(60)
c, _ = ls.accept(); f = c.makefile("rwb")
f.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS IDLE LITERAL+ AUTH=PLAIN] test server\r\n"); f.flush()
for line in f:
    tag, _, rest = line.decode().strip().partition(" ")
    cmd = rest.split(" ")[0].upper()
    if tag.upper() == "DONE":
        f.write(b"i1 OK IDLE terminated\r\n")
    elif cmd == "IDLE":
        f.write(b"+ idling\r\n")
    elif cmd == "STARTTLS":
        f.write(tag.encode() + b" OK begin TLS now\r\n"); f.flush()
        for more in f:
            f.write(more); f.flush()
        break
    else:
        f.write(tag.encode() + b" OK done\r\n")
    f.flush()
PY
disown
wait_until 5 bash -c "ip netns exec lg-server ss -Hltn | grep -q '198.51.100.2:143 '" || fail "test IMAP server listens"
"$LGTB" servers start >/dev/null 2>&1 || true # submitd on 587 (imapd's 143 is taken: fine)

# The client, step by step on request (files stepN).
in_client /usr/bin/python3 - "$TB_TMP" <<'PY' &
import os, socket, sys, time
tmp = sys.argv[1]
s = socket.create_connection(("198.51.100.2", 143), timeout=5); f = s.makefile("rwb")
f.readline()
steps = [b"l1 LOGIN alice secret\r\n", b"i1 IDLE\r\n", b"DONE\r\n", b"t1 STARTTLS\r\n"]
for n, cmd in enumerate(steps):
    while not os.path.exists(os.path.join(tmp, "step%d" % n)):
        time.sleep(0.05)
    f.write(cmd); f.flush()
    open(os.path.join(tmp, "step%d.out" % n), "w").write(f.readline().decode())
time.sleep(20)
PY
disown
step() { touch "$TB_TMP/step$1"; wait_until 5 test -s "$TB_TMP/step$1.out"; }
imap_line() { ctl flows --service imap | grep '^tcp '; }

check "the IMAP greeting is seen: phase plaintext" wait_until 5 bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service imap | grep -Eq ' imap +plaintext '"
step 0
check "after LOGIN: authenticated" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service imap | grep -Eq ' imap +authenticated '"
step 1
# seconds in IDLE of the IMAP session in phase idle, from flows --json
in_idle() { ctl flows --service imap --json | /usr/bin/python3 -c 'import json,sys; print([f["in_idle"] for f in json.load(sys.stdin) if f.get("phase") == "idle"][0])'; }
t=$(in_idle)
check "in IDLE: phase idle, for a moment so far (${t:-?} s)" test "${t:-99}" -le 2
check "flows --service imap: the extensions each side advertised or used" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service imap | grep -Eq ' imap +idle +[0-9]+ +STARTTLS,IDLE,LITERAL\+,AUTH IDLE$'"
check "stats count one IMAP session in IDLE" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -q '^mail service=imap phase=idle sessions=1$'"
ctl clock advance 1h >/dev/null
t=$(in_idle)
check "an hour later it has been in IDLE an hour ($t s)" test "${t:-0}" -ge 3600 -a "${t:-0}" -le 3605
fid=$(ctl flows --service imap --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
ctl flow "$fid" >"$TB_TMP/flow.txt"
check "flow ID: the server's extensions" grep -Eq '^server_extensions +STARTTLS,IDLE,LITERAL\+,AUTH$' "$TB_TMP/flow.txt"
check "flow ID: the client's (IDLE)" grep -Eq '^client_extensions +IDLE$' "$TB_TMP/flow.txt"
check "flow ID: the login" grep -Eq '^auth +LOGIN$' "$TB_TMP/flow.txt"
step 2
check "DONE: out of IDLE" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service imap | grep -Eq ' imap +authenticated '"
step 3
check "STARTTLS answered OK: opaque (tls)" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service imap | grep -Eq ' imap +tls '"
check "every step answered through the gateway" test "$(cat "$TB_TMP"/step*.out | grep -c OK)" -ge 3

in_client /usr/bin/python3 - <<'PY' >"$TB_TMP/smtp.out"
import socket
s = socket.create_connection(("198.51.100.2", 587), timeout=5); f = s.makefile("rwb")
print(f.readline().decode().strip())
f.write(b"EHLO client.lg.test\r\n"); f.flush()
while True:
    line = f.readline().decode()
    if line[3:4] != "-":
        break
print("ehlo done")
PY
check "a Submission session through the gateway" grep -q 'ehlo done' "$TB_TMP/smtp.out"
sfid=$(ctl flows --service submission --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])' 2>/dev/null)
check "its EHLO keywords are seen" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flow $sfid | grep -Eq '^server_extensions +STARTTLS,BURL,CHUNKING,PIPELINING,8BITMIME,BINARYMIME,SIZE,DSN,AUTH,ENHANCEDSTATUSCODES$'"
check "stats: observers given to the mail flows" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -Eq '^mail_sessions_observed +2$'"

# ManageSieve on 4190 and IMAP on 1143: small servers that greet, then (sieve) take STARTTLS.
in_server /usr/bin/python3 - <<'PY' &
import socket, threading
def sieve(c, f):
    f.write(b'"IMPLEMENTATION" "test sieve"\r\n"SIEVE" "fileinto"\r\n"SASL" "PLAIN"\r\n'
            b'"STARTTLS"\r\n"VERSION" "1.0"\r\nOK "ready"\r\n'); f.flush()
    for line in f:
        f.write(b'OK "begin TLS"\r\n' if line.upper().startswith(b"STARTTLS") else b"OK\r\n"); f.flush()
def imap(c, f):
    f.write(b"* OK [CAPABILITY IMAP4rev1 IDLE] on another port\r\n"); f.flush()
    for line in f:
        f.write(line.split(b" ")[0] + b" OK done\r\n"); f.flush()
def serve(port, fn):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("198.51.100.2", port)); ls.listen(4); ls.settimeout(60)
    c, _ = ls.accept(); fn(c, c.makefile("rwb"))
ts = [threading.Thread(target=serve, args=a) for a in ((4190, sieve), (1143, imap))]
[t.start() for t in ts]; [t.join() for t in ts]
PY
disown
wait_until 5 bash -c "ip netns exec lg-server ss -Hltn | grep -q '198.51.100.2:1143 '" || fail "sieve and IMAP test servers listen"
in_client /usr/bin/python3 - "$TB_TMP" <<'PY' &
import os, socket, sys, time
tmp = sys.argv[1]
sv = socket.create_connection(("198.51.100.2", 4190), timeout=5); f = sv.makefile("rwb")
while not f.readline().startswith(b"OK"):
    pass
im = socket.create_connection(("198.51.100.2", 1143), timeout=5); g = im.makefile("rwb")
g.readline()
open(os.path.join(tmp, "greeted"), "w").close()
while not os.path.exists(os.path.join(tmp, "starttls")):
    time.sleep(0.05)
f.write(b"STARTTLS\r\n"); f.flush()
open(os.path.join(tmp, "starttls.out"), "w").write(f.readline().decode())
time.sleep(20)
PY
disown
wait_until 5 test -e "$TB_TMP/greeted" || fail "sieve and IMAP sessions greeted"
check "ManageSieve: the greeting is seen (phase plaintext)" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service sieve | grep -Eq ' sieve +plaintext '"
vfid=$(ctl flows --service sieve --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])' 2>/dev/null)
check "ManageSieve: STARTTLS and SASL in its capabilities" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flow $vfid | grep -Eq '^server_extensions +STARTTLS,AUTH$'"
touch "$TB_TMP/starttls"
wait_until 5 test -s "$TB_TMP/starttls.out"
check "ManageSieve: STARTTLS answered OK: opaque (tls)" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service sieve | grep -Eq ' sieve +tls '"
check "IMAP on 1143, as configured: followed as IMAP" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service imap --port 1143 | grep -Eq ':1143 .* imap +plaintext '"
check "stats count the sieve session" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats | grep -q '^mail service=sieve phase=tls sessions=1$'"
tb_finish
