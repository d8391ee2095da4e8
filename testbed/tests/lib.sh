# Shared helpers for testbed tests: assertions, counters, waiting, and cleanup.
# Source it; call tb_finish at the end. The testbed is torn down on exit, pass or fail.

TB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LGTB=$TB_ROOT/testbed/lgtb
BUILD=${LG_BUILD:-$TB_ROOT/build}
TB_PASSED=0
TB_FAILED=0
TB_TMP=$(mktemp -d /tmp/lgtb-test.XXXXXX)

tb_cleanup() {
	"$LGTB" down >/dev/null 2>&1 || true
	rm -rf "$TB_TMP"
}
trap tb_cleanup EXIT

ok() { TB_PASSED=$((TB_PASSED + 1)); echo "ok - $*"; }
fail() { TB_FAILED=$((TB_FAILED + 1)); echo "not ok - $*"; }

# check DESCRIPTION CMD...: passes when CMD succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

# check_not DESCRIPTION CMD...: passes when CMD fails.
check_not() {
	local what=$1
	shift
	if "$@"; then fail "$what"; else ok "$what"; fi
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s; 0 once it succeeds, 1 on timeout.
wait_until() {
	local tries=$(($1 * 10))
	shift
	while [ $tries -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		tries=$((tries - 1))
	done
	return 1
}

in_client() { ip netns exec lg-client "$@"; }
in_gw() { ip netns exec lg-gw "$@"; }
in_server() { ip netns exec lg-server "$@"; }
ctl() { ip netns exec lg-gw "$BUILD/lemongatectl" "$@"; }

tb_finish() {
	echo "$TB_PASSED passed, $TB_FAILED failed"
	[ "$TB_FAILED" -eq 0 ]
}
