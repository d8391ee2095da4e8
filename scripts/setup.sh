#!/bin/sh
# Installs what lemongate needs to build and test on Debian 12. Idempotent; run as root.
# liburcu-dev is for make bench only: its cds_lfht is the peer our flow table is measured against.
# iperf3 is for make bench too (throughput through the testbed). clang and libclang-rt-14-dev
# build the libFuzzer targets that make check runs for a bounded number of inputs. groff-base
# renders the manual pages (make check lints them); util-linux's setpriv (essential) runs
# lemongatectl as another user in the control-group test. openssl makes the test servers'
# certificate.
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
clang
libclang-rt-14-dev
groff-base
openssl
"

if [ "$(id -u)" -ne 0 ]; then
	echo "setup.sh: run as root (apt-get install)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # the list is meant to split
apt-get install -y -q --no-install-recommends $PACKAGES
