//! What only a replicator (the bridge) does with a table: read the logs as a
//! journal, apply peers' entries unchanged, and publish its per-peer status
//! in the segment.
//!
//! Servers never need this module. It is kept apart from [`Cache`]'s session
//! API so that an embedder cannot mistake [`Replica::put_entry`] (which
//! trusts the origin and expiry it is given) for [`Cache::put`].

pub mod status;

pub use crate::table::journal::{JournalEntry, LogCursor, LogProgress, LogStart, HOLE_TIMEOUT};
use crate::{Cache, Stored};
use std::sync::Arc;

/// A table seen by its replicator.
#[derive(Clone)]
pub struct Replica {
    cache: Arc<Cache>,
}

impl Replica {
    /// The replication view of `cache`. Refused for a segment of the sets
    /// layout, which keeps no log to read as a journal.
    pub fn new(cache: Arc<Cache>) -> crate::Result<Replica> {
        if cache.layout() == crate::Layout::Sets {
            let path = cache.segment().path().map(|p| p.to_path_buf());
            return Err(crate::Error::NotReplicable(path.unwrap_or_default()));
        }
        Ok(Replica { cache })
    }

    /// The table itself, for the session API and statistics.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
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
        self.cache.put_entry(key, value, expiry, origin, flags)
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
