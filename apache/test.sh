#!/usr/bin/env bash
# End-to-end test of mod_socache_scsp (docs/apache.md), with real parts only:
# two Apache httpd instances as two hosts on 127.61.0.1 and 127.61.0.2, each
# with its own scsp segment and its own `scsp bridge`, the C example server
# (examples/c/openssl_server.c) on host 1's segment, and `openssl s_client`
# handshakes. Run once with the event MPM and once with prefork:
#   - a session made on one host resumes on the other: TLS 1.2 session ids,
#     TLS 1.3 stateful (SSLSessionTickets off), TLS 1.2 and 1.3 tickets
#     (SCSPTicketKeys); and between Apache and the C example, both ways;
#   - 300 connections in strict alternation between the hosts, each resuming
#     the previous one's session, with `apache2 -k graceful` on host 1 and a
#     SIGKILLed worker on host 2 along the way: >= 99% resumed, served by
#     several worker processes of each host; `scsp verify` clean;
#   - mod_status shows the scsp block (HTML and ?auto).
# Then: sessions of another context do not resume, and each bad configuration
# stops `apache2 -t` with its message.
#
#   bash apache/test.sh          # PROFILE=debug: use target/debug's libscsp and scsp
# Needs apache2, apache2-dev (apxs), openssl, a C compiler and libssl-dev;
# without them it prints "SKIPPED: <why>" and exits 0, unless
# SCSP_REQUIRE_SERVERS=1 (CI), which makes that a failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${PROFILE:-release}
HTTPD=${HTTPD:-/usr/sbin/apache2}
MODULES=${APACHE_MODULES:-/usr/lib/apache2/modules}
NET=127.61.0
CONTEXT=scsp-example # the C example server's context id
LOAD=300

skip() {
    if [ "${SCSP_REQUIRE_SERVERS:-}" = 1 ]; then
        echo "FAILED: $* (SCSP_REQUIRE_SERVERS=1)" >&2
        exit 1
    fi
    echo "SKIPPED: $*"
    exit 0
}
[ -x "$HTTPD" ] || skip "no $HTTPD (apt-get install apache2)"
[ -f "$MODULES/mod_ssl.so" ] || skip "no $MODULES/mod_ssl.so (apt-get install apache2)"
command -v "${APXS:-apxs}" >/dev/null || skip "no apxs (apt-get install apache2-dev)"
command -v openssl >/dev/null || skip "no openssl command (apt-get install openssl)"
command -v cc >/dev/null || skip "no C compiler (apt-get install gcc)"
[ -f /usr/include/openssl/ssl.h ] || skip "no OpenSSL headers (apt-get install libssl-dev)"

case "$PROFILE" in release) cargo_profile=release ;; debug) cargo_profile=dev ;; *)
    echo "test.sh: PROFILE must be release or debug" >&2; exit 2 ;; esac
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build -q --profile "$cargo_profile" -p scsp-ffi -p scsp --lib --bins)
SCSP_NO_BUILD=1 PROFILE=$PROFILE CARGO_TARGET_DIR=$target "$root/apache/build.sh" >/dev/null
SCSP=$target/$PROFILE/scsp
MODULE=$target/apache/mod_socache_scsp.so

work=$(mktemp -d /tmp/scsp-apache.XXXXXX)
shm=$(mktemp -d /dev/shm/scsp-apache.XXXXXX)
chmod 755 "$work" # the workers (User www-data when run as root) serve htdocs
children=()       # every process this script started, by pid
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    for pid in "${children[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${children[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$rc" != 0 ]; then
        for f in "$work"/*/error.log "$work"/bridge-*.log; do
            [ -f "$f" ] && { echo "--- tail of $f"; tail -n 15 "$f"; }
        done
    fi
    rm -rf "$work" "$shm"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# ---- certificates, segments, bridges, the C example ------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=www.test \
    -addext subjectAltName=DNS:www.test -addext basicConstraints=critical,CA:FALSE 2>/dev/null
mkdir -p "$work/htdocs" && echo ok >"$work/htdocs/index.html"
chmod 644 "$work/htdocs/index.html"
"$SCSP" certs --out "$work/pki" --hosts 2 --cluster apache-test \
    --addrs "$NET.1:7461,$NET.2:7461" >/dev/null
for h in 1 2; do
    "$SCSP" create "$shm/seg-$h" --size 4MiB --host-id "$h" >/dev/null
    sed -i "s|^segment = .*|segment = \"$shm/seg-$h\"|" "$work/pki/bridge-$h.toml"
    "$SCSP" bridge --config "$work/pki/bridge-$h.toml" >/dev/null 2>"$work/bridge-$h.log" &
    children+=($!)
done
connected() { "$SCSP" stats "$shm/seg-$1" --prometheus | grep -q '^scsp_bridge_peer_connected{.*} 1$'; }
for h in 1 2; do
    for _ in $(seq 100); do connected "$h" && break; sleep 0.1; done
    connected "$h" || fail "bridge of host $h did not connect to its peer"
done
ok "two bridges connected"

cc -O2 -o "$work/openssl_server" "$root/examples/c/openssl_server.c" -I"$root/include" \
    "$target/$PROFILE/libscsp.a" -lssl -lcrypto -lpthread -ldl -lm -lrt -lutil
# On host 1's segment: 8420-8421 session cache only, 8422-8423 shared tickets.
for spec in "8420 off" "8422 shared"; do
    set -- $spec
    "$work/openssl_server" --cert "$work/cert.pem" --key "$work/key.pem" --addr "$NET.1" \
        --port "$1" --workers 2 --tickets "$2" --segment "$shm/seg-1" >"$work/example-$1.log" 2>&1 &
    children+=($!)
done
ready() { [ "$(grep -c ' ready$' "$work/example-$1.log")" = 2 ]; }
for port in 8420 8422; do
    for _ in $(seq 100); do ready "$port" && break; sleep 0.1; done
    ready "$port" || fail "the C example server on port $port did not start: $(cat "$work/example-$port.log")"
done

# ---- Apache ----------------------------------------------------------------
# write_conf HOST MPM CONTEXT: host h's httpd.conf (ports 8412: TLS 1.2 session
# ids, 8413: TLS 1.3 stateful, 8414: tickets with the segment's shared keys).
write_conf() {
    local h=$1 mpm=$2 context=$3 dir=$work/a$1 seg=$shm/seg-$1 user=""
    mkdir -p "$dir" && chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && user="User www-data
Group www-data"
    local mpmconf
    if [ "$mpm" = event ]; then
        mpmconf="StartServers 2
ServerLimit 8
ThreadLimit 4
ThreadsPerChild 4
MinSpareThreads 4
MaxSpareThreads 16
MaxRequestWorkers 32"
    else
        mpmconf="StartServers 3
MinSpareServers 2
MaxSpareServers 6
MaxRequestWorkers 8"
    fi
    local vhosts="" port proto tickets
    for spec in "8412 TLSv1.2 off" "8413 TLSv1.3 off" "8414 all on"; do
        set -- $spec
        vhosts+="Listen $NET.$h:$1
<VirtualHost $NET.$h:$1>
  ServerName www.test
  DocumentRoot $work/htdocs
  SSLEngine on
  SSLProtocol $2
  SSLCertificateFile $work/cert.pem
  SSLCertificateKeyFile $work/key.pem
  SSLSessionTickets $3
  <Location /server-status>
    SetHandler server-status
  </Location>
</VirtualHost>
"
    done
    cat >"$dir/httpd.conf" <<EOF
ServerRoot $dir
ServerName www.test
PidFile $dir/httpd.pid
DefaultRuntimeDir $dir
ErrorLog $dir/error.log
LogLevel info
$user
LoadModule mpm_${mpm}_module $MODULES/mod_mpm_${mpm}.so
LoadModule socache_scsp_module $MODULE
LoadModule authn_core_module $MODULES/mod_authn_core.so
LoadModule authz_core_module $MODULES/mod_authz_core.so
LoadModule ssl_module $MODULES/mod_ssl.so
LoadModule status_module $MODULES/mod_status.so
$mpmconf
# Short-lived workers: a few hundred connections meet many processes.
MaxConnectionsPerChild 40
LogFormat "%P %{SSL_PROTOCOL}x %{SSL_SESSION_RESUMED}x %{local}p" scsp
CustomLog $dir/access.log scsp
SSLSessionCache scsp:$seg,context=$context
SSLSessionCacheTimeout 600
SSLStaplingCache scsp:$seg,context=$context
SCSPTicketKeys $seg
$vhosts
EOF
}

apache_pid=()
start_apache() { # HOST
    local h=$1 dir=$work/a$1
    : >"$dir/error.log"
    # Its own session: a stopping prefork parent signals its whole process group.
    setsid "$HTTPD" -f "$dir/httpd.conf" -DFOREGROUND &
    apache_pid[$h]=$!
    children+=($!)
    for _ in $(seq 100); do
        grep -q "resuming normal operations" "$dir/error.log" && return 0
        kill -0 "${apache_pid[$h]}" 2>/dev/null || break
        sleep 0.1
    done
    fail "Apache $h did not start"
}
stop_apache() { # HOST
    local pid=${apache_pid[$1]}
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# conn ADDR PORT TLS IN OUT: one handshake and request; prints New, Reused or
# failed. TLS: 1.2 or 1.3. IN: a session file to offer ("" for none); OUT:
# where the session the server sent ends up.
conn() {
    local args=(-connect "$1:$2" -servername www.test "-tls1_${3#1.}" -ign_eof -sess_out "$5")
    [ -n "$4" ] && args+=(-sess_in "$4")
    local out result
    rm -f "$5"
    out=$(printf 'GET /index.html HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client "${args[@]}" 2>/dev/null) || true
    result=$(sed -n 's/^\(New\|Reused\), .*/\1/p' <<<"$out" | head -n1)
    # A resumed TLS 1.2 session stays the same, and s_client writes none.
    [ "$result" = Reused ] && [ ! -s "$5" ] && cp "$4" "$5"
    echo "${result:-failed}"
}

# expect_resumes WHAT ADDR PORT TLS IN: the session in IN resumes there (a
# few tries: the bridge copies a session within a millisecond or so).
expect_resumes() {
    local got
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        got=$(conn "$2" "$3" "$4" "$5" "$work/out.pem")
        [ "$got" = Reused ] && { ok "$1"; return 0; }
        sleep 0.2
    done
    fail "$1: the session did not resume ($got)"
}

# new_session ADDR PORT TLS OUT
new_session() {
    local got
    got=$(conn "$1" "$2" "$3" "" "$4")
    [ "$got" = New ] && [ -s "$4" ] || fail "full handshake with $1:$2 (TLS $3): $got"
}

cross_checks() { # MPM
    local s=$work/s.pem port tls kind
    for spec in "8412 1.2 session-id" "8413 1.3 stateful" "8414 1.2 ticket" "8414 1.3 ticket"; do
        set -- $spec
        port=$1 tls=$2 kind=$3
        for dir in "1 2" "2 1"; do
            set -- $dir
            new_session "$NET.$1" "$port" "$tls" "$s"
            expect_resumes "$MPM: TLS $tls ($kind) made on host $1, resumed on host $2" \
                "$NET.$2" "$port" "$tls" "$s"
        done
    done
    # The C example on host 1's segment, same context; host 2 reaches it via the bridge.
    for spec in "8412 8420 1.2" "8413 8420 1.3" "8414 8422 1.2" "8414 8422 1.3"; do
        set -- $spec
        new_session "$NET.2" "$1" "$3" "$s"
        expect_resumes "$MPM: TLS $3 Apache (host 2, port $1) -> C example" "$NET.1" "$2" "$3" "$s"
        new_session "$NET.1" "$(($2 + 1))" "$3" "$s"
        expect_resumes "$MPM: TLS $3 C example -> Apache (host 2, port $1)" "$NET.2" "$1" "$3" "$s"
    done
}

# load MPM PORT TLS: strict alternation between the hosts (even connections
# to host 1, odd to host 2), each offering the previous one's session. After
# a third, host 1 restarts gracefully; after two thirds, a host-2 worker makes
# a new session and is SIGKILLed before host 1 resumes that session.
load() {
    local mpm=$1 port=$2 tls=$3 i prev="" cur got resumed=0 attempts=0 failed=0 victim=""
    local kill_at=$((LOAD / 3 * 2))
    for ((i = 0; i < LOAD; i++)); do
        cur=$work/load-$((i % 2)).pem
        [ "$i" = $((kill_at - 1)) ] && prev=""
        if [ "$i" = $((LOAD / 3)) ]; then
            "$HTTPD" -k graceful -f "$work/a1/httpd.conf"
        elif [ "$i" = "$kill_at" ]; then
            victim=$(tail -n1 "$work/a2/access.log" | cut -d' ' -f1)
            [ "$(ps -o comm= -p "$victim")" = apache2 ] || fail "$victim is no host-2 worker"
            kill -KILL "$victim"
        fi
        got=$(conn "$NET.$((i % 2 + 1))" "$port" "$tls" "$prev" "$cur")
        if [ "$i" = "$kill_at" ] && [ "$got" != Reused ]; then
            fail "$mpm load: the session of the SIGKILLed worker $victim did not resume ($got)"
        fi
        case "$got" in
            Reused) resumed=$((resumed + 1)); attempts=$((attempts + 1)) ;;
            New) [ -n "$prev" ] && attempts=$((attempts + 1)) ;;
            *) failed=$((failed + 1)) ;;
        esac
        prev=$cur
        [ -s "$cur" ] || prev=""
    done
    echo "   $mpm TLS $tls alternation: $resumed of $attempts resumed, $failed failed connections"
    [ "$attempts" -ge $((LOAD - 5)) ] || fail "$mpm load: only $attempts resumption attempts"
    [ $((resumed * 100)) -ge $((attempts * 99)) ] ||
        fail "$mpm load: $resumed of $attempts resumed, below 99%"
    ok "$mpm: strict alternation, TLS $tls, $resumed/$attempts resumed across a graceful restart and a SIGKILL"
    grep -Eq "Doing graceful restart|Graceful restart requested" "$work/a1/error.log" ||
        fail "host 1 was not restarted gracefully"
    if kill -0 "$victim" 2>/dev/null; then fail "worker $victim of host 2 survived SIGKILL"; fi
}

# Several worker processes of each host served resumed handshakes.
check_processes() { # MPM
    local h n
    for h in 1 2; do
        n=$(awk '$3 == "Resumed" { print $1 }' "$work/a$h/access.log" | sort -u | wc -l)
        [ "$n" -ge 3 ] || fail "$1: only $n worker processes of host $h resumed sessions"
        ok "$1: $n worker processes of host $h resumed sessions"
    done
}

get() { # ADDR PATH
    printf 'GET %s HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n' "$2" |
        timeout 10 openssl s_client -connect "$1:8412" -servername www.test -quiet 2>/dev/null || true
}

check_status() { # MPM
    local auto html
    auto=$(get "$NET.1" "/server-status?auto")
    grep -q "^CacheType: SCSP" <<<"$auto" || fail "$1: no scsp block in /server-status?auto"
    grep -q "^CacheSegment: $shm/seg-1" <<<"$auto" || fail "$1: ?auto does not name the segment"
    grep -Eq "^CacheStoreCount: [1-9]" <<<"$auto" || fail "$1: ?auto shows no stores"
    html=$(get "$NET.1" "/server-status")
    grep -q "cache type: <b>SCSP</b>" <<<"$html" || fail "$1: no scsp block in /server-status"
    ok "$1: mod_status shows the scsp block (HTML and ?auto)"
}

# Every child maps every page of the segment at its start (scsp_prefault in
# child_init): each of its mappings of host 1's segment is resident in full.
# Kernels before 5.14 cannot (the module logs it and goes on): skipped there.
. "$root/scripts/check/smaps.sh"
check_prefault() { # MPM
    local pid n=0 left
    if ! prefault_supported; then
        echo "skip: $1: prefault check, kernel $(uname -r) has no MADV_POPULATE_READ"
        return
    fi
    for pid in $(ps -o pid= --ppid "${apache_pid[1]}"); do
        # A child forked a moment ago may not have run child_init yet:
        # give it a second before calling its pages unmapped.
        for _ in 1 2 3 4 5; do
            left=$(unmapped_kib "$pid" "$shm/seg-1")
            [ "$left" = 0 ] || [ "$left" = gone ] && break
            sleep 0.2
        done
        [ "$left" = gone ] && continue # exited since `ps` listed it
        [ "$left" = 0 ] || fail "$1: child $pid of host 1 has $left KiB of the segment unmapped"
        n=$((n + 1))
    done
    [ "$n" -ge 1 ] || fail "$1: no child of host 1 to check"
    ok "$1: every child of host 1 ($n) mapped every page of the segment at start"
}

for MPM in event prefork; do
    for h in 1 2; do write_conf "$h" "$MPM" "$CONTEXT"; rm -f "$work/a$h/access.log"; start_apache "$h"; done
    grep -q "mod_ssl-staple cache in segment" "$work/a1/error.log" ||
        fail "$MPM: SSLStaplingCache scsp: was not initialised"
    cross_checks "$MPM"
    if [ "$MPM" = event ]; then load "$MPM" 8413 1.3; else load "$MPM" 8412 1.2; fi
    check_processes "$MPM"
    check_status "$MPM"
    check_prefault "$MPM"
    for h in 1 2; do stop_apache "$h"; done
    for h in 1 2; do
        "$SCSP" verify "$shm/seg-$h" >"$work/verify.log" 2>&1 ||
            { cat "$work/verify.log"; fail "$MPM: scsp verify of host $h's segment"; }
    done
    ok "$MPM: scsp verify clean on both segments"
done

# ---- contexts isolate --------------------------------------------------------
write_conf 1 prefork other
start_apache 1
new_session "$NET.1" 8420 1.2 "$work/c.pem"
[ "$(conn "$NET.1" 8412 1.2 "$work/c.pem" "$work/out.pem")" = New ] ||
    fail "a session of context $CONTEXT resumed under context other"
new_session "$NET.1" 8412 1.2 "$work/o.pem"
[ "$(conn "$NET.1" 8420 1.2 "$work/o.pem" "$work/out.pem")" = New ] ||
    fail "a session of context other resumed under context $CONTEXT"
expect_resumes "context other: its own session resumes" "$NET.1" 8412 1.2 "$work/o.pem"
ok "sessions of another context do not resume"
stop_apache 1

# ---- a segment truncated under Apache ----------------------------------------
# Host 1 on a segment of its own, truncated while it serves: its children
# (guarded at their start, after httpd set its own SIGBUS action) serve on.
"$SCSP" create "$shm/cut" --size 4MiB --host-id 1 >/dev/null
sed -i "s#$shm/seg-1\b#$shm/cut#g" "$work/a1/httpd.conf"
start_apache 1
new_session "$NET.1" 8412 1.2 "$work/cut.pem"
expect_resumes "before the truncation, a session resumes" "$NET.1" 8412 1.2 "$work/cut.pem"
: >"$shm/cut"
answered=0
for _ in $(seq 20); do
    [ "$(conn "$NET.1" 8412 1.2 "" "$work/out.pem")" = New ] && answered=$((answered + 1))
done
[ "$answered" = 20 ] || fail "after ': > segment', $answered of 20 connections answered"
if grep -q "Bus error" "$work/a1/error.log"; then
    fail "a child died of SIGBUS: $(grep -m1 "Bus error" "$work/a1/error.log")"
fi
ok "a segment truncated under Apache: 20 of 20 connections answered, no child lost"
# The way back (docs/operations.md): remove it, create it, restart
# gracefully; the parent closes its old handle without touching the cut file.
rm -f "$shm/cut"
"$SCSP" create "$shm/cut" --size 4MiB --host-id 1 >/dev/null
"$HTTPD" -k graceful -f "$work/a1/httpd.conf"
sleep 1
kill -0 "${apache_pid[1]}" 2>/dev/null || fail "the Apache parent died on the graceful restart"
new_session "$NET.1" 8412 1.2 "$work/cut.pem"
expect_resumes "after rm, scsp create and a graceful restart, sessions resume again" \
    "$NET.1" 8412 1.2 "$work/cut.pem"
stop_apache 1

# ---- bad configurations stop apache2 -t ---------------------------------------
bad() { # WHAT EXPECTED-MESSAGE DIRECTIVE-LINE...
    local what=$1 want=$2 out rc=0
    shift 2
    {
        echo "ServerRoot $work"
        echo "ServerName www.test"
        echo "ErrorLog $work/bad-error.log"
        echo "LoadModule mpm_prefork_module $MODULES/mod_mpm_prefork.so"
        echo "LoadModule socache_scsp_module $MODULE"
        echo "LoadModule ssl_module $MODULES/mod_ssl.so"
        printf '%s\n' "$@"
    } >"$work/bad.conf"
    out=$("$HTTPD" -t -f "$work/bad.conf" 2>&1) || rc=$?
    if [ -z "$want" ]; then
        [ "$rc" = 0 ] || fail "$what: apache2 -t failed: $out"
    else
        [ "$rc" = 1 ] || fail "$what: apache2 -t exited $rc (want 1): $out"
        grep -qF -- "$want" <<<"$out" || fail "$what: no '$want' in: $out"
    fi
    ok "apache2 -t, $what"
}
"$SCSP" create "$shm/world" --size 2MiB >/dev/null && chmod 666 "$shm/world"
ln -s "$shm/seg-1" "$shm/link"
echo "not a segment" >"$shm/junk" && chmod 600 "$shm/junk"
bad "a good configuration" "" "SSLSessionCache scsp:$shm/seg-1,context=www" "SCSPTicketKeys $shm/seg-1"
bad "missing segment" "SSLSessionCache: scsp: no segment at $shm/none; the module opens, never creates" \
    "SSLSessionCache scsp:$shm/none"
bad "symbolic link" "SSLSessionCache: scsp: cannot use the segment: scsp_open: $shm/link is a symbolic link" \
    "SSLSessionCache scsp:$shm/link"
bad "world-writable segment" "lets every user" "SSLSessionCache scsp:$shm/world"
bad "not a segment" "is not an scsp segment" "SSLSessionCache scsp:$shm/junk"
bad "shmcb's size in parentheses" "scsp takes no size in parentheses" "SSLSessionCache scsp:$shm/seg-1(512000)"
bad "context too long" "SSLSessionCache: scsp: context '0123456789abcdef0123456789abcdefX' must be 1 to 32 characters" \
    "SSLSessionCache scsp:$shm/seg-1,context=0123456789abcdef0123456789abcdefX"
bad "context with a space" "may hold only printable characters" "SSLSessionCache \"scsp:$shm/seg-1,context=a b\""
bad "unknown parameter" "SSLSessionCache: scsp: unknown parameter 'size'" "SSLSessionCache scsp:$shm/seg-1,size=64MiB"
bad "relative path" "the segment path must be absolute" "SSLSessionCache scsp:seg-1"
bad "no path" "SSLSessionCache: scsp: name the segment" "SSLSessionCache scsp"
bad "SSLStaplingCache, missing segment" "SSLStaplingCache: scsp: no segment" "SSLStaplingCache scsp:$shm/none"
bad "SCSPTicketKeys, missing segment" "SCSPTicketKeys: scsp: no segment at $shm/none" "SCSPTicketKeys $shm/none"
bad "SCSPTicketKeys with a context" "SCSPTicketKeys: scsp: unknown parameter 'context'" \
    "SCSPTicketKeys $shm/seg-1,context=www"
bad "SCSPTicketKeys in a vhost" "SCSPTicketKeys cannot occur within" \
    "<VirtualHost 127.0.0.1:1>" "SCSPTicketKeys $shm/seg-1" "</VirtualHost>"
if [ "$(id -u)" = 0 ]; then
    "$SCSP" create "$shm/foreign" --size 2MiB >/dev/null && chown nobody "$shm/foreign"
    bad "segment of another user" "is owned by uid" "SSLSessionCache scsp:$shm/foreign"
    bad "segment of another user, not named" "neither root" \
        "SSLSessionCache scsp:$shm/foreign,allow_foreign_owner=on"
    group=$(stat -c %g "$shm/foreign")
    bad "segment of another user, allowed" "" \
        "SSLSessionCache scsp:$shm/foreign,allow_foreign_owner=on,owner=nobody,group=$group"
fi
echo "PASS: apache/test.sh"
