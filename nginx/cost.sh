#!/usr/bin/env bash
# What scsp costs nginx: handshakes per second of one nginx whose server A
# keeps sessions in scsp and whose server B uses nginx's own
# "ssl_session_cache shared:SSL:10m" (same nginx, same workers, same
# certificate; ports 8501 and 8502 on 127.60.0.1), measured with
# `openssl s_time` -new (full handshakes) and -reuse (resumptions), A and B
# alternating, ROUNDS times; prints every run and the medians of the rate
# one client sees and of the server's CPU time per handshake (the workers'
# user + system time from /proc over the handshakes of the run).
#
#   bash nginx/cost.sh                 # TLS 1.2 and TLS 1.3, tickets off
#   ROUNDS=7 SECS=5 WORKERS=1 bash nginx/cost.sh
#   MODES="tls1_3:reuse" ROUNDS=15 bash nginx/cost.sh   # one case, more rounds
#
# Run nginx/build.sh first. Not a test: a measurement for docs/nginx.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
WORKERS=${WORKERS:-1}
target=${CARGO_TARGET_DIR:-$root/target}
scsp=$target/release/scsp
http_so=$target/nginx/ngx_http_scsp_module.so
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -f "$http_so" ] && [ -x "$scsp" ] || { echo "build first: nginx/build.sh (and cargo build --release)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/scsp-nginx-cost.XXXXXX)
seg=/dev/shm/scsp-nginx-cost-$$
cleanup() {
    [ -f "$tmp/nginx.pid" ] && kill -TERM "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
    sleep 0.2
    rm -f "$seg"
    rm -rf "$tmp"
}
trap cleanup EXIT

"$scsp" create "$seg" --size 64MiB >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=www.test -keyout "$tmp/www.key" -out "$tmp/www.pem" 2>/dev/null
mkdir -p "$tmp/logs"
cat >"$tmp/nginx.conf" <<EOF
load_module $http_so;
worker_processes $WORKERS;
error_log $tmp/logs/error.log warn;
pid $tmp/nginx.pid;
events { worker_connections 1024; }
http {
    client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fcgi;
    uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
    access_log off;
    ssl_certificate $tmp/www.pem;
    ssl_certificate_key $tmp/www.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    server {    # A: scsp
        listen 127.60.0.1:8501 ssl;
        scsp_session_cache $seg context=www;
        location / { return 200 "ok\n"; }
    }
    server {    # B: nginx's own shared cache
        listen 127.60.0.1:8502 ssl;
        ssl_session_cache shared:SSL:10m;
        location / { return 200 "ok\n"; }
    }
}
EOF
"$nginx_bin" -p "$tmp" -c "$tmp/nginx.conf"
sleep 0.3

# worker_ticks: CPU clock ticks (user + system) used so far by nginx's workers
worker_ticks() {
    local m p total=0
    m=$(cat "$tmp/nginx.pid")
    for p in $(ps -o pid= --ppid "$m"); do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)

# run PORT MODE TLSFLAG: one s_time run; prints "handshakes/s server-us/handshake"
# (the count over the wall-clock time of the run, since s_time's own "real
# seconds" are whole seconds; the workers' CPU time over the count)
run() {
    local out n t0 t1 c0 c1
    c0=$(worker_ticks)
    t0=$(date +%s%N)
    out=$(openssl s_time -connect "127.60.0.1:$1" "-$2" "$3" -www / -time "$SECS" 2>&1)
    t1=$(date +%s%N)
    c1=$(worker_ticks)
    n=$(sed -n 's/^\([0-9]*\) connections in [0-9.]* real seconds.*/\1/p' <<<"$out")
    n=${n##*$'\n'}
    [ -n "$n" ] && [ "$n" -gt 0 ] || { printf '%s\n' "$out" >&2; echo "0 0"; return; }
    awk -v n="$n" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$hz" \
        'BEGIN { printf "%.0f %.1f", n / ((t1 - t0) / 1e9), (c1 - c0) / hz * 1e6 / n }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "nginx $("$nginx_bin" -v 2>&1 | sed 's|.*/||'), $WORKERS worker(s), ECDSA P-256, tickets off, $ROUNDS rounds of ${SECS}s runs, A and B alternating"
echo "(handshakes/s seen by one s_time client; server CPU us per handshake, nginx's workers)"
for tm in ${MODES:-tls1_2:new tls1_2:reuse tls1_3:new tls1_3:reuse}; do
    tls=-${tm%%:*}
    mode=${tm#*:}
    {
        : >"$tmp/a"
        : >"$tmp/b"
        for r in $(seq "$ROUNDS"); do
            if [ $((r % 2)) = 1 ]; then
                a=$(run 8501 $mode $tls); b=$(run 8502 $mode $tls)
            else
                b=$(run 8502 $mode $tls); a=$(run 8501 $mode $tls)
            fi
            echo "$a" >>"$tmp/a"
            echo "$b" >>"$tmp/b"
            echo "  $tls -$mode round $r: scsp ${a% *}/s ${a#* } us, shared:SSL ${b% *}/s ${b#* } us"
        done
        ra=$(cut -d' ' -f1 "$tmp/a" | median); ca=$(cut -d' ' -f2 "$tmp/a" | median)
        rb=$(cut -d' ' -f1 "$tmp/b" | median); cb=$(cut -d' ' -f2 "$tmp/b" | median)
        printf '%-7s %-6s median: scsp %6s/s %6s us | shared:SSL:10m %6s/s %6s us | scsp/shared: rate %s, cpu %s\n' \
            "$tls" "-$mode" "$ra" "$ca" "$rb" "$cb" \
            "$(awk -v a="$ra" -v b="$rb" 'BEGIN { printf "%.3f", b ? a / b : 0 }')" \
            "$(awk -v a="$ca" -v b="$cb" 'BEGIN { printf "%.3f", b ? a / b : 0 }')"
    }
done
"$scsp" stats "$seg" | grep -E '^(lookups|writes)'
