#!/usr/bin/env bash
# User story: a CI run cannot go green on a test that tested nothing. The
# agent CLI test fails (never skips) on a hub whose `serve` is broken, and the
# fuzz runner fails when it finds fewer harnesses than CMake declares. (The
# Noise known-answer test's two paths are the ctest entries
# sdk/test_noise_fails_in_ci_without_vectors and
# sdk/test_noise_skips_loudly_without_vectors.)
source "$(dirname "$0")/lib.sh"
expect=("$SRC/tests/expect.sh")

step "test_agent_cli.sh fails on a hub whose 'serve --help' fails"
cat >"$WORK/broken-hub" <<'SH'
#!/bin/sh
echo "connect-hub: unknown command '$1'" >&2
exit 2
SH
chmod +x "$WORK/broken-hub"
CN_HUB_BIN=$WORK/broken-hub bash "${expect[@]}" fail "FAIL: .*serve --help' failed" \
    bash "$SRC/tests/integration/test_agent_cli.sh" || fail "test_agent_cli.sh did not fail on a broken serve"
rc=0
CN_HUB_BIN=$WORK/broken-hub bash "$SRC/tests/integration/test_agent_cli.sh" >/dev/null 2>&1 || rc=$?
[ $rc -ne 77 ] || fail "test_agent_cli.sh skipped (77) on a broken serve"

step "tests/fuzz/run.sh fails with fewer harnesses than declared"
names=()
for src in "$SRC"/tests/fuzz/fuzz_*.c; do names+=("$(basename "$src" .c)"); done
[ ${#names[@]} -ge 2 ] || fail "expected at least two fuzz harnesses in the tree"
fake=$WORK/fake-build
mkdir -p "$fake/tests"
run=(bash "$SRC/tests/fuzz/run.sh" "$fake" 1)
bash "${expect[@]}" fail "fuzz_harnesses.txt absent" "${run[@]}" || fail "run.sh passed without a harness list"
printf '%s\n' "${names[@]}" >"$fake/tests/fuzz_harnesses.txt"
bash "${expect[@]}" fail "found 0 harnesses, CMake declares ${#names[@]}" "${run[@]}" \
    || fail "run.sh passed with no harness built"
# Stand-in harnesses: they accept libFuzzer's arguments and succeed.
for name in "${names[@]:1}"; do
    printf '#!/bin/sh\nexit 0\n' >"$fake/tests/$name"
    chmod +x "$fake/tests/$name"
done
bash "${expect[@]}" fail "found $((${#names[@]} - 1)) harnesses, CMake declares ${#names[@]}" "${run[@]}" \
    || fail "run.sh passed with a harness missing"
printf '#!/bin/sh\nexit 0\n' >"$fake/tests/${names[0]}"
chmod +x "$fake/tests/${names[0]}"
bash "${expect[@]}" pass "${#names[@]} found of ${#names[@]} declared" "${run[@]}" \
    || fail "run.sh failed with every declared harness present"
echo "ok"
