#!/usr/bin/env bash
# Installs what bench/tcp_tunnel.sh and bench/http_edge.sh need on Debian 12
# (run as root), on top of scripts/install-deps.sh (the build): iperf3, socat,
# wrk, nginx-light, openssh-server/-client and linux-perf (optional, for
# BENCH_PERF).
#
# The benchmark starts its own nginx and sshd on free loopback ports with
# temporary configs; it never uses the system services these packages
# install. So that installing them does not start those services (sshd on
# port 22, nginx on port 80), a temporary policy-rc.d refuses service starts
# during the install when the machine has none of its own.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "install-bench-deps: run as root (apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    iperf3 socat wrk nginx-light openssh-server openssh-client procps python3 curl >/dev/null
apt-get install -y -qq --no-install-recommends linux-perf >/dev/null 2>&1 ||
    echo "install-bench-deps: linux-perf not installed (only BENCH_PERF needs it)" >&2
echo "install-bench-deps: done"
