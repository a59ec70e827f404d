//! `scsp serve --workers 2`: resumption across its worker processes, seen by
//! the system `openssl s_client` (`-sess_out` on one worker, `-sess_in` on
//! the other) and by a rustls client.

use crate::support;

use rustls::HandshakeKind;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::{s_client, Client, Setup};

/// A running `scsp serve`; SIGTERMed (then SIGKILLed) and reaped on drop.
struct Serve {
    /// Kept for its drop: stops the server.
    _child: childguard::Guard,
    /// (pid, port) of each worker.
    workers: Vec<(u32, u16)>,
}

impl Serve {
    fn start(setup: &Setup, tls: &str, tickets: &str, ctx: &str) -> Serve {
        Serve::start_with(setup, tls, tickets, ctx, &["--port-per-worker"])
    }

    /// With `extra` flags; without `--port-per-worker` both workers accept
    /// on one shared socket.
    fn start_with(setup: &Setup, tls: &str, tickets: &str, ctx: &str, extra: &[&str]) -> Serve {
        let dir = setup.dir.path();
        let mut child = Command::new(env!("CARGO_BIN_EXE_scsp"))
            .arg("serve")
            .arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .args(["--addr", "127.0.0.1:0", "--workers", "2"])
            .args(extra)
            .arg("--segment")
            .arg(&setup.seg)
            .args(["--tls", tls, "--tickets", tickets, "--context-id", ctx])
            .stdout(Stdio::piped())
            .spawn()
            .expect("scsp serve starts");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut serve = Serve {
            _child: childguard::Guard::spawned(child).grace(std::time::Duration::from_secs(5)),
            workers: Vec::new(),
        };
        for line in out.lines() {
            let line = line.unwrap();
            if line == "ready" {
                break;
            }
            // "worker {i} pid {pid} listening on {addr}"
            let w: Vec<&str> = line.split_whitespace().collect();
            if let [_, _, _, pid, _, _, addr] = w[..] {
                let port = addr.rsplit(':').next().unwrap().parse().unwrap();
                serve.workers.push((pid.parse().unwrap(), port));
            }
        }
        assert_eq!(
            serve.workers.len(),
            2,
            "scsp serve did not report 2 workers"
        );
        assert_ne!(serve.workers[0].0, serve.workers[1].0);
        serve
    }
}

/// New session on worker 0 saved by s_client, reused on worker 1.
fn openssl_resumes_across_workers(tls: &str, tickets: &str) {
    let setup = Setup::small();
    let serve = Serve::start(&setup, tls, tickets, "serve-test");
    resumes_on_the_other_worker(&setup, &serve, tls, tickets);
}

/// A session made on worker 0 resumes on worker 1 (openssl s_client).
fn resumes_on_the_other_worker(setup: &Setup, serve: &Serve, tls: &str, tickets: &str) {
    let [(pid0, port0), (pid1, port1)] = serve.workers[..] else {
        unreachable!()
    };
    let v = if tls == "1.2" { "12" } else { "13" };
    let sess = setup.dir.path().join("sess.pem");
    let (reused, pid) = s_client(port0, v, None, Some(&sess));
    assert!(!reused);
    assert_eq!(pid, pid0, "worker 0 answered");
    let (reused, pid) = s_client(port1, v, Some(&sess), None);
    assert_eq!(pid, pid1, "worker 1 answered");
    assert!(
        reused,
        "TLS {tls} tickets={tickets}: not resumed on the other worker"
    );
}

#[test]
fn serve_shares_a_segment_of_another_user_only_with_allow_foreign_owner() {
    // Needs root, to give the segment to another user.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to chown the segment to another user");
        return;
    }
    let setup = Setup::small();
    nix::unistd::chown(&setup.seg, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let dir = setup.dir.path();
    let refused = Command::new(env!("CARGO_BIN_EXE_scsp"))
        .arg("serve")
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .args(["--addr", "127.0.0.1:0", "--segment"])
        .arg(&setup.seg)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        e.contains("uid 65534") && e.contains("--allow-foreign-owner"),
        "{e}"
    );
    // --allow-foreign-owner alone trusts only root: uid 65534 is refused,
    // naming it.
    let untrusted = Command::new(env!("CARGO_BIN_EXE_scsp"))
        .arg("serve")
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--allow-foreign-owner",
            "--group",
            "0",
        ])
        .arg("--segment")
        .arg(&setup.seg)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success(), "{untrusted:?}");
    assert!(e.contains("uid 65534") && e.contains("--owner"), "{e}");
    // Named as the owner, with the file's group (root's, gid 0): shared.
    let flags = [
        "--port-per-worker",
        "--allow-foreign-owner",
        "--owner",
        "65534",
        "--group",
        "0",
    ];
    let serve = Serve::start_with(&setup, "1.2", "off", "foreign", &flags);
    resumes_on_the_other_worker(&setup, &serve, "1.2", "off");
}

#[test]
fn serve_tls12_session_ids_resume_across_workers_openssl() {
    openssl_resumes_across_workers("1.2", "off");
}

#[test]
fn serve_tls12_tickets_resume_across_workers_openssl() {
    openssl_resumes_across_workers("1.2", "on");
}

#[test]
fn serve_tls13_stateful_tickets_resume_across_workers_openssl() {
    openssl_resumes_across_workers("1.3", "off");
}

#[test]
fn serve_tls13_stateless_tickets_resume_across_workers_openssl() {
    openssl_resumes_across_workers("1.3", "on");
}

#[test]
fn serve_tls13_stateful_ticket_is_single_use_openssl() {
    let setup = Setup::small();
    let serve = Serve::start(&setup, "1.3", "off", "serve-test");
    let [(_, port0), (_, port1)] = serve.workers[..] else {
        unreachable!()
    };
    let sess = setup.dir.path().join("sess.pem");
    assert!(!s_client(port0, "13", None, Some(&sess)).0);
    assert!(s_client(port1, "13", Some(&sess), None).0);
    assert!(
        !s_client(port0, "13", Some(&sess), None).0,
        "ticket used twice"
    );
}

#[test]
fn serve_rustls_client_resumes_on_the_other_worker_and_contexts_stay_apart() {
    let setup = Setup::small();
    let a = Serve::start(&setup, "both", "on", "site-a");
    let b = Serve::start(&setup, "both", "on", "site-b");
    for v in ["12", "13"] {
        let client = Client::new(&setup, v);
        let first = client.connect(a.workers[0].1);
        assert_eq!(
            (first.pid, first.kind),
            (a.workers[0].0, HandshakeKind::Full)
        );
        let second = client.connect(a.workers[1].1);
        assert_eq!(second.pid, a.workers[1].0);
        assert_eq!(second.kind, HandshakeKind::Resumed, "TLS{v}");
        let other = client.connect(b.workers[0].1);
        assert_eq!(other.kind, HandshakeKind::Full, "TLS{v}: crossed contexts");
    }
}

#[test]
fn bench_handshake_prints_full_and_resumed_rates_with_every_visit_resumed() {
    let out = Command::new(env!("CARGO_BIN_EXE_scsp"))
        .args([
            "bench",
            "handshake",
            "--connections",
            "10",
            "--key-type",
            "ecdsa",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("ECDSA")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for r in rows {
        assert!(r.ends_with("100.0%"), "not every visit resumed: {r}");
    }
}

#[test]
fn serve_on_one_shared_socket_resumes_whichever_worker_accepts() {
    let setup = Setup::small();
    for (tls, tickets) in [("1.2", "off"), ("1.3", "on")] {
        let serve = Serve::start_with(&setup, tls, tickets, "shared-socket", &[]);
        let port = serve.workers[0].1;
        assert_eq!(serve.workers[1].1, port, "one socket for both workers");
        let v = if tls == "1.2" { "12" } else { "13" };
        let sess = setup.dir.path().join(format!("sess{v}.pem"));
        let (reused, first) = s_client(port, v, None, Some(&sess));
        assert!(!reused);
        let mut pids = std::collections::BTreeSet::from([first]);
        // Session ids and stateless tickets may be offered again and again;
        // the kernel hands the connections to both workers in turn.
        for _ in 0..20 {
            let (reused, pid) = s_client(port, v, Some(&sess), None);
            assert!(reused, "TLS {tls}: not resumed on worker {pid}");
            pids.insert(pid);
        }
        let workers: std::collections::BTreeSet<u32> = serve.workers.iter().map(|w| w.0).collect();
        assert_eq!(
            pids, workers,
            "TLS {tls}: both workers should have answered"
        );
    }
}

#[test]
fn serve_workers_move_to_a_segment_created_anew() {
    let setup = Setup::small();
    let serve = Serve::start(&setup, "1.2", "off", "replace-test");
    let (old_pid, port) = serve.workers[0];
    let client = Client::new(&setup, "12");
    assert_eq!(client.connect(port).pid, old_pid);
    // The upgrade of docs/operations.md: remove the segment, create anew.
    std::fs::remove_file(&setup.seg).unwrap();
    let config = scsp::Config {
        size: 1 << 20,
        shards: 2,
        ..scsp::Config::default()
    };
    let fresh = scsp::Cache::create(&setup.seg, &config).unwrap();
    // A worker checks between connections, at most once a second, then
    // exits for the supervisor to start one on the new segment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let seen = loop {
        let seen = client.connect(port);
        if seen.pid != old_pid || std::time::Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_ne!(seen.pid, old_pid, "worker 0 kept the removed segment");
    // The new worker has never seen the client's session: a full handshake,
    // whose session lands in the new segment.
    assert_eq!(seen.kind, HandshakeKind::Full);
    assert!(
        fresh.stats().counters.puts > 0,
        "nothing reached the new segment"
    );
    // The other worker moves too, and the pool resumes again on the new one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while client.connect(serve.workers[1].1).kind != HandshakeKind::Resumed {
        assert!(
            std::time::Instant::now() < deadline,
            "worker 1 never resumed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_client_trickling_its_handshake_holds_a_worker_at_most_5_s() {
    use std::io::{Read, Write};
    let setup = Setup::small();
    let serve = Serve::start(&setup, "1.3", "on", "serve-test");
    let (_, port) = serve.workers[0];
    // A TLS record that never ends: its header, then a byte every 300 ms.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let start = std::time::Instant::now();
    let _ = slow.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00]);
    let mut buf = [0u8; 64];
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if slow.write_all(&[0]).is_err() {
            break;
        }
        match slow.read(&mut buf) {
            Ok(0) => break,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => break,
            _ => {}
        }
    }
    let held = start.elapsed();
    assert!(
        held < std::time::Duration::from_secs(10),
        "held the worker {held:?}"
    );
    // The worker serves the next client.
    let (_, pid) = s_client(port, "13", None, None);
    assert_eq!(pid, serve.workers[0].0);
}

#[test]
fn serve_keeps_serving_when_its_segment_is_truncated_and_shares_again_once_it_is_sane() {
    let setup = Setup::small();
    let serve = Serve::start(&setup, "1.2", "off", "truncate-test");
    let client = Client::new(&setup, "12");
    let ports = [serve.workers[0].1, serve.workers[1].1];
    assert_eq!(client.connect(ports[0]).kind, HandshakeKind::Full);
    // Truncated in place, under both workers' mappings: their next lookup
    // would die of SIGBUS.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&setup.seg)
        .unwrap()
        .set_len(4096)
        .unwrap();
    // Every connection is still served; the workers move to serving
    // without the cache, and say so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut degraded = [false; 2];
    while degraded != [true, true] {
        assert!(
            std::time::Instant::now() < deadline,
            "workers never reported cache=off"
        );
        for (i, p) in ports.iter().enumerate() {
            degraded[i] |= client.connect(*p).without_cache;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The operator makes the segment sane again: the workers share it.
    std::fs::remove_file(&setup.seg).unwrap();
    let config = scsp::Config {
        size: 1 << 20,
        shards: 2,
        ..scsp::Config::default()
    };
    drop(scsp::Cache::create(&setup.seg, &config).unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let _ = client.connect(ports[0]);
        let seen = client.connect(ports[1]);
        if seen.kind == HandshakeKind::Resumed && !seen.without_cache {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never shared again: {seen:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
