#!/usr/bin/env bash
# Sessions cross server kinds: nginx, Apache httpd and the C example server
# (all OpenSSL, all with scsp) on one segment and one context resume each
# other's sessions, in every direction: TLS 1.2 session ids, TLS 1.3
# stateful sessions, and TLS 1.3 and 1.2 tickets under the segment's shared
# keys.
#
# Needs the built modules (nginx/build.sh, apache/build.sh), the C example
# server (scripts/build-openssl-example.sh) and the scsp binary, all for
# PROFILE (default debug). Without nginx or Apache it prints SKIPPED, unless
# SCSP_REQUIRE_SERVERS=1, which makes that a failure. Loopback 127.62.0.0/24.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
PROFILE=${PROFILE:-debug}
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
NET=127.62.0
MODULES=/usr/lib/apache2/modules

skip() {
    if [ "${SCSP_REQUIRE_SERVERS:-}" = 1 ]; then
        echo "FAILED: $* (SCSP_REQUIRE_SERVERS=1)" >&2
        exit 1
    fi
    echo "SKIPPED: $*"
    exit 0
}
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || skip "interop.sh: no nginx"
[ -x /usr/sbin/apache2 ] || skip "interop.sh: no apache2"
scsp=$target/$PROFILE/scsp
example=$target/openssl_server
nginx_so=$target/nginx/ngx_http_scsp_module.so
apache_so=$target/apache/mod_socache_scsp.so
for f in "$scsp" "$example" "$nginx_so" "$apache_so"; do
    [ -f "$f" ] || skip "interop.sh: $f is missing (build the modules, the example server and scsp first)"
done

work=$(mktemp -d /tmp/scsp-interop.XXXXXX)
chmod 755 "$work"
seg=/dev/shm/scsp-interop-$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -f "$work/nginx/nginx.pid" ] && kill -TERM "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
    rm -rf "$work" "$seg"
}
trap cleanup EXIT
fails=0
ok() { echo "  ok   $*"; }
bad() { fails=$((fails + 1)); echo "  FAIL $*"; }

"$scsp" create "$seg" --size 16MiB >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=www.test -addext subjectAltName=DNS:www.test \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 644 "$work/key.pem"

# One context on every server: the example server's, scsp-example. Ports:
# 8501 TLS 1.2, cache only; 8502 TLS 1.3, cache only (stateful); 8503 TLS
# 1.3 and 1.2 with the shared ticket keys. (The example server serves both
# versions on one port: 8501 for the cache, 8503 for tickets.)
# ---- nginx on .1
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<EOF
load_module $nginx_so;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    scsp_session_cache $seg context=scsp-example;
    server { listen $NET.1:8501 ssl; ssl_protocols TLSv1.2; ssl_session_tickets off; return 200 "ok\n"; }
    server { listen $NET.1:8502 ssl; ssl_protocols TLSv1.3; ssl_session_tickets off; return 200 "ok\n"; }
    server { listen $NET.1:8503 ssl; ssl_protocols TLSv1.2 TLSv1.3; scsp_ticket_keys on; return 200 "ok\n"; }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"

# ---- Apache httpd on .2
mkdir -p "$work/apache" "$work/htdocs"
echo ok >"$work/htdocs/index.html"
user=""
[ "$(id -u)" = 0 ] && user="User www-data
Group www-data"
{
    cat <<EOF
ServerRoot $work/apache
ServerName www.test
PidFile $work/apache/httpd.pid
DefaultRuntimeDir $work/apache
ErrorLog $work/apache/error.log
$user
LoadModule mpm_prefork_module $MODULES/mod_mpm_prefork.so
LoadModule socache_scsp_module $apache_so
LoadModule authz_core_module $MODULES/mod_authz_core.so
LoadModule ssl_module $MODULES/mod_ssl.so
StartServers 2
SSLSessionCache scsp:$seg,context=scsp-example
SCSPTicketKeys $seg
EOF
    for spec in "8501 TLSv1.2 off" "8502 TLSv1.3 off" "8503 all on"; do
        set -- $spec
        cat <<EOF
Listen $NET.2:$1
<VirtualHost $NET.2:$1>
  ServerName www.test
  DocumentRoot $work/htdocs
  SSLEngine on
  SSLProtocol $2
  SSLCertificateFile $work/cert.pem
  SSLCertificateKeyFile $work/key.pem
  SSLSessionTickets $3
</VirtualHost>
EOF
    done
} >"$work/apache/httpd.conf"
# Its own session: a stopping httpd signals its whole process group.
setsid /usr/sbin/apache2 -f "$work/apache/httpd.conf" -DFOREGROUND &
pids+=($!)

# ---- the C example server on .3 (8501/8502: cache; 8503: shared tickets)
"$example" --cert "$work/cert.pem" --key "$work/key.pem" --addr "$NET.3" --port 8501 \
    --workers 1 --tickets off --segment "$seg" >"$work/ex-ids.log" 2>&1 &
pids+=($!)
"$example" --cert "$work/cert.pem" --key "$work/key.pem" --addr "$NET.3" --port 8503 \
    --workers 1 --tickets shared --segment "$seg" >"$work/ex-tickets.log" 2>&1 &
pids+=($!)

up() { timeout 2 openssl s_client -connect "$1" -servername www.test </dev/null >/dev/null 2>&1; }
for a in "$NET.1:8501" "$NET.2:8501" "$NET.3:8501" "$NET.3:8503"; do
    for _ in $(seq 100); do up "$a" && break; sleep 0.1; done
    up "$a" || { cat "$work"/*.log "$work"/apache/error.log 2>/dev/null | tail -20; echo "FAILED: $a did not start" >&2; exit 1; }
done

# resumed ADDR [s_client options]: R if the handshake resumed, N if not
conn() {
    local out
    out=$(printf 'GET / HTTP/1.0\r\nHost: www.test\r\n\r\n' |
        timeout 10 openssl s_client -connect "$1" -servername www.test -ign_eof "${@:2}" 2>/dev/null) || true
    if grep -q '^Reused,' <<<"$out"; then echo R; else echo N; fi
}
names=(nginx Apache example)
cross() { # LABEL PORT [s_client options]
    local label=$1 port=$2 a b made got
    shift 2
    for a in 1 2 3; do
        for b in 1 2 3; do
            [ "$a" = "$b" ] && continue
            local pa=$port pb=$port
            [ "$a" = 3 ] && [ "$port" = 8502 ] && pa=8501
            [ "$b" = 3 ] && [ "$port" = 8502 ] && pb=8501
            made=$(conn "$NET.$a:$pa" -sess_out "$work/s.pem" "$@")
            got=$(conn "$NET.$b:$pb" -sess_in "$work/s.pem" "$@")
            if [ "$made" = N ] && [ "$got" = R ]; then
                ok "$label: made on ${names[a - 1]}, resumed on ${names[b - 1]}"
            else
                bad "$label: made on ${names[a - 1]} ($made), on ${names[b - 1]}: $got"
            fi
        done
    done
}
echo "== sessions cross nginx, Apache httpd and the C example server"
cross "TLS 1.2 session id" 8501 -tls1_2 -no_ticket
cross "TLS 1.3 stateful" 8502 -tls1_3
cross "TLS 1.3 ticket (shared keys)" 8503 -tls1_3
cross "TLS 1.2 ticket (shared keys)" 8503 -tls1_2
if [ $fails -gt 0 ]; then
    echo "interop: $fails failed"
    exit 1
fi
echo "interop: every direction resumed"
