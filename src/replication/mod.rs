//! What only a replicator (the bridge) does with a table: read the logs as a
//! journal, apply peers' entries unchanged, and publish its per-peer status
//! in the segment.
//!
//! Servers never need this module. It is kept apart from [`Cache`]'s session
//! API so that an embedder cannot mistake [`Replica::put_entry`] (which
//! trusts the origin and expiry it is given) for [`Cache::put`].

pub mod status;

pub use crate::table::journal::{JournalEntry, LogCursor, LogProgress, LogStart, HOLE_TIMEOUT};
pub use crate::table::notices::{Notice, NoticeCursor};
use crate::{Cache, Layout, Stored};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A table seen by its replicator.
///
/// A log segment is read as a journal ([`Replica::read_log`]); a sets
/// segment, which rewrites sessions in place, through its notice rings
/// ([`Replica::read_notices`]) and a walk of its ways for a catch-up
/// ([`Replica::scan_ways`]).
#[derive(Clone)]
pub struct Replica {
    cache: Arc<Cache>,
    /// Words of peers' entries this replica applied to a sets segment,
    /// which no ring records (see [`Replica::appended_words`]).
    applied_words: Arc<AtomicU64>,
}

impl Replica {
    /// The replication view of `cache`.
    pub fn new(cache: Arc<Cache>) -> Replica {
        Replica {
            cache,
            applied_words: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The table itself, for the session API and statistics.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// How sessions are kept: which of the reads below apply.
    pub fn layout(&self) -> Layout {
        self.cache.layout()
    }

    /// A number that grows whenever something may be there to send: the
    /// sum of the shard tails, or of the notices written (the bridge's
    /// watcher polls it).
    pub fn activity(&self) -> u64 {
        match self.layout() {
            Layout::Log => (0..self.shards()).map(|s| self.log_tail(s)).sum(),
            Layout::Sets => (0..self.notice_rings())
                .map(|r| self.cache.notices_written(r))
                .sum(),
        }
    }

    /// Words the table has written so far, of [`Replica::capacity_words`]:
    /// the shard tails; for a sets segment a slot for each local notice
    /// and for each peer's entry stored here. A peer's entries leave the
    /// table about a capacity's worth of writes after they came.
    pub fn appended_words(&self) -> u64 {
        match self.layout() {
            Layout::Log => (0..self.shards()).map(|s| self.log_tail(s)).sum(),
            Layout::Sets => {
                let slot_words = self.cache.slot_words();
                self.activity()
                    .wrapping_mul(slot_words)
                    .wrapping_add(self.applied_words.load(Ordering::Relaxed))
            }
        }
    }

    /// Bytes an entry of these lengths takes in the table: its length in a
    /// log, a whole slot in sets (what a peer's budget counts).
    pub fn stored_bytes(&self, key_len: usize, value_len: usize) -> u64 {
        match self.layout() {
            Layout::Log => crate::segment::layout::entry_bytes(key_len, value_len),
            Layout::Sets => self.cache.slot_words() * 8,
        }
    }

    /// Words of sessions the table holds: its logs, or its slots.
    pub fn capacity_words(&self) -> u64 {
        self.log_words() * self.shards() as u64
    }

    /// Number of notice rings (0 for a log segment).
    pub fn notice_rings(&self) -> usize {
        self.cache.notice_rings()
    }

    /// A cursor over notice ring `ring` from record `from`, or from the
    /// oldest record the ring still holds if that is later (0: every
    /// notice still there).
    pub fn notice_cursor(&self, ring: usize, from: u64) -> NoticeCursor {
        self.cache.notice_cursor(ring, from)
    }

    /// Records one notice ring holds before it wraps (0 for a log segment).
    pub fn notice_records(&self) -> u64 {
        self.cache.notice_records()
    }

    /// Records written to notice ring `ring`, ever.
    pub fn notices_written(&self, ring: usize) -> u64 {
        self.cache.notices_written(ring)
    }

    /// Read up to `max` notices from `cur` onwards into `out` (appended),
    /// advancing the cursor. Never waits; progress is in words of records.
    pub fn read_notices(
        &self,
        cur: &mut NoticeCursor,
        max: usize,
        out: &mut Vec<Notice>,
    ) -> LogProgress {
        self.cache.read_notices(cur, max, out)
    }

    /// What `notice` asks to send now, if anything: a put still in its
    /// way, or a tombstone for a key not put again since.
    pub fn resolve_notice(&self, notice: &Notice, scratch: &mut Vec<u8>) -> Option<JournalEntry> {
        self.cache.resolve_notice(notice, scratch)
    }

    /// Ways of a sets segment (0 for a log one).
    pub fn ways(&self) -> u64 {
        match self.layout() {
            Layout::Log => 0,
            Layout::Sets => self.cache.ways(),
        }
    }

    /// Every local, unexpired session of ways `from..from + max` into
    /// `out`; returns the way to go on from ([`Replica::ways`] once done).
    pub fn scan_ways(&self, from: u64, max: u64, out: &mut Vec<JournalEntry>) -> u64 {
        self.cache.scan_ways(from, max, out)
    }

    /// Number of shard logs.
    pub fn shards(&self) -> usize {
        self.cache.shards()
    }

    /// Words of log per shard (the window a reader must keep up with).
    pub fn log_words(&self) -> u64 {
        self.cache.log_words()
    }

    /// The current tail of `shard`'s log, in words.
    pub fn log_tail(&self, shard: usize) -> u64 {
        self.cache.log_tail(shard)
    }

    /// A cursor over `shard`'s log.
    pub fn log_cursor(&self, shard: usize, start: LogStart) -> LogCursor {
        self.cache.log_cursor(shard, start)
    }

    /// Read up to `max` verified entries from `cur` onwards into `out`
    /// (appended), advancing the cursor. Never waits; returns early at an
    /// entry still being written. Bounded by the log window.
    pub fn read_log(
        &self,
        cur: &mut LogCursor,
        max: usize,
        out: &mut Vec<JournalEntry>,
    ) -> LogProgress {
        self.cache.read_log(cur, max, out)
    }

    /// Is the entry of `key` at `pos` in `shard` the key's published value
    /// (what `get` would find)? Changes as puts, takes and removes happen.
    pub fn is_current(&self, shard: usize, pos: u64, key: &[u8]) -> bool {
        self.cache.is_current(shard, pos, key)
    }

    /// Store a peer's entry with its own expiry (unix seconds), origin and
    /// flags, unchanged.
    pub fn put_entry(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: u64,
        origin: u32,
        flags: u8,
    ) -> Stored {
        let stored = self.cache.put_entry(key, value, expiry, origin, flags);
        // Only what was written counts: entries refused here moving the
        // count on would make a peer's entries look older than they are
        // (see `appended_words`).
        if self.layout() == Layout::Sets && stored == Stored::Ok {
            self.applied_words
                .fetch_add(self.cache.slot_words(), Ordering::Relaxed);
        }
        stored
    }

    /// Is `value`, with this expiry and origin, already `key`'s published
    /// entry? Asked before applying a peer's entry, so that a catch-up
    /// replaying what is already here does not append it again and push
    /// live entries out of the log. Counts no hit or miss.
    pub fn holds(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: u64,
        origin: u32,
        scratch: &mut Vec<u8>,
    ) -> bool {
        self.cache.holds(key, value, expiry, origin, scratch)
    }

    /// Start fetching `key`'s index bucket for writing, a few keys ahead of
    /// `holds` and `put_entry` of it, so that a batch's bucket misses
    /// overlap instead of coming one by one.
    pub fn prefetch_bucket(&self, key: &[u8]) {
        self.cache.prefetch_bucket(key)
    }

    /// Clear every index word that points at `key`, without writing a
    /// tombstone (how a peer's tombstone is applied).
    pub fn unlink_key(&self, key: &[u8]) -> bool {
        self.cache.unlink_key(key)
    }
}
