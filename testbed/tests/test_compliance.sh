#!/usr/bin/env bash
# The compliance audit (issue 8) can pass and can fail: lemongate passes every ID it checks;
# stock kernel NAT fails the filtering (N5382-R3), unsolicited-SYN (R4), transitory-timer (R5)
# and hairpinning (R8) checks; the careless kernel NAT also fails the timers (its 1-hour
# established timeout), simultaneous open (it drops inbound SYNs), the ICMP checks (it drops
# ICMP) and the extensions check (its STARTTLS-stripping proxy); a custom target script is set
# up, audited and taken down. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
AUDIT=$TB_ROOT/testbed/compliance

LG_BUILD=$BUILD "$AUDIT" --json >"$TB_TMP/lemongate.json"
check "lemongate passes the audit (exit 0)" test $? -eq 0
check "lemongate: eighteen IDs, all pass (one minute of link loss included)" /usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert len(r) == 18 and all(x["verdict"] == "pass" for x in r), r
ids = {x["id"] for x in r}
assert {"N5382-R2a", "L5383-4.2b", "L5383-7", "L5383-4.2a"} <= ids, ids' "$TB_TMP/lemongate.json"
# the kernel targets without the minute of link loss, to keep CI short
"$AUDIT" --target kernel-nat --quick --json >"$TB_TMP/kernel.json"
check "kernel NAT does not pass (exit 1)" test $? -eq 1
check "kernel NAT: N5382-R3, R4, R5 and R8 fail, L5383-4.1a cannot be checked" /usr/bin/python3 -c '
import json, sys
r = {x["id"]: x["verdict"] for x in json.load(open(sys.argv[1]))["results"]}
assert r["N5382-R3"] == "fail" and r["N5382-R5"] == "fail" and r["L5383-4.1a"] == "cannot check", r
assert r["N5382-R4"] == "fail" and r["N5382-R8"] == "fail", r
assert r["N5382-R1"] == "pass" and r["L5383-3"] == "pass", r' "$TB_TMP/kernel.json"
check "kernel NAT: simultaneous open, soft ICMP errors and its 5-day established timer pass" /usr/bin/python3 -c '
import json, sys
r = {x["id"]: x["verdict"] for x in json.load(open(sys.argv[1]))["results"]}
assert r["N5382-R2a"] == "pass" and r["L5383-4.2b"] == "pass" and r["L5383-7"] == "pass", r' "$TB_TMP/kernel.json"
"$AUDIT" --target kernel-nat-broken --quick >"$TB_TMP/broken.txt"
check "careless kernel NAT: its 1-hour established timeout is caught (N5382-R5, L5383-7)" \
	bash -c "grep -Eq '^N5382-R5 +fail .*established 3600 s' '$TB_TMP/broken.txt' &&
		grep -Eq '^L5383-7 +fail .*established 3600 s' '$TB_TMP/broken.txt'"
check "careless kernel NAT: its STARTTLS-stripping proxy is caught (L5383-6c)" \
	grep -Eq '^L5383-6c +fail ' "$TB_TMP/broken.txt"
check "careless kernel NAT: dropping inbound SYNs breaks simultaneous open (N5382-R2a)" \
	grep -Eq '^N5382-R2a +fail .*client SYN out' "$TB_TMP/broken.txt"
check "careless kernel NAT: dropping ICMP is caught (N5382-R9, L5383-4.2b)" \
	bash -c "grep -Eq '^N5382-R9 +fail ' '$TB_TMP/broken.txt' && grep -Eq '^L5383-4.2b +fail .*none' '$TB_TMP/broken.txt'"
check "while IMAP and Submission still get through it (L5383-3 passes)" \
	grep -Eq '^L5383-3 +pass ' "$TB_TMP/broken.txt"

# A custom target: any script that sets up lg-gw ("up") and takes it down ("down").
cat >"$TB_TMP/custom-nat" <<SH
#!/bin/sh
# kernel NAT behind a firewall that lets no SYN in
case "\$1" in
up) ip netns exec lg-gw iptables -t nat -A POSTROUTING -o gw-out -s 10.77.0.0/24 -j MASQUERADE &&
	ip netns exec lg-gw iptables -A FORWARD -i gw-out -p tcp --syn -j DROP && echo up >>"$TB_TMP/custom.log" ;;
down) echo down >>"$TB_TMP/custom.log" ;;
esac
SH
chmod +x "$TB_TMP/custom-nat"
"$AUDIT" --target "$TB_TMP/custom-nat" --quick --json >"$TB_TMP/custom.json"
check "a custom target that breaks a requirement does not pass (exit 1)" test $? -eq 1
check "custom target: its script was run up, then down" \
	bash -c "[ \"\$(tr '\n' ' ' <'$TB_TMP/custom.log')\" = 'up down ' ]"
check "custom target: audited through its NAT (R1 passes), R2a fails, timers cannot be checked" /usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); r = {x["id"]: x["verdict"] for x in j["results"]}
assert j["target"].endswith("custom-nat"), j["target"]
assert r["N5382-R1"] == "pass" and r["N5382-R2a"] == "fail", r
assert r["N5382-R5"] == "cannot check" and r["L5383-7"] == "cannot check", r' "$TB_TMP/custom.json"
tb_finish
