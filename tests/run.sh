#!/usr/bin/env bash
# Runs every test suite against the build in $1 (default: build) and ends with
# one line "total: N passed, N failed". Exit status 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PY=/usr/bin/python3          # Debian's, which has python3-zmq and pytest
passed=0
failed=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

count() {   # count NAME PASSED FAILED
    echo "== $1: $2 passed, $3 failed"
    passed=$((passed + $2))
    failed=$((failed + $3))
}

# pytest_count LOG 'failed|errors?' → the sum of those counts in pytest's
# summary line ("1 failed, 273 passed in 86.16s"), never in a test's output.
pytest_count() {
    grep -E ' in [0-9.]+s' "$1" | tail -1 | grep -Eo "[0-9]+ ($2)" | awk '{s += $1} END {print s + 0}'
}

echo "== C unit tests (ctest)"
ctest --test-dir "$BUILD" --output-on-failure 2>&1 | tee "$log/ctest"
total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log/ctest")
bad=$(sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' "$log/ctest")
count "C units" $(( ${total:-0} - ${bad:-0} )) "${bad:-1}"

echo "== Lua specs (busted on LuaJIT)"
LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/tests/spec/?.lua;;" \
LUA_CPATH="$PWD/$BUILD/lua/?.so;;" LUBECK_BUILD="$PWD/$BUILD" \
    busted --lua=luajit -o TAP tests/spec 2>&1 | tee "$log/busted"
ok=$(grep -c '^ok ' "$log/busted")
notok=$(grep -c '^not ok ' "$log/busted")
grep -q '^1\.\.' "$log/busted" || notok=$((notok + 1))   # busted itself failed
count "Lua specs" "$ok" "$notok"

echo "== luacheck (lua/, apps/, tests/spec/)"
if luacheck lua apps tests/spec --no-color >"$log/luacheck" 2>&1; then
    count "luacheck" 1 0
else
    grep -E "^\s+\S+:[0-9]+" "$log/luacheck"; count "luacheck" 0 1
fi

echo "== self-contained (no file points outside the repository)"
if tools/check-self-contained.sh >"$log/self" 2>&1; then
    count "self-contained" 1 0
else
    cat "$log/self"; count "self-contained" 0 1
fi

echo "== layers (host/ folders include only the folders below them)"
if tools/check-layers.sh >"$log/layers" 2>&1; then
    cat "$log/layers"; count "layers" 1 0
else
    cat "$log/layers"; count "layers" 0 1
fi

echo "== fuzz targets over their corpora (clang, ASan+UBSan)"
if command -v clang >/dev/null; then
    if cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DLUBECK_FUZZ=ON -DLUBECK_TESTS=OFF \
            -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$log/fuzz-cmake" 2>&1 &&
       cmake --build build-fuzz -j2 >"$log/fuzz-build" 2>&1; then
        ok=0; bad=0
        for target in build-fuzz/fuzz_*; do
            [[ -f $target && -x $target ]] || continue   # make fuzz leaves logs beside them
            name=$(basename "$target")
            if "$target" -runs=0 "tests/fuzz/corpus/$name" >"$log/$name" 2>&1; then
                ok=$((ok + 1))
            else
                bad=$((bad + 1)); echo "FAILED: $name"; tail -30 "$log/$name"
            fi
        done
        count "fuzz corpora" "$ok" "$bad"
    else
        tail -30 "$log/fuzz-build"; count "fuzz corpora" 0 1
    fi
else
    echo "clang missing: fuzz corpora skipped"
fi

echo "== sanitizers: C units and end to end against an ASan+UBSan build"
# LuaJIT runs fine under ASan here. The C units free what they make, so they
# run with leak checking; the e2e processes exit with their states and zmq
# context torn down by the OS, so leak checking is off for them (the embedding
# test checks lubeck_free under valgrind instead).
if cmake -S . -B build-asan -DLUBECK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >"$log/asan-cmake" 2>&1 &&
   cmake --build build-asan -j2 >"$log/asan-build" 2>&1; then
    export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure >"$log/asan-ctest" 2>&1 &&
        ok=1 || ok=0
    [ "$ok" = 1 ] || tail -40 "$log/asan-ctest"
    # (test_embed runs valgrind, which cannot run ASan binaries; test_install
    # builds and installs the tree itself)
    LUBECK_BUILD="$PWD/build-asan" "$PY" -m pytest -q -p no:cacheprovider tests/e2e \
        --ignore tests/e2e/test_embed.py --ignore tests/e2e/test_install.py 2>&1 |
        tee "$log/asan-pytest" | tail -5
    asan_ok=$(pytest_count "$log/asan-pytest" passed)
    asan_bad=$(pytest_count "$log/asan-pytest" 'failed|errors?')
    count "sanitized (units as one)" $(( ${asan_ok:-0} + ok )) $(( ${asan_bad:-0} + 1 - ok ))
    unset ASAN_OPTIONS UBSAN_OPTIONS
else
    tail -30 "$log/asan-build"; count "sanitized" 0 1
fi

echo "== end to end through Mongrel2 (pytest)"
LUBECK_BUILD="$PWD/$BUILD" "$PY" -m pytest -q -p no:cacheprovider tests/e2e 2>&1 | tee "$log/pytest"
ok=$(pytest_count "$log/pytest" passed)
bad=$(pytest_count "$log/pytest" 'failed|errors?')
grep -Eq ' in [0-9.]+s' "$log/pytest" || bad=1   # no summary: pytest itself failed
count "end to end" "${ok:-0}" "${bad:-0}"

echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
