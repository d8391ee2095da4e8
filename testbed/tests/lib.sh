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

# session_start HOST [PORT] [SRC]: an IMAP-like session from lg-client to HOST:PORT (143;
# IPv6 if HOST has a ':'), from SRC if given, held open in the background for a minute or until
# $TB_TMP/quit appears. It reads the greeting, writes its local port to $TB_TMP/port, and
# answers `noop N`. SESSION_PID is its pid.
session_start() {
	in_client /usr/bin/python3 - "$TB_TMP" "$1" "${2:-143}" "${3:-}" <<'PY' &
import os, socket, sys, time
tmp, host, port, src = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
if src:
    s.bind((src, 0))
s.settimeout(5)
s.connect((host, port))
f = s.makefile("rwb")
open(os.path.join(tmp, "greeting"), "w").write(f.readline().decode())
open(os.path.join(tmp, "port"), "w").write(str(s.getsockname()[1]))
n = 0
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists(os.path.join(tmp, "quit")):
    if os.path.exists(os.path.join(tmp, "noop%d" % n)):
        try:
            s.settimeout(3); f.write(b"n%d NOOP\r\n" % n); f.flush()
            line = f.readline().decode().strip()
        except OSError as e:
            line = "error " + str(e)
        open(os.path.join(tmp, "noop%d.out" % n), "w").write(line + "\n")
        n += 1
    time.sleep(0.05)
PY
	SESSION_PID=$!
	wait_until 5 test -s "$TB_TMP/port"
}

# noop N: ask the session for NOOP number N; succeeds when it answers "nN OK".
noop() {
	touch "$TB_TMP/noop$1"
	wait_until 5 test -s "$TB_TMP/noop$1.out" && grep -q "^n$1 OK" "$TB_TMP/noop$1.out"
}

tb_finish() {
	echo "$TB_PASSED passed, $TB_FAILED failed"
	[ "$TB_FAILED" -eq 0 ]
}
