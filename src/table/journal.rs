//! Reading the shard logs as a journal, in order, for the bridge.
//!
//! The log is also the replication journal: every put, take and remove
//! appends an entry. A [`LogCursor`] walks one shard's log from a position
//! (in words) towards the tail and returns each entry that fully verifies.
//! Three things can stand in its way, and each is handled without waiting
//! for any writer (I1 NO-WAIT):
//!
//! - **Fell behind the window**: the log wrapped past the cursor. The cursor
//!   jumps to the window's start and reports the words it lost.
//! - **An entry still being written** near the tail (space reserved, words
//!   not yet stored): the read stops there and the caller retries later.
//! - **A hole** left by a writer killed mid-entry: the same symptom, but it
//!   never heals. After [`HOLE_TIMEOUT`] at one position the cursor steps to
//!   the next word that starts an entry header (magic plus its own position
//!   echoed) and reports the words it skipped.

use super::entry::{load_header, EntryHeader};
use super::index::{reconstruct, tag_of, Slot};
use super::Cache;
use crate::segment::layout::MAX_KEY;
use crate::sync::{fence, Ordering};
use std::time::{Duration, Instant};

/// How long an unreadable position may stall a cursor before it is treated
/// as a hole left by a killed writer and skipped.
pub const HOLE_TIMEOUT: Duration = Duration::from_millis(250);

/// One verified entry read from a shard log. Key and value are secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct JournalEntry {
    /// Where the entry starts in its shard log, in words.
    pub pos: u64,
    /// The key (1 to 255 bytes).
    pub key: Vec<u8>,
    /// The value (empty for a tombstone).
    pub value: Vec<u8>,
    /// Expiry, unix seconds.
    pub expiry: u64,
    /// Host that created the entry.
    pub origin: u32,
    /// Entry flags ([`super::FLAG_TOMBSTONE`]).
    pub flags: u8,
    /// When it was written, unix seconds (low 32 bits).
    pub stored_at: u32,
    /// The index still points at this entry (it is the key's current value).
    pub published: bool,
}

impl JournalEntry {
    /// The entry at `pos` whose header is `h`, from a verified copy of its
    /// key and value in `scratch` (key words first, as `read_any` leaves
    /// them).
    pub(super) fn copied(pos: u64, h: &EntryHeader, scratch: &[u8], published: bool) -> Self {
        let key_words = h.key_len.div_ceil(8);
        JournalEntry {
            pos,
            key: scratch[..h.key_len].to_vec(),
            value: scratch[key_words * 8..key_words * 8 + h.value_len].to_vec(),
            expiry: h.expiry,
            origin: h.origin,
            flags: h.flags,
            stored_at: h.stored_at,
            published,
        }
    }
}

impl std::fmt::Debug for JournalEntry {
    // Never print key or value: they are session secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalEntry")
            .field("pos", &self.pos)
            .field("key_len", &self.key.len())
            .field("value_len", &self.value.len())
            .field("expiry", &self.expiry)
            .field("origin", &self.origin)
            .field("flags", &self.flags)
            .finish()
    }
}

/// Where a [`LogCursor`] starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStart {
    /// The oldest entry still in the log window (catch-up).
    WindowStart,
    /// The current tail: only entries appended from now on.
    Tail,
}

/// A reader's position in one shard log.
#[derive(Clone, Debug)]
pub struct LogCursor {
    shard: usize,
    pos: u64,
    stalled: Option<(u64, Instant)>,
}

impl LogCursor {
    /// The shard this cursor reads.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The next position to read, in words.
    pub fn pos(&self) -> u64 {
        self.pos
    }
}

/// What one [`Replica::read_log`](crate::replication::Replica::read_log) call saw
/// besides the entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogProgress {
    /// Words overwritten by the log before this reader got to them.
    pub lost_words: u64,
    /// Words skipped as holes left by killed writers.
    pub skipped_words: u64,
    /// Words between the cursor and the tail after the call.
    pub behind_words: u64,
}

impl Cache {
    /// Number of shard logs.
    pub fn shards(&self) -> usize {
        self.seg.geometry().shards as usize
    }

    /// Words of log per shard (the window a reader must keep up with).
    pub(crate) fn log_words(&self) -> u64 {
        self.log_words
    }

    /// The current tail of `shard`'s log, in words.
    pub(crate) fn log_tail(&self, shard: usize) -> u64 {
        self.seg.tail(shard).load(Ordering::Relaxed)
    }

    /// A cursor over `shard`'s log.
    pub(crate) fn log_cursor(&self, shard: usize, start: LogStart) -> LogCursor {
        let shard = shard & (self.shards() - 1);
        let t = self.seg.tail(shard).load(Ordering::Acquire);
        let pos = match start {
            // The window's first word may be the middle of a half-overwritten
            // entry: start at the first whole one.
            LogStart::WindowStart => self.next_header(shard, t.saturating_sub(self.log_words), t),
            LogStart::Tail => t,
        };
        LogCursor {
            shard,
            pos,
            stalled: None,
        }
    }

    /// Seconds since the oldest entry still in the logs was written: how long
    /// a session survives before the log wraps over it. If that is below the
    /// session lifetime you want resumed, grow the segment. Reads one entry
    /// header per shard (unlike [`Cache::occupancy`], which walks the whole
    /// index), so a metrics endpoint can ask on every scrape. `None` while
    /// every log is empty. A header overwritten while read gives a wrong age
    /// for that one call, never a panic.
    pub fn log_age_secs(&self) -> Option<u64> {
        let now = crate::clock::now_secs() as u32;
        (0..self.shards())
            .filter_map(|shard| {
                let t = self.log_tail(shard);
                let first = self.log_cursor(shard, LogStart::WindowStart).pos();
                let h = EntryHeader::decode(&load_header(self.seg.log(shard), first))?;
                (first < t && h.pos == first).then(|| now.saturating_sub(h.stored_at))
            })
            .max()
            .map(u64::from)
    }

    /// Read up to `max` verified entries from `cur` onwards into `out`
    /// (appended), advancing the cursor. Never waits; returns early at an
    /// entry still being written. Bounded by the log window.
    pub(crate) fn read_log(
        &self,
        cur: &mut LogCursor,
        max: usize,
        out: &mut Vec<JournalEntry>,
    ) -> LogProgress {
        let mut prog = LogProgress::default();
        let tail = self.seg.tail(cur.shard);
        // Pairs with the Release fence in `append`.
        let t = tail.load(Ordering::Acquire);
        let window_start = t.saturating_sub(self.log_words);
        if cur.pos < window_start || cur.pos > t {
            let resync = self.next_header(cur.shard, window_start, t);
            prog.lost_words = resync.saturating_sub(cur.pos);
            cur.pos = resync;
            cur.stalled = None;
        }
        if cur.pos >= t {
            // Nothing new (the bridge's idle poll): no scratch buffer.
            return prog;
        }
        let mut scratch = vec![0u8; self.max_value + MAX_KEY + 8];
        let mut got = 0;
        // Bounded: each step advances pos by at least one word, or returns.
        while cur.pos < t && got < max {
            match self.read_any(cur.shard, cur.pos, t, &mut scratch) {
                Ok(h) => {
                    // Seqlock check: nothing reserved our bytes again while
                    // we copied them (pairs with the fence in `append`).
                    fence(Ordering::Acquire);
                    let t2 = tail.load(Ordering::Relaxed);
                    if t2.saturating_sub(self.log_words) > cur.pos {
                        // Overwritten under us: resynchronise next call.
                        break;
                    }
                    let published = self.is_published(cur.shard, cur.pos, h.hash);
                    out.push(JournalEntry::copied(cur.pos, &h, &scratch, published));
                    got += 1;
                    cur.pos = cur.pos.saturating_add(h.words());
                    cur.stalled = None;
                }
                Err(_) => match cur.stalled {
                    Some((p, since)) if p == cur.pos && since.elapsed() >= HOLE_TIMEOUT => {
                        let next = self.next_header(cur.shard, cur.pos.saturating_add(1), t);
                        prog.skipped_words += next - cur.pos;
                        cur.pos = next;
                        cur.stalled = None;
                    }
                    Some((p, _)) if p == cur.pos => break,
                    _ => {
                        cur.stalled = Some((cur.pos, Instant::now()));
                        break;
                    }
                },
            }
        }
        prog.behind_words = t.saturating_sub(cur.pos);
        prog
    }

    /// The first position in `[from, tail)` holding an entry header that
    /// echoes its own position, or `tail` if none.
    fn next_header(&self, shard: usize, from: u64, tail: u64) -> u64 {
        let log = self.seg.log(shard);
        (from..tail)
            .find(|&p| EntryHeader::decode(&load_header(log, p)).is_some_and(|h| h.pos == p))
            .unwrap_or(tail)
    }

    /// Is the entry of `key` at `pos` in `shard` the key's published value
    /// (what `get` would find)? Changes as puts, takes and removes happen.
    pub(crate) fn is_current(&self, shard: usize, pos: u64, key: &[u8]) -> bool {
        self.is_published(shard, pos, self.hash_key(key))
    }

    /// Does the key's index word point at the entry at `pos`?
    fn is_published(&self, shard: usize, pos: u64, hash: u64) -> bool {
        let g = self.seg.geometry();
        let slot = Slot::locate(hash, g.buckets, g.shards);
        if slot.shard != shard {
            return false;
        }
        let t = self.seg.tail(shard).load(Ordering::Relaxed);
        self.seg.bucket(slot.bucket).iter().any(|w| {
            let v = w.load(Ordering::Acquire);
            v != 0 && tag_of(v) == slot.tag && reconstruct(v, t) == pos
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Geometry;

    fn cache() -> Cache {
        Cache::in_memory(Geometry::tiny(1, 64, 4096, 256))
    }

    #[test]
    fn a_tag_shared_with_another_key_is_a_miss_not_corruption() {
        // One bucket, so two keys collide on it; find two whose 16-bit tags
        // are equal too (a birthday search over a few hundred keys).
        let c = Cache::in_memory(Geometry::tiny(1, 1, 1 << 16, 256));
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0u32..)
            .find_map(|i| {
                let k = format!("key-{i}");
                let tag = c.hash_key(k.as_bytes()) >> 48;
                seen.insert(tag, k.clone()).map(|other| (other, k))
            })
            .unwrap();
        assert_eq!(c.put(a.as_bytes(), b"v", 60), crate::Stored::Ok);
        assert!(c.get_vec(b.as_bytes()).is_none());
        assert_eq!(c.get_vec(a.as_bytes()).as_deref(), Some(&b"v"[..]));
        assert_eq!(c.stats().counters.corrupt, 0);
    }

    #[test]
    fn holds_only_the_exact_published_entry() {
        let c = cache();
        let exp = crate::clock::now_secs() + 60;
        let mut buf = Vec::new();
        let before = c.stats().counters;
        assert!(!c.holds(b"k", b"v1", exp, 2, &mut buf));
        assert_eq!(c.put_entry(b"k", b"v1", exp, 2, 0), crate::Stored::Ok);
        assert!(c.holds(b"k", b"v1", exp, 2, &mut buf));
        assert!(!c.holds(b"k", b"v2", exp, 2, &mut buf));
        assert!(!c.holds(b"k", b"v1x", exp, 2, &mut buf));
        assert!(!c.holds(b"k", b"v1", exp + 1, 2, &mut buf));
        assert!(!c.holds(b"k", b"v1", exp, 3, &mut buf));
        let after = c.stats().counters;
        assert_eq!((after.hits, after.misses), (before.hits, before.misses));
        assert!(c.remove(b"k"));
        assert!(!c.holds(b"k", b"v1", exp, 2, &mut buf));
    }

    #[test]
    fn reads_puts_and_tombstones_in_order() {
        let c = cache();
        c.segment().mark_replicated();
        assert_eq!(c.put(b"a", b"one", 60), crate::Stored::Ok);
        assert_eq!(c.put(b"b", b"two", 60), crate::Stored::Ok);
        assert!(c.remove(b"a"));
        let mut cur = c.log_cursor(0, LogStart::WindowStart);
        let mut out = Vec::new();
        let p = c.read_log(&mut cur, 100, &mut out);
        assert_eq!(p, LogProgress::default());
        assert_eq!(out.len(), 3);
        assert_eq!(
            (&out[0].key[..], &out[0].value[..]),
            (&b"a"[..], &b"one"[..])
        );
        assert!(!out[0].published, "a was removed");
        assert!(out[1].published);
        assert_eq!(out[2].flags, crate::table::FLAG_TOMBSTONE);
        assert_eq!(out[2].origin, c.host_id());
    }

    #[test]
    fn takes_and_removes_append_tombstones_only_once_a_bridge_has_run() {
        let c = cache();
        let mut buf = [0u8; 16];
        let logged = |c: &crate::Cache| {
            let mut cur = c.log_cursor(0, LogStart::WindowStart);
            let mut out = Vec::new();
            c.read_log(&mut cur, 100, &mut out);
            out.iter().map(|r| r.flags).collect::<Vec<_>>()
        };
        for k in [&b"a"[..], b"b", b"c", b"d"] {
            assert_eq!(c.put(k, b"v", 60), crate::Stored::Ok);
        }
        assert!(matches!(c.take(b"a", &mut buf), crate::Lookup::Hit(1)));
        assert!(c.remove(b"b"));
        assert_eq!(logged(&c), [0, 0, 0, 0], "no bridge yet: no tombstone");
        c.segment().mark_replicated();
        assert!(matches!(c.take(b"c", &mut buf), crate::Lookup::Hit(1)));
        assert!(c.remove(b"d"));
        let t = crate::table::FLAG_TOMBSTONE;
        assert_eq!(logged(&c), [0, 0, 0, 0, t, t]);
        assert_eq!(c.get(b"c", &mut buf), crate::Lookup::Miss);
    }

    #[test]
    fn a_status_area_an_earlier_bridge_claimed_counts_as_replicated() {
        let c = cache();
        assert!(!c.segment().replicated());
        let words = c.segment().region(crate::segment::Region::BridgeStatus);
        words[0].store(
            crate::segment::layout::BRIDGE_STATUS_MAGIC,
            crate::sync::Ordering::Relaxed,
        );
        assert!(c.segment().replicated());
    }

    #[test]
    fn log_age_is_that_of_the_oldest_entry_in_the_window() {
        // No bound on how long the test takes (Miri is slow): the ages
        // compared differ by an hour.
        const HOUR: u64 = 3600;
        let c = cache();
        assert_eq!(c.log_age_secs(), None, "empty log");
        let _ = c.put(b"a", b"one", 60);
        let _ = c.put(b"b", b"two", 60);
        assert!(c.log_age_secs().is_some_and(|a| a < HOUR));
        // Make the first entry an hour older.
        let log = c.seg.log(0);
        let mut h = EntryHeader::decode(&load_header(log, 0)).unwrap();
        h.stored_at -= HOUR as u32;
        for (w, v) in log.iter().zip(h.encode()) {
            w.store(v, Ordering::Relaxed);
        }
        let age = c.log_age_secs().unwrap();
        assert!((HOUR..2 * HOUR).contains(&age), "{age}");
        // Once the log wraps past it, the age is the newer entries'.
        for i in 0..200u32 {
            let _ = c.put(&i.to_le_bytes(), &[7u8; 64], 60);
        }
        assert!(c.log_age_secs().is_some_and(|a| a < HOUR));
    }

    #[test]
    fn reader_behind_the_window_counts_lost_words() {
        let c = cache();
        let mut cur = c.log_cursor(0, LogStart::Tail);
        for i in 0..200u32 {
            let _ = c.put(&i.to_le_bytes(), &[7u8; 64], 60);
        }
        let mut out = Vec::new();
        let p = c.read_log(&mut cur, usize::MAX, &mut out);
        assert!(p.lost_words > 0);
        assert!(!out.is_empty());
        assert_eq!(p.behind_words, 0);
        assert_eq!(out.last().unwrap().key, 199u32.to_le_bytes());
    }

    #[test]
    fn hole_stalls_then_is_skipped() {
        let c = cache();
        let _ = c.put(b"x", b"1", 60);
        // A killed writer: 10 words reserved, nothing written.
        c.seg.tail(0).fetch_add(10, Ordering::Relaxed);
        let _ = c.put(b"y", b"2", 60);
        let mut cur = c.log_cursor(0, LogStart::WindowStart);
        let mut out = Vec::new();
        c.read_log(&mut cur, 100, &mut out);
        assert_eq!(out.len(), 1, "stops at the hole");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut skipped = 0;
        while out.len() < 2 && Instant::now() < deadline {
            skipped += c.read_log(&mut cur, 100, &mut out).skipped_words;
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].key, b"y");
        assert_eq!(skipped, 10);
    }
}
