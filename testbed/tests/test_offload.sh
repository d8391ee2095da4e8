#!/usr/bin/env bash
# Kernel NAT offload (dataplane/knat.h): an established bulk flow's translation handed to
# the kernel's conntrack NAT, its packets still judged and tracked by lemongated. Checks that
# data crosses intact both ways while offloaded, that no packet ever reaches the server with
# an inside source (a leak: the server drops and counts them), that a close, an idle expiry
# on the test clock and a stop each take the kernel's entry back, that a kernel entry deleted
# behind our back only costs speed (the flow goes on, translated by lemongated), and that
# 'offload off' leaves the kernel out. Root.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

CONF=$TB_TMP/offload.conf
CONF_OFF=$TB_TMP/offload-off.conf
CTMARK=0x4c470001
{ grep -v '^offload' "$TB_ROOT/testbed/lemongate-testbed.conf"; echo "offload after 8"; } >"$CONF"
{ grep -v '^offload' "$TB_ROOT/testbed/lemongate-testbed.conf"; echo "offload off"; } >"$CONF_OFF"

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
# the leak detector: whatever reaches the server from an inside address is counted, dropped
in_server iptables -w -I INPUT -s 10.77.0.0/16 -j DROP
"$LGTB" gateway start --test-clock "$CONF" >/dev/null || fail "gateway start (offload after 8)"

stat_of() { ctl stats | awk -v n="$1" '$1 == n { print $2 }'; }
leaked() { in_server iptables -w -L INPUT -v -x -n | awk '$3 == "DROP" && $8 == "10.77.0.0/16" { print $1 }'; }
our_entries() { in_gw conntrack -L -m $CTMARK 2>/dev/null | grep -c '^tcp'; }
set_members() { in_gw ipset list lemongate-knat 2>/dev/null | sed -n '/^Members:/,$p' | grep -c tcp; }

# bulk.py serve PORT DIR: each connection in a thread of its own; reads a 4-byte length then that many bytes,
# answers with the SHA-256 of what it read and the peer's address, then sends as many bytes
# of its own pattern back. Repeats until DIR/quit exists.
# bulk.py send PORT MB DIR: sends MB MiB, checks the answer and the pattern coming back, then
# waits for DIR/go (or 30 s) and does it all again with 1 MiB; writes DIR/result1, result2.
cat >"$TB_TMP/bulk.py" <<'PY'
import hashlib, os, socket, struct, sys, threading, time

def pattern(n):
    block = hashlib.sha256(b"lemongate").digest() * 2048
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])

def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)

mode, port = sys.argv[1], int(sys.argv[2])
def serve_one(c, peer):
    c.settimeout(60)
    try:
        while True:
            head = c.recv(4, socket.MSG_WAITALL)
            if len(head) < 4:
                break
            n = struct.unpack("!I", head)[0]
            digest = hashlib.sha256(recv_exact(c, n)).hexdigest()
            c.sendall(("%s %s\n" % (digest, peer[0])).encode().ljust(128))
            c.sendall(pattern(n))
    except (OSError, EOFError):
        pass
    c.close()

if mode == "serve":
    d = sys.argv[3]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("198.51.100.2", port))
    ls.listen(4)
    ls.settimeout(0.5)
    open(os.path.join(d, "serving"), "w").close()
    while not os.path.exists(os.path.join(d, "quit")):
        try:
            c, peer = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve_one, args=(c, peer), daemon=True).start()
else:
    mb, d = int(sys.argv[3]), sys.argv[4]
    s = socket.create_connection(("198.51.100.2", port), timeout=60)
    for round_no, size in ((1, mb << 20), (2, 1 << 20)):
        if round_no == 2:
            deadline = time.time() + 30
            while not os.path.exists(os.path.join(d, "go")) and time.time() < deadline:
                time.sleep(0.05)
        data = os.urandom(size)
        s.sendall(struct.pack("!I", size) + data)
        answer = recv_exact(s, 128).decode().split()
        back = recv_exact(s, size)
        ok = answer[0] == hashlib.sha256(data).hexdigest() and back == pattern(size)
        open(os.path.join(d, "result%d" % round_no), "w").write(
            "%s %s\n" % ("ok" if ok else "corrupt", answer[1]))
    s.close()
PY

in_server /usr/bin/python3 "$TB_TMP/bulk.py" serve 7301 "$TB_TMP" &
wait_until 5 test -e "$TB_TMP/serving" || fail "bulk server did not start"

# 1. A bulk flow: offloaded after its first packets, intact both ways, closed cleanly.
in_client /usr/bin/python3 "$TB_TMP/bulk.py" send 7301 32 "$TB_TMP" &
SENDER=$!
wait_until 30 test -s "$TB_TMP/result1" || fail "the first 32 MiB did not cross"
check "32 MiB cross both ways intact, the server sees the public address" \
	grep -qx "ok 198.51.100.1" "$TB_TMP/result1"
check "the flow was handed to the kernel (flows_offloaded 1)" test "$(stat_of flows_offloaded)" = 1
check "its packets were left to the kernel to translate" test "$(stat_of packets_kernel_nat)" -gt 100
check "the kernel holds one conntrack entry of ours" test "$(our_entries)" = 1
check "the offload set holds the flow's two directions" test "$(set_members)" = 2
check "flows shows it established" sh -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows | grep -q '198.51.100.2:7301 *established'"
touch "$TB_TMP/go"
wait_until 30 test -s "$TB_TMP/result2" || fail "the second round did not cross"
check "after the pause the offloaded flow carries data again, intact" \
	grep -qx "ok 198.51.100.1" "$TB_TMP/result2"
wait "$SENDER"
check "the close took the kernel's entry back" wait_until 5 test "$(our_entries)" = 0
check "and emptied the set" wait_until 5 test "$(set_members)" = 0
check "offloads_withdrawn counts it" test "$(stat_of offloads_withdrawn)" = 1
rm -f "$TB_TMP"/result* "$TB_TMP/go"

# 2. The kernel's entry deleted behind lemongated's back: the flow goes on, translated here.
in_client /usr/bin/python3 "$TB_TMP/bulk.py" send 7301 16 "$TB_TMP" &
SENDER=$!
wait_until 30 test -s "$TB_TMP/result1" || fail "16 MiB did not cross"
check "a second bulk flow is offloaded" test "$(stat_of flows_offloaded)" = 2
in_gw conntrack -D -m $CTMARK >/dev/null 2>&1
check "its kernel entry is gone" test "$(our_entries)" = 0
kernel_nat_before=$(stat_of packets_kernel_nat)
touch "$TB_TMP/go"
wait_until 30 test -s "$TB_TMP/result2" || fail "the round after the deletion did not cross"
check "after the deletion the flow still carries data intact (translated by lemongated)" \
	grep -qx "ok 198.51.100.1" "$TB_TMP/result2"
check "those packets were not left to the kernel" \
	test "$(stat_of packets_kernel_nat)" = "$kernel_nat_before"
wait "$SENDER"
rm -f "$TB_TMP"/result* "$TB_TMP/go"

# 3. An offloaded flow left idle past its timer (test clock): ended, kernel entry taken back.
in_client /usr/bin/python3 "$TB_TMP/bulk.py" send 7301 16 "$TB_TMP" &
SENDER=$!
wait_until 30 test -s "$TB_TMP/result1" || fail "16 MiB did not cross (idle case)"
check "a third bulk flow is offloaded" test "$(stat_of flows_offloaded)" = 3
check "its kernel entry exists" test "$(our_entries)" = 1
ctl clock advance 2h5m >/dev/null
check "idle past 2h4m, the flow ends and its kernel entry goes with it" \
	wait_until 10 test "$(our_entries)" = 0
check "the set is empty again" test "$(set_members)" = 0
kill "$SENDER" 2>/dev/null # its flow is gone: whatever it sends now is dropped
wait "$SENDER" 2>/dev/null
rm -f "$TB_TMP"/result* "$TB_TMP/go"

check "no packet reached the server with an inside source address" test "$(leaked)" = 0
check_not "no offload was refused" test "$(stat_of offloads_refused)" != 0

# 4. Stop: the rules, the set and every entry of ours go.
"$LGTB" gateway stop >/dev/null || fail "gateway stop"
set_exists() { in_gw ipset list lemongate-knat >/dev/null 2>&1; }
check_not "after stop the offload set is gone" set_exists
check "after stop no conntrack entry of ours is left" test "$(our_entries)" = 0
nat_chains() { in_gw iptables -w -t nat -S | grep -q LEMONGATE-NAT; }
check_not "after stop the NAT hook chains are gone" nat_chains

# 5. offload off: the kernel is left out, the flow is translated here, as intact.
"$LGTB" gateway start "$CONF_OFF" >/dev/null || fail "gateway start (offload off)"
check "offload off: stats say so" test "$(stat_of offload_kernel)" = 0
check_not "offload off: no NAT hook chains" nat_chains
in_client /usr/bin/python3 "$TB_TMP/bulk.py" send 7301 16 "$TB_TMP" &
SENDER=$!
touch "$TB_TMP/go"
wait_until 30 test -s "$TB_TMP/result2" || fail "offload off: the transfer did not finish"
check "offload off: data crosses intact" grep -qx "ok 198.51.100.1" "$TB_TMP/result1"
check "offload off: nothing offloaded" test "$(stat_of flows_offloaded)" = 0
check "offload off: no packet left to the kernel" test "$(stat_of packets_kernel_nat)" = 0
wait "$SENDER"
check "offload off: still no leak" test "$(leaked)" = 0

touch "$TB_TMP/quit"
"$LGTB" gateway stop >/dev/null
tb_finish
