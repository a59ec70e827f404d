//! The local change feed: what this host has to send one peer.
//!
//! Each connection owns a [`LocalFeed`]: of a log segment a [`LogFeed`],
//! below; of a sets segment a [`NoticeFeed`].
//!
//! A [`LogFeed`] has one cursor per shard log, started
//! at the window's start, so a (re)connected peer first catches up on every
//! live local entry and then follows new ones. Only entries whose origin is
//! this host are sent (peers' entries applied here keep their origin, so
//! nothing is forwarded twice and no loop forms). Of those, a tombstone
//! (remove or take) is always sent, and a put is sent if it is unexpired and
//! still the key's published value.
//!
//! A put is written to the log *before* the index is pointed at it, so a put
//! read just after it was appended may not be published *yet*. A put that is
//! unpublished and younger than [`PUBLISH_GRACE`] is therefore held, with
//! everything after it in its shard (order per key must be kept), and decided
//! later; one that is still unpublished after the grace was superseded, taken,
//! removed or evicted, and is skipped. This is what keeps a taken ticket from
//! being resurrected on a peer by a catch-up.
//!
//! The feed only reads the segment: a slow peer's feed falls behind, and if
//! the log wraps past it, it counts the lost words and carries on.

use super::notice_feed::NoticeFeed;
use super::wire::{EntriesBuilder, WIRE_TOMBSTONE};
use scsp::clock::now_secs;
use scsp::replication::{JournalEntry, LogCursor, LogStart, Replica};
use scsp::table::FLAG_TOMBSTONE;
use scsp::Layout;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Entries read from one shard per call, at most.
const READ_CHUNK: usize = 256;
/// How long a put may stay unpublished after its append before the feed
/// decides it was superseded, taken, removed or evicted.
pub const PUBLISH_GRACE: Duration = Duration::from_millis(50);

/// What to do with an entry read from the log.
enum Verdict {
    Send,
    Skip,
    Wait,
}

/// Per shard: entries held back in log order, and tail samples that tell
/// which positions were appended at least [`PUBLISH_GRACE`] ago.
#[derive(Default)]
struct ShardState {
    held: VecDeque<JournalEntry>,
    samples: VecDeque<(Instant, u64)>,
    settled: u64,
}

impl ShardState {
    fn sample(&mut self, now: Instant, tail: u64) {
        if self
            .samples
            .back()
            .is_none_or(|(t, _)| now - *t >= PUBLISH_GRACE / 4)
        {
            self.samples.push_back((now, tail));
        }
        while let Some(&(t, tail)) = self.samples.front() {
            if now - t < PUBLISH_GRACE {
                break;
            }
            self.settled = self.settled.max(tail);
            self.samples.pop_front();
        }
    }
}

/// Progress of one [`LocalFeed::fill`] or [`LocalFeed::collect`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FeedProgress {
    /// Words of the record (log, or notice records) lost because it
    /// wrapped past this feed.
    pub lost_words: u64,
    /// Words skipped as holes left by killed writers.
    pub skipped_words: u64,
    /// Words of the record not yet read or judged (summed over shards or
    /// rings).
    pub backlog_words: u64,
}

/// Move entries from the front of `pending` into `b` while they fit: false
/// if `b` filled before `pending` emptied.
pub(crate) fn send_pending(pending: &mut VecDeque<JournalEntry>, b: &mut EntriesBuilder) -> bool {
    while let Some(e) = pending.front() {
        if !b.fits(e.key.len(), e.value.len()) {
            return false;
        }
        let flags = if e.flags & FLAG_TOMBSTONE != 0 {
            WIRE_TOMBSTONE
        } else {
            0
        };
        b.push(flags, e.expiry, e.origin, &e.key, &e.value);
        pending.pop_front();
    }
    true
}

/// What this host has to send one peer, read as its segment's layout asks.
pub enum LocalFeed {
    /// From the shard logs.
    Log(LogFeed),
    /// From the notice rings and a walk of the ways.
    Sets(NoticeFeed),
}

impl LocalFeed {
    /// A feed that first catches the peer up on every live local session.
    /// `saved`: where an earlier connection to this peer stopped reading
    /// ([`LocalFeed::positions`]).
    pub fn new(r: &Replica, saved: Option<&[u64]>) -> LocalFeed {
        match r.layout() {
            Layout::Log => LocalFeed::Log(LogFeed::new(r)),
            Layout::Sets => LocalFeed::Sets(NoticeFeed::new(r, saved)),
        }
    }

    /// Where this feed has read up to (kept across reconnects).
    pub fn positions(&self) -> Vec<u64> {
        match self {
            LocalFeed::Log(f) => f.positions(),
            LocalFeed::Sets(f) => f.positions(),
        }
    }

    /// Words the segment's record overwrote since a feed stopped at
    /// `saved`, before this peer got them.
    pub fn lost_since(r: &Replica, saved: &[u64]) -> u64 {
        match r.layout() {
            Layout::Log => LogFeed::lost_since(r, saved),
            Layout::Sets => NoticeFeed::lost_since(r, saved),
        }
    }

    /// Keep up with the segment's record without sending (while the peer
    /// has all the batches it may have unacknowledged): a sets segment's
    /// rings are small, a log's window is its whole log.
    pub fn collect(&mut self, r: &Replica) -> FeedProgress {
        match self {
            LocalFeed::Log(f) => FeedProgress {
                backlog_words: f.backlog(r),
                ..FeedProgress::default()
            },
            LocalFeed::Sets(f) => f.collect(r),
        }
    }

    /// Move entries into `b` until it is full or nothing is left to send.
    pub fn fill(&mut self, r: &Replica, b: &mut EntriesBuilder) -> FeedProgress {
        match self {
            LocalFeed::Log(f) => f.fill(r, b),
            LocalFeed::Sets(f) => f.fill(r, b),
        }
    }

    /// Nothing left to read or send.
    pub fn caught_up(&self, r: &Replica) -> bool {
        match self {
            LocalFeed::Log(f) => f.caught_up(r),
            LocalFeed::Sets(f) => f.caught_up(r),
        }
    }
}

/// One peer's cursor over every local shard log.
pub struct LogFeed {
    cursors: Vec<LogCursor>,
    shards: Vec<ShardState>,
    pending: VecDeque<JournalEntry>,
    next_shard: usize,
    origin: u32,
    scratch: Vec<JournalEntry>,
}

impl LogFeed {
    /// A feed starting at the oldest entries still in the log (catch-up).
    pub fn new(cache: &Replica) -> LogFeed {
        LogFeed {
            cursors: (0..cache.shards())
                .map(|s| cache.log_cursor(s, LogStart::WindowStart))
                .collect(),
            shards: (0..cache.shards()).map(|_| ShardState::default()).collect(),
            pending: VecDeque::new(),
            next_shard: 0,
            origin: cache.cache().host_id(),
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
    pub fn lost_since(cache: &Replica, saved: &[u64]) -> u64 {
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

    fn verdict(&self, cache: &Replica, shard: usize, e: &JournalEntry, now: u64) -> Verdict {
        if e.origin != self.origin {
            return Verdict::Skip;
        }
        if e.flags & FLAG_TOMBSTONE != 0 {
            return Verdict::Send;
        }
        if e.expiry < now {
            return Verdict::Skip;
        }
        if cache.is_current(shard, e.pos, &e.key) {
            return Verdict::Send;
        }
        if e.pos >= self.shards[shard].settled {
            Verdict::Wait
        } else {
            Verdict::Skip
        }
    }

    /// Take read entries of `shard` (in log order) through the verdicts.
    fn sort(&mut self, cache: &Replica, shard: usize, entries: &mut Vec<JournalEntry>, now: u64) {
        for e in entries.drain(..) {
            self.shards[shard].held.push_back(e);
        }
        while let Some(e) = self.shards[shard].held.front() {
            match self.verdict(cache, shard, e, now) {
                Verdict::Wait => break,
                Verdict::Send => {
                    let e = self.shards[shard].held.pop_front().expect("front exists");
                    self.pending.push_back(e);
                }
                Verdict::Skip => {
                    self.shards[shard].held.pop_front();
                }
            }
        }
    }

    /// Move entries into `b` until it is full or the logs are drained.
    pub fn fill(&mut self, cache: &Replica, b: &mut EntriesBuilder) -> FeedProgress {
        let mut prog = FeedProgress::default();
        let now = now_secs();
        let clock = Instant::now();
        let shards = self.cursors.len();
        let mut idle_shards = 0;
        // Bounded: each round either adds entries or marks a shard idle.
        while idle_shards < shards {
            if !send_pending(&mut self.pending, b) {
                prog.backlog_words = self.backlog(cache);
                return prog;
            }
            let s = self.next_shard % shards;
            self.next_shard = self.next_shard.wrapping_add(1);
            let mut batch = std::mem::take(&mut self.scratch);
            batch.clear();
            self.shards[s].sample(clock, cache.log_tail(s));
            // Read more only while nothing of this shard is held back, so
            // the held queue stays bounded by one read.
            if self.shards[s].held.is_empty() {
                let p = cache.read_log(&mut self.cursors[s], READ_CHUNK, &mut batch);
                prog.lost_words = prog.lost_words.saturating_add(p.lost_words);
                prog.skipped_words = prog.skipped_words.saturating_add(p.skipped_words);
            }
            let before = self.pending.len();
            let read = batch.len();
            self.sort(cache, s, &mut batch, now);
            self.scratch = batch;
            if read == 0 && self.pending.len() == before {
                idle_shards += 1;
            } else {
                idle_shards = 0;
            }
        }
        prog.backlog_words = self.backlog(cache);
        prog
    }

    /// Nothing read and not yet sent, nothing held back, nothing unread.
    pub fn caught_up(&self, cache: &Replica) -> bool {
        self.pending.is_empty()
            && self.shards.iter().all(|s| s.held.is_empty())
            && self.backlog(cache) == 0
    }

    fn backlog(&self, cache: &Replica) -> u64 {
        self.cursors
            .iter()
            .map(|c| cache.log_tail(c.shard()).saturating_sub(c.pos()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, Frame};
    use scsp::segment::Geometry;

    fn drain(feed: &mut LogFeed, cache: &Replica) -> Vec<(Vec<u8>, u8)> {
        let mut b = EntriesBuilder::new(1);
        feed.fill(cache, &mut b);
        if b.is_empty() {
            return vec![];
        }
        let f = b.finish();
        match decode(&f[4..]).unwrap() {
            Frame::Entries { entries, .. } => {
                entries.into_iter().map(|e| (e.key, e.flags)).collect()
            }
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn sends_live_puts_and_tombstones_but_not_taken_or_foreign_entries() {
        let cache = scsp::Cache::in_memory(Geometry::tiny(2, 64, 8192, 256));
        cache.segment().mark_replicated();
        let c = Replica::new(std::sync::Arc::new(cache));
        assert_eq!(c.cache().put(b"live", b"1", 60), scsp::Stored::Ok);
        assert_eq!(c.cache().put(b"taken", b"2", 60), scsp::Stored::Ok);
        assert!(c.cache().take_vec(b"taken").is_some());
        let _ = c.put_entry(b"foreign", b"3", now_secs() + 60, 9, 0);
        let mut feed = LogFeed::new(&c);
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        // The taken put is held for the publish grace, then skipped.
        while got.len() < 2 && Instant::now() < end {
            got.extend(drain(&mut feed, &c));
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(PUBLISH_GRACE * 2);
        got.extend(drain(&mut feed, &c));
        got.sort();
        assert_eq!(
            got,
            vec![(b"live".to_vec(), 0), (b"taken".to_vec(), WIRE_TOMBSTONE)]
        );
    }
}
