#!/usr/bin/env bash
# The record ciphers on this machine, side by side: bench_chan (cn_chan seal
# and open with libsodium's and OpenSSL's AES-256-GCM, and ChaCha20-Poly1305)
# next to `openssl speed -evp aes-256-gcm`, OpenSSL's own ceiling for the same
# cipher. One core each; prints markdown for docs/performance.md.
#
# usage: bench/cipher.sh                (after a RelWithDebInfo build in build-rel)
#   CN_BUILD_DIR=DIR   build directory (default: build-rel next to bench/)
#   BENCH_SECS=2       seconds per bench_chan case and per openssl speed size
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${CN_BUILD_DIR:-$SRC/build-rel}
SECS=${BENCH_SECS:-2}
bench=$BUILD/bench/bench_chan
[ -x "$bench" ] || { echo "cipher.sh: $bench absent (build $BUILD first)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "cipher.sh: openssl (the CLI) not installed" >&2; exit 1; }

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "CPU: $cpu, $(nproc) cores; $(openssl version); libsodium $(pkg-config --modversion libsodium 2>/dev/null || echo '?')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "\$ $bench $SECS"
"$bench" "$SECS"
echo
echo "\$ openssl speed -seconds $SECS -evp aes-256-gcm"
# -mr: "+H:size:size..." then "+F:n:name:bytes/s:bytes/s..." per cipher.
openssl speed -mr -seconds "$SECS" -evp aes-256-gcm 2>/dev/null | awk -F: '
    /^\+H:/ { for (i = 2; i <= NF; i++) sizes[n++] = $i }
    /^\+F:/ {
        printf "\n| %s | ", $3
        for (i = 0; i < n; i++) printf "%s B | ", sizes[i]
        printf "\n| --- |"
        for (i = 0; i < n; i++) printf " --- |"
        printf "\n| MB/s (one core) |"
        for (i = 4; i <= NF; i++) printf " %.0f |", $i / 1e6
        printf "\n"
    }'
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
