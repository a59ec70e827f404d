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
fn a_pool_of_sets_segments_resumes_like_one_server() {
    // The bridges read the notice rings: session ids (TLS 1.2) and
    // once-only tickets (TLS 1.3, taken on resumption) alike.
    for tls in ["1.2", "1.3"] {
        let v = demo(&["--tls", tls, "--layout", "sets"]);
        assert_eq!(v["layout"], "sets", "{v}");
        assert_shape(&v);
    }
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
        &["--tls", "1.2", "--layout", "sets"],
    ] {
        let mut args = vec!["--server", "openssl", "--openssl-server", server];
        args.extend_from_slice(extra);
        assert_shape(&demo(&args));
    }
}

/// The target directory the build scripts write to, as cargo resolves it.
fn target_dir() -> std::path::PathBuf {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    repo.join(
        std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "target".into()),
    )
}

/// Whether `--server nginx|apache` can run here: its program installed
/// and scsp's module built (nginx/build.sh, apache/build.sh; the demo finds
/// it in the target directory). If not, print a SKIPPED line and return
/// false, or fail when SCSP_REQUIRE_SERVERS=1 (CI).
fn server_available(programs: &[&str], module: &str, build: &str) -> bool {
    let program = programs.iter().find_map(|p| {
        ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(p))
            .find(|f| f.is_file())
    });
    let module = target_dir().join(module);
    let why = match program {
        None => format!("{} is not installed", programs.join(" / ")),
        Some(_) if !module.is_file() => {
            format!("{} is not built (bash {build})", module.display())
        }
        Some(_) => return true,
    };
    assert!(
        std::env::var_os("SCSP_REQUIRE_SERVERS").is_none_or(|r| r != "1"),
        "SCSP_REQUIRE_SERVERS=1 but {why}"
    );
    println!("SKIPPED: {why}");
    false
}

fn setup<'a>(v: &'a serde_json::Value, setup: &str) -> &'a serde_json::Value {
    v["setups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["setup"] == setup)
        .unwrap_or_else(|| panic!("no {setup} in {v}"))
}

/// A pool of real servers: the stock row (a cache per instance) resumes
/// about 1 in `hosts` returning visits and none that moved to another host,
/// nor does a segment per host; the bridged pool resumes them all. Redis
/// (d) is said not to apply.
fn assert_real_server_pool(v: &serde_json::Value, stock_label: &str) {
    let hosts = v["hosts"].as_f64().unwrap();
    let a = setup(v, "no-sharing");
    assert!(
        a["label"].as_str().unwrap().contains(stock_label),
        "(a) is not the stock server: {a}"
    );
    let a_pct = a["resumed_pct"].as_f64().unwrap();
    assert!(
        a_pct <= 100.0 / hosts + 10.0,
        "the stock servers resumed {a_pct}%, more than 1 in {hosts} hosts: {v}"
    );
    assert!(a_pct > 0.0, "the stock servers resumed nothing: {v}");
    for s in ["no-sharing", "shared-per-host"] {
        let moved = setup(v, s)["other_host_resumed_pct"].as_f64().unwrap();
        assert_eq!(
            moved, 0.0,
            "{s}: a cache of one host resumed visits sent to another: {v}"
        );
    }
    let c = setup(v, "shared-pool");
    for field in ["resumed_pct", "other_host_resumed_pct"] {
        let pct = c[field].as_f64().unwrap();
        assert!(
            pct >= 95.0,
            "the bridged pool's {field} is only {pct}%: {v}"
        );
    }
    assert_eq!(c["failed"], 0, "{v}");
    // Redis (d) is said not to run, and why.
    let not_run = v["not_run"].to_string();
    assert!(
        not_run.contains("(d)") && not_run.contains("not run"),
        "{v}"
    );
    if v["resumption"] == "session cache" {
        assert!(not_run.contains("does not apply"), "{v}");
    }
}

#[test]
fn nginx_pool_stock_cache_against_scsp_and_bridge() {
    if !server_available(
        &["nginx"],
        "nginx/ngx_http_scsp_module.so",
        "nginx/build.sh",
    ) {
        return;
    }
    for extra in [
        &["--tls", "1.3"][..],
        &["--tls", "1.2", "--tickets"],
        &["--tls", "1.3", "--layout", "sets"],
    ] {
        let mut args = vec!["--server", "nginx"];
        args.extend_from_slice(extra);
        let v = demo(&args);
        assert_eq!(v["server"], "nginx");
        assert_real_server_pool(&v, "shared:SSL:10m");
    }
}

#[test]
fn apache_pool_stock_cache_against_scsp_and_bridge() {
    if !server_available(
        &["apache2", "httpd"],
        "apache/mod_socache_scsp.so",
        "apache/build.sh",
    ) {
        return;
    }
    for extra in [
        &["--tls", "1.2"][..],
        &["--tls", "1.3", "--tickets"],
        &["--tls", "1.2", "--layout", "sets"],
    ] {
        let mut args = vec!["--server", "apache"];
        args.extend_from_slice(extra);
        let v = demo(&args);
        assert_eq!(v["server"], "apache");
        assert_real_server_pool(&v, "shmcb");
    }
}

#[test]
fn a_missing_server_or_module_is_refused_with_exit_code_2() {
    for (args, says) in [
        (
            &["--server", "nginx", "--server-bin", "/nonexistent/nginx"][..],
            "not installed",
        ),
        (
            &[
                "--server",
                "apache",
                "--server-bin",
                "/bin/true",
                "--module",
                "/nonexistent/mod.so",
            ],
            "--module /nonexistent/mod.so: no such file",
        ),
        (&["--module", "/nonexistent/mod.so"], "--module is for"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_scsp"))
            .arg("demo")
            .args(args)
            .output()
            .expect("run scsp demo");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn the_html_report_is_self_contained_with_an_svg_chart_per_measure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.html");
    let v = demo(&["--tls", "1.2", "--report", path.to_str().unwrap()]);
    let html = std::fs::read_to_string(&path).expect("the report was written");
    // Resumed %, handshakes/s, CPU per connection, connect latency, and
    // the bridged pool's replication delay.
    assert_eq!(html.matches("<svg").count(), 5, "{html}");
    assert_eq!(html.matches("</svg>").count(), 5);
    // The latency chart has a line per set-up that ran, the replication
    // chart one for the bridged pool, whose JSON has its delays.
    let setups = v["setups"].as_array().unwrap();
    assert_eq!(
        html.matches("<polyline").count(),
        setups.len() + 1,
        "{html}"
    );
    let bridged = setups.iter().find(|s| s["setup"] == "shared-pool").unwrap();
    assert!(
        bridged["replication"]["p50_us"].as_f64().unwrap() > 0.0,
        "{bridged}"
    );
    // The table is there too, with every set-up.
    assert!(html.contains("<table"));
    for s in v["setups"].as_array().unwrap() {
        assert!(html.contains(s["label"].as_str().unwrap()), "{s}");
    }
    // Nothing loaded from anywhere: no script, stylesheet or image, no URL.
    for needle in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "http://", "https://", "@import",
        "url(",
    ] {
        assert!(!html.contains(needle), "the report has {needle:?}");
    }
}
