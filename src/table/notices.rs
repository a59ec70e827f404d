//! Notice rings: what a bridge reads of a sets segment (docs/architecture.md,
//! "Notice rings").
//!
//! A sets segment rewrites sessions in place, so unlike a log it keeps no
//! record of what changed. Once a bridge has run on the segment, every put
//! of a local session, take and remove also writes a notice to the ring of
//! the writer's counter slot ([`NOTICE_RINGS`] rings, so processes seldom
//! share one): a put notes its way and the version it published, a take or
//! remove notes the key. The bridge reads every ring, copies a noted way
//! only if it still holds the noted version (else a later notice stands for
//! it), and turns a noted key into a tombstone unless the key was put again
//! since.
//!
//! A record is one line of [`NOTICE_WORDS`] words:
//!
//! | word | put                     | take or remove (part k of n)        |
//! |------|-------------------------|-------------------------------------|
//! | 0    | stamp: record number + 1, 0 while written (a seqlock)         |
//! | 1    | kind 1, version << 32   | kind 2, key_len << 8, n << 16, k << 24 |
//! | 2    | way (set * 8 + way)     | 0                                   |
//! | 3..8 | 0                       | key bytes 40k..40k+40               |
//!
//! A writer reserves its records with one `fetch_add` of the ring's count
//! (word 0 of the ring, on a line of its own), clears each record's stamp,
//! writes it and stamps it with a Release store. A reader keeps a record
//! only if the stamp is its number before and after the copy; a record
//! never stamped (its writer was killed) is skipped after [`HOLE_TIMEOUT`],
//! and a ring that wrapped past a reader reports the records lost.

use super::journal::{JournalEntry, LogProgress, HOLE_TIMEOUT};
use super::{Cache, Lookup, FLAG_TOMBSTONE, TOMBSTONE_TTL};
use crate::clock::now_secs;
use crate::segment::layout::{MAX_KEY, NOTICE_RINGS, NOTICE_WORDS};
use crate::sync::{fence, AtomicU64, Ordering};
use std::time::Instant;

const KIND_PUT: u64 = 1;
const KIND_GONE: u64 = 2;
/// Key bytes one record of a take or remove carries.
const KEY_PART_BYTES: usize = 40;
const KEY_PART_WORDS: usize = KEY_PART_BYTES / 8;
/// Word of a record where the key part starts.
const KEY_AT: usize = 3;

/// What one notice says changed.
#[derive(Clone, PartialEq, Eq)]
pub enum Notice {
    /// A put published `version` in `way`.
    Put {
        /// Set * 8 + way.
        way: u64,
        /// The way's version once published.
        version: u64,
    },
    /// The key was taken or removed.
    Gone {
        /// The key (a secret).
        key: Vec<u8>,
    },
}

impl std::fmt::Debug for Notice {
    // Never print a key: it names a session.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Put { way, version } => write!(f, "Put {{ way: {way}, version: {version} }}"),
            Notice::Gone { key } => write!(f, "Gone {{ key_len: {} }}", key.len()),
        }
    }
}

/// A reader's position in one notice ring.
#[derive(Clone, Debug)]
pub struct NoticeCursor {
    ring: usize,
    next: u64,
    stalled: Option<(u64, Instant)>,
}

impl NoticeCursor {
    /// The ring this cursor reads.
    pub fn ring(&self) -> usize {
        self.ring
    }

    /// The next record to read.
    pub fn next(&self) -> u64 {
        self.next
    }
}

/// A record's words as copied (word 0, the stamp, is checked, not kept).
type Record = [u64; NOTICE_WORDS];

impl Cache {
    /// Number of notice rings: [`NOTICE_RINGS`] for a sets segment, 0 for
    /// a log one.
    pub(crate) fn notice_rings(&self) -> usize {
        if self.seg.geometry().notice_records == 0 {
            0
        } else {
            NOTICE_RINGS
        }
    }

    /// Records one notice ring holds before it wraps (0 for a log segment).
    pub(crate) fn notice_records(&self) -> u64 {
        self.seg.geometry().notice_records
    }

    /// Records ring `ring` has had written, ever.
    pub(crate) fn notices_written(&self, ring: usize) -> u64 {
        self.seg
            .notice_ring(ring)
            .first()
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Note that this process published `version` in `way`.
    pub(super) fn note_put(&self, way: u64, version: u64) {
        self.note(1, |_, rec| {
            rec[1] = KIND_PUT | version << 32;
            rec[2] = way;
        });
    }

    /// Note that `key` (1 to [`MAX_KEY`] bytes) was taken or removed here.
    pub(super) fn note_gone(&self, key: &[u8]) {
        let parts = key.len().div_ceil(KEY_PART_BYTES).max(1) as u64;
        self.note(parts, |k, rec| {
            rec[1] = KIND_GONE | (key.len() as u64) << 8 | parts << 16 | k << 24;
            let part = key
                .chunks(KEY_PART_BYTES)
                .nth(k as usize)
                .unwrap_or_default();
            for (w, chunk) in rec[KEY_AT..].iter_mut().zip(part.chunks(8)) {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                *w = u64::from_le_bytes(b);
            }
        });
    }

    /// Write `parts` consecutive records to this process's ring, record `k`
    /// as `fill(k, words)` makes it.
    fn note(&self, parts: u64, fill: impl Fn(u64, &mut Record)) {
        let ring = self.seg.notice_ring(self.counters.index());
        let records = self.seg.geometry().notice_records;
        let Some(count) = ring.first() else {
            return;
        };
        let first = count.fetch_add(parts, Ordering::Relaxed);
        for k in 0..parts {
            let n = first.wrapping_add(k);
            let rec = record(ring, records, n);
            rec[0].store(0, Ordering::Relaxed);
            // Pairs with the Acquire fence in `read_record`: a reader that
            // sees any word written below sees the stamp cleared (or the
            // new one) when it loads the stamp again.
            fence(Ordering::Release);
            let mut words = [0u64; NOTICE_WORDS];
            fill(k, &mut words);
            for (w, v) in rec[1..].iter().zip(&words[1..]) {
                w.store(*v, Ordering::Relaxed);
            }
            // Release: the words above are seen by a reader that sees it.
            rec[0].store(n.wrapping_add(1), Ordering::Release);
        }
    }

    /// A cursor over ring `ring` from record `from`, or from the oldest
    /// record the ring still holds if that is later.
    pub(crate) fn notice_cursor(&self, ring: usize, from: u64) -> NoticeCursor {
        let oldest = self
            .notices_written(ring)
            .saturating_sub(self.notice_records());
        NoticeCursor {
            ring,
            next: from.max(oldest),
            stalled: None,
        }
    }

    /// Read up to `max` notices from `cur` onwards into `out`, advancing
    /// the cursor. Never waits: stops at a record still being written,
    /// skips one never stamped after [`HOLE_TIMEOUT`], and counts what the
    /// ring overwrote before it was read. Progress is in words of records
    /// ([`NOTICE_WORDS`] per record).
    pub(crate) fn read_notices(
        &self,
        cur: &mut NoticeCursor,
        max: usize,
        out: &mut Vec<Notice>,
    ) -> LogProgress {
        let mut prog = LogProgress::default();
        let ring = self.seg.notice_ring(cur.ring);
        let records = self.seg.geometry().notice_records;
        if ring.is_empty() {
            return prog;
        }
        let words = NOTICE_WORDS as u64;
        let mut got = 0;
        // Bounded: each turn advances the cursor or returns, but for a
        // record overwritten while read, retried a few times at most (a
        // count that a damaged segment keeps changing cannot hold it).
        let mut laps = 0;
        loop {
            let written = ring[0].load(Ordering::Acquire);
            if written < cur.next {
                // The count went back (a damaged segment): start over there.
                cur.next = written;
            }
            if written - cur.next > records {
                let lost = written - records - cur.next;
                prog.lost_words = prog.lost_words.saturating_add(lost.saturating_mul(words));
                cur.next = written - records;
                cur.stalled = None;
            }
            let behind = (written - cur.next).saturating_mul(words);
            if cur.next >= written || got >= max || laps > 4 {
                prog.behind_words = behind;
                return prog;
            }
            match self.read_notice(ring, records, cur.next, written) {
                Parsed::Notice(n, used) => {
                    out.push(n);
                    got += 1;
                    cur.next += used;
                    cur.stalled = None;
                }
                Parsed::Junk => {
                    prog.skipped_words += words;
                    cur.next += 1;
                    cur.stalled = None;
                }
                // Overwritten while read: the next turn moves the cursor
                // past what the ring lost. A stamp beyond the count is
                // damage, skipped.
                Parsed::Lapped
                    if ring[0].load(Ordering::Acquire).saturating_sub(records) > cur.next =>
                {
                    laps += 1;
                }
                Parsed::Lapped => {
                    prog.skipped_words += words;
                    cur.next += 1;
                    cur.stalled = None;
                }
                Parsed::NotYet => match cur.stalled {
                    Some((at, since)) if at == cur.next && since.elapsed() >= HOLE_TIMEOUT => {
                        prog.skipped_words += words;
                        cur.next += 1;
                        cur.stalled = None;
                    }
                    Some((at, _)) if at == cur.next => {
                        prog.behind_words = behind;
                        return prog;
                    }
                    _ => {
                        cur.stalled = Some((cur.next, Instant::now()));
                        prog.behind_words = behind;
                        return prog;
                    }
                },
            }
        }
    }

    /// The notice starting at record `n` (of `written` so far).
    fn read_notice(&self, ring: &[AtomicU64], records: u64, n: u64, written: u64) -> Parsed {
        let first = match read_record(ring, records, n) {
            Ok(r) => r,
            Err(p) => return p,
        };
        match first[1] & 0xff {
            KIND_PUT if first[1] >> 8 & 0xff_ffff == 0 => Parsed::Notice(
                Notice::Put {
                    way: first[2],
                    version: first[1] >> 32,
                },
                1,
            ),
            KIND_GONE => {
                let key_len = (first[1] >> 8 & 0xff) as usize;
                let parts = first[1] >> 16 & 0xff;
                if key_len == 0
                    || key_len > MAX_KEY
                    || parts != key_len.div_ceil(KEY_PART_BYTES) as u64
                    || first[1] >> 24 & 0xff != 0
                {
                    return Parsed::Junk;
                }
                let mut key = Vec::with_capacity(parts as usize * KEY_PART_BYTES);
                for k in 0..parts {
                    let rec = if k == 0 {
                        first
                    } else if n.saturating_add(k) >= written {
                        return Parsed::NotYet;
                    } else {
                        match read_record(ring, records, n + k) {
                            Ok(r) => r,
                            Err(p) => return p,
                        }
                    };
                    if rec[1] & 0xff != KIND_GONE
                        || rec[1] >> 8 & 0xffff != first[1] >> 8 & 0xffff
                        || rec[1] >> 24 & 0xff != k
                    {
                        return Parsed::Junk;
                    }
                    for w in &rec[KEY_AT..KEY_AT + KEY_PART_WORDS] {
                        key.extend_from_slice(&w.to_le_bytes());
                    }
                }
                key.truncate(key_len);
                Parsed::Notice(Notice::Gone { key }, parts)
            }
            _ => Parsed::Junk,
        }
    }

    /// What a notice asks the bridge to send, judged now: a put only while
    /// its way still holds the noted version (and a local, unexpired
    /// session); a take or remove as a tombstone unless the key was put
    /// again since. `scratch` is reused between calls.
    pub(crate) fn resolve_notice(
        &self,
        notice: &Notice,
        scratch: &mut Vec<u8>,
    ) -> Option<JournalEntry> {
        let now = now_secs();
        match notice {
            Notice::Put { way, version } => self
                .copy_way(*way, Some(*version), scratch)
                .filter(|e| e.origin == self.host_id && e.expiry >= now),
            Notice::Gone { key } => {
                scratch.resize(self.max_value, 0);
                if matches!(self.peek_in_set(key, scratch), Lookup::Hit(_)) {
                    return None;
                }
                Some(JournalEntry {
                    pos: 0,
                    key: key.clone(),
                    value: Vec::new(),
                    expiry: now + TOMBSTONE_TTL,
                    origin: self.host_id,
                    flags: FLAG_TOMBSTONE,
                    stored_at: now as u32,
                    published: true,
                })
            }
        }
    }

    /// Every local, unexpired session in ways `from..` up to `max` ways on,
    /// into `out` (a catch-up's walk); returns the way to go on from, the
    /// number of ways once done.
    pub(crate) fn scan_ways(&self, from: u64, max: u64, out: &mut Vec<JournalEntry>) -> u64 {
        let end = from.saturating_add(max).min(self.ways());
        let now = now_secs();
        let mut scratch = Vec::new();
        for way in from..end {
            if let Some(e) = self.copy_way(way, None, &mut scratch) {
                if e.origin == self.host_id && e.expiry >= now {
                    out.push(e);
                }
            }
        }
        end
    }
}

/// What reading a notice found.
enum Parsed {
    /// A notice, and the records it took.
    Notice(Notice, u64),
    /// A stamped record that is no notice's start: damage, or a later part
    /// of a notice whose start the ring overwrote.
    Junk,
    /// Not stamped yet: being written, or left by a killed writer.
    NotYet,
    /// Overwritten by a later record while read.
    Lapped,
}

/// The words of record `n` of a ring of `records`.
fn record(ring: &[AtomicU64], records: u64, n: u64) -> &[AtomicU64] {
    let at = ((n % records) as usize + 1) * NOTICE_WORDS;
    &ring[at..at + NOTICE_WORDS]
}

/// Copy record `n` if it is stamped as record `n` before and after.
fn read_record(ring: &[AtomicU64], records: u64, n: u64) -> Result<Record, Parsed> {
    let rec = record(ring, records, n);
    // Acquire pairs with the stamp's Release store.
    let stamp = rec[0].load(Ordering::Acquire);
    if stamp != n.wrapping_add(1) {
        return Err(if stamp > n.wrapping_add(1) {
            Parsed::Lapped
        } else {
            Parsed::NotYet
        });
    }
    let mut words = [0u64; NOTICE_WORDS];
    for (v, w) in words[1..].iter_mut().zip(&rec[1..]) {
        *v = w.load(Ordering::Relaxed);
    }
    // Pairs with the Release fence in `note`.
    fence(Ordering::Acquire);
    if rec[0].load(Ordering::Relaxed) != stamp {
        return Err(Parsed::Lapped);
    }
    Ok(words)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::segment::Geometry;

    /// A sets table a bridge has marked, and a cursor over this process's
    /// ring from its start.
    fn marked() -> (Cache, NoticeCursor) {
        let c = Cache::in_memory(Geometry::tiny_sets(16, 176));
        c.segment().mark_replicated();
        c.count(crate::stats::Counter::Puts); // claims the counter slot
        let ring = c.counters.index() % NOTICE_RINGS;
        let cur = c.notice_cursor(ring, 0);
        (c, cur)
    }

    fn read_all(c: &Cache, cur: &mut NoticeCursor) -> (Vec<Notice>, LogProgress) {
        let mut out = Vec::new();
        let p = c.read_notices(cur, usize::MAX, &mut out);
        (out, p)
    }

    #[test]
    fn nothing_is_noted_until_a_bridge_has_run() {
        let c = Cache::in_memory(Geometry::tiny_sets(16, 176));
        assert_eq!(c.put(b"k", b"v", 60), crate::Stored::Ok);
        assert!(c.take_vec(b"k").is_some());
        assert!((0..c.notice_rings()).all(|r| c.notices_written(r) == 0));
    }

    #[test]
    fn puts_takes_and_removes_are_noted_and_judged_now() {
        let (c, mut cur) = marked();
        assert_eq!(c.put(b"kept", b"1", 60), crate::Stored::Ok);
        assert_eq!(c.put(b"taken", b"2", 60), crate::Stored::Ok);
        assert!(c.take_vec(b"taken").is_some());
        assert!(!c.remove(b"never-there"));
        let (notices, p) = read_all(&c, &mut cur);
        assert_eq!(p, LogProgress::default());
        assert_eq!(notices.len(), 4, "{notices:?}");
        let mut scratch = Vec::new();
        let sent: Vec<_> = notices
            .iter()
            .filter_map(|n| c.resolve_notice(n, &mut scratch))
            .map(|e| (e.key, e.value, e.flags))
            .collect();
        assert_eq!(
            sent,
            vec![
                (b"kept".to_vec(), b"1".to_vec(), 0),
                (b"taken".to_vec(), vec![], FLAG_TOMBSTONE),
                (b"never-there".to_vec(), vec![], FLAG_TOMBSTONE),
            ],
            "the taken put is no longer in its way"
        );
        // A key put again after its take: the tombstone is not sent.
        assert_eq!(c.put(b"taken", b"3", 60), crate::Stored::Ok);
        assert!(notices
            .iter()
            .filter(|n| matches!(n, Notice::Gone { key } if key == b"taken"))
            .all(|n| c.resolve_notice(n, &mut scratch).is_none()));
    }

    #[test]
    fn peers_entries_and_the_bridges_removals_are_not_noted() {
        let (c, mut cur) = marked();
        let _ = c.put_entry(b"foreign", b"v", now_secs() + 60, 9, 0);
        assert!(c.unlink_key(b"foreign"));
        let _ = c.put_entry(b"gone", b"", now_secs() + 60, 9, FLAG_TOMBSTONE);
        assert!(read_all(&c, &mut cur).0.is_empty());
    }

    #[test]
    fn keys_of_every_length_come_back_whole() {
        let (c, mut cur) = marked();
        let keys: Vec<Vec<u8>> = [1, 39, 40, 41, 80, 81, 200, MAX_KEY]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 7 + n) as u8).collect())
            .collect();
        for k in &keys {
            c.remove(k);
        }
        let (notices, p) = read_all(&c, &mut cur);
        assert_eq!(p.skipped_words, 0);
        let got: Vec<Vec<u8>> = notices
            .into_iter()
            .map(|n| match n {
                Notice::Gone { key } => key,
                n => panic!("{n:?}"),
            })
            .collect();
        assert_eq!(got, keys);
    }

    #[test]
    fn a_wrapped_ring_counts_what_it_lost_and_goes_on_from_its_oldest() {
        let (c, mut cur) = marked();
        let records = c.notice_records();
        for i in 0..records + 10 {
            c.remove(format!("k{i}").as_bytes());
        }
        let (notices, p) = read_all(&c, &mut cur);
        assert_eq!(p.lost_words, 10 * NOTICE_WORDS as u64);
        assert_eq!(notices.len() as u64, records);
        assert_eq!(
            notices[0],
            Notice::Gone {
                key: b"k10".to_vec()
            }
        );
    }

    #[test]
    fn a_record_never_stamped_waits_then_is_skipped() {
        let (c, mut cur) = marked();
        // A writer killed after reserving its record: the count moved, the
        // stamp never came.
        let ring = c.seg.notice_ring(cur.ring());
        ring[0].fetch_add(1, Ordering::Relaxed);
        c.remove(b"after");
        let (notices, p) = read_all(&c, &mut cur);
        assert!(notices.is_empty() && p.behind_words == 2 * NOTICE_WORDS as u64);
        std::thread::sleep(HOLE_TIMEOUT + std::time::Duration::from_millis(20));
        let (notices, p) = read_all(&c, &mut cur);
        assert_eq!(p.skipped_words, NOTICE_WORDS as u64);
        assert_eq!(
            notices,
            vec![Notice::Gone {
                key: b"after".to_vec()
            }]
        );
    }

    #[test]
    fn damaged_records_are_skipped_or_missed_never_trusted() {
        let (c, mut cur) = marked();
        assert_eq!(c.put(b"a", b"1", 60), crate::Stored::Ok);
        c.remove(&[b'x'; 100]); // three records
        assert_eq!(c.put(b"b", b"2", 60), crate::Stored::Ok);
        let ring = c.seg.notice_ring(cur.ring());
        let rec = |n: usize| &ring[(n + 1) * NOTICE_WORDS..(n + 2) * NOTICE_WORDS];
        // The put's way out of range, the removal's second part of another
        // kind, a stamp from far ahead on the last.
        rec(0)[2].store(u64::MAX, Ordering::Relaxed);
        rec(2)[1].store(KIND_PUT, Ordering::Relaxed);
        rec(4)[0].store(u64::MAX, Ordering::Relaxed);
        let (notices, p) = read_all(&c, &mut cur);
        let mut scratch = Vec::new();
        assert!(notices
            .iter()
            .all(|n| c.resolve_notice(n, &mut scratch).is_none()));
        assert!(p.skipped_words >= 2 * NOTICE_WORDS as u64, "{p:?}");
        assert_eq!(cur.next(), 5, "read to the end");
        // A count damaged to the largest number, then set back: counted as
        // lost, read without overflow, then read from where it stands.
        ring[0].store(u64::MAX, Ordering::Relaxed);
        let (notices, p) = read_all(&c, &mut cur);
        assert!(notices.is_empty() && p.lost_words > 0, "{p:?}");
        ring[0].store(5, Ordering::Relaxed);
        let _ = read_all(&c, &mut cur);
        assert_eq!(cur.next(), 5);
        c.remove(b"after the damage");
        let (notices, _) = read_all(&c, &mut cur);
        assert_eq!(
            notices,
            vec![Notice::Gone {
                key: b"after the damage".to_vec()
            }]
        );
    }
}

/// The notice ring's seqlock under loom (run by `scripts/check/loom.sh`):
/// a ring of one record, lapped while it is read.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use crate::segment::Geometry;

    /// A reader racing two removes that write the one record in turn gets
    /// each key whole or not at all, never a mix of the two, and once the
    /// writer is done it gets the last one.
    #[test]
    fn a_notice_read_while_its_ring_laps_is_whole_or_missed() {
        const K1: &[u8] = b"first key, 16 B.";
        const K2: &[u8] = b"second key, 16 B";
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let c =
                loom::sync::Arc::new(Cache::in_memory(Geometry::tiny_sets_with_notices(2, 64, 1)));
            c.segment().mark_replicated();
            c.remove(b"marker"); // claims the counter slot, and its ring
            let ring = c.counters.index() % NOTICE_RINGS;
            let mut cur = c.notice_cursor(ring, c.notices_written(ring));
            let writer = {
                let c = c.clone();
                loom::thread::spawn(move || {
                    c.remove(K1);
                    c.remove(K2);
                })
            };
            let mut got = Vec::new();
            let _ = c.read_notices(&mut cur, 4, &mut got);
            writer.join().unwrap();
            let _ = c.read_notices(&mut cur, 4, &mut got);
            let keys: Vec<&[u8]> = got
                .iter()
                .map(|n| match n {
                    Notice::Gone { key } => key.as_slice(),
                    n => panic!("{n:?}"),
                })
                .collect();
            assert!(keys.iter().all(|k| *k == K1 || *k == K2), "a torn key");
            assert_eq!(keys.last(), Some(&K2), "the last notice is read");
        });
    }
}
