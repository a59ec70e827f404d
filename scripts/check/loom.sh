#!/usr/bin/env bash
# The loom model of the table's ordering core (tests/loom.rs).
# Optimised, with debug assertions and overflow checks kept: the models
# explore the same executions as a debug build in about 15 s instead of
# five minutes, and arithmetic that overflows still panics.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
    cargo test -p scsp --test loom --release
# The notice rings' seqlock (src/table/notices.rs, a unit test under loom).
CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
    cargo test -p scsp --lib --release loom_model
