#!/usr/bin/env bash
# The loom model of the table's ordering core (tests/loom.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
    cargo test -p scsp --test loom
