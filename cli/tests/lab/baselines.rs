//! The baselines scsp is measured against must measure what they claim: the
//! loopback redis store really stores, returns and deletes through a real
//! `redis-server`; its client refuses malformed replies; `scsp bench` reports
//! every store it can run and says why it left one out; `scsp bench scale`
//! measures scsp and the locked baseline, with and without a stopped process;
//! `scsp bench bridge` reports its latencies and what the bridges cost.
//!
//! The redis tests are skipped, with a line on stderr, when `redis-server` is
//! not installed; `SCSP_REQUIRE_REDIS=1` (CI sets it) makes that a failure.

use scsp_lab::baselines::{
    unavailable, RedisClient, RedisServer, Store, IMPLS, LOCKED_IMPL, NETWORK_IMPL, OPS, SETS_IMPL,
};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

/// Held by every test that starts processes: one of them writes an
/// executable script, and a child forked by another thread while that file
/// is open for writing would make running it fail (ETXTBSY).
static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn spawning() -> std::sync::MutexGuard<'static, ()> {
    SPAWNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the redis tests can run here (panics if CI requires them).
fn redis_here() -> bool {
    match unavailable(NETWORK_IMPL) {
        None => true,
        Some(why) if std::env::var_os("SCSP_REQUIRE_REDIS").is_some_and(|v| v == "1") => {
            panic!("SCSP_REQUIRE_REDIS=1 but {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

#[test]
fn redis_store_puts_gets_and_takes_once_with_binary_keys_and_values() {
    let _spawning = spawning();
    if !redis_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(NETWORK_IMPL, &dir.path().join("unused"), 100, 1024).unwrap();
    // Bytes that a text protocol would trip over: CR LF, '$', '*', NUL.
    let key: Vec<u8> = b"\r\n$3\r\n*\0session".to_vec();
    let value: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let other_key = [7u8; 32];
    let mut buf = vec![0u8; 1024];

    assert!(!store.get(&key, &mut buf), "hit before any put");
    store.put(&key, &value);
    store.put(&other_key, b"other");
    assert!(store.get(&key, &mut buf));
    assert_eq!(&buf[..value.len()], &value[..]);
    assert!(store.take(&key, &mut buf), "take of a stored key missed");
    assert_eq!(&buf[..value.len()], &value[..]);
    assert!(!store.take(&key, &mut buf), "a value was taken twice");
    assert!(!store.get(&key, &mut buf), "a taken value is still there");
    assert!(store.get(&other_key, &mut buf), "take removed another key");
    assert_eq!(&buf[..5], b"other");
}

#[test]
fn redis_client_reports_a_value_too_large_for_the_buffer_and_the_server_stops_on_drop() {
    let _spawning = spawning();
    if !redis_here() {
        return;
    }
    let server = RedisServer::start().unwrap();
    let addr = server.addr();
    let mut c = server.connect().unwrap();
    c.set(b"k", &[1u8; 100], 60).unwrap();
    let err = c.get(b"k", &mut [0u8; 10]).unwrap_err();
    assert!(err.to_string().contains("100 bytes"), "{err}");
    drop(c);
    drop(server);
    assert!(
        TcpStream::connect(addr).is_err(),
        "redis-server still listening on {addr} after drop"
    );
}

/// A server that answers every request line with `reply`.
fn canned(reply: &'static [u8]) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        // The first line of the command (`*2`) is enough to answer.
        if r.read_line(&mut line).is_ok() {
            let _ = (&s).write_all(reply);
        }
    });
    addr
}

#[test]
fn redis_client_refuses_malformed_replies_with_an_error() {
    for reply in [
        &b"-ERR unknown command\r\n"[..],
        b"$99999999999999999999\r\n",
        b"$abc\r\n",
        b"$5\r\nab",
        b"$2\r\nabXY",
        b":1\r\n",
        b"+OK",
        b"",
    ] {
        let mut c = RedisClient::connect(canned(reply)).unwrap();
        let got = c.get(b"key", &mut [0u8; 64]);
        assert!(got.is_err(), "reply {reply:?} gave {got:?}");
    }
}

/// `scsp bench --json` at a tiny size, with `path` first on PATH if given.
fn bench_json(path: Option<&std::path::Path>) -> serde_json::Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scsp"));
    cmd.args(["bench", "--values", "150", "--ops", "500", "--rounds", "1"])
        .args(["--entries", "200", "--processes", "0", "--json"]);
    if let Some(dir) = path {
        let old = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&old));
        cmd.env("PATH", std::env::join_paths(paths).unwrap());
    }
    json_of(cmd)
}

/// The JSON `cmd` prints; it must succeed.
fn json_of(mut cmd: std::process::Command) -> serde_json::Value {
    let out = cmd.output().expect("run scsp");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// `scsp ARGS`'s JSON; it must succeed.
fn scsp_json(args: &[&str]) -> serde_json::Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scsp"));
    cmd.args(args);
    json_of(cmd)
}

#[test]
fn scsp_bench_reports_every_store_it_can_run_and_names_the_ones_it_cannot() {
    let _spawning = spawning();
    let v = bench_json(None);
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(!s["reason"].as_str().unwrap().is_empty());
            s["implementation"].as_str().unwrap()
        })
        .collect();
    if redis_here() {
        assert!(skipped.is_empty(), "skipped {skipped:?}");
    }
    let cells = v["cells"].as_array().unwrap();
    for imp in IMPLS.iter().filter(|i| !skipped.contains(i)) {
        for op in OPS {
            let cell = cells
                .iter()
                .find(|c| c["implementation"] == *imp && c["op"] == op)
                .unwrap_or_else(|| panic!("no cell for {imp} {op}"));
            let ns = cell["median_ns"].as_f64().unwrap();
            assert!(ns.is_finite() && ns > 0.0, "{imp} {op}: {ns}");
        }
    }
}

#[test]
fn scsp_bench_reports_a_redis_server_that_will_not_start_and_measures_the_rest() {
    let _spawning = spawning();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("redis-server");
    std::fs::write(&fake, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let v = bench_json(Some(dir.path()));
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(skipped[0]["implementation"], NETWORK_IMPL);
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(reason.contains("exited at start"), "{reason}");
    let cells = v["cells"].as_array().unwrap();
    assert!(cells.iter().all(|c| c["implementation"] != NETWORK_IMPL));
    assert_eq!(cells.len(), OPS.len() * (IMPLS.len() - 1), "{v}");
}

#[test]
fn bench_handshake_with_redis_resumes_every_visit_across_workers() {
    if !redis_here() {
        return;
    }
    let _spawning = spawning();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scsp"))
        .args(["bench", "handshake", "--connections", "10"])
        .args(["--key-type", "ecdsa", "--redis"])
        .output()
        .expect("run scsp bench handshake --redis");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("redis"), "{text}");
    // TLS 1.2 session ids and TLS 1.3 single-use tickets, both through
    // redis: each visit goes to the other worker than the one before.
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("ECDSA")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for r in rows {
        assert!(r.ends_with("100.0%"), "not every visit resumed: {r}");
    }
}

/// A `scsp bench scale` figure set must be a measurement: operations done,
/// latencies sampled and in order.
fn assert_sane(what: &str, f: &serde_json::Value) {
    let n = |k: &str| {
        f[k].as_f64()
            .unwrap_or_else(|| panic!("{what}: no number {k} in {f}"))
    };
    assert!(
        n("ops") > 0.0 && n("mops") > 0.0,
        "{what}: nothing done: {f}"
    );
    assert!(n("samples") > 0.0, "{what}: no latency sampled: {f}");
    assert!(
        0.0 < n("p50_ns") && n("p50_ns") <= n("p99_ns") && n("p99_ns") <= n("p999_ns"),
        "{what}: latencies out of order: {f}"
    );
    assert!((0.0..=100.0).contains(&n("hit_pct")), "{what}: {f}");
    assert!((0.0..=100.0).contains(&n("stalled_pct")), "{what}: {f}");
}

#[test]
fn scsp_bench_scale_measures_both_layouts_the_locked_baseline_and_the_unshared_reference_with_and_without_a_stopped_process(
) {
    let _spawning = spawning();
    let v = scsp_json(&[
        "bench",
        "scale",
        "--procs",
        "1,2",
        "--values",
        "150",
        "--duration",
        "0.05",
        "--entries",
        "200,400",
        "--json",
    ]);
    let scaling = v["scaling"].as_array().unwrap();
    let stop_one = v["stop_one"].as_array().unwrap();
    // A cache line's round trip between two CPUs before the one round and
    // after it: measured wherever two CPUs are there to bounce it.
    let trips = v["cross_core"]["round_trip_ns_before_each_round_and_after"]
        .as_array()
        .unwrap();
    assert_eq!(trips.len(), 2, "{v}");
    if v["cpus"].as_u64().unwrap() >= 2 {
        assert_eq!(
            v["cross_core"]["cpus"].as_array().map(Vec::len),
            Some(2),
            "{v}"
        );
        assert!(
            trips.iter().any(|t| t.as_f64().is_some_and(|ns| ns > 0.0)),
            "no round trip measured: {v}"
        );
    }
    let stores = ["scsp", SETS_IMPL, LOCKED_IMPL];
    let mixes = ["get90", "get50", "tls13"];
    let entries = [200, 400];
    // The scaling table also has the unshared reference (a segment per
    // process); the stopped-process table has only the shared stores.
    assert_eq!(
        scaling.len(),
        (stores.len() + 1) * mixes.len() * 2 * entries.len(),
        "{v}"
    );
    assert_eq!(
        stop_one.len(),
        stores.len() * mixes.len() * entries.len(),
        "{v}"
    );
    let cell = |store: &str, mix: &str, procs: u64, n: u64| {
        scaling
            .iter()
            .find(|c| {
                c["store"] == store && c["mix"] == mix && c["procs"] == procs && c["entries"] == n
            })
            .unwrap_or_else(|| panic!("no scaling cell {store} {mix} P={procs}, {n} sessions"))
    };
    for n in entries {
        for mix in mixes {
            for procs in [1, 2] {
                assert_sane(
                    &format!("unshared {mix} P={procs}"),
                    cell("unshared", mix, procs, n),
                );
            }
        }
    }
    for (store, n) in stores.into_iter().flat_map(|s| entries.map(|n| (s, n))) {
        for mix in mixes {
            for procs in [1, 2] {
                let what = format!("{store} {mix} P={procs}, {n} sessions");
                let cell = cell(store, mix, procs, n);
                assert_eq!(cell["value_bytes"], 150);
                assert_sane(&what, cell);
                if v["cpus"].as_u64().unwrap() >= 2 {
                    let ns = cell["round_trip_ns"].as_f64();
                    assert!(ns.is_some_and(|ns| ns > 0.0), "{what}: round trip {ns:?}");
                }
                let x = cell["speedup"].as_f64().unwrap();
                assert!(x > 0.0 && (procs > 1 || x == 1.0), "{what}: speed-up {x}");
            }
            let what = format!("{store} {mix} stopped, {n} sessions");
            let row = stop_one
                .iter()
                .find(|c| c["store"] == store && c["mix"] == mix && c["entries"] == n)
                .unwrap_or_else(|| panic!("no stopped-process row {what}"));
            assert_eq!(row["procs"], 2, "{what}");
            assert!(row["stops"].as_u64().unwrap() > 0, "{what}: never stopped");
            assert_sane(&format!("{what}, running"), &row["running"]);
            assert_sane(&format!("{what}, stopped"), &row["stopped"]);
            let held = row["held_while_stopped_pct"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&held), "{what}: held {held} %");
        }
    }
}

#[test]
fn scsp_bench_scale_refuses_impossible_flags() {
    for bad in [
        ["--procs", "0"],
        ["--values", "0"],
        ["--duration", "0"],
        ["--entries", "0"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scsp"))
            .args(["bench", "scale"])
            .args(bad)
            .output()
            .expect("run scsp bench scale");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// `scsp bench bridge --json` must report, for every scenario, latencies
/// that are ordered and whose histogram holds every probe, and each
/// bridge's CPU over it (what a hot link's polling costs).
#[test]
fn scsp_bench_bridge_reports_latencies_their_histogram_and_each_bridges_cpu() {
    let _spawning = spawning();
    let v = scsp_json(&[
        "bench",
        "bridge",
        "--probes",
        "200",
        "--idle-secs",
        "1",
        "--idle-gap-ms",
        "20",
        "--rate",
        "1000",
        "--json",
    ]);
    let run = &v["runs"][0];
    let scenarios = run["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 4, "{run}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for s in scenarios {
        let name = s["scenario"].as_str().unwrap();
        let probes = s["probes"].as_u64().unwrap();
        assert!(probes >= 5, "{name}: {probes} probes");
        let p = |k: &str| s[k].as_f64().unwrap();
        assert!(
            0.0 < p("p50_us") && p("p50_us") <= p("p99_us") && p("p99_us") <= p("max_us"),
            "{name}: {s}"
        );
        let counted: u64 = s["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[1].as_u64().unwrap())
            .sum();
        assert_eq!(counted, probes, "{name}: the histogram lost probes");
        for cpu in s["bridge_cpu_pct"].as_array().expect("bridge_cpu_pct") {
            let cpu = cpu.as_f64().unwrap();
            assert!(
                (0.0..=100.0 * cores).contains(&cpu),
                "{name}: bridge CPU {cpu} %"
            );
        }
    }
}
