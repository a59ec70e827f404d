//! Which incoming connections may start a TLS handshake, and for how long.
//!
//! Anyone who can reach the listener can open connections before proving
//! who they are, and each unverified connection holds a place until its
//! handshake deadline. So the configured peers are kept apart from everyone
//! else:
//!
//! - a connection from a configured peer's address (bridges dial from their
//!   listen address) takes one of that address's own [`PEER_PLACES`], which
//!   no other address can take, and has the full handshake deadline. When
//!   they are all taken, the oldest handshake from that address gives way
//!   (its socket is shut down): something else on the peer's own address
//!   that holds connections open cannot keep the peer out; one that opens
//!   connections faster than a handshake completes still can;
//! - every other source is a stranger. Strangers share [`STRANGER_PLACES`]
//!   as a group, however many addresses they come from, at most
//!   [`PER_STRANGER`] from one address, and get [`STRANGER_DEADLINE`].
//!
//! A flood of strangers from many addresses thus fills the strangers'
//! places only, and a configured peer always gets in. (A peer reaching us
//! from another address, behind NAT say, is a stranger: it still gets in
//! whenever the strangers' places are not all taken.)

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Shutdown, TcpStream};
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
    /// Strangers' handshakes, by address.
    by_source: HashMap<IpAddr, usize>,
    strangers: usize,
    /// Configured peers' handshakes, by address, oldest first: each one's
    /// place number and a handle on its socket, to shut it down when it
    /// must give way.
    peers: HashMap<IpAddr, VecDeque<(u64, TcpStream)>>,
    next_place: u64,
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

    /// A place for a handshake on `sock`, from `source`, or `None` if the
    /// places of a stranger's address or of all strangers are taken. A
    /// configured peer's address always gets one (see the module's doc).
    pub(crate) fn enter(self: &Arc<Self>, source: IpAddr, sock: &TcpStream) -> Option<Place> {
        let source = canonical(source);
        let peer = self.peers.contains(&source);
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let id = h.next_place;
        if peer {
            // Without a handle the place could not be taken back: refuse
            // (the descriptor table is full; the peer dials again).
            let handle = sock.try_clone().ok()?;
            h.next_place += 1;
            let waiting = h.peers.entry(source).or_default();
            if waiting.len() >= PEER_PLACES {
                if let Some((_, oldest)) = waiting.pop_front() {
                    let _ = oldest.shutdown(Shutdown::Both);
                }
            }
            waiting.push_back((id, handle));
        } else {
            let mine = h.by_source.get(&source).copied().unwrap_or(0);
            if mine >= PER_STRANGER || h.strangers >= STRANGER_PLACES {
                return None;
            }
            h.next_place += 1;
            *h.by_source.entry(source).or_default() += 1;
            h.strangers += 1;
        }
        Some(Place {
            of: self.clone(),
            source,
            peer,
            id,
            held: std::cell::Cell::new(true),
        })
    }

    fn leave(&self, source: IpAddr, peer: bool, id: u64) {
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if peer {
            if let Some(waiting) = h.peers.get_mut(&source) {
                waiting.retain(|(place, _)| *place != id);
                if waiting.is_empty() {
                    h.peers.remove(&source);
                }
            }
            return;
        }
        if let Some(n) = h.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                h.by_source.remove(&source);
            }
        }
        h.strangers -= 1;
    }
}

/// One handshake's place, given back once: when the peer is verified, or
/// when the connection ends before that.
pub(crate) struct Place {
    of: Arc<Handshakes>,
    source: IpAddr,
    peer: bool,
    id: u64,
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
            self.of.leave(self.source, self.peer, self.id);
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

    /// A connected socket (its real address does not matter: `enter` is
    /// told the source), and the listener's end, to see it shut down.
    fn socket() -> (TcpStream, TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (s, c)
    }

    #[test]
    fn strangers_are_limited_as_a_group_and_peers_keep_their_places() {
        let h = Arc::new(Handshakes::new([ip(1)]));
        let (sock, _client) = socket();
        // Strangers from many addresses fill their shared places only.
        let strangers: Vec<_> = (10..=255)
            .flat_map(|i| (0..4).map(move |_| ip(i)))
            .filter_map(|a| h.enter(a, &sock))
            .collect();
        assert_eq!(strangers.len(), STRANGER_PLACES);
        assert!(strangers.iter().all(|p| p.deadline() == STRANGER_DEADLINE));
        // The configured peer still gets its places, with the full
        // deadline.
        let peer: Vec<_> = (0..PEER_PLACES)
            .map(|_| h.enter(ip(1), &sock).unwrap())
            .collect();
        assert!(peer.iter().all(|p| p.deadline() == PEER_DEADLINE));
        // An IPv4-mapped address is the same peer.
        drop(peer);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(h.enter(mapped, &sock).unwrap().deadline(), PEER_DEADLINE);
        drop(strangers);
        let h2 = h.held.lock().unwrap();
        assert!(
            h2.by_source.is_empty() && h2.strangers == 0 && h2.peers.is_empty(),
            "every place given back"
        );
    }

    #[test]
    fn the_oldest_handshake_from_a_peer_address_gives_way() {
        let h = Arc::new(Handshakes::new([ip(1)]));
        // Connections from the peer's address that only sit there.
        let held: Vec<_> = (0..PEER_PLACES).map(|_| socket()).collect();
        let places: Vec<_> = held
            .iter()
            .map(|(s, _)| h.enter(ip(1), s).unwrap())
            .collect();
        // The peer dials: it gets in, and the oldest sitter is cut off.
        let (peer_sock, _peer_client) = socket();
        let peer = h.enter(ip(1), &peer_sock).expect("the peer gets in");
        let mut byte = [0u8; 1];
        let mut oldest = &held[0].1;
        assert_eq!(
            std::io::Read::read(&mut oldest, &mut byte).unwrap(),
            0,
            "shut down"
        );
        // The place it held is given back once, without taking another's.
        drop(places);
        drop(peer);
        assert!(h.held.lock().unwrap().peers.is_empty());
    }

    #[test]
    fn one_stranger_address_gets_a_few_places() {
        let h = Arc::new(Handshakes::new([]));
        let (sock, _client) = socket();
        let mine: Vec<_> = (0..PER_STRANGER)
            .map(|_| h.enter(ip(9), &sock).unwrap())
            .collect();
        assert!(h.enter(ip(9), &sock).is_none());
        mine[0].release();
        mine[0].release(); // once only
        assert!(h.enter(ip(9), &sock).is_some());
    }
}
