//! Resumption across separate worker processes, each with its own rustls
//! `ServerConfig` on one shared segment: real handshakes on loopback TCP.

use crate::support;

use rustls::{HandshakeKind, ProtocolVersion};
use support::{s_client, Client, Setup, LIFETIME, PERIOD};

/// Full handshake on worker A, then a resumed one on worker B.
fn resumes_across_workers(mode: &str, v: &str) {
    resumes_across_workers_on(Setup::small(), mode, v);
}

fn resumes_across_workers_on(setup: Setup, mode: &str, v: &str) {
    let (a, b) = (setup.worker(mode, v, "ctx"), setup.worker(mode, v, "ctx"));
    assert_ne!(a.pid(), b.pid());
    let client = Client::new(&setup, v);
    let first = client.connect(a.port);
    assert_eq!(first.pid, a.pid(), "worker A answered");
    assert_eq!(first.kind, HandshakeKind::Full);
    let want = if v == "12" {
        ProtocolVersion::TLSv1_2
    } else {
        ProtocolVersion::TLSv1_3
    };
    assert_eq!(first.version, want);
    let second = client.connect(b.port);
    assert_eq!(second.pid, b.pid(), "worker B answered");
    assert_eq!(second.kind, HandshakeKind::Resumed, "{mode} TLS{v} via B");
    // And back: B's new session resumes on A.
    assert_eq!(client.connect(a.port).kind, HandshakeKind::Resumed);
}

#[test]
fn tls12_session_ids_resume_on_another_process() {
    resumes_across_workers("cache", "12");
}

#[test]
fn tls13_stateful_tickets_resume_on_another_process() {
    resumes_across_workers("cache", "13");
}

#[test]
fn tls13_stateless_tickets_resume_on_another_process() {
    resumes_across_workers("tickets", "13");
}

#[test]
fn tls12_stateless_tickets_resume_on_another_process() {
    resumes_across_workers("tickets", "12");
}

#[test]
fn on_a_sets_segment_tls12_session_ids_and_tls13_stateful_tickets_resume_on_another_process() {
    resumes_across_workers_on(Setup::sets(), "cache", "12");
    resumes_across_workers_on(Setup::sets(), "cache", "13");
}

#[test]
fn tls13_stateful_ticket_resumes_once_only() {
    ticket_resumes_once_only(Setup::small());
}

#[test]
fn on_a_sets_segment_a_tls13_stateful_ticket_resumes_once_only() {
    ticket_resumes_once_only(Setup::sets());
}

fn ticket_resumes_once_only(setup: Setup) {
    let (a, b) = (
        setup.worker("cache", "13", "c"),
        setup.worker("cache", "13", "c"),
    );
    let sess = setup.dir.path().join("sess.pem");
    let (reused, pid) = s_client(a.port, "13", None, Some(&sess));
    assert!(!reused);
    assert_eq!(pid, a.pid());
    let (reused, pid) = s_client(b.port, "13", Some(&sess), None);
    assert!(reused, "first use of the ticket resumes on B");
    assert_eq!(pid, b.pid());
    let (reused, _) = s_client(a.port, "13", Some(&sess), None);
    assert!(
        !reused,
        "second use of the same stateful ticket must not resume"
    );
    let (reused, _) = s_client(b.port, "13", Some(&sess), None);
    assert!(!reused);
}

/// Tickets made before a rotation resume after it on another process;
/// once their key retires they no longer do.
fn rotation(v: &str) {
    let setup = Setup::small();
    let t0 = 1_700_000_000 - 1_700_000_000 % PERIOD;
    setup.set_clock(t0 + 1);
    let (a, b) = (
        setup.worker("tickets", v, "c"),
        setup.worker("tickets", v, "c"),
    );
    let old = setup.dir.path().join("old.pem");
    let (reused, pid) = s_client(a.port, v, None, Some(&old));
    assert!(!reused);
    assert_eq!(pid, a.pid());
    setup.set_clock(t0 + PERIOD + 1);
    let (reused, pid) = s_client(b.port, v, Some(&old), None);
    assert!(
        reused,
        "previous key still decrypts after rotation (TLS{v})"
    );
    assert_eq!(pid, b.pid());
    // A session made now is under the new key.
    let fresh = setup.dir.path().join("fresh.pem");
    assert!(!s_client(b.port, v, None, Some(&fresh)).0);
    // The old key retires at t0 + PERIOD + LIFETIME; the current one lives on.
    setup.set_clock(t0 + PERIOD + LIFETIME);
    let (reused, _) = s_client(a.port, v, Some(&old), None);
    assert!(!reused, "a retired key must not decrypt (TLS{v})");
    let (reused, _) = s_client(a.port, v, Some(&fresh), None);
    assert!(
        reused,
        "a ticket under the current key still resumes (TLS{v})"
    );
}

#[test]
fn tls13_tickets_survive_one_rotation_and_die_at_retirement() {
    rotation("13");
}

#[test]
fn tls12_tickets_survive_one_rotation_and_die_at_retirement() {
    rotation("12");
}
