#!/usr/bin/env bash
# Every check of the project (what CI runs): formatting, lints and docs;
# the workspace's unit, integration and C tests; the loom model of the
# table's ordering core; a short run of each fuzz target; real nginx and
# Apache httpd pools, and sessions crossing server kinds. Miri over the
# table's and segment's unit tests runs too when SCSP_MIRI=1 asks for it
# (it takes minutes; scripts/check/miri.sh). Each kind of check is one
# script, runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each section's start, in seconds since this script began.
section() { echo "== [${SECONDS}s] $* =="; }

section "lint: fmt, clippy, doc"
bash scripts/check/lint.sh

# The demo's tests run nginx and Apache with scsp's modules where the
# servers are installed: build the modules first (nginx/test.sh and
# apache/test.sh below build them again, as they test them).
if { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } && [ -d /usr/share/nginx/src ]; then
    section "the nginx module, for the demo's tests"
    PROFILE=debug bash nginx/build.sh
fi
if command -v apxs >/dev/null; then
    section "the Apache module, for the demo's tests"
    PROFILE=debug bash apache/build.sh
fi

section "tests"
cargo test --workspace --no-fail-fast

section "loom model (ordering core of the table)"
bash scripts/check/loom.sh

section "fuzz smoke"
bash scripts/check/fuzz.sh

section "miri (with SCSP_MIRI=1)"
bash scripts/check/miri.sh

section "nginx: two instances with scsp, bridged"
PROFILE=debug bash nginx/test.sh

section "Apache httpd: two instances with scsp, bridged (event and prefork)"
PROFILE=debug bash apache/test.sh

section "sessions cross nginx, Apache httpd and the C example server"
bash scripts/check/interop.sh
