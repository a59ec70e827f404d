//! Which incoming connections may start a TLS handshake.
//!
//! Anyone who can reach the listener can open connections before proving
//! who they are, and each unverified connection costs a thread until its
//! handshake deadline. So at most [`MAX_HANDSHAKES`] run at once, and at
//! most [`MAX_PER_SOURCE`] from one address: a single source cannot take
//! every place and lock the real peers out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Most TLS handshakes in progress at once on the listener.
pub(crate) const MAX_HANDSHAKES: usize = 32;
/// Most of them from one source address (a host dials each peer once).
pub(crate) const MAX_PER_SOURCE: usize = 4;

/// Handshakes in progress, by source address.
#[derive(Default)]
pub(crate) struct Handshakes(Mutex<HashMap<IpAddr, usize>>);

impl Handshakes {
    /// A place for a handshake from `source`, or `None` if the listener or
    /// that source already has as many as allowed.
    pub(crate) fn enter(self: &Arc<Self>, source: IpAddr) -> Option<Place> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = m.values().sum();
        let mine = m.entry(source).or_default();
        if total >= MAX_HANDSHAKES || *mine >= MAX_PER_SOURCE {
            if *mine == 0 {
                m.remove(&source);
            }
            return None;
        }
        *mine += 1;
        Some(Place {
            of: self.clone(),
            source,
            held: std::cell::Cell::new(true),
        })
    }

    fn leave(&self, source: IpAddr) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                m.remove(&source);
            }
        }
    }
}

/// One handshake's place, given back once: when the peer is verified, or
/// when the connection ends before that.
pub(crate) struct Place {
    of: Arc<Handshakes>,
    source: IpAddr,
    held: std::cell::Cell<bool>,
}

impl Place {
    pub(crate) fn release(&self) {
        if self.held.replace(false) {
            self.of.leave(self.source);
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

    #[test]
    fn one_source_gets_a_few_places_and_all_sources_a_bounded_number() {
        let h = Arc::new(Handshakes::default());
        let ip = |i: u8| IpAddr::from([127, 0, 0, i]);
        let mine: Vec<_> = (0..MAX_PER_SOURCE)
            .map(|_| h.enter(ip(1)).unwrap())
            .collect();
        assert!(h.enter(ip(1)).is_none(), "a fifth from one source");
        let others: Vec<_> = (2..)
            .map(ip)
            .take(MAX_HANDSHAKES - MAX_PER_SOURCE)
            .map(|a| h.enter(a).unwrap())
            .collect();
        assert!(h.enter(ip(200)).is_none(), "over the total");
        drop(others);
        mine[0].release();
        mine[0].release(); // once only
        assert!(h.enter(ip(1)).is_some());
        drop(mine);
        assert!(h.0.lock().unwrap().is_empty(), "every place given back");
    }
}
