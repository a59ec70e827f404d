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
//!  word 4          the bridge's heartbeat interval, ms
//!  word 5          "SCSPREPL" once any bridge has run (never cleared;
//!                  read by the table: takes and removes then append
//!                  tombstones)
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

const END: usize = crate::segment::layout::BRIDGE_STATUS_WORDS;
const MAGIC: u64 = crate::segment::layout::BRIDGE_STATUS_MAGIC;
const W_MAGIC: usize = 0;
const W_PID: usize = 1;
const W_ALIVE: usize = 2;
const W_PEERS: usize = 3;
const W_HEARTBEAT: usize = 4;
/// The mark that a bridge has run ([`crate::segment::Segment::replicated`]).
const W_REPLICATED: usize = crate::segment::layout::BRIDGE_REPLICATED_WORD;
const PEERS_AT: usize = 8;
const PEER_WORDS: usize = 32;
/// Most peer blocks the area holds.
pub const MAX_PEER_BLOCKS: usize = (END - PEERS_AT) / PEER_WORDS;
/// How long a bridge may go without a sign of life before readers take it
/// for dead, at the least (its heartbeat interval when that is longer).
const MIN_SILENCE_MS: u64 = 250;

/// How a field behaves over time, for monitoring systems.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows while the bridge runs (restarts from 0 with the bridge).
    Counter,
    /// A current value.
    Gauge,
}

/// Declares the per-peer fields once: the [`Field`] words, the
/// [`PeerStatus`] read back, and the [`FIELDS`] table the metrics and
/// `scsp stats` are made from.
macro_rules! peer_fields {
    ($($(#[doc = $doc:literal])* $variant:ident $name:ident $kind:ident = $word:literal;)*) => {
        /// One per-peer field (word offset inside the peer's block).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Field {
            /// The peer's host id.
            Id = 0,
            /// 1 while a verified connection is up, else 0.
            Connected = 1,
            $($(#[doc = $doc])* $variant = $word,)*
        }

        /// One peer as read back.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        pub struct PeerStatus {
            /// Peer host id.
            pub id: u32,
            /// A verified connection is up now (never while the bridge is
            /// dead, whatever its last words say).
            pub connected: bool,
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl PeerStatus {
            /// The value of one field (`connected` as 0 or 1).
            pub fn get(&self, f: Field) -> u64 {
                match f {
                    Field::Id => self.id.into(),
                    Field::Connected => self.connected.into(),
                    $(Field::$variant => self.$name,)*
                }
            }

            fn set(&mut self, f: Field, v: u64) {
                match f {
                    Field::Id => self.id = v as u32,
                    Field::Connected => self.connected = v == 1,
                    $(Field::$variant => self.$name = v,)*
                }
            }
        }

        /// Every field read back after the id: word, name, kind and help.
        pub const FIELDS: &[FieldInfo] = &[
            FieldInfo {
                field: Field::Connected,
                name: "connected",
                kind: Kind::Gauge,
                doc: "1 while a verified connection to the peer is up.",
            },
            $(FieldInfo {
                field: Field::$variant,
                name: stringify!($name),
                kind: Kind::$kind,
                doc: concat!($($doc),*),
            },)*
        ];
    };
}

/// A per-peer field as monitoring sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// Which field.
    pub field: Field,
    /// Its name in `scsp stats --json` and the metrics.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    doc: &'static str,
}

impl FieldInfo {
    /// What it shows, one sentence.
    pub fn help(&self) -> &'static str {
        self.doc.trim()
    }
}

peer_fields! {
    /// Entries sent to the peer.
    Sent sent_entries Counter = 2;
    /// Entries received from the peer and stored here.
    Received received_entries Counter = 3;
    /// Entries received but not applied: expired, or too large for this segment.
    Dropped dropped_entries Counter = 4;
    /// Log words overwritten before they could be sent (fell behind the window).
    LostWords lost_words Counter = 5;
    /// Connections re-established after the first.
    Reconnects reconnects Counter = 6;
    /// Entries sent but not yet acknowledged.
    LagEntries lag_entries Gauge = 7;
    /// Last measured send-to-acknowledgement time, microseconds.
    LagMicros lag_micros Gauge = 8;
    /// Words of local log not yet read for this peer.
    BacklogWords backlog_words Gauge = 9;
    /// Unix ms of the last frame received from the peer.
    LastSeenMs last_seen_unix_ms Gauge = 10;
    /// Connection attempts refused: bad certificate, cluster, id, or frame.
    Refused refused Counter = 11;
    /// Words skipped as holes left by killed writers.
    SkippedWords skipped_words Counter = 12;
    /// Successful connections (including the first).
    Connects connects Counter = 13;
    /// Entries received that changed nothing here (already held, or a tombstone for a key not here).
    Unchanged unchanged_entries Counter = 14;
    /// Entries refused: not of the peer's own origin, or an expiry beyond the longest TTL.
    Rejected rejected_entries Counter = 15;
    /// Entries dropped because the peer was over its budget (log share or rate).
    OverBudget over_budget_entries Counter = 16;
    /// Ticket keys refused: not the peer's own, off the rotation schedule, or over its quota.
    KeysRefused refused_keys Counter = 17;
    /// Share of this host's session log the peer's entries hold, in thousandths.
    LogShare log_share_permille Gauge = 18;
}

const _: () = assert!((Field::LogShare as usize) < PEER_WORDS);

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
    /// Claim the area for this bridge (whose heartbeat interval is
    /// `heartbeat_ms`) and list the peers. Refuses if another live bridge
    /// process has claimed it.
    pub fn claim(
        cache: Arc<Cache>,
        peer_ids: &[u32],
        heartbeat_ms: u64,
    ) -> Result<Status, ClaimedBy> {
        let words = cache.segment().region(Region::BridgeStatus);
        if words[W_MAGIC].load(Ordering::Relaxed) == MAGIC {
            let pid = words[W_PID].load(Ordering::Relaxed);
            let me = std::process::id() as u64;
            if pid != me && pid != 0 && process_alive(pid) {
                return Err(ClaimedBy { pid });
            }
        }
        // Before anything of the log is read: takes and removes append
        // tombstones from now on, for good.
        cache.segment().mark_replicated();
        let peers = peer_ids.len().min(MAX_PEER_BLOCKS);
        for (i, w) in words.iter().enumerate() {
            if i != W_REPLICATED {
                w.store(0, Ordering::Relaxed);
            }
        }
        for (i, id) in peer_ids.iter().take(peers).enumerate() {
            words[PEERS_AT + i * PEER_WORDS].store(*id as u64, Ordering::Relaxed);
        }
        words[W_PID].store(std::process::id() as u64, Ordering::Relaxed);
        words[W_PEERS].store(peers as u64, Ordering::Relaxed);
        words[W_HEARTBEAT].store(heartbeat_ms, Ordering::Relaxed);
        words[W_ALIVE].store(crate::clock::now_millis(), Ordering::Relaxed);
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

/// Is there a process `pid`? (In this pid namespace: a bridge in another
/// namespace looks dead, and then only its silence tells.)
fn process_alive(pid: u64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The bridge status area as read back.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BridgeStatus {
    /// The bridge's pid (0 once it stopped cleanly).
    pub pid: u64,
    /// Whether the bridge is running: its process exists and it showed a
    /// sign of life within its heartbeat interval.
    pub running: bool,
    /// Unix ms of its last sign of life.
    pub alive_unix_ms: u64,
    /// Its heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Per-peer counters.
    pub peers: Vec<PeerStatus>,
}

/// Read the status area at `now_unix_ms`, or `None` if no bridge ever ran
/// on this segment. A bridge is taken for dead once its process is gone or
/// it has been silent for its heartbeat interval (at least 250 ms); a dead
/// bridge's peers all read as disconnected.
pub fn read_at(cache: &Cache, now_unix_ms: u64) -> Option<BridgeStatus> {
    let words = cache.segment().region(Region::BridgeStatus);
    if words[W_MAGIC].load(Ordering::Acquire) != MAGIC {
        return None;
    }
    let pid = words[W_PID].load(Ordering::Relaxed);
    let alive_unix_ms = words[W_ALIVE].load(Ordering::Relaxed);
    let heartbeat_ms = words[W_HEARTBEAT].load(Ordering::Relaxed);
    let silence = heartbeat_ms.max(MIN_SILENCE_MS);
    let running =
        pid != 0 && now_unix_ms.saturating_sub(alive_unix_ms) < silence && process_alive(pid);
    let n = (words[W_PEERS].load(Ordering::Relaxed) as usize).min(MAX_PEER_BLOCKS);
    let peers = (0..n)
        .map(|i| {
            let b = &words[PEERS_AT + i * PEER_WORDS..PEERS_AT + (i + 1) * PEER_WORDS];
            let mut p = PeerStatus {
                id: b[Field::Id as usize].load(Ordering::Relaxed) as u32,
                ..PeerStatus::default()
            };
            for f in FIELDS {
                p.set(f.field, b[f.field as usize].load(Ordering::Relaxed));
            }
            p.connected &= running;
            p
        })
        .collect();
    Some(BridgeStatus {
        pid,
        running,
        alive_unix_ms,
        heartbeat_ms,
        peers,
    })
}

/// [`read_at`] now.
pub fn read(cache: &Cache) -> Option<BridgeStatus> {
    read_at(cache, crate::clock::now_millis())
}
