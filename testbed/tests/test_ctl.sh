#!/usr/bin/env bash
# lemongatectl against a live daemon (issue 6): mappings, policy show, flows --service,
# stats --watch, flush with and without --yes, and their --json forms. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" servers start >/dev/null || fail "servers start"
"$LGTB" gateway start >/dev/null || fail "gateway start"

json_ok() { /usr/bin/python3 -c 'import json,sys; json.load(sys.stdin)'; }

# An IMAP session held open; it sends a NOOP whenever asked.
session_start 198.51.100.2
cport=$(cat "$TB_TMP/port" 2>/dev/null)
check "an IMAP session through the gateway" noop 0
in_client ping -c 1 -W 2 -q 198.51.100.2 >/dev/null || fail "ping through the gateway"

ctl mappings >"$TB_TMP/mappings.txt"
check "mappings: the session's TCP mapping, with its flow" \
	grep -Eq "^tcp +10\.77\.0\.2:$cport +198\.51\.100\.1:[0-9]+ +1 flows$" "$TB_TMP/mappings.txt"
check "mappings: the ping's echo session" grep -Eq '^icmp +10\.77\.0\.2:[0-9]+ +198\.51\.100\.1:[0-9]+ +[0-9]+ s idle$' "$TB_TMP/mappings.txt"
check "mappings --json is JSON" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' mappings --json | /usr/bin/python3 -c 'import json,sys; m=json.load(sys.stdin); assert any(x[\"proto\"]==\"tcp\" and x[\"flows\"]==1 for x in m)'"

ctl policy show >"$TB_TMP/policy.txt"
check "policy show: the public address in force" grep -Eq '^nat_public +198\.51\.100\.1$' "$TB_TMP/policy.txt"
check "policy show: the established timer" grep -Eq '^timeout_established +7440$' "$TB_TMP/policy.txt"
check "policy show: the rule as written" \
	grep -q 'pass out proto tcp port { 143 587 993 465 4190 674 }' "$TB_TMP/policy.txt"
check "policy show --json: settings and rules" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' policy show --json | /usr/bin/python3 -c 'import json,sys; p=json.load(sys.stdin); assert p[\"nat_public\"]==\"198.51.100.1\" and p[\"timeout_established\"]==7440 and p[\"rules\"][0][\"text\"].startswith(\"pass out\")'"

ctl stats --json >"$TB_TMP/stats.json"
check "stats --json: one object with the counters and the queues" /usr/bin/python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
c = s["counters"]
assert c["flows_active"] == 1 and c["drop_malformed"] == 0 and len(s["queues"]) == 1, s' "$TB_TMP/stats.json"
check "policy check FILE: the testbed configuration is valid" \
	bash -c "'$BUILD/lemongatectl' policy check '$TB_ROOT/testbed/lemongate-testbed.conf' | grep -q 'configuration ok'"
printf 'timeout established 1h\n' >"$TB_TMP/short.conf"
"$BUILD/lemongatectl" policy check "$TB_TMP/short.conf" >"$TB_TMP/check.txt" 2>&1
check "policy check FILE: a short timer is refused (exit 4)" test $? -eq 4
check "policy check FILE: at FILE:LINE:COL, naming the requirement" \
	grep -q "short.conf:1:21: error: .*N5382-R5" "$TB_TMP/check.txt"

check "flows --service imap: the session" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service imap | grep -q '^1 flow$'"
fid=$(ctl flows --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
check "flow ID: the service and who opened it" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flow $fid | grep -Eq '^service +imap$' && ip netns exec lg-gw '$BUILD/lemongatectl' flow $fid | grep -Eq '^opened_from +inside$'"
check "flows --service submission: none" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows --service submission | grep -q '^0 flows$'"
check_not "flows --service gopher: refused" ctl flows --service gopher

ip netns exec lg-gw timeout -s INT 3.5 "$BUILD/lemongatectl" stats --watch 1 >"$TB_TMP/watch.txt" &
watcher=$!
wait_until 3 bash -c "[ \$(grep -c '^-- ' '$TB_TMP/watch.txt') -ge 1 ]" # a first sample, then traffic
noop 1 >/dev/null
wait "$watcher"
check "stats --watch 1 prints the counters every second" test "$(grep -c '^-- ' "$TB_TMP/watch.txt")" -ge 3
check "stats --watch shows a rate for what moved" grep -Eq '^packets_in +[0-9]+ +\+[0-9.]+/s$' "$TB_TMP/watch.txt"

ctl flush >"$TB_TMP/flush.txt"
check "flush without --yes refuses (exit 2)" test $? -eq 2
check "and states the damage" grep -q 'flush would end 1 IPv4 flows, 0 IPv6 flows, 1 NAT mappings and 1 echo sessions' "$TB_TMP/flush.txt"
check "and changes nothing" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows | grep -q '^1 flow$'"
check "flush --yes ends them" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flush --yes | grep -q 'flushed: 1 flows and 1 echo sessions ended'"
check "no flow left" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' flows | grep -q '^0 flows$'"
check "no mapping left" bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' mappings | grep -q '^0 mappings$'"
check_not "the flushed session's traffic no longer passes" noop 2
# The control socket: root only by default; with 'control group', the group may read. The
# group's daemon opens /run/lemongate to it: closed again however this test ends.
trap 'tb_cleanup; chown root:root /run/lemongate 2>/dev/null; chmod 0700 /run/lemongate 2>/dev/null' EXIT
as_nobody() { ip netns exec lg-gw setpriv --reuid=65534 --regid=65534 --clear-groups "$BUILD/lemongatectl" "$@"; }
check_not "root only by default: another user cannot even list flows" as_nobody flows
"$LGTB" gateway stop >/dev/null
cp "$TB_ROOT/testbed/lemongate-testbed.conf" "$TB_TMP/group.conf"
printf 'control group nogroup\n' >>"$TB_TMP/group.conf"
"$LGTB" gateway start "$TB_TMP/group.conf" >/dev/null || fail "gateway start with a control group"
check "control group: a member lists flows" bash -c "ip netns exec lg-gw setpriv --reuid=65534 --regid=65534 --clear-groups '$BUILD/lemongatectl' flows | grep -q flows"
check "control group: a member reads stats and the policy" bash -c "ip netns exec lg-gw setpriv --reuid=65534 --regid=65534 --clear-groups '$BUILD/lemongatectl' policy show | grep -q '^nat_public'"
as_nobody flush --yes >"$TB_TMP/denied.txt" 2>&1
check "control group: flush needs root (exit 1)" test $? -eq 1
check "control group: and says so" grep -q 'permission denied' "$TB_TMP/denied.txt"
check_not "control group: so does reload" as_nobody policy reload
check "the socket is the group's, mode 0660" bash -c "stat -c '%a %G' \$(ip netns exec lg-gw '$BUILD/lemongatectl' socket) | grep -qx '660 nogroup'"
touch "$TB_TMP/quit"
tb_finish
