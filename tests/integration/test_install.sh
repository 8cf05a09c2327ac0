#!/usr/bin/env bash
# User story: a developer installs libconnect and builds a program against it
# with pkg-config alone, exactly as the README says; the installed library
# exports only the documented API (docs/sdk.md), and each public header
# compiles on its own, needing nothing but the C library and jansson.
source "$(dirname "$0")/lib.sh"

prefix=$WORK/prefix
step "install to a temporary prefix"
cmake --install "$BUILD" --prefix "$prefix" >/dev/null
for f in bin/connect-hub bin/connect include/connect/connect.h include/connect/cn_api.h; do
    [ -e "$prefix/$f" ] || fail "$f not installed"
done
pc=$(find "$prefix" -name connect.pc | head -1)
[ -n "$pc" ] || fail "connect.pc not installed"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir connect)
so=$libdir/libconnect.so
[ -e "$so" ] || fail "libconnect.so not installed in $libdir"
# shellcheck disable=SC2206
cflags=($(pkg-config --cflags connect))
headers=("$prefix"/include/connect/*.h)

step "no internal header is installed"
for h in "${headers[@]}"; do
    [ ! -e "$SRC/sdk/src/$(basename "$h")" ] || fail "internal header $(basename "$h") installed"
done

step "each public header compiles alone; none includes another library's header but jansson's"
for h in "${headers[@]}"; do
    name=$(basename "$h")
    printf '#include <connect/%s>\n#include <connect/%s>\nint cn_use;\n' "$name" "$name" \
        | cc -std=c11 -Wall -Wextra -Wstrict-prototypes -pedantic -Werror -fsyntax-only -x c - "${cflags[@]}" \
        || fail "<connect/$name> does not compile on its own (or twice)"
    grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*<' "$h" \
        | grep -vE '<(stdbool|stddef|stdint|jansson)\.h>' \
        && fail "<connect/$name> includes a header outside the C library and jansson"
done

step "nm -D lists exactly the documented CN_EXTERN functions"
"$PY" "$SRC/tests/integration/api_symbols.py" "${headers[@]}" >"$WORK/declared" \
    || fail "the public headers' exports are not all documented"
nm -D --defined-only "$so" | awk '{print $NF}' | sort -u >"$WORK/exported"
if ! diff -u "$WORK/declared" "$WORK/exported" >"$WORK/exports.diff"; then
    cat "$WORK/exports.diff" >&2
    fail "libconnect.so exports differ from the CN_EXTERN declarations (+ = exported, not declared)"
fi
grep -q . "$WORK/exported" || fail "libconnect.so exports nothing"
while read -r sym; do
    grep -q "\`$sym\`" "$SRC/docs/sdk.md" || fail "$sym is exported but not listed in docs/sdk.md"
done <"$WORK/exported"
echo "   $(wc -l <"$WORK/exported") symbols, all declared, documented and listed"

step "an outside program builds with pkg-config --cflags --libs connect alone and runs"
cat >"$WORK/app.c" <<'C'
#include <connect/connect.h>
#include <stdio.h>
#include <string.h>

static int never(void *arg)
{
    (void)arg;
    return 0;
}

int main(int argc, char **argv)
{
    char err[256];
    /* A bad URL is refused with a message; a good one gives a client. */
    cn_api_t *bad = cn_api_new("ftp://nowhere", "t", err, sizeof(err));
    cn_api_t *ok = argc > 1 ? cn_api_new(argv[1], "t", err, sizeof(err)) : NULL;
    int good = !bad && ok && strcmp(cn_strerror(CN_EAUTH), "authentication failed") == 0;
    /* jansson comes with pkg-config: build a body, send it to a port
     * nobody listens on, get CN_EIO and no answer. */
    json_t *spec = json_pack("{s:s}", "target", "127.0.0.1:5432");
    json_t *out = NULL;
    if (ok) {
        cn_api_set_timeout(ok, 3000);
        cn_api_set_cancel(ok, never, NULL);
        int rc = cn_api_tunnel_create(ok, spec, &out, err, sizeof(err));
        good = good && rc == CN_EIO && !out && err[0];
    }
    json_decref(spec);
    json_decref(out);
    cn_api_free(ok);
    printf("libconnect %s: %s\n", CONNECT_VERSION, good ? "ok" : "broken");
    return good ? 0 : 1;
}
C
san=""
grep -q '^CN_ASAN:BOOL=ON' "$BUILD/CMakeCache.txt" && san="-fsanitize=address,undefined"
# shellcheck disable=SC2046,SC2086
cc -std=c11 -Wall -Wextra -Werror $san "$WORK/app.c" -o "$WORK/app" $(pkg-config --cflags --libs connect) \
    || fail "the outside program does not build with pkg-config alone"
LD_LIBRARY_PATH=$libdir "$WORK/app" "http://127.0.0.1:$(free_port)" || fail "the outside program failed"
echo "ok"
