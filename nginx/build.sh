#!/usr/bin/env bash
# Build ngx_http_scsp_module.so and ngx_stream_scsp_module.so for the nginx
# installed on this machine, the way Debian builds its nginx modules
# (dh-sequence-nginx): nginx's own configure, run on the sources nginx-dev
# ships in /usr/share/nginx/src with the packaged flags (conf_flags, which
# include --with-compat), plus this directory as a dynamic module.
#
#   nginx/build.sh                  # -> target/nginx/ngx_{http,stream}_scsp_module.so
#   sudo install -m 0644 target/nginx/ngx_http_scsp_module.so /usr/lib/nginx/modules/
#
# Needs: nginx-dev (same version as nginx), gcc, make, libssl-dev, cargo.
# libscsp is linked statically (target/release/libscsp.a): the module then
# needs no libscsp.so at run time, no rpath and no ldconfig, and it always
# carries the libscsp it was built and tested with.
#
# Environment (all optional):
#   NGINX_SRC=/usr/share/nginx/src   nginx-dev's sources
#   OUT=<repo>/target/nginx          where the build tree and the .so files go
#   PROFILE=release                  cargo profile of libscsp.a (release|debug)
#   CARGO_TARGET_DIR                 cargo's target directory
#   SCSP_NO_BUILD=1                  use the libscsp.a already built
#   SCSP_LIB=/path/libscsp.a         link this libscsp instead
#   NGX_SCSP_STREAM=0                leave the stream module out
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
NGINX_SRC=${NGINX_SRC:-/usr/share/nginx/src}
OUT=${OUT:-$root/target/nginx}
PROFILE=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

die() { echo "nginx/build.sh: $*" >&2; exit 1; }

[ -x "$NGINX_SRC/configure" ] && [ -f "$NGINX_SRC/conf_flags" ] ||
    die "no nginx sources in $NGINX_SRC: install nginx-dev (apt-get install nginx-dev)"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || die "nginx is not installed"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# The module must be built from the sources of the nginx that will load it.
src_version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$NGINX_SRC/src/core/nginx.h")
bin_version=$("$nginx_bin" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
[ "$src_version" = "$bin_version" ] ||
    die "nginx-dev is $src_version but nginx is $bin_version: install matching versions"

case "$PROFILE" in
    release) cargo_flags=(--release); libdir=$target/release ;;
    debug) cargo_flags=(); libdir=$target/debug ;;
    *) die "PROFILE must be release or debug" ;;
esac
if [ -z "${SCSP_LIB:-}" ]; then
    if [ -z "${SCSP_NO_BUILD:-}" ]; then
        (cd "$root" && CARGO_TARGET_DIR="$target" cargo build "${cargo_flags[@]}" -p scsp-ffi)
    fi
    SCSP_LIB=$libdir/libscsp.a
fi
[ -f "$SCSP_LIB" ] || die "$SCSP_LIB is missing (cargo build --release -p scsp-ffi)"

stream_flags=(--with-stream=dynamic --with-stream_ssl_module
              --with-stream_ssl_preread_module --with-stream_realip_module)
[ "${NGX_SCSP_STREAM:-1}" = 0 ] && stream_flags=()

# configure writes into the source tree (its Makefile), so work on a copy.
rm -rf "$OUT/src" "$OUT/build"
mkdir -p "$OUT"
cp -a "$NGINX_SRC" "$OUT/src"

cflags="$(dpkg-buildflags --get CFLAGS 2>/dev/null || echo -g -O2) -fPIC"
cflags="$cflags $(dpkg-buildflags --get CPPFLAGS 2>/dev/null || true)"
ldflags="$(dpkg-buildflags --get LDFLAGS 2>/dev/null || true) -fPIC"

(
    cd "$OUT/src"
    # shellcheck disable=SC1091
    . ./conf_flags
    SCSP_INCLUDE="$root/include" SCSP_LIB="$SCSP_LIB" \
    ./configure \
        --with-cc-opt="$cflags" \
        --with-ld-opt="$ldflags" \
        "${NGX_CONF_FLAGS[@]}" \
        "${stream_flags[@]}" \
        --add-dynamic-module="$root/nginx" \
        --builddir="$OUT/build"
) >"$OUT/configure.log" 2>&1 || { tail -n 30 "$OUT/configure.log" >&2; die "configure failed (log: $OUT/configure.log)"; }

# Only this project's modules: nginx-dev has headers, not the sources of
# nginx's own dynamic modules (stream), which "make modules" would build.
mods=(ngx_http_scsp_module.so)
[ ${#stream_flags[@]} -gt 0 ] && mods+=(ngx_stream_scsp_module.so)
make_targets=()
for m in "${mods[@]}"; do make_targets+=("$OUT/build/$m"); done
make -C "$OUT/src" -f "$OUT/build/Makefile" -j"$(nproc 2>/dev/null || echo 2)" "${make_targets[@]}" \
    >"$OUT/make.log" 2>&1 || { tail -n 40 "$OUT/make.log" >&2; die "make failed (log: $OUT/make.log)"; }
if grep -E "warning:" "$OUT/make.log" | grep -q "scsp"; then
    grep -E "warning:" "$OUT/make.log" >&2
fi

for m in "${mods[@]}"; do
    # Debian strips modules too; the Rust debug info alone is tens of MB.
    objcopy --strip-debug "$OUT/build/$m" "$OUT/$m"
    echo "built $OUT/$m ($(du -k "$OUT/$m" | cut -f1) KiB, nginx $bin_version, libscsp $(basename "$SCSP_LIB"))"
done

# What Debian's build checks too: nginx loads the module and accepts a
# configuration with it.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
    echo "load_module $OUT/ngx_http_scsp_module.so;"
    echo "events {}"
} >"$tmp/nginx.conf"
"$nginx_bin" -t -q -p "$tmp" -c "$tmp/nginx.conf" -g "error_log stderr; pid $tmp/nginx.pid;" ||
    die "nginx does not load $OUT/ngx_http_scsp_module.so"
