#!/usr/bin/env bash
# make install into a staging directory: every file where the manuals and the unit say, the
# manuals render without a warning, the example configuration passes the installed daemon's
# check, and the unit starts the installed daemon on the installed configuration path.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
passed=0
failed=0
check() {
	local what=$1
	shift
	if "$@"; then passed=$((passed + 1)); echo "ok - $what"; else failed=$((failed + 1)); echo "not ok - $what"; fi
}

make -C "$ROOT" -s install BUILD="$BUILD" DESTDIR="$stage" PREFIX=/usr >"$stage.log" 2>&1
check "make install succeeds" test $? -eq 0
for f in usr/sbin/lemongated usr/sbin/lemongatectl usr/share/man/man8/lemongated.8 \
	usr/share/man/man8/lemongatectl.8 usr/share/man/man5/lemongate.conf.5 \
	etc/lemongate/lemongate.conf.example usr/lib/systemd/system/lemongated.service; do
	check "installs /$f" test -s "$stage/$f"
done
check "the binaries are executable" test -x "$stage/usr/sbin/lemongated" -a -x "$stage/usr/sbin/lemongatectl"
for m in "$stage"/usr/share/man/man*/*; do
	check "$(basename "$m") renders without a warning" \
		bash -c "out=\$(groff -man -Tutf8 -ww -z '$m' 2>&1); [ -z \"\$out\" ] || { echo \"\$out\"; false; }"
done
check "the installed daemon accepts the example configuration" \
	"$stage/usr/sbin/lemongated" -t -c "$stage/etc/lemongate/lemongate.conf.example"
unit="$stage/usr/lib/systemd/system/lemongated.service"
check "the unit starts the installed daemon on the installed configuration" \
	grep -qx 'ExecStart=/usr/sbin/lemongated -c /etc/lemongate/lemongate.conf -p /run/lemongate/lemongated.pid' "$unit"
check "the unit checks the configuration first and reloads with SIGHUP" \
	bash -c "grep -q '^ExecStartPre=/usr/sbin/lemongated -t ' '$unit' && grep -q '^ExecReload=/bin/kill -HUP' '$unit'"
check "no placeholder left in the unit" bash -c "! grep -q @ '$unit'"
make -C "$ROOT" -s uninstall DESTDIR="$stage" PREFIX=/usr >/dev/null 2>&1
check "make uninstall removes every file" bash -c "[ -z \"\$(find '$stage' -type f)\" ]"
rm -f "$stage.log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
