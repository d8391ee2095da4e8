#!/usr/bin/env bash
# Several public addresses (issue 6): `nat public 198.51.100.1 198.51.100.3`. Sixteen inside
# addresses each open three connections through lemongated; every connection of one inside
# address reaches the server from the same public address (paired pooling, RFC 4787 REQ-2),
# both public addresses are used, and data flows on all of them. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" servers start >/dev/null || fail "servers start"
# the second public address lives on the gateway's outside interface, as the first does
in_gw ip addr add 198.51.100.3/24 dev gw-out
for i in $(seq 10 25); do in_client ip addr add 10.77.0.$i/24 dev eth0; done
sed 's/^nat public .*/nat public 198.51.100.1 198.51.100.3/' "$TB_ROOT/testbed/lemongate-testbed.conf" >"$TB_TMP/pool.conf"
"$LGTB" gateway start "$TB_TMP/pool.conf" >/dev/null || fail "gateway start with two public addresses"

in_client /usr/bin/python3 - "$TB_TMP/pool.out" <<'PY'
import socket, sys
out = open(sys.argv[1], "w")
for i in range(10, 26):
    for k in range(3):
        s = socket.socket(); s.bind(("10.77.0.%d" % i, 0)); s.settimeout(5)
        try:
            s.connect(("198.51.100.2", 143))
            greeting = s.recv(200)
            s.sendall(b"p1 NOOP\r\n")
            ok = s.recv(200).startswith(b"p1 OK")
            out.write("10.77.0.%d %d %s %s\n" % (i, s.getsockname()[1], "ok" if greeting and ok else "bad", ""))
        except OSError as e:
            out.write("10.77.0.%d 0 error %s\n" % (i, e))
        s.close()
PY
check "48 connections from 16 inside addresses, data both ways on each" \
	test "$(grep -c ' ok ' "$TB_TMP/pool.out")" -eq 48
# the server's log has each connection's public endpoint, in order
grep -h 'connect from' /run/lgtb/lemongate-imapd.log | awk '{print $NF}' | sed 's/:.*//' | tail -48 >"$TB_TMP/seen"
paste -d' ' <(awk '{print $1}' "$TB_TMP/pool.out") "$TB_TMP/seen" >"$TB_TMP/pairs"
check "paired pooling: each inside address always appears as one public address" \
	test "$(sort -u "$TB_TMP/pairs" | awk '{print $1}' | uniq -d | wc -l)" -eq 0
check "both public addresses are used" \
	bash -c "grep -q ' 198.51.100.1$' '$TB_TMP/pairs' && grep -q ' 198.51.100.3$' '$TB_TMP/pairs'"
check "mappings list both public addresses" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' mappings | grep -q ' 198.51.100.3:' "
check "policy show lists the pool" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' policy show | grep -Eq '^nat_public +198\.51\.100\.1,198\.51\.100\.3$'"
tb_finish
