#!/usr/bin/env bash
# Every test of the project: the workspace's unit, integration and C tests,
# then the loom model of the table's ordering core.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --no-fail-fast

if [ -f tests/loom.rs ]; then
    echo "== loom model (ordering core of the table) =="
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
        cargo test -p scsp --test loom
fi
