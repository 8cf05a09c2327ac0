#!/usr/bin/env bash
# User story: a developer installs libconnect and builds a program against it
# with pkg-config, exactly as the README says.
set -euo pipefail
build=${CN_BUILD_DIR:?}
prefix=$(mktemp -d /tmp/cn-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/connect-hub bin/connect include/connect/connect.h include/connect/cn_api.h; do
    [ -e "$prefix/$f" ] || { echo "FAIL: $f not installed" >&2; exit 1; }
done
pc=$(find "$prefix" -name connect.pc | head -1)
[ -n "$pc" ] || { echo "FAIL: connect.pc not installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir connect)
cat >"$prefix/app.c" <<'C'
#include <connect/connect.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    char err[128];
    /* A bad URL is refused with a message; a good one gives a client. */
    cn_api_t *bad = cn_api_new("ftp://nowhere", "t", err, sizeof(err));
    cn_api_t *ok = cn_api_new("http://127.0.0.1:9", "t", err, sizeof(err));
    int good = !bad && ok && strcmp(cn_strerror(CN_EAUTH), "authentication failed") == 0;
    cn_api_free(ok);
    printf("libconnect %s: %s\n", CONNECT_VERSION, good ? "ok" : "broken");
    return good ? 0 : 1;
}
C
san=""
grep -q '^CN_ASAN:BOOL=ON' "$build/CMakeCache.txt" && san="-fsanitize=address,undefined"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror $san "$prefix/app.c" -o "$prefix/app" $(pkg-config --cflags --libs connect)
LD_LIBRARY_PATH=$libdir ASAN_OPTIONS=detect_leaks=0 "$prefix/app"
