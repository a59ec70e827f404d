//! Which incoming connections may start a TLS handshake, and for how long.
//!
//! Anyone who can reach the listener can open connections before proving
//! who they are, and each unverified connection holds a place until its
//! handshake deadline. So the configured peers are kept apart from everyone
//! else:
//!
//! - a connection from a configured peer's address (bridges dial from their
//!   listen address) takes one of that address's own [`PEER_PLACES`], which
//!   no one else can take, and has the full handshake deadline;
//! - every other source is a stranger. Strangers share [`STRANGER_PLACES`]
//!   as a group, however many addresses they come from, at most
//!   [`PER_STRANGER`] from one address, and get [`STRANGER_DEADLINE`].
//!
//! A flood of strangers from many addresses thus fills the strangers'
//! places only, and a configured peer always gets in. (A peer reaching us
//! from another address, behind NAT say, is a stranger: it still gets in
//! whenever the strangers' places are not all taken.)

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Handshakes in progress at once from one configured peer's address.
pub(crate) const PEER_PLACES: usize = 4;
/// Handshakes in progress at once from all strangers together.
pub(crate) const STRANGER_PLACES: usize = 16;
/// Of those, from one stranger address.
pub(crate) const PER_STRANGER: usize = 2;
/// Time a stranger has for the TLS handshake and HELLO (a peer on a LAN
/// needs milliseconds).
pub(crate) const STRANGER_DEADLINE: Duration = Duration::from_secs(1);
/// Time a configured peer's address has for them.
pub(crate) const PEER_DEADLINE: Duration = Duration::from_secs(5);

/// Handshakes in progress, by source address.
pub(crate) struct Handshakes {
    peers: HashSet<IpAddr>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_source: HashMap<IpAddr, usize>,
    strangers: usize,
}

/// One address as the listener sees it (IPv4 peers of a dual-stack
/// listener arrive as IPv4-mapped IPv6 addresses).
fn canonical(a: IpAddr) -> IpAddr {
    a.to_canonical()
}

impl Handshakes {
    /// Places for connections from `peers` (the configured peers'
    /// addresses) and from strangers.
    pub(crate) fn new(peers: impl IntoIterator<Item = IpAddr>) -> Handshakes {
        Handshakes {
            peers: peers.into_iter().map(canonical).collect(),
            held: Mutex::default(),
        }
    }

    /// A place for a handshake from `source`, or `None` if its places are
    /// all taken.
    pub(crate) fn enter(self: &Arc<Self>, source: IpAddr) -> Option<Place> {
        let source = canonical(source);
        let peer = self.peers.contains(&source);
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = h.by_source.get(&source).copied().unwrap_or(0);
        let full = if peer {
            mine >= PEER_PLACES
        } else {
            mine >= PER_STRANGER || h.strangers >= STRANGER_PLACES
        };
        if full {
            return None;
        }
        *h.by_source.entry(source).or_default() += 1;
        if !peer {
            h.strangers += 1;
        }
        Some(Place {
            of: self.clone(),
            source,
            peer,
            held: std::cell::Cell::new(true),
        })
    }

    fn leave(&self, source: IpAddr, peer: bool) {
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = h.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                h.by_source.remove(&source);
            }
        }
        if !peer {
            h.strangers -= 1;
        }
    }
}

/// One handshake's place, given back once: when the peer is verified, or
/// when the connection ends before that.
pub(crate) struct Place {
    of: Arc<Handshakes>,
    source: IpAddr,
    peer: bool,
    held: std::cell::Cell<bool>,
}

impl Place {
    /// How long this connection has for its TLS handshake and HELLO.
    pub(crate) fn deadline(&self) -> Duration {
        if self.peer {
            PEER_DEADLINE
        } else {
            STRANGER_DEADLINE
        }
    }

    pub(crate) fn release(&self) {
        if self.held.replace(false) {
            self.of.leave(self.source, self.peer);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, i])
    }

    #[test]
    fn strangers_are_limited_as_a_group_and_peers_keep_their_places() {
        let h = Arc::new(Handshakes::new([ip(1)]));
        // Strangers from many addresses fill their shared places only.
        let strangers: Vec<_> = (10..=255)
            .flat_map(|i| (0..4).map(move |_| ip(i)))
            .filter_map(|a| h.enter(a))
            .collect();
        assert_eq!(strangers.len(), STRANGER_PLACES);
        assert!(strangers.iter().all(|p| p.deadline() == STRANGER_DEADLINE));
        // The configured peer still gets all of its places, with the full
        // deadline; then no more.
        let peer: Vec<_> = (0..PEER_PLACES).map(|_| h.enter(ip(1)).unwrap()).collect();
        assert!(peer.iter().all(|p| p.deadline() == PEER_DEADLINE));
        assert!(h.enter(ip(1)).is_none());
        // An IPv4-mapped address is the same peer.
        drop(peer);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(h.enter(mapped).unwrap().deadline(), PEER_DEADLINE);
        drop(strangers);
        let h2 = h.held.lock().unwrap();
        assert!(
            h2.by_source.is_empty() && h2.strangers == 0,
            "every place given back"
        );
    }

    #[test]
    fn one_stranger_address_gets_a_few_places() {
        let h = Arc::new(Handshakes::new([]));
        let mine: Vec<_> = (0..PER_STRANGER).map(|_| h.enter(ip(9)).unwrap()).collect();
        assert!(h.enter(ip(9)).is_none());
        mine[0].release();
        mine[0].release(); // once only
        assert!(h.enter(ip(9)).is_some());
    }
}
