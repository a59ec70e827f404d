//! The pool demo at a small size: the set-ups show the expected shape (no
//! sharing resumes about 1/(hosts x workers), the bridged pool and the
//! one-redis pool nearly always). This is also the end-to-end proof that a
//! session made on one host (`scsp serve` + its own segment) resumes on
//! another through the bridge.

use std::process::Command;
use std::sync::Mutex;

/// One demo at a time: each starts a dozen processes, and several at once
/// on two cores starve the bridges, so a visitor's next visit can beat the
/// replication of its session (the pool then resumes less than it does
/// when the machine is not oversubscribed).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn demo(extra: &[&str]) -> serde_json::Value {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_scsp"))
        .args([
            "demo",
            "--clients",
            "30",
            "--reconnects",
            "4",
            "--client-threads",
            "1",
            "--json",
        ])
        .args(extra)
        .output()
        .expect("run scsp demo");
    assert!(
        out.status.success(),
        "scsp demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("demo prints JSON")
}

fn resumed_pct(v: &serde_json::Value, setup: &str) -> f64 {
    v["setups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["setup"] == setup)
        .unwrap_or_else(|| panic!("no {setup} in {v}"))["resumed_pct"]
        .as_f64()
        .unwrap()
}

fn assert_shape(v: &serde_json::Value) {
    let (a, c) = (resumed_pct(v, "no-sharing"), resumed_pct(v, "shared-pool"));
    let b = resumed_pct(v, "shared-per-host");
    // 2 hosts x 2 workers: a pool without sharing resumes ~25%.
    assert!(a < 25.0 + 10.0, "no sharing resumed {a}%: {v}");
    assert!(
        b > a,
        "a segment per host ({b}%) must beat no sharing ({a}%)"
    );
    assert!(c >= 95.0, "the bridged pool resumed only {c}%: {v}");
}

/// Set-up (d), one redis server for the pool, resumes like the bridged
/// pool where `redis-server` is installed (`SCSP_REQUIRE_REDIS=1`: must be),
/// and is otherwise listed as not run, with the reason.
fn assert_redis_setup(v: &serde_json::Value) {
    let ran = v["setups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["setup"] == "redis-pool");
    let not_run = v["not_run"].as_array().unwrap();
    if ran {
        let d = resumed_pct(v, "redis-pool");
        assert!(d >= 95.0, "one redis server resumed only {d}%: {v}");
        assert!(not_run.is_empty(), "{v}");
    } else {
        assert!(
            std::env::var_os("SCSP_REQUIRE_REDIS").is_none_or(|r| r != "1"),
            "SCSP_REQUIRE_REDIS=1 but set-up (d) did not run: {not_run:?}"
        );
        assert!(
            not_run.iter().any(|n| n.as_str().unwrap().contains("(d)")),
            "(d) neither ran nor says why: {v}"
        );
    }
}

#[test]
fn bridged_pool_resumes_like_one_server_tls13() {
    let v = demo(&["--tls", "1.3"]);
    assert_shape(&v);
    assert_redis_setup(&v);
}

#[test]
fn bridged_pool_resumes_like_one_server_tls12() {
    let v = demo(&["--tls", "1.2"]);
    assert_shape(&v);
    assert_redis_setup(&v);
}

#[test]
fn bridged_pool_resumes_stateless_tickets_with_replicated_keys() {
    // Each host's ring makes its own key; the bridge's KEYS frames give every
    // host every key, so a ticket from host A decrypts on host B.
    let v = demo(&["--tls", "1.3", "--tickets"]);
    assert_shape(&v);
    // Tickets share keys, not a cache: the redis set-up does not apply.
    let not_run = v["not_run"].to_string();
    assert!(not_run.contains("--tickets"), "{v}");
}

#[test]
fn a_single_host_runs_every_setup_and_its_bridge_has_no_peer_to_wait_for() {
    let v = demo(&["--hosts", "1", "--tls", "1.2"]);
    // One host: a segment per host already shares between its workers.
    for setup in ["shared-per-host", "shared-pool"] {
        let r = resumed_pct(&v, setup);
        assert!(r >= 95.0, "{setup} resumed only {r}%: {v}");
    }
}

/// Build the C example server (OpenSSL + libscsp) the way the README says.
fn build_openssl_server() -> std::path::PathBuf {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(repo.join("scripts/build-openssl-example.sh"))
        .arg("debug")
        .current_dir(&repo)
        .output()
        .expect("run scripts/build-openssl-example.sh");
    assert!(
        out.status.success(),
        "building the C example server failed (needs gcc and libssl-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The script writes into cargo's target dir, as cargo resolves it.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "target".into());
    repo.join(target).join("openssl_server")
}

#[test]
fn openssl_pool_resumes_across_hosts_with_cache_and_with_tickets() {
    let server = build_openssl_server();
    let server = server.to_str().unwrap();
    for extra in [
        &["--tls", "1.2"][..],
        &["--tls", "1.3"],
        &["--tls", "1.3", "--tickets"],
    ] {
        let mut args = vec!["--server", "openssl", "--openssl-server", server];
        args.extend_from_slice(extra);
        assert_shape(&demo(&args));
    }
}
