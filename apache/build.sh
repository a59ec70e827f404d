#!/usr/bin/env bash
# Build mod_socache_scsp.so with apxs (Debian: apache2-dev) against this
# checkout's static libscsp.a, so the module needs no libscsp at run time.
#   apache/build.sh              -> target/apache/mod_socache_scsp.so
# Environment: APXS (default apxs), PROFILE=release|debug (which libscsp.a),
# CARGO_TARGET_DIR, SCSP_NO_BUILD=1 (use the libscsp.a already built;
# otherwise `cargo build -p scsp-ffi` runs first, a no-op when up to date).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
APXS=${APXS:-apxs}
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
out=$target/apache
PROFILE=${PROFILE:-release}
case "$PROFILE" in
    release) cargo_profile=release ;;
    debug) cargo_profile=dev ;;
    *) echo "build.sh: PROFILE must be release or debug, not '$PROFILE'" >&2; exit 2 ;;
esac

command -v "$APXS" >/dev/null || { echo "build.sh: $APXS not found; install apache2-dev (or set APXS)" >&2; exit 1; }
if [ -z "${SCSP_NO_BUILD:-}" ]; then
    (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --profile "$cargo_profile" -p scsp-ffi)
fi
lib=$target/$PROFILE/libscsp.a
[ -f "$lib" ] || { echo "build.sh: $lib is missing; run: cargo build --profile $cargo_profile -p scsp-ffi" >&2; exit 1; }

# apxs (libtool) writes its objects next to the source: build in $out.
mkdir -p "$out"
cp "$root/apache/mod_socache_scsp.c" "$out/"
# --exclude-libs keeps libscsp's symbols private to the module (only
# socache_scsp_module is exported); --gc-sections and -S drop what the module
# does not use and the Rust debug info (28 MB -> ~0.6 MB).
(cd "$out" && "$APXS" -c -I"$root/include" -Wc,-Wall -Wc,-Wextra mod_socache_scsp.c "$lib" \
    -lssl -lcrypto -lpthread -ldl -lm -lrt -lutil \
    -Wl,--exclude-libs,ALL -Wl,--gc-sections -Wl,-S >"$out/build.log" 2>&1) || {
    cat "$out/build.log" >&2
    exit 1
}
grep -E "(warning|error):" "$out/build.log" >&2 || true
cp "$out/.libs/mod_socache_scsp.so" "$out/mod_socache_scsp.so"
echo "built $out/mod_socache_scsp.so"
