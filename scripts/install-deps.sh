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
  libwebsockets-dev libwebsockets-evlib-ev libev-dev libwebsockets-evlib-uv libuv1-dev libssl-dev openssl libsodium-dev libjansson-dev libsqlite3-dev libcmocka-dev \
  python3 python3-websockets python3-pytest python3-pip python3-setuptools \
  curl jq socat sqlite3 procps iproute2 \
  redis-server redis-tools postgresql postgresql-client mariadb-server mariadb-client \
  dnsmasq dnsutils systemd groff-base man-db >/dev/null

# promtool (tests/integration/test_metrics.sh) comes with Debian's prometheus
# package, whose postinst would start a Prometheus server (on :9090) where
# an init system runs. Nothing here needs that server: a policy-rc.d that
# denies service starts is in place for the install (the one already there,
# as in Debian's container images, or a temporary one), and the package's
# systemd unit is masked so no later boot starts it either.
if ! command -v promtool >/dev/null 2>&1; then
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
    systemctl mask prometheus >/dev/null 2>&1 || true
  fi
fi

# The OpenAPI validator (tests/integration/test_openapi.sh lints
# docs/openapi.json with it), pinned, into the work tree's .tools/
# (git-ignored) rather than system-wide. Node.js and npm come with this
# kind of machine; Debian's own are the fallback.
REDOCLY_VERSION=2.77.0
tools_dir=$(cd "$(dirname "$0")/.." && pwd)/.tools
if ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ "$("$tools_dir/node_modules/.bin/redocly" --version 2>/dev/null | head -1)" != "$REDOCLY_VERSION" ]; then
  npm install --prefix "$tools_dir" --no-audit --no-fund --silent "@redocly/cli@$REDOCLY_VERSION" >/dev/null
fi
