//! The local change feed: what this host has to send one peer.
//!
//! Each connection owns a [`LocalFeed`]: one cursor per shard log, started
//! at the window's start, so a (re)connected peer first catches up on every
//! live local entry and then follows new ones. Only entries whose origin is
//! this host are sent (peers' entries applied here keep their origin, so
//! nothing is forwarded twice and no loop forms). Of those, a put is sent
//! only while it is still the key's published value and unexpired; a
//! tombstone (remove or take) is always sent.
//!
//! The feed only reads the segment: a slow peer's feed falls behind, and if
//! the log wraps past it, it counts the lost words and carries on.

use super::wire::{EntriesBuilder, WIRE_TOMBSTONE};
use crate::clock::now_secs;
use crate::table::{JournalEntry, LogCursor, LogStart, FLAG_TOMBSTONE};
use crate::Cache;
use std::collections::VecDeque;

/// Entries read from one shard per call, at most.
const READ_CHUNK: usize = 256;

/// Progress of one [`LocalFeed::fill`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FeedProgress {
    /// Log words lost because the log wrapped past this feed.
    pub lost_words: u64,
    /// Log words skipped as holes left by killed writers.
    pub skipped_words: u64,
    /// Words of log not yet read (summed over shards).
    pub backlog_words: u64,
}

/// One peer's cursor over every local shard log.
pub struct LocalFeed {
    cursors: Vec<LogCursor>,
    pending: VecDeque<JournalEntry>,
    next_shard: usize,
    origin: u32,
    scratch: Vec<JournalEntry>,
}

impl LocalFeed {
    /// A feed starting at the oldest entries still in the log (catch-up).
    pub fn new(cache: &Cache) -> LocalFeed {
        LocalFeed {
            cursors: (0..cache.shards())
                .map(|s| cache.log_cursor(s, LogStart::WindowStart))
                .collect(),
            pending: VecDeque::new(),
            next_shard: 0,
            origin: cache.host_id(),
            scratch: Vec::new(),
        }
    }

    /// Where this feed has read up to, per shard (kept across reconnects).
    pub fn positions(&self) -> Vec<u64> {
        self.cursors.iter().map(|c| c.pos()).collect()
    }

    /// Log words a feed that stopped at `saved` has lost since: what the
    /// log overwrote before this peer got it. (The new feed still starts at
    /// the window's start, to catch the peer up on every live entry.)
    pub fn lost_since(cache: &Cache, saved: &[u64]) -> u64 {
        saved
            .iter()
            .enumerate()
            .take(cache.shards())
            .map(|(s, &pos)| {
                cache
                    .log_tail(s)
                    .saturating_sub(cache.log_words())
                    .saturating_sub(pos)
            })
            .sum()
    }

    fn worth_sending(&self, e: &JournalEntry, now: u64) -> bool {
        e.origin == self.origin
            && (e.flags & FLAG_TOMBSTONE != 0 || (e.published && e.expiry >= now))
    }

    /// Move entries into `b` until it is full or the logs are drained.
    pub fn fill(&mut self, cache: &Cache, b: &mut EntriesBuilder) -> FeedProgress {
        let mut prog = FeedProgress::default();
        let now = now_secs();
        let shards = self.cursors.len();
        let mut idle_shards = 0;
        // Bounded: each round either adds entries or marks a shard idle.
        while idle_shards < shards {
            while let Some(e) = self.pending.front() {
                if !b.fits(e.key.len(), e.value.len()) {
                    prog.backlog_words = self.backlog(cache);
                    return prog;
                }
                let e = self.pending.pop_front().expect("front exists");
                let flags = if e.flags & FLAG_TOMBSTONE != 0 {
                    WIRE_TOMBSTONE
                } else {
                    0
                };
                b.push(flags, e.expiry, e.origin, &e.key, &e.value);
            }
            let s = self.next_shard % shards;
            self.next_shard = self.next_shard.wrapping_add(1);
            self.scratch.clear();
            let p = cache.read_log(&mut self.cursors[s], READ_CHUNK, &mut self.scratch);
            prog.lost_words += p.lost_words;
            prog.skipped_words += p.skipped_words;
            if self.scratch.is_empty() {
                idle_shards += 1;
                continue;
            }
            idle_shards = 0;
            let mut batch = std::mem::take(&mut self.scratch);
            for e in batch.drain(..) {
                if self.worth_sending(&e, now) {
                    self.pending.push_back(e);
                }
            }
            self.scratch = batch;
        }
        prog.backlog_words = self.backlog(cache);
        prog
    }

    fn backlog(&self, cache: &Cache) -> u64 {
        self.cursors
            .iter()
            .map(|c| cache.log_tail(c.shard()).saturating_sub(c.pos()))
            .sum()
    }
}
