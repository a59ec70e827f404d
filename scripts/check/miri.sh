#!/usr/bin/env bash
# Miri over the unit tests of the shared-memory code, checked for undefined
# behaviour. Needs a nightly toolchain with the miri component
# (rustup toolchain install nightly --component miri); skipped, saying so,
# where there is none, unless SCSP_REQUIRE_MIRI=1, which makes that a
# failure.
#
# By default the fast part: the value copies and checksums (table::bulk,
# table::entry) and the header checks (segment::layout), a few minutes.
# SCSP_MIRI_FULL=1 runs every unit test of the segment, the table and the
# counters: about 20 minutes on a 2-core machine, too long for CI.
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
if [ "${SCSP_MIRI_FULL:-0}" = 1 ]; then
    filters=(segment:: table:: stats::)
else
    filters=(table::bulk table::entry segment::layout)
fi
PROPTEST_CASES=8 MIRIFLAGS=-Zmiri-disable-isolation \
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri" \
    cargo +nightly miri test -p scsp --lib -- "${filters[@]}"
