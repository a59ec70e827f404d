#!/usr/bin/env bash
# Build examples/c/openssl_server.c against this checkout's libscsp, for
# `scsp demo --server openssl`. Needs gcc and libssl-dev.
#   scripts/build-openssl-example.sh [debug|release]   (default release)
# Writes target/openssl_server (linked to target/<profile>/libscsp.so by rpath);
# honours CARGO_TARGET_DIR (relative paths are taken from the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-release}"
case "$profile" in
    release) cargo build --release -p scsp-ffi ;;
    debug) cargo build -p scsp-ffi ;;
    *) echo "usage: $0 [debug|release]" >&2; exit 2 ;;
esac
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
libdir="$target/$profile"
# The library's SONAME is libscsp.so.1; cargo only writes libscsp.so.
ln -sf libscsp.so "$libdir/libscsp.so.1"
cc -O2 -Wall -o "$target/openssl_server" examples/c/openssl_server.c \
    -Iinclude -L"$libdir" -Wl,-rpath,"$libdir" -lscsp -lssl -lcrypto
echo "built $target/openssl_server (libscsp from $libdir)"
