#!/usr/bin/env bash
# The lemonade forward-without-download end to end through lemongate (issue 7): from lg-client,
# CATENATE and GENURLAUTH on lemongate-imapd, BURL LAST on lemongate-submitd, which fetches the
# message itself and delivers it; bob's INBOX must hold it byte for byte. Root only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

"$LGTB" up >/dev/null || { fail "lgtb up"; tb_finish; exit 1; }
"$LGTB" servers start >/dev/null || fail "servers start"
"$LGTB" gateway start >/dev/null || fail "gateway start"

in_client /usr/bin/python3 "$TB_ROOT/testbed/forward.py" >"$TB_TMP/forward.out" 2>&1
rc=$?
sed 's/^/  /' "$TB_TMP/forward.out"
check "forward-without-download through the gateway: bob's INBOX holds the forward byte for byte" \
	test "$rc" -eq 0
check "the submission server fetched it itself (URLFETCH by the submit identity)" \
	grep -q 'LOGIN user=submitter' /run/lgtb/lemongate-imapd.log
check "the client's sessions reached the servers from the NAT public address" \
	grep -q 'connect from 198.51.100.1:' /run/lgtb/lemongate-submitd.log
check "lemongate dropped nothing as malformed" \
	bash -c "ip netns exec lg-gw '$BUILD/lemongatectl' stats --json | /usr/bin/python3 -c 'import json,sys; assert json.load(sys.stdin)[\"counters\"][\"drop_malformed\"] == 0'"
tb_finish
