#!/usr/bin/env bash
# Build the scsp command and libscsp (the C ABI) and install them:
#   $PREFIX/bin/scsp (create, stats, verify, bridge, certs, ...; the systemd
#   units in examples/systemd run /usr/local/bin/scsp)
#   $PREFIX/lib/libscsp.so.<version>, libscsp.so.1, libscsp.so, libscsp.a
#   $PREFIX/include/scsp.h, scsp_openssl.h
#   $PREFIX/lib/pkgconfig/scsp.pc, scsp-openssl.pc
#
# Environment (all optional):
#   PREFIX=/usr/local     where to install
#   DESTDIR=              staging root for packagers (prepended to every path)
#   LIBDIR=$PREFIX/lib    library directory
#   PROFILE=release       cargo profile to build: release or debug
#   CARGO_TARGET_DIR      cargo's target directory (default: <repo>/target)
#   SCSP_NO_BUILD=1       install what is already built, do not run cargo
#   WITH_APACHE=1         also build mod_socache_scsp.so (apache/build.sh; needs
#                         apache2-dev) and install it into APACHE_MODDIR, by
#                         default `apxs -q LIBEXECDIR` (Debian:
#                         /usr/lib/apache2/modules), plus, where
#                         /etc/apache2/mods-available exists, socache_scsp.load
#                         for `a2enmod socache_scsp` (docs/apache.md)
#   APXS=apxs             the apxs to build the module with
#   WITH_NGINX=1          also build ngx_http_scsp_module.so and
#                         ngx_stream_scsp_module.so (nginx/build.sh; needs
#                         nginx-dev of the installed nginx's version) and
#                         install them into NGINX_MODDIR (default
#                         /usr/lib/nginx/modules); load them with load_module
#                         (docs/nginx.md)
#
#   sudo scripts/install.sh                          # /usr/local
#   PREFIX=$HOME/.local scripts/install.sh           # no root needed
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
LIBDIR=${LIBDIR:-$PREFIX/lib}
INCLUDEDIR=$PREFIX/include
PROFILE=${PROFILE:-release}
CARGO=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-$root/target}
DESTDIR=${DESTDIR:-}

case "$PROFILE" in
    release) cargo_profile=release; outdir=$target/release ;;
    debug | dev) cargo_profile=dev; outdir=$target/debug ;;
    *) echo "install.sh: PROFILE must be release or debug, not '$PROFILE'" >&2; exit 2 ;;
esac
case "$PREFIX" in
    /*) ;;
    *) echo "install.sh: PREFIX must be an absolute path, not '$PREFIX'" >&2; exit 2 ;;
esac

if [ -z "${SCSP_NO_BUILD:-}" ]; then
    (cd "$root" && CARGO_TARGET_DIR="$target" "$CARGO" build --profile "$cargo_profile" -p scsp-ffi -p scsp-cli)
fi
for f in libscsp.so libscsp.a scsp; do
    if [ ! -f "$outdir/$f" ]; then
        echo "install.sh: $outdir/$f is missing; build it with: cargo build --release -p scsp-ffi -p scsp-cli" >&2
        exit 1
    fi
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
abi=$(sed -n 's/^#define SCSP_ABI_VERSION \([0-9]*\)$/\1/p' "$root/include/scsp.h")
[ -n "$version" ] && [ -n "$abi" ] || { echo "install.sh: cannot read version/ABI" >&2; exit 1; }

lib=$DESTDIR$LIBDIR
inc=$DESTDIR$INCLUDEDIR
pc=$DESTDIR$LIBDIR/pkgconfig
bin=$DESTDIR$PREFIX/bin
install -d "$lib" "$inc" "$pc" "$bin"
install -m 0755 "$outdir/scsp" "$bin/scsp"
install -m 0755 "$outdir/libscsp.so" "$lib/libscsp.so.$version"
ln -sfn "libscsp.so.$version" "$lib/libscsp.so.$abi"
ln -sfn "libscsp.so.$abi" "$lib/libscsp.so"
install -m 0644 "$outdir/libscsp.a" "$lib/libscsp.a"
install -m 0644 "$root/include/scsp.h" "$root/include/scsp_openssl.h" "$inc/"

# Libs.private: what a static link of libscsp.a needs (rustc's
# native-static-libs for this target, minus libc and libgcc_s).
cat >"$pc/scsp.pc" <<PC
prefix=$PREFIX
libdir=$LIBDIR
includedir=$INCLUDEDIR

Name: scsp
Description: shared-memory TLS session cache (C ABI $abi)
Version: $version
Libs: -L\${libdir} -lscsp
Libs.private: -lpthread -ldl -lm -lrt -lutil
Cflags: -I\${includedir}
PC
cat >"$pc/scsp-openssl.pc" <<PC
prefix=$PREFIX
libdir=$LIBDIR
includedir=$INCLUDEDIR

Name: scsp-openssl
Description: scsp session cache and shared ticket keys for OpenSSL servers (header-only helper)
Version: $version
Requires: scsp openssl >= 3.0
Cflags: -I\${includedir}
PC

if [ "${WITH_APACHE:-}" = 1 ]; then
    APXS=${APXS:-apxs}
    command -v "$APXS" >/dev/null ||
        { echo "install.sh: WITH_APACHE=1 needs $APXS (apt-get install apache2-dev)" >&2; exit 1; }
    SCSP_NO_BUILD=1 PROFILE=$PROFILE CARGO_TARGET_DIR=$target APXS=$APXS "$root/apache/build.sh" >/dev/null
    moddir=${APACHE_MODDIR:-$("$APXS" -q LIBEXECDIR)}
    install -d "$DESTDIR$moddir"
    install -m 0644 "$target/apache/mod_socache_scsp.so" "$DESTDIR$moddir/mod_socache_scsp.so"
    echo "installed $DESTDIR$moddir/mod_socache_scsp.so"
    if [ -d /etc/apache2/mods-available ]; then
        install -d "$DESTDIR/etc/apache2/mods-available"
        echo "LoadModule socache_scsp_module $moddir/mod_socache_scsp.so" \
            >"$DESTDIR/etc/apache2/mods-available/socache_scsp.load"
        echo "installed $DESTDIR/etc/apache2/mods-available/socache_scsp.load (a2enmod socache_scsp)"
    fi
fi

if [ "${WITH_NGINX:-}" = 1 ]; then
    [ -d /usr/share/nginx/src ] ||
        { echo "install.sh: WITH_NGINX=1 needs nginx-dev (apt-get install nginx nginx-dev)" >&2; exit 1; }
    SCSP_NO_BUILD=1 PROFILE=$PROFILE CARGO_TARGET_DIR=$target "$root/nginx/build.sh" >/dev/null
    moddir=${NGINX_MODDIR:-/usr/lib/nginx/modules}
    install -d "$DESTDIR$moddir"
    for so in ngx_http_scsp_module.so ngx_stream_scsp_module.so; do
        [ -f "$target/nginx/$so" ] || continue
        install -m 0644 "$target/nginx/$so" "$DESTDIR$moddir/$so"
        echo "installed $DESTDIR$moddir/$so"
    done
fi

echo "installed scsp and libscsp $version (ABI $abi) under $DESTDIR$PREFIX"
case "$PREFIX" in
    /usr | /usr/local) echo "run ldconfig once, so programs find libscsp.so.$abi" ;;
    *) echo "outside the system paths: build with PKG_CONFIG_PATH=$LIBDIR/pkgconfig and link with -Wl,-rpath,$LIBDIR (or set LD_LIBRARY_PATH)" ;;
esac
