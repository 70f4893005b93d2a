#!/usr/bin/env bash
# make fuzz: builds every libFuzzer target (clang, ASan+UBSan) and runs each for
# $1 seconds (default 60) on a scratch copy of its corpus, so the committed
# corpus only grows by hand. Crashes land in build-fuzz/crashes/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-60}
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DLUBECK_FUZZ=ON -DLUBECK_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j2 >/dev/null
status=0
mkdir -p build-fuzz/logs
for target in build-fuzz/fuzz_*; do
    name=$(basename "$target")
    work=$(mktemp -d)
    cp -r "tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    mkdir -p "build-fuzz/crashes/$name"
    echo "== $name for ${SECONDS_EACH}s"
    if ! "$target" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
            -artifact_prefix="build-fuzz/crashes/$name/" "$work" 2>"build-fuzz/logs/$name.log"; then
        status=1
        echo "FAILED: see build-fuzz/logs/$name.log and build-fuzz/crashes/$name/"
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "build-fuzz/logs/$name.log" | tail -3
    rm -rf "$work"
done
exit $status
