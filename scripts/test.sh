#!/usr/bin/env bash
# Every check of the project (what CI runs): formatting, lints and docs;
# the workspace's unit, integration and C tests; the loom model of the
# table's ordering core; a short run of each fuzz target; Miri over the
# table's and segment's unit tests where a nightly toolchain with Miri is
# installed (CI installs one); then real nginx and Apache httpd pools.
# Each kind of check is one script, runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lint: fmt, clippy, doc =="
bash scripts/check/lint.sh

# The demo's tests run nginx and Apache with scsp's modules where the
# servers are installed: build the modules first (nginx/test.sh and
# apache/test.sh below build them again, as they test them).
if { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } && [ -d /usr/share/nginx/src ]; then
    echo "== the nginx module, for the demo's tests =="
    PROFILE=debug bash nginx/build.sh
fi
if command -v apxs >/dev/null; then
    echo "== the Apache module, for the demo's tests =="
    PROFILE=debug bash apache/build.sh
fi

echo "== tests =="
cargo test --workspace --no-fail-fast

echo "== loom model (ordering core of the table) =="
bash scripts/check/loom.sh

echo "== fuzz smoke =="
bash scripts/check/fuzz.sh

echo "== miri =="
bash scripts/check/miri.sh

echo "== nginx: two instances with scsp, bridged =="
PROFILE=debug bash nginx/test.sh

echo "== Apache httpd: two instances with scsp, bridged (event and prefork) =="
PROFILE=debug bash apache/test.sh

echo "== sessions cross nginx, Apache httpd and the C example server =="
bash scripts/check/interop.sh
