//! Real OpenSSL servers sharing sessions through scsp: the prefork example
//! `examples/c/openssl_server.c`, built with gcc against the installed
//! library, and `openssl s_client -sess_out` to one worker then `-sess_in`
//! to another. Resumption must say `Reused` for TLS 1.2 and TLS 1.3, through
//! the session cache and through shared ticket keys — and must say `New`
//! when the workers share nothing (the control proving the check can fail).

mod common;

use common::{compile, installed, installed_release, missing_tools, run, Link, Reaped};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Build the example server once per link mode (shared dir per test binary).
fn server_exe(link: Link) -> PathBuf {
    static SHARED: OnceLock<PathBuf> = OnceLock::new();
    static STATIC: OnceLock<PathBuf> = OnceLock::new();
    let cell = match link {
        Link::Shared => &SHARED,
        Link::Static => &STATIC,
    };
    cell.get_or_init(|| {
        let inst = installed();
        let out = inst.prefix.join(format!("openssl_server-{link:?}"));
        compile(
            inst,
            &[common::repo().join("examples/c/openssl_server.c")],
            &out,
            link,
            true,
        )
    })
    .clone()
}

/// A throwaway P-256 certificate and key.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    common::run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

struct Pool {
    _server: Reaped,
    ports: Vec<u16>,
}

fn start(link: Link, dir: &Path, args: &[&str]) -> Pool {
    let (cert, key) = certificate(dir);
    let workers = 2;
    let server = Reaped::spawn(
        Command::new(server_exe(link))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--segment")
            .arg(dir.join("segment"))
            .args(["--port", "0", "--workers", &workers.to_string()])
            .args(args),
    );
    let mut ports = Vec::new();
    let mut ready = 0;
    while ports.len() < workers || ready < workers {
        let line = server.line();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["worker", _, "port", p] => ports.push(p.parse().unwrap()),
            ["worker", _, "pid", _, "ready"] => ready += 1,
            _ => panic!("unexpected server output: {line}"),
        }
    }
    Pool {
        _server: server,
        ports,
    }
}

/// One s_client connection; returns (New/Reused line, worker reply line).
fn connect(port: u16, tls: &str, sess_flag: &str, sess_file: &Path) -> (String, String) {
    let out = run(Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .arg(if tls == "1.2" { "-tls1_2" } else { "-tls1_3" })
        .arg(sess_flag)
        .arg(sess_file)
        .arg("-ign_eof"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &[&str]| {
        text.lines()
            .find(|l| prefix.iter().any(|p| l.starts_with(p)))
            .unwrap_or_else(|| panic!("no {prefix:?} line in s_client output:\n{text}"))
            .to_string()
    };
    (find(&["New,", "Reused,"]), find(&["worker "]))
}

/// s_client to worker 0 saves the session; s_client to worker 1 offers it.
/// Returns whether worker 1 resumed it (checked on both ends).
fn resumes_across_workers(link: Link, tls: &str, server_args: &[&str]) -> bool {
    resume_and_count_puts(link, tls, server_args).0
}

/// As `resumes_across_workers`, and how many values the servers stored in
/// the segment (read from Rust after the handshakes).
fn resume_and_count_puts(link: Link, tls: &str, server_args: &[&str]) -> (bool, u64) {
    let dir = tempfile::tempdir().unwrap();
    let pool = start(link, dir.path(), &[&["--tls", tls], server_args].concat());
    let sess = dir.path().join("session.pem");
    let (first, w0) = connect(pool.ports[0], tls, "-sess_out", &sess);
    assert!(first.starts_with("New,"), "first handshake: {first}");
    assert!(first.contains(&format!("TLSv{tls}")), "{first}");
    assert!(sess.exists(), "s_client saved no session");
    let (second, w1) = connect(pool.ports[1], tls, "-sess_in", &sess);
    assert_ne!(w0, w1, "both connections reached one worker");
    let client_says = second.starts_with("Reused,");
    let server_says = w1.ends_with(" reused");
    assert_eq!(client_says, server_says, "client: {second}; server: {w1}");
    let puts = scsp::Cache::open(dir.path().join("segment"))
        .unwrap()
        .stats()
        .counters
        .puts;
    (client_says, puts)
}

fn skip() -> bool {
    match missing_tools(true) {
        Some(why) => {
            eprintln!("skipping: {why}");
            true
        }
        None => false,
    }
}

const CACHE: &[&str] = &["--cache", "on", "--tickets", "off"];
const TICKETS: &[&str] = &["--cache", "off", "--tickets", "shared"];
const BOTH: &[&str] = &["--cache", "on", "--tickets", "shared"];
const NOTHING_SHARED: &[&str] = &["--cache", "off", "--tickets", "local"];

#[test]
fn tls12_session_cache_resumes_on_another_worker() {
    if !skip() {
        assert!(resumes_across_workers(Link::Shared, "1.2", CACHE));
    }
}

#[test]
fn tls13_session_cache_resumes_on_another_worker() {
    if !skip() {
        let (resumed, puts) = resume_and_count_puts(Link::Shared, "1.3", CACHE);
        assert!(resumed);
        assert!(puts >= 1, "stateful TLS 1.3 sessions must be stored");
    }
}

/// One session offered three times: made on worker 0, offered to worker 1,
/// then to worker 0 and worker 1 again. Returns whether each offer resumed
/// (checked on both ends), and how many values the segment handed out by
/// take.
fn offer_three_times(tls: &str, server_args: &[&str]) -> ([bool; 3], u64) {
    let dir = tempfile::tempdir().unwrap();
    let pool = start(
        Link::Shared,
        dir.path(),
        &[&["--tls", tls], server_args].concat(),
    );
    let sess = dir.path().join("session.pem");
    let (first, _) = connect(pool.ports[0], tls, "-sess_out", &sess);
    assert!(first.starts_with("New,"), "first handshake: {first}");
    let mut resumed = [false; 3];
    for (i, port) in [pool.ports[1], pool.ports[0], pool.ports[1]]
        .into_iter()
        .enumerate()
    {
        let (client, server) = connect(port, tls, "-sess_in", &sess);
        let client_says = client.starts_with("Reused,");
        assert_eq!(
            client_says,
            server.ends_with(" reused"),
            "offer {i}: client: {client}; server: {server}"
        );
        resumed[i] = client_says;
    }
    let takes = scsp::Cache::open(dir.path().join("segment"))
        .unwrap()
        .stats()
        .counters
        .takes;
    (resumed, takes)
}

#[test]
fn a_tls13_stateful_session_resumes_once_across_workers() {
    if skip() {
        return;
    }
    // RFC 8446 8.1: a stateful ticket is single-use. The get callback
    // takes it, so a second offer, to any worker, is a full handshake.
    let (resumed, takes) = offer_three_times("1.3", CACHE);
    assert_eq!(
        resumed,
        [true, false, false],
        "TLS 1.3 session offered three times"
    );
    assert_eq!(takes, 1, "the one resumption took the session");
}

#[test]
fn a_tls12_session_id_stays_reusable_across_workers() {
    if skip() {
        return;
    }
    let (resumed, takes) = offer_three_times("1.2", CACHE);
    assert_eq!(
        resumed,
        [true, true, true],
        "TLS 1.2 session offered three times"
    );
    assert_eq!(takes, 0, "TLS 1.2 sessions are looked up, not taken");
}

#[test]
fn session_cache_works_with_the_static_library() {
    if !skip() {
        assert!(resumes_across_workers(Link::Static, "1.3", CACHE));
    }
}

#[test]
fn tls12_shared_ticket_keys_resume_on_another_worker() {
    if !skip() {
        assert!(resumes_across_workers(Link::Shared, "1.2", TICKETS));
    }
}

#[test]
fn tls13_shared_ticket_keys_resume_on_another_worker() {
    if !skip() {
        assert!(resumes_across_workers(Link::Static, "1.3", TICKETS));
    }
}

#[test]
fn cache_and_tickets_together_resume_on_another_worker() {
    if !skip() {
        assert!(resumes_across_workers(Link::Shared, "1.2", BOTH));
        let (resumed, puts) = resume_and_count_puts(Link::Shared, "1.3", BOTH);
        assert!(resumed);
        assert_eq!(puts, 0, "TLS 1.3 stateless tickets need no cache entry");
    }
}

#[test]
fn workers_sharing_nothing_do_not_resume_each_others_sessions() {
    if !skip() {
        assert!(!resumes_across_workers(Link::Shared, "1.2", NOTHING_SHARED));
        assert!(!resumes_across_workers(Link::Shared, "1.3", NOTHING_SHARED));
    }
}

#[test]
fn early_data_sessions_resume_once_on_another_worker() {
    if skip() {
        return;
    }
    // With early data under anti-replay OpenSSL makes TLS 1.3 tickets
    // stateful and resumes a session only if its replay check can remove it
    // from the SSL_CTX's internal store; each worker has its own OpenSSL
    // ticket keys here, so only the scsp cache can resume across workers.
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--tls",
        "1.3",
        "--cache",
        "on",
        "--tickets",
        "local",
        "--early-data",
        "16384",
    ];
    let pool = start(Link::Shared, dir.path(), &args);
    let sess = dir.path().join("session.pem");
    let (first, _) = connect(pool.ports[0], "1.3", "-sess_out", &sess);
    assert!(first.starts_with("New,"), "first handshake: {first}");
    let (second, w1) = connect(pool.ports[1], "1.3", "-sess_in", &sess);
    assert!(
        second.starts_with("Reused,") && w1.ends_with(" reused"),
        "{second}; {w1}"
    );
    // Single use across workers: the same session offered again is refused.
    let (third, w0) = connect(pool.ports[0], "1.3", "-sess_in", &sess);
    assert!(
        third.starts_with("New,") && w0.ends_with(" new"),
        "{third}; {w0}"
    );
}

/// `ffi/tests/c/openssl_wipe_test.c`: the helper's callbacks leave no
/// session bytes in their stack memory, on a miss (expired), a value that
/// is not a session, a hit and a store. Against libscsp as it ships (the
/// release build): an unoptimised build keeps every temporary of a copy on
/// the stack, which says nothing of what a server's libscsp leaves there.
#[test]
fn the_openssl_helper_leaves_no_session_bytes_on_its_stack() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(
        installed_release(),
        &[common::repo().join("ffi/tests/c/openssl_wipe_test.c")],
        &dir.path().join("openssl_wipe_test"),
        Link::Shared,
        true,
    );
    // Symbols bound at start, as a hardened build (`-z now`) binds them:
    // the dynamic linker's lazy binding saves every vector register on the
    // stack when a function is first called, and right after OpenSSL has
    // encoded a session they hold bytes of its master secret (one run in
    // three, as the stack's alignment falls). That copy is glibc's, not the
    // helper's, and no caller can wipe it.
    let out = run(Command::new(&exe)
        .arg(dir.path().join("segment"))
        .env("LD_BIND_NOW", "1"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("checks passed"),
        "openssl_wipe_test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
