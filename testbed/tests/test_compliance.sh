#!/usr/bin/env bash
# The compliance audit (issue 8) can pass and can fail: lemongate passes every ID it checks;
# stock kernel NAT fails the filtering (N5382-R3), unsolicited-SYN (R4), transitory-timer (R5)
# and hairpinning (R8) checks; the
# careless kernel NAT fails the timers with its 1-hour established timeout and the extensions
# check with its STARTTLS-stripping proxy. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
AUDIT=$TB_ROOT/testbed/compliance

LG_BUILD=$BUILD "$AUDIT" --json >"$TB_TMP/lemongate.json"
check "lemongate passes the audit (exit 0)" test $? -eq 0
check "lemongate: fifteen IDs, all pass (one minute of link loss included)" /usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert len(r) == 15 and all(x["verdict"] == "pass" for x in r), r' "$TB_TMP/lemongate.json"
# the kernel targets without the minute of link loss, to keep CI short
"$AUDIT" --target kernel-nat --quick --json >"$TB_TMP/kernel.json"
check "kernel NAT does not pass (exit 1)" test $? -eq 1
check "kernel NAT: N5382-R3, R4, R5 and R8 fail, L5383-4.1a cannot be checked" /usr/bin/python3 -c '
import json, sys
r = {x["id"]: x["verdict"] for x in json.load(open(sys.argv[1]))["results"]}
assert r["N5382-R3"] == "fail" and r["N5382-R5"] == "fail" and r["L5383-4.1a"] == "cannot check", r
assert r["N5382-R4"] == "fail" and r["N5382-R8"] == "fail", r
assert r["N5382-R1"] == "pass" and r["L5383-3"] == "pass", r' "$TB_TMP/kernel.json"
"$AUDIT" --target kernel-nat-broken --quick >"$TB_TMP/broken.txt"
check "careless kernel NAT: its 1-hour established timeout is caught" \
	grep -Eq '^N5382-R5 +fail .*established 3600 s' "$TB_TMP/broken.txt"
check "careless kernel NAT: its STARTTLS-stripping proxy is caught (L5383-6c)" \
	grep -Eq '^L5383-6c +fail ' "$TB_TMP/broken.txt"
check "while IMAP and Submission still get through it (L5383-3 passes)" \
	grep -Eq '^L5383-3 +pass ' "$TB_TMP/broken.txt"
tb_finish
