#!/usr/bin/env bash
# A short run of every fuzz target (fuzz/fuzz_targets), coverage-guided by
# libFuzzer. Builds on stable with the flags cargo-fuzz uses (no
# sanitizer); for long runs use `cargo +nightly fuzz run <target>`.
# FUZZ_SECONDS sets the time per target (default 10).
set -euo pipefail
cd "$(dirname "$0")/../.."
target_triple=$(rustc -vV | sed -n 's/^host: //p')
out="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
flags="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
flags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
flags+=" -Cdebug-assertions -Coverflow-checks"
(cd fuzz && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$out" \
    cargo build --release --target "$target_triple" --locked)
for t in fuzz/fuzz_targets/*.rs; do
    name=$(basename "$t" .rs)
    echo "== fuzz $name (${FUZZ_SECONDS:-10} s) =="
    corpus=$(mktemp -d)
    "$out/$target_triple/release/$name" "$corpus" \
        -max_total_time="${FUZZ_SECONDS:-10}" -print_final_stats=1 2>&1 | tail -n 4
    rm -rf "$corpus"
done
