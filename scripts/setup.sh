#!/bin/sh
# Installs what lemongate needs to build and test on Debian 12. Idempotent; run as root.
# liburcu-dev is for make bench only: its cds_lfht is the peer our flow table is measured against.
# iperf3 is for make bench too (throughput through the testbed). clang and libclang-rt-14-dev
# build the libFuzzer targets that make check runs for a bounded number of inputs. groff-base
# renders the manual pages (make check lints them); util-linux's setpriv (essential) runs
# lemongatectl as another user in the control-group test. openssl makes the test servers'
# certificate. curl, swaks (TLS through libnet-ssleay-perl), msmtp and isync's mbsync are the real
# clients the test servers are driven with; dovecot-imapd and dovecot-submissiond are what they
# are compared against (servers/tests/clients_test.py starts its own Dovecot on loopback, so a
# Dovecot this script installs is stopped and kept from starting at boot). conntrack and ipset
# are the kernel's own views, with which the kernel NAT offload test checks what lemongated
# left there (lemongated itself speaks netlink and needs neither).
set -eu

PACKAGES="
build-essential
pkg-config
libnetfilter-queue-dev
libmnl-dev
libpcap-dev
libssl-dev
liburcu-dev
iptables
iproute2
procps
python3
iperf3
iputils-ping
conntrack
ipset
clang
libclang-rt-14-dev
groff-base
openssl
curl
swaks
libnet-ssleay-perl
libio-socket-ssl-perl
msmtp
isync
dovecot-imapd
dovecot-submissiond
"

if [ "$(id -u)" -ne 0 ]; then
	echo "setup.sh: run as root (apt-get install)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
dovecot_was_installed=false
if dpkg-query -W -f '${Status}' dovecot-core 2>/dev/null | grep -q 'install ok installed'; then
	dovecot_was_installed=true
fi
# shellcheck disable=SC2086 # the list is meant to split
apt-get install -y -q --no-install-recommends $PACKAGES

if [ "$dovecot_was_installed" = false ]; then
	if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
	fi
	if [ -e /run/dovecot/master.pid ]; then
		doveadm stop >/dev/null 2>&1 || true
	fi
	update-rc.d dovecot disable >/dev/null 2>&1 || true
fi
