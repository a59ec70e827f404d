#!/usr/bin/env bash
# The nginx module in a pool of real nginx servers (docs/nginx.md):
#
#   two nginx instances as two hosts, 127.60.0.1 and 127.60.0.2, 2 workers
#   each, each with its own segment and its own `scsp bridge` (certificates
#   from `scsp certs`), and:
#   1. a session made at one host resumes at the other, on every worker of
#      it: TLS 1.2 session ids, TLS 1.3 and TLS 1.2 tickets (scsp_ticket_keys
#      on), and in the stream module; a TLS 1.3 stateful session (tickets
#      off) resumes there once, and not again (single use)
#   2. strict alternation between the hosts (every connection resumes the
#      session the previous one got, on the other host) resumes >= 99%
#   3. interop with examples/c/openssl_server.c on the same segment and
#      context, both ways
#   4. `nginx -s reload` and workers killed with SIGKILL under load: sessions
#      keep resuming; `scsp verify` stays clean on both segments
#   5. every bad configuration stops `nginx -t` with its message
#   and, first, that each worker has mapped all of its segment at start
#
#   bash nginx/test.sh            (builds what it needs; run as root or not)
#
# Needs nginx, nginx-dev, gcc, make, libssl-dev, openssl, cargo; the stream
# part also libnginx-mod-stream (skipped, and said so, without it).
# Environment: CHAIN=300 (connections per alternation run), KEEP=1 (keep the
# temporary directory), KEEP_PEM=1 (and every session file of the
# alternation runs), SCSP_NO_BUILD=1 (use what is built).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CHAIN=${CHAIN:-300}
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
# PROFILE=debug tests the debug build (what scripts/test.sh has built already).
PROFILE=${PROFILE:-release}
case "$PROFILE" in release | debug) ;; *) echo "PROFILE must be release or debug" >&2; exit 2 ;; esac
scsp=$target/$PROFILE/scsp
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
stream_so=/usr/lib/nginx/modules/ngx_stream_module.so

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "  ok   $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# Without nginx and the tools, say so and skip, unless SCSP_REQUIRE_SERVERS=1
# (CI), which makes that a failure.
skip() {
    if [ "${SCSP_REQUIRE_SERVERS:-}" = 1 ]; then
        echo "FAILED: $* (SCSP_REQUIRE_SERVERS=1)" >&2
        exit 1
    fi
    echo "SKIPPED: $*"
    exit 0
}
for tool in openssl gcc make; do
    command -v "$tool" >/dev/null || skip "nginx/test.sh: $tool is not installed"
done
[ -x "$nginx_bin" ] || skip "nginx/test.sh: nginx is not installed (apt-get install nginx nginx-dev)"
[ -d /usr/share/nginx/src ] || skip "nginx/test.sh: nginx-dev is not installed (apt-get install nginx-dev)"

if [ -z "${SCSP_NO_BUILD:-}" ]; then
    echo "== build: scsp, libscsp, the module, the C example server"
    if [ "$PROFILE" = release ]; then
        cargo build --release -p scsp-cli -p scsp-ffi 2>&1 | tail -n 1
    else
        cargo build -p scsp-cli -p scsp-ffi 2>&1 | tail -n 1
    fi
    PROFILE=$PROFILE SCSP_NO_BUILD=1 bash nginx/build.sh
    bash scripts/build-openssl-example.sh "$PROFILE" | tail -n 1
fi
http_so=$target/nginx/ngx_http_scsp_module.so
stream_scsp_so=$target/nginx/ngx_stream_scsp_module.so
example=$target/openssl_server
for f in "$scsp" "$http_so" "$example"; do
    [ -f "$f" ] || { echo "nginx/test.sh: $f is missing (run without SCSP_NO_BUILD)" >&2; exit 1; }
done
with_stream=0
if [ -f "$stream_so" ] && [ -f "$stream_scsp_so" ]; then
    with_stream=1
else
    echo "note: no $stream_so (libnginx-mod-stream) or no stream module built: the stream part is skipped"
fi

tmp=$(mktemp -d /tmp/scsp-nginx-test.XXXXXX)
chmod 755 "$tmp"
seg1=/dev/shm/scsp-nginx-test-$$-1
seg2=/dev/shm/scsp-nginx-test-$$-2
pids=()
cleanup() {
    local p
    for h in 1 2 3; do
        [ -f "$tmp/nginx-$h/nginx.pid" ] && kill -TERM "$(cat "$tmp/nginx-$h/nginx.pid")" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for h in 1 2 3; do
        [ -f "$tmp/nginx-$h/nginx.pid" ] && kill -KILL "$(cat "$tmp/nginx-$h/nginx.pid")" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -f "$seg1" "$seg2" "$tmp"/bad-*.seg /dev/shm/scsp-nginx-test-$$-*
    if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- set-up
echo "== set-up: segments, certificates, bridges, two nginx"
"$scsp" create "$seg1" --size 32MiB --host-id 1 >/dev/null
"$scsp" create "$seg2" --size 32MiB --host-id 2 >/dev/null

# The bridges' CA and host certificates, and their configurations.
"$scsp" certs --out "$tmp/pki" --hosts 2 --cluster nginx-test \
    --addrs 127.60.0.1:7401,127.60.0.2:7401 >/dev/null
sed -i "s|^segment = .*|segment = \"$seg1\"|" "$tmp/pki/bridge-1.toml"
sed -i "s|^segment = .*|segment = \"$seg2\"|" "$tmp/pki/bridge-2.toml"
# The web certificate both hosts serve (one name, one certificate, as in a pool).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=www.test -addext subjectAltName=DNS:www.test \
    -keyout "$tmp/www.key" -out "$tmp/www.pem" 2>/dev/null

for h in 1 2; do
    "$scsp" bridge --config "$tmp/pki/bridge-$h.toml" >"$tmp/bridge-$h.log" 2>&1 &
    pids+=($!)
done
for h in 1 2; do
    other=$((3 - h))
    for _ in $(seq 100); do
        grep -q "peer $other: connected" "$tmp/bridge-$h.log" && break
        sleep 0.1
    done
    grep -q "peer $other: connected" "$tmp/bridge-$h.log" || { cat "$tmp/bridge-$h.log"; echo "bridge $h did not connect" >&2; exit 1; }
done

# nginx_conf HOST SEGMENT: the configuration of one host.
#   8412 TLS 1.2 session ids          8413 TLS 1.3 stateful (tickets off)
#   8414 TLS 1.3 tickets, scsp keys   8415 TLS 1.2 tickets, scsp keys
#   8416 ids, context of the C example server; 8417 its tickets
#   8450 stream: TLS 1.2 ids          8451 stream: TLS 1.3 tickets
nginx_conf() {
    local h=$1 seg=$2 d=$tmp/nginx-$1 a=127.60.0.$1
    mkdir -p "$d/logs" "$d/tmp"
    {
        echo "load_module $http_so;"
        if [ $with_stream = 1 ]; then
            echo "load_module $stream_so;"
            echo "load_module $stream_scsp_so;"
        fi
        cat <<EOF
worker_processes 2;
error_log $d/logs/error.log info;
pid $d/nginx.pid;
events { worker_connections 512; }
http {
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    log_format scsp '\$pid \$server_port \$ssl_protocol \$ssl_session_reused';
    access_log $d/logs/access.log scsp;

    ssl_certificate $tmp/www.pem;
    ssl_certificate_key $tmp/www.key;
    ssl_protocols TLSv1.2 TLSv1.3;

    # every server below inherits this segment
    scsp_session_cache $seg context=www;

    server {
        listen $a:8412 ssl reuseport;
        ssl_protocols TLSv1.2;
        ssl_session_tickets off;
        location / { return 200 "worker \$pid reused=\$ssl_session_reused\n"; }
    }
    server {
        listen $a:8413 ssl reuseport;
        ssl_protocols TLSv1.3;
        ssl_session_tickets off;
        location / { return 200 "worker \$pid reused=\$ssl_session_reused\n"; }
    }
    server {
        listen $a:8414 ssl reuseport;
        ssl_protocols TLSv1.3;
        scsp_ticket_keys on;
        location / { return 200 "worker \$pid reused=\$ssl_session_reused\n"; }
    }
    server {
        listen $a:8415 ssl reuseport;
        ssl_protocols TLSv1.2;
        scsp_ticket_keys on;
        location / { return 200 "worker \$pid reused=\$ssl_session_reused\n"; }
    }
    server {
        listen $a:8416 ssl reuseport;
        scsp_session_cache $seg context=scsp-example;
        ssl_session_tickets off;
        location / { return 200 "worker \$pid reused=\$ssl_session_reused\n"; }
    }
    server {
        listen $a:8417 ssl reuseport;
        scsp_session_cache $seg context=scsp-example;
        scsp_ticket_keys on;
        location / { return 200 "worker \$pid reused=\$ssl_session_reused\n"; }
    }
}
EOF
        if [ $with_stream = 1 ]; then
            cat <<EOF
stream {
    ssl_certificate $tmp/www.pem;
    ssl_certificate_key $tmp/www.key;
    scsp_session_cache $seg context=stream;
    server {
        listen $a:8450 ssl reuseport;
        ssl_protocols TLSv1.2;
        ssl_session_tickets off;
        return "worker \$pid reused=\$ssl_session_reused\n";
    }
    server {
        listen $a:8451 ssl reuseport;
        ssl_protocols TLSv1.3;
        scsp_ticket_keys on;
        return "worker \$pid reused=\$ssl_session_reused\n";
    }
}
EOF
        fi
    } >"$d/nginx.conf"
}

nginx_conf 1 "$seg1"
nginx_conf 2 "$seg2"
for h in 1 2; do
    d=$tmp/nginx-$h
    "$nginx_bin" -t -q -p "$d" -c "$d/nginx.conf" -g "error_log stderr;"
    "$nginx_bin" -p "$d" -c "$d/nginx.conf"
done

master() { cat "$tmp/nginx-$1/nginx.pid"; }
workers() { # the worker pids of host $1, sorted
    local m
    m=$(master "$1")
    ps -o pid= --ppid "$m" | tr -d ' ' | sort -n
}
wait_workers() { # wait until host $1 has 2 workers that are not $2 (old pids)
    local w
    for _ in $(seq 100); do
        w=$(workers "$1" | grep -vxF -f <(printf '%s\n' ${2:-none}) | wc -l)
        [ "$w" -ge 2 ] && return 0
        sleep 0.05
    done
    return 1
}
for h in 1 2; do
    wait_workers "$h" || { echo "nginx $h did not start its workers" >&2; cat "$tmp/nginx-$h/logs/error.log"; exit 1; }
done
echo "host 1: master $(master 1), workers $(workers 1 | xargs); host 2: master $(master 2), workers $(workers 2 | xargs)"

# Every worker maps every page of its segment at its start (scsp_prefault):
# each of its mappings of the segment (the http and the stream module open
# it apart) is resident in full. Kernels before 5.14 cannot (the module
# logs it and goes on): the check is skipped there.
. "$root/scripts/check/smaps.sh"
prefaulted() {
    local w
    for w in $(workers 1); do
        [ "$(unmapped_kib "$w" "$seg1")" = 0 ] || return 1
    done
}
if prefault_supported; then
    for _ in $(seq 100); do prefaulted && break; sleep 0.05; done
    check "every worker has mapped every page of its segment at start ($(for w in $(workers 1); do printf '%s: %s KiB unmapped; ' "$w" "$(unmapped_kib "$w" "$seg1")"; done))" prefaulted
else
    echo "  skip prefault check: kernel $(uname -r) has no MADV_POPULATE_READ"
fi

# conn ADDR PORT [s_client options]: one connection; prints "R PID" (the
# client and the server say it resumed), "N PID" (full handshake), "X" (no
# answer) or "? PID" (client and server disagree). nginx's http servers get
# a request; the stream servers and the C example server answer without
# one, and close without reading: a request would only race their answer.
conn() {
    local addr=$1 port=$2 out pid client server req=''
    shift 2
    [ "$port" -lt 8430 ] && req='GET / HTTP/1.0\r\nHost: www.test\r\n\r\n'
    out=$(printf "$req" |
        timeout 10 openssl s_client -connect "$addr:$port" -servername www.test -ign_eof "$@" 2>/dev/null) || true
    # (here-strings, not pipes: grep -q quits at its first match, and a
    # writer killed by SIGPIPE would fail the pipeline under pipefail)
    pid=$(sed -n 's/^worker \([0-9]*\) .*/\1/p' <<<"$out")
    pid=${pid%%$'\n'*}
    [ -n "$pid" ] || { echo X; return; }
    client=N
    grep -q '^Reused,' <<<"$out" && client=R
    # nginx: reused=r or reused=. ; the C example server: "reused" or "new"
    server=N
    grep -Eq '^worker [0-9]+ (reused=r|reused)$' <<<"$out" && server=R
    if [ "$client" = "$server" ]; then
        echo "$client $pid"
    else
        echo "? $pid"
        printf '%s\n' "$out" >"$(mktemp "$tmp/disagree.XXXXXX")"
    fi
}

# settle: before resuming at the other host a session just made, give the
# bridge a moment (it copies within about a millisecond; the alternation
# below runs without this pause).
settle() { sleep 0.05; }

# --------------------------------------------------- 1. cross-host resumption
echo "== 1. a session made at one host resumes at the other, on every worker"
# cross PORT LABEL [s_client options]
cross() {
    local port=$1 label=$2 from to r pid seen n resumed
    shift 2
    for from in 1 2; do
        to=$((3 - from))
        r=$(conn "127.60.0.$from" "$port" -sess_out "$tmp/cross.pem" "$@")
        if [ "${r%% *}" != N ]; then bad "$label: first connection at host $from: $r"; continue; fi
        settle
        seen=""
        resumed=0
        n=0
        # until every worker of the other host has resumed it (reuseport
        # spreads connections by source port), at least 4 times
        while [ $n -lt 40 ]; do
            n=$((n + 1))
            r=$(conn "127.60.0.$to" "$port" -sess_in "$tmp/cross.pem" "$@")
            pid=${r#* }
            if [ "${r%% *}" = R ]; then
                resumed=$((resumed + 1))
                case " $seen " in *" $pid "*) ;; *) seen="$seen $pid" ;; esac
            else
                break
            fi
            [ $resumed -ge 4 ] && [ "$(echo $seen | wc -w)" -ge 2 ] && break
        done
        if [ "${r%% *}" = R ] && [ "$(printf '%s\n' $seen | sort -n | xargs)" = "$(workers $to | xargs)" ]; then
            ok "$label: made at host $from, resumed at host $to on both its workers ($resumed connections, workers$seen)"
        else
            bad "$label: made at host $from, at host $to: last $r after $resumed resumptions on workers$seen (host $to has $(workers $to | xargs))"
        fi
    done
}
# cross_once PORT LABEL [s_client options]: a single-use session (TLS 1.3
# stateful: the helper takes it) resumes once at the other host, and an
# offer of it again, to any worker of either host, is a full handshake.
cross_once() {
    local port=$1 label=$2 from to r1 r2 r3
    shift 2
    for from in 1 2; do
        to=$((3 - from))
        r1=$(conn "127.60.0.$from" "$port" -sess_out "$tmp/cross.pem" "$@")
        settle
        r2=$(conn "127.60.0.$to" "$port" -sess_in "$tmp/cross.pem" "$@")
        r3=$(conn "127.60.0.$to" "$port" -sess_in "$tmp/cross.pem" "$@")
        check "$label: made at host $from ($r1), resumed once at host $to ($r2), then not again ($r3)" \
            [ "${r1%% *}" = N -a "${r2%% *}" = R -a "${r3%% *}" = N ]
    done
}
cross 8412 "TLS 1.2 session id" -tls1_2 -no_ticket
cross_once 8413 "TLS 1.3 stateful" -tls1_3
cross 8414 "TLS 1.3 ticket (scsp keys)" -tls1_3
cross 8415 "TLS 1.2 ticket (scsp keys)" -tls1_2
if [ $with_stream = 1 ]; then
    cross 8450 "stream: TLS 1.2 session id" -tls1_2 -no_ticket
    cross 8451 "stream: TLS 1.3 ticket (scsp keys)" -tls1_3
fi

# ------------------------------------------------- 2. strict alternation
# chain LABEL N PORT [s_client options]: N connections alternating between
# the hosts, each resuming the session the previous one got; writes
# "i host result pid" lines to $tmp/chain-LABEL.
chain() {
    local label=$1 n=$2 port=$3 i h r prev="" f
    shift 3
    : >"$tmp/chain-$label"
    for i in $(seq 1 "$n"); do
        h=$((2 - i % 2))
        f=$tmp/chain-$label-$i.pem
        if [ -n "$prev" ]; then
            r=$(conn "127.60.0.$h" "$port" -sess_in "$prev" -sess_out "$f" "$@")
        else
            r=$(conn "127.60.0.$h" "$port" -sess_out "$f" "$@")
        fi
        echo "$i $h $r" >>"$tmp/chain-$label"
        if [ "${r%% *}" != X ] && [ -s "$f" ]; then
            [ -n "$prev" ] && [ -z "${KEEP_PEM:-}" ] && rm -f "$prev"
            prev=$f
        fi
    done
}
# chain_report LABEL MIN_PERCENT: resumed share of connections 2..N that got
# an answer; every worker of both hosts must have resumed some.
chain_report() {
    local label=$1 min=$2 total resumed failed pct hosts_ok=1 h w
    total=$(awk '$1 > 1 && $3 != "X"' "$tmp/chain-$label" | wc -l)
    resumed=$(awk '$1 > 1 && $3 == "R"' "$tmp/chain-$label" | wc -l)
    failed=$(awk '$3 == "X"' "$tmp/chain-$label" | wc -l)
    pct=$(awk -v r="$resumed" -v t="$total" 'BEGIN { printf "%.1f", t ? 100 * r / t : 0 }')
    for h in 1 2; do
        for w in $(workers $h); do
            awk -v h=$h -v w=$w '$2 == h && $3 == "R" && $4 == w { f = 1 } END { exit !f }' "$tmp/chain-$label" || hosts_ok=0
        done
    done
    if awk -v p="$pct" -v m="$min" 'BEGIN { exit !(p >= m) }' && [ "$total" -gt 0 ]; then
        ok "$label: $resumed of $total alternating connections resumed ($pct%, $failed unanswered)"
    else
        bad "$label: $resumed of $total alternating connections resumed ($pct%, $failed unanswered; want >= $min%)"
        awk '$1 > 1 && $3 != "R"' "$tmp/chain-$label" | head -n 5 | sed 's/^/       not resumed: /'
    fi
    if [ $hosts_ok = 1 ]; then
        ok "$label: every worker of both hosts resumed sessions made at the other"
    else
        bad "$label: not every worker resumed (workers: host 1 $(workers 1 | xargs), host 2 $(workers 2 | xargs))"
    fi
}
echo "== 2. strict alternation between the hosts, $CHAIN connections each"
chain tls12-ids "$CHAIN" 8412 -tls1_2 -no_ticket
chain_report tls12-ids 99
chain tls13-stateful "$CHAIN" 8413 -tls1_3
chain_report tls13-stateful 99
chain tls13-tickets "$CHAIN" 8414 -tls1_3
chain_report tls13-tickets 99

# ------------------------------------------------- 3. the C example server
echo "== 3. interop with examples/c/openssl_server.c (same segment, context scsp-example)"
# start_example NAME PORT ARGS...: waits for its workers; the listening ports are PORT, PORT+1
start_example() {
    local name=$1 port=$2
    shift 2
    "$example" --cert "$tmp/www.pem" --key "$tmp/www.key" --addr 127.60.0.1 \
        --port "$port" --workers 2 --segment "$seg1" "$@" >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        [ "$(grep -c ' ready$' "$tmp/$name.log")" -ge 2 ] && return 0
        sleep 0.05
    done
    cat "$tmp/$name.log"
    return 1
}
start_example example-ids 8430 --tickets off
start_example example-tickets 8440 --tickets shared
# interop LABEL NGINX_PORT EXAMPLE_PORT [s_client options]
interop() {
    local label=$1 np=$2 ep=$3 r1 r2
    shift 3
    r1=$(conn 127.60.0.1 "$np" -sess_out "$tmp/io.pem" "$@")
    r2=$(conn 127.60.0.1 "$ep" -sess_in "$tmp/io.pem" "$@")
    check "$label: made on nginx ($r1), resumed by the example server ($r2)" [ "${r1%% *}" = N -a "${r2%% *}" = R ]
    r1=$(conn 127.60.0.1 $((ep + 1)) -sess_out "$tmp/io.pem" "$@")
    settle
    r2=$(conn 127.60.0.2 "$np" -sess_in "$tmp/io.pem" "$@")
    check "$label: made by the example server ($r1), resumed on nginx at host 2 ($r2)" [ "${r1%% *}" = N -a "${r2%% *}" = R ]
}
interop "TLS 1.2 session id" 8416 8430 -tls1_2 -no_ticket
interop "TLS 1.3 stateful" 8416 8430 -tls1_3
interop "TLS 1.3 ticket" 8417 8440 -tls1_3
interop "TLS 1.2 ticket" 8417 8440 -tls1_2

# ------------------------------------------- 4. reload and SIGKILL under load
echo "== 4. nginx -s reload and workers killed with SIGKILL under load"
n4=$((CHAIN > 200 ? CHAIN : 200))
chain load-stateful "$n4" 8413 -tls1_3 &
load1=$!
pids+=($load1)
chain load-tickets "$n4" 8414 -tls1_3 &
load2=$!
pids+=($load2)
at() { # wait until the chain LABEL has N lines
    while [ "$(wc -l <"$tmp/chain-$1" 2>/dev/null || echo 0)" -lt "$2" ] && kill -0 "$load1" 2>/dev/null; do sleep 0.02; done
}
old1=$(workers 1 | xargs)
at load-stateful $((n4 / 4))
"$nginx_bin" -p "$tmp/nginx-1" -c "$tmp/nginx-1/nginx.conf" -s reload 2>/dev/null
wait_workers 1 "$old1" || bad "host 1: no new workers after reload"
echo "  host 1 reloaded: workers $old1 -> $(workers 1 | grep -vxF -f <(printf '%s\n' $old1) | xargs)"
at load-stateful $((n4 / 2))
victim=$(workers 2 | head -n 1)
old2=$(workers 2 | xargs)
kill -KILL "$victim"
echo "  host 2: worker $victim killed with SIGKILL"
at load-stateful $((3 * n4 / 4))
victim=$(workers 1 | tail -n 1)
kill -KILL "$victim"
echo "  host 1: worker $victim killed with SIGKILL"
wait "$load1" "$load2"
wait_workers 2 "$victim" || true
# Workers killed mid-load are replaced; the chains' own worker check looks
# at the workers alive now, so report resumption only.
for label in load-stateful load-tickets; do
    total=$(awk '$1 > 1 && $3 != "X"' "$tmp/chain-$label" | wc -l)
    resumed=$(awk '$1 > 1 && $3 == "R"' "$tmp/chain-$label" | wc -l)
    failed=$(awk '$3 == "X"' "$tmp/chain-$label" | wc -l)
    after=$(awk -v s=$((n4 / 4)) '$1 > s && $3 == "R"' "$tmp/chain-$label" | wc -l)
    pct=$(awk -v r="$resumed" -v t="$total" 'BEGIN { printf "%.1f", t ? 100 * r / t : 0 }')
    check "$label: $resumed of $total resumed ($pct%) across the reload and two SIGKILLs ($failed unanswered, $after resumed after the reload)" \
        awk -v p="$pct" 'BEGIN { exit !(p >= 99) }'
done
both_have_workers() { wait_workers 1 && wait_workers 2; }
check "host 1 and 2 have 2 workers each after the kills" both_have_workers
for h in 1 2; do
    seg=$seg1
    [ $h = 2 ] && seg=$seg2
    if "$scsp" verify "$seg" >"$tmp/verify-$h.txt" 2>&1; then
        ok "scsp verify $seg: clean (logs: $(sed -n 's/^logs *//p' "$tmp/verify-$h.txt" | cut -d'(' -f1))"
    else
        bad "scsp verify $seg exited $?:"
        sed 's/^/       /' "$tmp/verify-$h.txt" | head -n 20
    fi
done
grep -E '\[(alert|emerg|crit)\]' "$tmp"/nginx-*/logs/error.log | grep -v "exited on signal 9" >"$tmp/alerts.txt" || true
check "no alert in the nginx error logs other than the killed workers ($(wc -l <"$tmp/alerts.txt") lines)" [ ! -s "$tmp/alerts.txt" ]
sed 's/^/       /' "$tmp/alerts.txt" | head -n 10

# ---------------------------------------------------- 5. bad configurations
echo "== 5. bad configurations stop nginx -t with a clear message"
bd=$tmp/bad
mkdir -p "$bd"
badseg=/dev/shm/scsp-nginx-test-$$
"$scsp" create "$badseg-ok" --size 4MiB >/dev/null
"$scsp" create "$badseg-ww" --size 4MiB >/dev/null && chmod 666 "$badseg-ww"
ln -sf "$badseg-ok" "$badseg-link"
head -c 65536 /dev/urandom >"$badseg-junk" && chmod 600 "$badseg-junk"
openssl rand 80 >"$bd/ticket.key"
# expect_bad NAME PATTERN (http{} body on stdin): nginx -t must fail, not
# crash, and print PATTERN (fixed string).
expect_bad() {
    local name=$1 pattern=$2 rc=0
    {
        echo "load_module $http_so;"
        echo "error_log stderr; pid $bd/nginx.pid; events {}"
        echo "http {"
        echo "  client_body_temp_path $bd/body; proxy_temp_path $bd/proxy; fastcgi_temp_path $bd/fcgi;"
        echo "  uwsgi_temp_path $bd/uwsgi; scgi_temp_path $bd/scgi;"
        echo "  ssl_certificate $tmp/www.pem; ssl_certificate_key $tmp/www.key;"
        cat
        echo "}"
    } >"$bd/$name.conf"
    "$nginx_bin" -t -p "$bd" -c "$bd/$name.conf" >"$bd/$name.out" 2>&1 || rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qF -- "$pattern" "$bd/$name.out"; then
        ok "$name: $(grep -m1 -F -- "$pattern" "$bd/$name.out" | sed -e 's/^nginx: //' -e 's/^.*\[emerg\] [0-9#]*: //' | cut -c1-160)..."
    else
        bad "$name: exit $rc, want a failure with \"$pattern\"; nginx said:"
        sed 's/^/       /' "$bd/$name.out"
    fi
}
srv="server { listen 127.60.0.9:8443 ssl; }"
expect_bad relative-path 'the segment path "dev/shm/scsp" must be absolute' <<EOF
scsp_session_cache dev/shm/scsp; $srv
EOF
expect_bad missing-segment 'nginx never creates a segment: create it first' <<EOF
scsp_session_cache $badseg-missing context=www; $srv
EOF
expect_bad missing-directory 'No such file or directory' <<EOF
scsp_session_cache /nonexistent-dir/scsp; $srv
EOF
expect_bad directory 'Is a directory' <<EOF
scsp_session_cache /dev/shm; $srv
EOF
expect_bad symlink 'is a symbolic link; segments are never opened through links' <<EOF
scsp_session_cache $badseg-link; $srv
EOF
expect_bad world-writable 'lets every user ("other") read and write it' <<EOF
scsp_session_cache $badseg-ww; $srv
EOF
if [ "$(id -u)" = 0 ]; then
    "$scsp" create "$badseg-other" --size 4MiB >/dev/null && chown nobody "$badseg-other"
    expect_bad foreign-owner 'is owned by uid' <<EOF
scsp_session_cache $badseg-other; $srv
EOF
else
    echo "  skip foreign-owner (needs root to chown)"
fi
expect_bad not-a-segment 'is not an scsp segment' <<EOF
scsp_session_cache $badseg-junk; $srv
EOF
expect_bad ticket-keys-path-missing 'nginx never creates a segment' <<EOF
scsp_ticket_keys $badseg-missing; $srv
EOF
expect_bad context-too-long 'is 33 bytes long, the most is 32' <<EOF
scsp_session_cache $badseg-ok context=abcdefghijklmnopqrstuvwxyz0123456; $srv
EOF
expect_bad context-empty 'empty context=' <<EOF
scsp_session_cache $badseg-ok context=; $srv
EOF
expect_bad unknown-parameter 'unknown parameter "size=10m"' <<EOF
scsp_session_cache $badseg-ok context=www size=10m; $srv
EOF
expect_bad off-with-parameter '"scsp_session_cache off" takes no parameters' <<EOF
scsp_session_cache off context=www; $srv
EOF
expect_bad ticket-keys-value 'invalid value "yes"' <<EOF
scsp_ticket_keys yes; $srv
EOF
expect_bad duplicate '"scsp_session_cache" directive is duplicate' <<EOF
scsp_session_cache $badseg-ok; scsp_session_cache $badseg-ok; $srv
EOF
expect_bad in-location '"scsp_session_cache" directive is not allowed here' <<EOF
server { listen 127.60.0.9:8443 ssl; location / { scsp_session_cache $badseg-ok; } }
EOF
expect_bad conflict-shared 'conflicts with "ssl_session_cache shared"' <<EOF
scsp_session_cache $badseg-ok context=www;
server { listen 127.60.0.9:8443 ssl; ssl_session_cache shared:SSL:1m; }
EOF
expect_bad conflict-builtin 'conflicts with "ssl_session_cache builtin"' <<EOF
ssl_session_cache builtin:1000;
server { listen 127.60.0.9:8443 ssl; scsp_session_cache $badseg-ok context=www; }
EOF
expect_bad conflict-ticket-key 'conflicts with "ssl_session_ticket_key"' <<EOF
scsp_session_cache $badseg-ok context=www;
server { listen 127.60.0.9:8443 ssl; scsp_ticket_keys on; ssl_session_ticket_key $bd/ticket.key; }
EOF
expect_bad ticket-keys-no-segment '"scsp_ticket_keys on" in' <<EOF
scsp_ticket_keys on; $srv
EOF
expect_bad two-segments 'one server uses one segment' <<EOF
scsp_session_cache $badseg-ok; scsp_ticket_keys $seg1; $srv
EOF
expect_bad default-server-mismatch 'share 127.60.0.9:8443 but not their scsp settings' <<EOF
server { listen 127.60.0.9:8443 ssl default_server; ssl_reject_handshake on; }
server { listen 127.60.0.9:8443 ssl; server_name www.test; scsp_session_cache $badseg-ok context=www; }
EOF
expect_bad default-server-other-context 'share 127.60.0.9:8443 but not their scsp settings' <<EOF
server { listen 127.60.0.9:8443 ssl default_server; scsp_session_cache $badseg-ok context=a; }
server { listen 127.60.0.9:8443 ssl; server_name b.test; scsp_session_cache $badseg-ok context=b; }
EOF
expect_bad context-client-verify 'verify client certificates differently' <<EOF
scsp_session_cache $badseg-ok context=www;
server { listen 127.60.0.9:8443 ssl; }
server { listen 127.60.0.9:8444 ssl; ssl_verify_client on; ssl_client_certificate $tmp/www.pem; }
EOF
# and a good configuration next to them passes
good_rc=0
{
    echo "load_module $http_so; error_log stderr; pid $bd/nginx.pid; events {}"
    echo "http { client_body_temp_path $bd/body; proxy_temp_path $bd/proxy; fastcgi_temp_path $bd/fcgi; uwsgi_temp_path $bd/uwsgi; scgi_temp_path $bd/scgi;"
    echo "  ssl_certificate $tmp/www.pem; ssl_certificate_key $tmp/www.key;"
    echo "  scsp_session_cache $badseg-ok context=www; scsp_ticket_keys on;"
    echo "  server { listen 127.60.0.9:8443 ssl default_server; ssl_reject_handshake on; }"
    echo "  server { listen 127.60.0.9:8443 ssl; server_name www.test; }"
    echo "  server { listen 127.60.0.9:8444 ssl; scsp_session_cache off; scsp_ticket_keys off; ssl_session_cache shared:SSL:1m; } }"
} >"$bd/good.conf"
"$nginx_bin" -t -p "$bd" -c "$bd/good.conf" >"$bd/good.out" 2>&1 || good_rc=$?
check "a good configuration with the same segments passes nginx -t (exit $good_rc)" [ $good_rc = 0 ]
[ $good_rc = 0 ] || sed 's/^/       /' "$bd/good.out"

# ------------------------------------------------ 6. a truncated segment
echo "== 6. a segment truncated under nginx: workers serve on without the cache"
seg3=/dev/shm/scsp-nginx-test-$$-cut
"$scsp" create "$seg3" --size 4MiB --host-id 3 >/dev/null
nginx_conf 3 "$seg3"
"$nginx_bin" -p "$tmp/nginx-3" -c "$tmp/nginx-3/nginx.conf"
wait_workers 3 || true
before=$(workers 3 | tr '\n' ' ')
first=$(conn 127.60.0.3 8412 -tls1_2 -sess_out "$tmp/cut.sess")
again=$(conn 127.60.0.3 8412 -tls1_2 -sess_in "$tmp/cut.sess")
check "before: a session made on host 3 resumes there ($first, then $again)" [ "${again%% *}" = R ]
: >"$seg3"
answered=0
for i in $(seq 1 20); do
    r=$(conn 127.60.0.3 8412 -tls1_2)
    [ "${r%% *}" = N ] && answered=$((answered + 1))
done
after=$(workers 3 | tr '\n' ' ')
check "after ': > segment': 20 of 20 connections answered ($answered)" [ $answered = 20 ]
check "no worker died of SIGBUS (workers $before, then $after)" [ "$before" = "$after" ]
# The way back (docs/operations.md): remove it, create it, reload; the
# master closes its old handle without touching the cut file.
m3=$(master 3)
rm -f "$seg3"
"$scsp" create "$seg3" --size 4MiB --host-id 3 >/dev/null
"$nginx_bin" -p "$tmp/nginx-3" -c "$tmp/nginx-3/nginx.conf" -s reload
wait_workers 3 "$after" || true
for _ in $(seq 100); do # until the old workers, on the cut file, are gone
    alive=0
    for w in $after; do kill -0 "$w" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.05
done
first=$(conn 127.60.0.3 8412 -tls1_2 -sess_out "$tmp/cut.sess")
again=$(conn 127.60.0.3 8412 -tls1_2 -sess_in "$tmp/cut.sess")
back=no
[ "$(master 3)" = "$m3" ] && kill -0 "$m3" && [ "${again%% *}" = R ] && back=yes
check "after rm, scsp create and a reload, the same master ($m3) shares sessions again ($first, then $again)" \
    [ $back = yes ]
if grep -q "exited on signal" "$tmp/nginx-3/logs/error.log"; then
    bad "host 3's error log: $(grep -m1 "exited on signal" "$tmp/nginx-3/logs/error.log")"
else
    ok "no worker exited on a signal"
fi
kill -TERM "$(master 3)"

echo
echo "nginx: $pass passed, $fail failed"
[ $fail = 0 ]
