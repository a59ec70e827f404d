//! Replication of sets segments between real `scsp bridge` processes: from
//! the notice rings and the catch-up walk, alone and in a pool that mixes
//! both layouts.

use crate::support as bridge_support;

use bridge_support::*;

fn sets_pool(hosts: u32, sets: Vec<u32>) -> Cluster {
    let c = Cluster::start(Options {
        hosts,
        sets,
        ..Options::default()
    });
    c.wait_connected();
    c
}

#[test]
fn puts_takes_and_removes_reach_every_host_of_a_mixed_pool() {
    // A and C keep sessions in sets, B in a log: every direction is tried.
    let c = sets_pool(3, vec![1, 3]);
    let (a, b, cc) = (&c.hosts[0], &c.hosts[1], &c.hosts[2]);
    assert_eq!(a.cache.layout(), scsp::Layout::Sets);
    assert_eq!(b.cache.layout(), scsp::Layout::Log);
    for (h, key) in [(a, "from-a"), (b, "from-b"), (cc, "from-c")] {
        assert_eq!(
            h.cache.put(key.as_bytes(), key.as_bytes(), 300),
            scsp::Stored::Ok
        );
    }
    for h in [a, b, cc] {
        for key in ["from-a", "from-b", "from-c"] {
            eventually(&format!("{key} on host {}", h.id), || {
                h.get(key.as_bytes()).as_deref() == Some(key.as_bytes())
            });
        }
    }
    // A put again in place (a new value in the same way) follows too.
    assert_eq!(a.cache.put(b"from-a", b"second", 300), scsp::Stored::Ok);
    for h in [b, cc] {
        eventually(&format!("the second from-a on host {}", h.id), || {
            h.get(b"from-a").as_deref() == Some(&b"second"[..])
        });
    }
    // A single-use ticket taken on A, and a session removed on C, are gone
    // everywhere.
    assert_eq!(a.cache.take_vec(b"from-a").as_deref(), Some(&b"second"[..]));
    assert!(cc.cache.remove(b"from-c"));
    for h in [a, b, cc] {
        eventually(&format!("from-a and from-c gone on host {}", h.id), || {
            h.get(b"from-a").is_none() && h.get(b"from-c").is_none()
        });
    }
    assert!(b.get(b"from-b").is_some(), "B's own session stays");
    // No loop: what A sent to C is what C received or already held, and C
    // forwarded none of A's sessions back.
    eventually("counters settle", || {
        let sent = a.peer_status(3).sent_entries;
        let got = cc.peer_status(1);
        sent > 0 && sent == got.received_entries + got.unchanged_entries
    });
}

#[test]
fn a_restarted_peer_catches_up_without_a_taken_ticket() {
    let mut c = sets_pool(2, vec![1, 2]);
    assert_eq!(
        c.hosts[0].cache.put(b"ticket", b"once", 300),
        scsp::Stored::Ok
    );
    eventually("ticket on B", || c.hosts[1].get(b"ticket").is_some());
    c.host(2).kill9();
    eventually("A sees B down", || !c.hosts[0].peer_status(2).connected);
    // While B is down: sessions put on A, and the ticket B holds taken on
    // A. The catch-up must bring the first and take the second away.
    for i in 0..100u32 {
        let k = format!("while-down-{i}");
        assert_eq!(
            c.hosts[0].cache.put(k.as_bytes(), b"v", 300),
            scsp::Stored::Ok
        );
    }
    assert!(c.hosts[0].cache.take_vec(b"ticket").is_some());
    c.host(2).start();
    let b = &c.hosts[1];
    eventually("B caught up", || {
        (0..100u32).all(|i| b.get(format!("while-down-{i}").as_bytes()).is_some())
    });
    eventually("the taken ticket gone on B", || b.get(b"ticket").is_none());
    // A session put after the catch-up still follows, and the ticket
    // stays gone once everything has settled.
    assert_eq!(c.hosts[0].cache.put(b"after", b"1", 300), scsp::Stored::Ok);
    eventually("after on B", || b.get(b"after").is_some());
    assert!(b.get(b"ticket").is_none(), "taken ticket came back");
}

#[test]
fn rings_that_wrap_while_a_peer_is_down_are_counted_and_the_walk_converges() {
    let mut c = sets_pool(2, vec![1, 2]);
    c.host(2).kill9();
    eventually("A sees B down", || !c.hosts[0].peer_status(2).connected);
    // One process writes one ring: 1000 notices wrap its 256 records.
    for i in 0..1000u32 {
        let _ = c.hosts[0].cache.put(format!("k{i}").as_bytes(), b"v", 300);
    }
    let on_a: Vec<u32> = (0..1000u32)
        .filter(|i| c.hosts[0].get(format!("k{i}").as_bytes()).is_some())
        .collect();
    assert!(on_a.len() > 990, "A keeps all but a few: {}", on_a.len());
    c.host(2).start();
    let (a, b) = (&c.hosts[0], &c.hosts[1]);
    eventually("A reports lost words for B", || {
        a.peer_status(2).lost_words > 0
    });
    let missing = || -> Vec<u32> {
        on_a.iter()
            .copied()
            .filter(|i| b.get(format!("k{i}").as_bytes()).is_none())
            .collect()
    };
    // A sets table may evict a session whose two sets are full, even half
    // empty (rarely): B may lack what it counted as evicted, nothing else.
    let converged = (0..1500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        missing().len() as u64 <= b.cache.stats().counters.evictions
    });
    assert!(
        converged,
        "B lacks {} of A's sessions\nA: {:?}\nA for B: {:?}\nB: {:?}\nB from A: {:?}\n{}",
        missing().len(),
        a.cache.stats().counters,
        a.peer_status(2),
        b.cache.stats().counters,
        b.peer_status(1),
        c.logs()
    );
}
