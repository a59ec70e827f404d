//! What must not resume, and what must keep serving: separate contexts, a
//! full segment, a corrupted segment, forged tickets.

use crate::support;

use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::HandshakeKind;
use scsp::rustls::{RotationPolicy, SessionStore, TicketKeys};
use scsp::{Cache, Config};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use support::{Client, Setup};

fn never_resume_across_contexts(mode: &str, v: &str) {
    let setup = Setup::small();
    let (a, b) = (
        setup.worker(mode, v, "shop.example"),
        setup.worker(mode, v, "admin.example"),
    );
    let client = Client::new(&setup, v);
    assert_eq!(client.connect(a.port).kind, HandshakeKind::Full);
    let other = client.connect(b.port);
    assert_eq!(other.pid, b.pid());
    assert_eq!(
        other.kind,
        HandshakeKind::Full,
        "{mode} TLS{v}: a session of one context resumed in another"
    );
    // The same context still resumes (the negative is not a broken store).
    let a2 = setup.worker(mode, v, "shop.example");
    let c2 = Client::new(&setup, v);
    assert_eq!(c2.connect(a.port).kind, HandshakeKind::Full);
    assert_eq!(c2.connect(a2.port).kind, HandshakeKind::Resumed);
}

#[test]
fn different_contexts_never_resume_tls12_cache() {
    never_resume_across_contexts("cache", "12");
}

#[test]
fn different_contexts_never_resume_tls13_cache() {
    never_resume_across_contexts("cache", "13");
}

#[test]
fn different_contexts_never_resume_tls13_tickets() {
    never_resume_across_contexts("tickets", "13");
}

#[test]
fn different_contexts_never_resume_tls12_tickets() {
    never_resume_across_contexts("tickets", "12");
}

#[test]
fn a_full_segment_keeps_serving_and_resumes_recent_sessions() {
    // One 16 KiB shard: room for a few dozen sessions.
    let setup = Setup::new(&Config {
        size: 16 << 10,
        shards: 1,
        max_value: 1024,
        ..Config::default()
    });
    for v in ["12", "13"] {
        let (a, b) = (setup.worker("cache", v, "c"), setup.worker("cache", v, "c"));
        let mut resumed = 0;
        for _ in 0..250 {
            let client = Client::new(&setup, v);
            assert_eq!(client.connect(a.port).kind, HandshakeKind::Full);
            if client.connect(b.port).kind == HandshakeKind::Resumed {
                resumed += 1;
            }
        }
        // Sessions are resumed right after they are made; eviction only
        // drops old ones.
        assert!(resumed >= 240, "TLS{v}: only {resumed}/250 resumed");
        // The log wrapped: old sessions were overwritten to make room.
        let stats = Cache::open(&setup.seg).unwrap().stats();
        assert!(stats.counters.bytes_written > 2 * (16 << 10), "{stats:?}");
    }
}

/// xorshift: deterministic garbage.
fn garbage(seed: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

#[test]
fn a_corrupted_segment_never_crashes_a_worker() {
    let setup = Setup::small();
    for mode in ["cache", "tickets"] {
        let (mut a, mut b) = (
            setup.worker(mode, "both", "c"),
            setup.worker(mode, "both", "c"),
        );
        let client12 = Client::new(&setup, "12");
        let client13 = Client::new(&setup, "13");
        let _ = client13.connect(a.port);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&setup.seg)
            .unwrap();
        let len = file.metadata().unwrap().len();
        let mut seed = 0x1234_5678_9abc_def1;
        for round in 0..6 {
            // Everything after the header page: tails, counters, key ring,
            // index and logs.
            file.write_at(&garbage(&mut seed, (len - 4096) as usize), 4096)
                .unwrap();
            for port in [a.port, b.port, a.port] {
                let c = if round % 2 == 0 { &client13 } else { &client12 };
                let seen = c.connect(port);
                assert!(seen.pid == a.pid() || seen.pid == b.pid());
            }
        }
        assert!(a.alive() && b.alive(), "{mode}: a worker died");
        // Once the garbage stops, the workers resume again.
        let fresh = Client::new(&setup, "13");
        let _ = fresh.connect(a.port);
        assert_eq!(fresh.connect(b.port).kind, HandshakeKind::Resumed, "{mode}");
    }
}

fn in_memory() -> Arc<Cache> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        size: 1 << 20,
        shards: 2,
        max_value: 1024,
        ..Config::default()
    };
    Arc::new(Cache::create(dir.path().join("seg"), &cfg).unwrap())
}

#[test]
fn forged_truncated_and_foreign_tickets_are_rejected() {
    let cache = in_memory();
    let keys = TicketKeys::new(cache.clone(), RotationPolicy::default()).unwrap();
    let t = keys.encrypt(b"session state").unwrap();
    assert_eq!(keys.decrypt(&t).as_deref(), Some(&b"session state"[..]));
    for i in [0, 16, 28, t.len() - 1] {
        let mut bad = t.clone();
        bad[i] ^= 1;
        assert_eq!(keys.decrypt(&bad), None, "flipped byte {i} accepted");
    }
    for n in [0, 15, 16, 43, t.len() - 1] {
        assert_eq!(keys.decrypt(&t[..n]), None, "truncated to {n} accepted");
    }
    assert_eq!(keys.decrypt(&vec![0u8; 70_000]), None);
    let other = TicketKeys::for_context(cache, RotationPolicy::default(), b"other").unwrap();
    assert_eq!(other.decrypt(&t), None, "a ticket crossed contexts");
    assert!(keys.lifetime() == 12 * 3600 && keys.enabled());
}

#[test]
fn session_store_refuses_what_it_cannot_hold_and_takes_once() {
    let cache = in_memory();
    let a = SessionStore::new(cache.clone(), b"a");
    let b = SessionStore::new(cache.clone(), b"b");
    assert!(a.put(vec![1; 32], vec![2; 100]));
    assert_eq!(b.get(&[1; 32]), None);
    assert!(!a.put(vec![1; 32], vec![2; 1025]), "value over max_value");
    assert!(!a.put(vec![], vec![2; 10]));
    assert!(!a.put(vec![7; 300], vec![2; 10]), "key over 255 bytes");
    assert_eq!(a.get(&[7; 70_000]), None);
    assert_eq!(a.take(&[1; 32]), Some(vec![2; 100]));
    assert_eq!(a.take(&[1; 32]), None);
    // Long context ids are hashed, still distinct.
    let long1 = SessionStore::new(cache.clone(), &[b'x'; 300]);
    let long2 = SessionStore::new(cache, &[b'y'; 300]);
    assert!(long1.put(vec![3; 32], vec![4; 10]));
    assert_eq!(long2.get(&[3; 32]), None);
    assert_eq!(long1.get(&[3; 32]), Some(vec![4; 10]));
}
