#!/usr/bin/env bash
# Miri over the unit tests of the shared-memory code, checked for undefined
# behaviour. Needs a nightly toolchain with the miri component (rustup
# toolchain install nightly --component miri).
#
# Too slow for every run on a 2-core machine, so scripts/test.sh runs it
# only with SCSP_MIRI=1: the value copies and checksums (table::bulk,
# table::entry) and the header checks (segment::layout) take about 6
# minutes; SCSP_MIRI_FULL=1 runs every unit test of the segment, the table
# and the counters, about 20 minutes. Without a nightly Miri it says
# SKIPPED, unless SCSP_REQUIRE_MIRI=1, which makes that a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${SCSP_MIRI:-0}" != 1 ] && [ "${SCSP_MIRI_FULL:-0}" != 1 ]; then
    echo "SKIPPED: Miri runs with SCSP_MIRI=1 (about 6 minutes) or SCSP_MIRI_FULL=1 (about 20)"
    exit 0
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    if [ "${SCSP_REQUIRE_MIRI:-0}" = 1 ]; then
        echo "miri.sh: cargo +nightly miri is not installed" >&2
        exit 1
    fi
    echo "SKIPPED: no nightly toolchain with Miri (rustup toolchain install nightly --component miri)"
    exit 0
fi
if [ "${SCSP_MIRI_FULL:-0}" = 1 ]; then
    filters=(segment:: table:: stats::)
else
    filters=(table::bulk table::entry segment::layout)
fi
PROPTEST_CASES=8 MIRIFLAGS=-Zmiri-disable-isolation \
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri" \
    cargo +nightly miri test -p scsp --lib -- "${filters[@]}"
