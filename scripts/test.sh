#!/usr/bin/env bash
# Every test of the project: the workspace's unit, integration and C tests,
# the loom model of the table's ordering core, then the real servers.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --no-fail-fast

if [ -f tests/loom.rs ]; then
    echo "== loom model (ordering core of the table) =="
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
        cargo test --test loom
fi

# Real Apache httpd instances with mod_socache_scsp (skips, saying why, without
# apache2/apache2-dev unless SCSP_REQUIRE_SERVERS=1). PROFILE=debug reuses the
# libscsp.a and scsp that the C ABI tests above built.
echo "== Apache httpd: mod_socache_scsp end to end =="
PROFILE=debug bash apache/test.sh
