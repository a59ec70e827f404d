#!/usr/bin/env bash
# Miri over the unit tests of the segment, the table and the counters: the
# shared-memory code, checked for undefined behaviour. Needs a nightly
# toolchain with the miri component (rustup toolchain install nightly
# --component miri); skipped, saying so, where there is none, unless
# SCSP_REQUIRE_MIRI=1 (CI), which makes that a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    if [ "${SCSP_REQUIRE_MIRI:-0}" = 1 ]; then
        echo "miri.sh: cargo +nightly miri is not installed" >&2
        exit 1
    fi
    echo "SKIPPED: no nightly toolchain with Miri (rustup toolchain install nightly --component miri)"
    exit 0
fi
PROPTEST_CASES=8 MIRIFLAGS=-Zmiri-disable-isolation \
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri" \
    cargo +nightly miri test -p scsp --lib -- segment:: table:: stats::
