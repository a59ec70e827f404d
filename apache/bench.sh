#!/usr/bin/env bash
# What the cache costs Apache (docs/apache.md, "Cost"): handshakes per second
# with `SSLSessionCache scsp:` against `shmcb:`, full (openssl s_time -new)
# and resumed (-reuse), TLS 1.2 and 1.3, on one Apache (event MPM) on
# 127.61.0.1:8443 with SSLSessionTickets off, so that every resumption goes
# through the cache; and the CPU time Apache spent per handshake (all its
# processes, from /proc), which a busy machine disturbs less. Each round runs
# every cell once per cache, the caches alternating which goes first; the
# medians come last. Apache runs on CPU 1
# and the client on CPU 0 (with fewer CPUs, where the scheduler puts them),
# so that runs do not differ by where the two land.
#   bash apache/bench.sh [ROUNDS] [SECONDS]     (default 5 rounds, 5 s a cell)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-5}
secs=${2:-5}
HTTPD=${HTTPD:-/usr/sbin/apache2}
MODULES=${APACHE_MODULES:-/usr/lib/apache2/modules}
target=${CARGO_TARGET_DIR:-$root/target}
server_cpu=() client_cpu=()
[ "$(nproc)" -ge 2 ] && server_cpu=(taskset -c 1) client_cpu=(taskset -c 0)
"$root/apache/build.sh" >/dev/null
(cd "$root" && cargo build -q --release -p scsp-cli --bin scsp)

work=$(mktemp -d /tmp/scsp-apache-bench.XXXXXX)
seg=/dev/shm/$(basename "$work")
chmod 755 "$work"
pid=""
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work" "$seg"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=www.test 2>/dev/null
echo ok >"$work/index.html" && chmod 644 "$work/index.html"
"$target/release/scsp" create "$seg" --size 64MiB >/dev/null

start() { # CACHE-ARGUMENT
    local user=""
    [ "$(id -u)" = 0 ] && user="User www-data"$'\n'"Group www-data"
    cat >"$work/httpd.conf" <<EOF
ServerRoot $work
ServerName www.test
PidFile $work/httpd.pid
DefaultRuntimeDir $work
ErrorLog $work/error.log
LogLevel warn
$user
LoadModule mpm_event_module $MODULES/mod_mpm_event.so
LoadModule authn_core_module $MODULES/mod_authn_core.so
LoadModule authz_core_module $MODULES/mod_authz_core.so
LoadModule socache_shmcb_module $MODULES/mod_socache_shmcb.so
LoadModule socache_scsp_module $target/apache/mod_socache_scsp.so
LoadModule ssl_module $MODULES/mod_ssl.so
Listen 127.61.0.1:8443
DocumentRoot $work
SSLEngine on
SSLCertificateFile $work/cert.pem
SSLCertificateKeyFile $work/key.pem
SSLSessionTickets off
SSLSessionCache $1
EOF
    : >"$work/error.log"
    setsid "${server_cpu[@]}" "$HTTPD" -f "$work/httpd.conf" -DFOREGROUND &
    pid=$!
    until grep -q "resuming normal operations" "$work/error.log" 2>/dev/null; do sleep 0.1; done
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

# Clock ticks Apache used: the parent, its reaped children, its live ones.
ticks() {
    local t c
    t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat")
    for c in $(ps -o pid= --ppid "$pid"); do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# run TLS MODE: "handshakes/s server-us-per-handshake" of one s_time run.
run() {
    local t0 t1 c0 c1 n
    c0=$(ticks) t0=$(date +%s.%N)
    n=$("${client_cpu[@]}" openssl s_time -connect 127.61.0.1:8443 "-tls1_${1#1.}" "-$2" -www /index.html \
        -time "$secs" 2>/dev/null | sed -n 's/^\([0-9]*\) connections in [0-9.]*s.*/\1/p' | head -n1)
    c1=$(ticks) t1=$(date +%s.%N)
    echo "$n $t0 $t1 $c0 $c1 $(getconf CLK_TCK)" |
        awk '{ printf "%.0f %.0f\n", $1 / ($3 - $2), ($5 - $4) / $6 * 1e6 / $1 }'
}

# med KEY: the median of the numbers stored under KEY.
med() { tr ' ' '\n' <<<"${runs[$1]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A runs
for ((r = 1; r <= rounds; r++)); do
    order="scsp shmcb"
    [ $((r % 2)) = 0 ] && order="shmcb scsp"
    for cache in $order; do
        if [ "$cache" = scsp ]; then start "scsp:$seg,context=bench"; else start "shmcb:$work/shmcb(67108864)"; fi
        for cell in "1.2 new" "1.2 reuse" "1.3 new" "1.3 reuse"; do
            set -- $cell
            read -r hs us < <(run "$1" "$2")
            runs["$cache $1 $2"]+="$hs "
            runs["$cache $1 $2 us"]+="$us "
            echo "round $r  $cache  TLS $1 $2: $hs handshakes/s, Apache $us us CPU each"
        done
        stop
    done
done
echo
echo "medians      handshakes/s        Apache CPU us per handshake"
echo "TLS  mode       scsp    shmcb          scsp    shmcb"
for cell in "1.2 new" "1.2 reuse" "1.3 new" "1.3 reuse"; do
    set -- $cell
    printf '%-4s %-6s %8s %8s      %8s %8s\n' "$1" "$2" "$(med "scsp $1 $2")" "$(med "shmcb $1 $2")" \
        "$(med "scsp $1 $2 us")" "$(med "shmcb $1 $2 us")"
done
