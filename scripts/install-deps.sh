#!/usr/bin/env bash
# Installs everything Connect needs to build, test and benchmark on Debian 12 (run as root).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config clang clang-format clang-tidy libclang-rt-14-dev \
  libwebsockets-dev libssl-dev openssl libsodium-dev libjansson-dev libsqlite3-dev libcmocka-dev \
  python3 python3-websockets curl jq socat sqlite3 procps iproute2 \
  redis-server redis-tools postgresql postgresql-client mariadb-server mariadb-client \
  dnsmasq dnsutils >/dev/null
