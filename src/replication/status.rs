//! The bridge's liveness and per-peer counters, kept in the segment's
//! bridge status region ([`Region::BridgeStatus`]) so that `scsp stats` — any
//! process that maps the segment — can show them, and the bridge's metrics
//! endpoint can export them.
//!
//! ```text
//!  word 0          magic "SCSPBRG1"
//!  word 1          pid of the bridge
//!  word 2          unix ms of the bridge's last sign of life
//!  word 3          number of peer blocks in use
//!  word 8 + 32*i   peer block i (32 words, fields in `Field` order)
//! ```
//!
//! Only the bridge writes here (with relaxed atomics); readers validate the
//! magic and clamp the peer count, so a damaged area shows nothing rather
//! than garbage.

use crate::segment::Region;
use crate::sync::{AtomicU64, Ordering};
use crate::Cache;
use std::sync::Arc;

const BASE: usize = 0;
const END: usize = crate::segment::layout::BRIDGE_STATUS_WORDS;
const MAGIC: u64 = u64::from_le_bytes(*b"SCSPBRG1");
const W_MAGIC: usize = BASE;
const W_PID: usize = BASE + 1;
const W_ALIVE: usize = BASE + 2;
const W_PEERS: usize = BASE + 3;
const PEERS_AT: usize = BASE + 8;
const PEER_WORDS: usize = 32;
/// Most peer blocks the area holds.
pub const MAX_PEER_BLOCKS: usize = (END - PEERS_AT) / PEER_WORDS;

/// One per-peer field (word offset inside the peer's block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The peer's host id.
    Id = 0,
    /// 1 while a verified connection is up, else 0.
    Connected = 1,
    /// Entries sent to the peer.
    Sent = 2,
    /// Entries received from the peer and stored here.
    Received = 3,
    /// Entries received but not applied (expired, too large for this segment).
    Dropped = 4,
    /// Log words overwritten before they could be sent (fell behind the window).
    LostWords = 5,
    /// Connections re-established after the first.
    Reconnects = 6,
    /// Entries sent but not yet acknowledged.
    LagEntries = 7,
    /// Last measured send-to-acknowledgement time, microseconds.
    LagMicros = 8,
    /// Words of local log not yet read for this peer.
    BacklogWords = 9,
    /// Unix ms of the last frame received from the peer.
    LastSeenMs = 10,
    /// Connection attempts refused (bad certificate, cluster, id, or frame).
    Refused = 11,
    /// Words skipped as holes left by killed writers.
    SkippedWords = 12,
    /// Successful connections (including the first).
    Connects = 13,
    /// Entries received that changed nothing here (already held, or a
    /// tombstone for a key not here), so not stored again.
    Unchanged = 14,
}

/// How a field behaves over time, for monitoring systems.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows while the bridge runs (restarts from 0 with the bridge).
    Counter,
    /// A current value.
    Gauge,
}

/// Every field read back: its word, its name and its kind.
pub const FIELDS: [(Field, &str, Kind); 14] = [
    (Field::Connected, "connected", Kind::Gauge),
    (Field::Sent, "sent_entries", Kind::Counter),
    (Field::Received, "received_entries", Kind::Counter),
    (Field::Dropped, "dropped_entries", Kind::Counter),
    (Field::LostWords, "lost_words", Kind::Counter),
    (Field::Reconnects, "reconnects", Kind::Counter),
    (Field::LagEntries, "lag_entries", Kind::Gauge),
    (Field::LagMicros, "lag_micros", Kind::Gauge),
    (Field::BacklogWords, "backlog_words", Kind::Gauge),
    (Field::LastSeenMs, "last_seen_unix_ms", Kind::Gauge),
    (Field::Refused, "refused", Kind::Counter),
    (Field::SkippedWords, "skipped_words", Kind::Counter),
    (Field::Connects, "connects", Kind::Counter),
    (Field::Unchanged, "unchanged_entries", Kind::Counter),
];

/// The status area belongs to another live bridge process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimedBy {
    /// Its pid.
    pub pid: u64,
}

/// The writer side, owned by the running bridge.
pub struct Status {
    cache: Arc<Cache>,
    peers: usize,
}

impl Status {
    /// Claim the area for this bridge and list the peers. Refuses if another
    /// live bridge process has claimed it.
    pub fn claim(cache: Arc<Cache>, peer_ids: &[u32]) -> Result<Status, ClaimedBy> {
        let words = cache.segment().region(Region::BridgeStatus);
        if words[W_MAGIC].load(Ordering::Relaxed) == MAGIC {
            let pid = words[W_PID].load(Ordering::Relaxed);
            let me = std::process::id() as u64;
            if pid != me && pid != 0 && pid <= i32::MAX as u64 && process_alive(pid as i32) {
                return Err(ClaimedBy { pid });
            }
        }
        let peers = peer_ids.len().min(MAX_PEER_BLOCKS);
        for w in &words[BASE..END] {
            w.store(0, Ordering::Relaxed);
        }
        for (i, id) in peer_ids.iter().take(peers).enumerate() {
            words[PEERS_AT + i * PEER_WORDS].store(*id as u64, Ordering::Relaxed);
        }
        words[W_PID].store(std::process::id() as u64, Ordering::Relaxed);
        words[W_PEERS].store(peers as u64, Ordering::Relaxed);
        words[W_MAGIC].store(MAGIC, Ordering::Release);
        Ok(Status {
            cache: cache.clone(),
            peers,
        })
    }

    fn words(&self) -> &[AtomicU64] {
        self.cache.segment().region(Region::BridgeStatus)
    }

    fn word(&self, peer: usize, f: Field) -> Option<&AtomicU64> {
        (peer < self.peers).then(|| &self.words()[PEERS_AT + peer * PEER_WORDS + f as usize])
    }

    /// Add to a counter of peer index `peer`.
    pub fn add(&self, peer: usize, f: Field, n: u64) {
        if let Some(w) = self.word(peer, f) {
            w.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Set a gauge of peer index `peer`.
    pub fn set(&self, peer: usize, f: Field, v: u64) {
        if let Some(w) = self.word(peer, f) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Record that the bridge is alive now.
    pub fn alive(&self, unix_ms: u64) {
        self.words()[W_ALIVE].store(unix_ms, Ordering::Relaxed);
    }

    /// Mark the bridge stopped (all peers disconnected).
    pub fn stopped(&self) {
        for p in 0..self.peers {
            self.set(p, Field::Connected, 0);
        }
        self.words()[W_PID].store(0, Ordering::Relaxed);
    }
}

fn process_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// One peer's counters as read back.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PeerStatus {
    /// Peer host id.
    pub id: u32,
    /// Every field by name (see [`Field`]).
    pub fields: Vec<(&'static str, u64)>,
}

impl PeerStatus {
    /// The value of a named field.
    pub fn get(&self, name: &str) -> u64 {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    }
}

/// The bridge status area as read back.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BridgeStatus {
    /// The bridge's pid (0 once it stopped cleanly).
    pub pid: u64,
    /// Unix ms of its last sign of life.
    pub alive_unix_ms: u64,
    /// Per-peer counters.
    pub peers: Vec<PeerStatus>,
}

impl BridgeStatus {
    /// Whether the bridge process is running: it marks itself alive every
    /// few milliseconds, so five seconds of silence mean it died.
    pub fn running(&self, now_unix_ms: u64) -> bool {
        self.pid != 0 && now_unix_ms.saturating_sub(self.alive_unix_ms) < 5000
    }

    /// Whether peer `p` is connected now (a dead bridge's peers are not).
    pub fn connected(&self, p: &PeerStatus, now_unix_ms: u64) -> bool {
        self.running(now_unix_ms) && p.get("connected") == 1
    }
}

/// Read the status area, or `None` if no bridge ever ran on this segment.
pub fn read(cache: &Cache) -> Option<BridgeStatus> {
    let words = cache.segment().region(Region::BridgeStatus);
    if words[W_MAGIC].load(Ordering::Acquire) != MAGIC {
        return None;
    }
    let n = (words[W_PEERS].load(Ordering::Relaxed) as usize).min(MAX_PEER_BLOCKS);
    let peers = (0..n)
        .map(|i| {
            let b = &words[PEERS_AT + i * PEER_WORDS..PEERS_AT + (i + 1) * PEER_WORDS];
            PeerStatus {
                id: b[Field::Id as usize].load(Ordering::Relaxed) as u32,
                fields: FIELDS
                    .iter()
                    .map(|(f, name, _)| (*name, b[*f as usize].load(Ordering::Relaxed)))
                    .collect(),
            }
        })
        .collect();
    Some(BridgeStatus {
        pid: words[W_PID].load(Ordering::Relaxed),
        alive_unix_ms: words[W_ALIVE].load(Ordering::Relaxed),
        peers,
    })
}
