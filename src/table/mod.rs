//! The session table: `get`/`put`/`take`/`remove` over a shared segment.
//!
//! This module is the log layout; a segment of the sets layout dispatches
//! each operation to `sets.rs` (docs/architecture.md, "The sets layout"),
//! which keeps the same invariants with a seqlock per way.
//!
//! Lock-free and syscall-free. The only contended write is the shard tail
//! (`fetch_add` to reserve log space); an entry is written with relaxed
//! stores and published by one Release CAS of an index word. Readers copy an
//! entry, then prove with an Acquire fence and a look at the tail that
//! nobody reserved the bytes again while they copied (a seqlock whose
//! sequence number is the tail), then verify magic, position, hash, key,
//! checksum and expiry. Anything inconsistent is a miss.
//!
//! The invariants this module keeps are stated in full in
//! docs/architecture.md, "Invariants"; comments below cite them by name:
//! - I1 NO-WAIT: no operation waits for another process; a process killed
//!   at any instruction leaves at worst unreachable log bytes.
//! - I2 NO-SYSCALL: get, put and take make no system call, and get and take
//!   into a caller's buffer allocate nothing.
//! - I3 VERIFIED-READ: a value is returned only after the post-copy tail
//!   check and the checksum pass, so it is never torn, overwritten, expired
//!   or another key's.
//! - I4 BOUNDED: every index is masked, every length clamped, every loop
//!   bounded.
//! - I5 ATOMIC-ONLY: shared memory is touched only through `AtomicU64`.

mod bulk;
mod entry;
mod index;
mod inspect;
pub(crate) mod journal;
pub(crate) mod notices;
mod sets;

pub use entry::{EntryHeader, FLAG_TOMBSTONE};
pub use inspect::{Occupancy, VerifyReport};

use crate::clock::now_secs;
#[cfg(not(loom))]
use crate::config::Config;
use crate::error::Result;
use crate::segment::layout::Layout;
use crate::segment::layout::{entry_bytes, ENTRY_HEADER_WORDS, MAX_KEY};
#[cfg(not(loom))]
use crate::segment::Access;
use crate::segment::{Geometry, Segment};
use crate::stats::{self, Counter, Counters};
use crate::sync::{fence, Ordering};
use entry::{
    copy_out, copy_value_out, key_equals, load_header, prefetch, prefetch_entry, write_entry,
    ValueSum, FOR_WRITE,
};
use index::{hinted_words, in_window, reconstruct, tag_matches, tag_of};
#[cfg(not(loom))]
use std::path::Path;

/// How long a tombstone (a replicated removal) lives, in seconds.
const TOMBSTONE_TTL: u64 = 24 * 3600;
/// How many times a put or take retries a lost CAS race before giving up.
const CAS_RETRIES: usize = 8;

/// The longest time a value is kept: 7 days (604 800 s), the longest
/// lifetime TLS 1.3 allows a ticket (RFC 8446, section 4.6.1). Every TTL
/// given to [`Cache::put`], `scsp_put` and
/// `scsp::rustls::SessionStore::with_ttl` is clamped to it, so no caller
/// stores an entry that outlives what the protocol allows (or whose expiry
/// the bridge cannot carry).
pub const MAX_TTL_SECS: u32 = 7 * 24 * 3600;

/// Outcome of [`Cache::put`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The value is stored and visible to every process.
    Ok,
    /// Refused: the value is larger than the segment's `max_value`.
    TooLarge,
    /// Refused: the key is empty or longer than 255 bytes.
    BadKey,
}

/// Outcome of [`Cache::get`] and [`Cache::take`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The value was copied to the front of the buffer; this is its length.
    Hit(usize),
    /// No live value for the key. The buffer holds no byte of any value
    /// (what a failed check had copied is zeroed).
    Miss,
    /// The buffer is too small; the value needs this many bytes. Nothing was
    /// copied and nothing taken. (A hint: the entry may change before the
    /// next call.)
    BufferTooSmall(usize),
}

/// A snapshot of the table's configuration and counters.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Stats {
    /// Counters summed over every process.
    pub counters: Counters,
    /// Bytes of session log (all shards).
    pub capacity_bytes: u64,
    /// Number of shards.
    pub shards: u64,
    /// Index slots (buckets x 8).
    pub index_slots: u64,
    /// Largest value accepted.
    pub max_value: u64,
    /// Origin id of this host.
    pub host_id: u64,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Bytes ever appended to the logs (sum of shard tails).
    pub appended_bytes: u64,
    /// Fraction of the log holding data (1.0 once every shard has wrapped);
    /// with the sets layout, of the ways holding a session.
    pub log_fill: f64,
    /// How the segment keeps its sessions.
    pub layout: Layout,
}

/// A shared TLS session cache mapped from a segment file.
///
/// Every process (and thread) that opens the same path sees the same table.
/// Keys and values are session secrets: the segment is created owner-only,
/// excluded from core dumps, and nothing here logs them.
pub struct Cache {
    seg: Segment,
    counters: stats::Slot,
    seed: u64,
    log_words: u64,
    max_value: usize,
    host_id: u32,
    layout: Layout,
    /// Sets and words per slot of a [`Layout::Sets`] segment.
    sets: u64,
    slot_words: u64,
}

/// `ttl_secs` within `1..=MAX_TTL_SECS`.
#[inline]
pub(crate) fn clamp_ttl(ttl_secs: u32) -> u32 {
    ttl_secs.clamp(1, MAX_TTL_SECS)
}

/// A located index word that led to a verified entry.
struct Found {
    word_index: usize,
    word: u64,
    header: EntryHeader,
}

enum Probe {
    Hit(Found),
    Miss,
    Small(usize),
}

/// Why `read_verified` returned no value.
enum Reject {
    /// Not a live entry for this key (stale, expired, another key's).
    Miss,
    /// The buffer is too small for a value of this many bytes.
    Small(usize),
    /// The entry is inside the log window but damaged: for good, so its
    /// index word can go (see `probe_at`).
    Damaged,
}

impl Cache {
    /// Create a new segment at `path` (refused if one exists).
    #[cfg(not(loom))]
    pub fn create(path: impl AsRef<Path>, cfg: &Config) -> Result<Cache> {
        Ok(Cache::from_segment(Segment::create(path.as_ref(), cfg)?))
    }

    /// Open an existing segment owned by us, validating its header.
    #[cfg(not(loom))]
    pub fn open(path: impl AsRef<Path>) -> Result<Cache> {
        Cache::open_with(path, Access::default())
    }

    /// Open an existing segment with explicit access rules.
    #[cfg(not(loom))]
    pub fn open_with(path: impl AsRef<Path>, access: Access) -> Result<Cache> {
        Ok(Cache::from_segment(Segment::open(path.as_ref(), access)?))
    }

    /// Open the segment at `path`, creating it with `cfg` if absent.
    #[cfg(not(loom))]
    pub fn open_or_create(path: impl AsRef<Path>, cfg: &Config) -> Result<Cache> {
        Ok(Cache::from_segment(Segment::open_or_create(
            path.as_ref(),
            cfg,
        )?))
    }

    /// A process-private cache on the heap (tests, model checking, fuzzing).
    #[doc(hidden)]
    pub fn in_memory(geo: Geometry) -> Cache {
        Cache::from_segment(Segment::heap(geo))
    }

    fn from_segment(seg: Segment) -> Cache {
        let g = *seg.geometry();
        Cache {
            counters: stats::Slot::claim(&seg),
            seed: g.seed[0],
            log_words: g.log_bytes / 8,
            max_value: g.max_value as usize,
            host_id: g.host_id as u32,
            layout: g.layout,
            sets: g.sets(),
            slot_words: g.slot_bytes() / 8,
            seg,
        }
    }

    /// How this segment keeps its sessions.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The segment underneath, for adapters that use its extension area.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Map every page of the segment into this process now
    /// ([`Segment::prefault`]): no page faults on later gets and puts.
    pub fn prefault(&self) -> std::io::Result<()> {
        self.seg.prefault()
    }

    /// Largest value `put` accepts.
    pub fn max_value(&self) -> usize {
        self.max_value
    }

    /// Origin id stamped on entries written here.
    pub fn host_id(&self) -> u32 {
        self.host_id
    }

    /// Words of one slot of a sets segment (0 for the log layout).
    pub(crate) fn slot_words(&self) -> u64 {
        self.slot_words
    }

    /// The keyed hash of a key: xxh3-64 seeded with the segment's random
    /// seed (header word 8). Every build, the C ABI and the bridge compute it
    /// the same way. xxh3 rather than SipHash: it is several times cheaper on
    /// the 32-byte keys of TLS sessions, and flooding resistance is not
    /// needed, because the keys that get *stored* are chosen by the server
    /// (random session ids and ticket names), never by clients; a client
    /// offering crafted keys only gets misses.
    #[inline]
    pub fn hash_key(&self, key: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(key, self.seed)
    }

    #[inline]
    fn locate(&self, key: &[u8]) -> index::Slot {
        let g = self.seg.geometry();
        index::Slot::locate(self.hash_key(key), g.buckets, g.shards)
    }

    #[inline]
    fn count(&self, c: Counter) {
        self.counters.add(&self.seg, c, 1);
    }

    /// Store `value` under `key` for `ttl_secs` seconds, clamped to
    /// `1..=`[`MAX_TTL_SECS`] (7 days): a longer TTL keeps the value 7 days,
    /// and 0 keeps it one second. Clamped rather than refused because TLS
    /// servers pass a session's remaining lifetime, which no session may
    /// exceed anyway: refusing would only lose sessions.
    pub fn put(&self, key: &[u8], value: &[u8], ttl_secs: u32) -> Stored {
        let now = now_secs();
        self.put_at(
            key,
            value,
            now.saturating_add(clamp_ttl(ttl_secs).into()),
            self.host_id,
            0,
            now,
        )
    }

    /// Store an entry with explicit expiry (unix seconds), origin and flags.
    /// Used by the bridge to apply peers' entries unchanged.
    pub(crate) fn put_entry(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: u64,
        origin: u32,
        flags: u8,
    ) -> Stored {
        self.put_at(key, value, expiry, origin, flags, now_secs())
    }

    /// `put_entry` with the current time already read (one clock read per put).
    fn put_at(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: u64,
        origin: u32,
        flags: u8,
        now: u64,
    ) -> Stored {
        if key.is_empty() || key.len() > MAX_KEY {
            self.count(Counter::TooLarge);
            return Stored::BadKey;
        }
        // A file segment's log always holds the largest entry; the tiny
        // in-memory geometries of tests and models need not. A slot of the
        // sets layout holds the largest value with a key of up to 32 bytes.
        let room = match self.layout {
            Layout::Log => self.log_words,
            Layout::Sets => self.slot_words,
        };
        if value.len() > self.max_value || entry_bytes(key.len(), value.len()) > room * 8 {
            self.count(Counter::TooLarge);
            return Stored::TooLarge;
        }
        if self.layout == Layout::Sets {
            return self.put_in_set(key, value, (expiry, now), origin, flags);
        }
        let slot = self.locate(key);
        // The bucket line is CASed at the end; start fetching it now so its
        // miss overlaps with writing the entry.
        prefetch::<FOR_WRITE>(self.seg.bucket(slot.bucket), 0, 1);
        let (pos, words) = self.append(&slot, key, value, (expiry, now), origin, flags);
        if flags & FLAG_TOMBSTONE == 0 {
            self.publish(&slot, pos, words);
            self.count(Counter::Puts);
        }
        Stored::Ok
    }

    /// Reserve log space and write a complete entry; returns its position
    /// and length in words.
    fn append(
        &self,
        slot: &index::Slot,
        key: &[u8],
        value: &[u8],
        (expiry, now): (u64, u64),
        origin: u32,
        flags: u8,
    ) -> (u64, u64) {
        let mut h = EntryHeader {
            flags,
            key_len: key.len(),
            value_len: value.len(),
            pos: 0,
            hash: slot.hash,
            expiry,
            stored_at: now as u32,
            origin,
            checksum: 0,
        };
        let words = h.words();
        // The only contended write: reserve [pos, pos + words).
        let pos = self
            .seg
            .tail(slot.shard)
            .fetch_add(words, Ordering::Relaxed);
        // Pairs with the Acquire fence in `read_verified`: a reader that sees
        // any byte written below also sees the tail advanced past `pos`.
        fence(Ordering::Release);
        let log = self.seg.log(slot.shard);
        // Start fetching every reserved line for writing, so their misses
        // overlap instead of each store waiting for its own.
        prefetch::<FOR_WRITE>(log, pos, words as usize);
        write_entry(log, pos, &mut h, key, value);
        // The next entry in this shard most likely goes right after this
        // one: start taking ownership of its lines now, so that put finds
        // them in cache instead of waiting for them (a hint; harmless if
        // another writer gets there first).
        prefetch::<FOR_WRITE>(log, pos.wrapping_add(words), words as usize);
        self.counters
            .add(&self.seg, Counter::BytesWritten, words * 8);
        (pos, words)
    }

    /// Point the key's index word at the entry at `pos`, `words` long (one
    /// Release CAS).
    /// Victim order: the word already holding this tag, an empty word, a
    /// stale one, else the oldest (lossy eviction).
    fn publish(&self, slot: &index::Slot, pos: u64, words: u64) {
        let bucket = self.seg.bucket(slot.bucket);
        let tail = self.seg.tail(slot.shard);
        let new = slot.word(pos, words);
        for _ in 0..CAS_RETRIES {
            // Words first (Acquire pairs with the Release CAS that published
            // each), then the tail: it is then at least past every word's
            // entry, so a word published meanwhile is never mistaken for
            // one that left the window (and evicted as stale).
            let words = bucket.each_ref().map(|w| w.load(Ordering::Acquire));
            let t = tail.load(Ordering::Relaxed);
            // A put stalled so long that the log lapped its reservation
            // (a stopped or swapped-out process) publishes nothing: its
            // entry is already overwritten, and its word would replace the
            // key's newer one.
            if !in_window(pos, t, self.log_words) {
                break;
            }
            let mut same = None;
            let mut empty = None;
            let mut stale = None;
            let mut oldest: Option<(usize, u64, u64)> = None;
            for (i, &v) in words.iter().enumerate() {
                if v == 0 {
                    empty = empty.or(Some((i, v)));
                } else if tag_of(v) == slot.tag {
                    same = same.or(Some((i, v)));
                } else {
                    let p = reconstruct(v, t);
                    if !in_window(p, t, self.log_words) {
                        stale = stale.or(Some((i, v)));
                    } else if oldest.is_none_or(|(_, _, op)| p < op) {
                        oldest = Some((i, v, p));
                    }
                }
            }
            let evicting = same.is_none() && empty.is_none() && stale.is_none();
            let Some((i, old)) = same.or(empty).or(stale).or(oldest.map(|(i, v, _)| (i, v))) else {
                return;
            };
            // Release pairs with the Acquire load of the word in `probe`.
            if bucket[i]
                .compare_exchange(old, new, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                if evicting {
                    self.count(Counter::Evictions);
                }
                self.clear_duplicates(bucket, slot.tag, i);
                return;
            }
        }
        self.count(Counter::Lost);
    }

    /// Concurrent puts of one key may each take a word; keep only ours.
    fn clear_duplicates(&self, bucket: &[crate::sync::AtomicU64], tag: u64, keep: usize) {
        for (i, w) in bucket.iter().enumerate() {
            let v = w.load(Ordering::Relaxed);
            if i != keep && v != 0 && tag_of(v) == tag {
                let _ = w.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Copy the value for `key` into `buf`. Allocates nothing, and writes
    /// nothing shared but this process's own counters, and the index word
    /// of an entry it finds damaged (which it unlinks).
    ///
    /// Only a [`Lookup::Hit`] writes a value into `buf` (its first `n`
    /// bytes). A miss (absent, expired, stale, damaged, or a lost race with
    /// a writer) and [`Lookup::BufferTooSmall`] leave no byte of any value
    /// there: an expired value is never copied, and what a failed check had
    /// copied is zeroed.
    pub fn get(&self, key: &[u8], buf: &mut [u8]) -> Lookup {
        if self.layout == Layout::Sets {
            return self.get_in_set(key, buf);
        }
        match self.probe(key, buf) {
            Probe::Hit(f) => {
                self.count(Counter::Hits);
                Lookup::Hit(f.header.value_len)
            }
            Probe::Small(n) => Lookup::BufferTooSmall(n),
            Probe::Miss => {
                self.count(Counter::Misses);
                Lookup::Miss
            }
        }
    }

    /// `get` into a new `Vec` sized to fit.
    pub fn get_vec(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.with_vec(|buf| self.get(key, buf))
    }

    /// Is `value`, with this expiry and origin, already `key`'s published
    /// entry? The bridge asks before applying a peer's entry, so that a
    /// catch-up replaying what is already here does not append it again and
    /// push live entries out of the log. Counts no hit or miss.
    pub(crate) fn holds(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: u64,
        origin: u32,
        scratch: &mut Vec<u8>,
    ) -> bool {
        scratch.clear();
        scratch.resize(value.len(), 0);
        if self.layout == Layout::Sets {
            return self.holds_in_set(key, value, expiry, origin, scratch);
        }
        match self.probe(key, scratch) {
            Probe::Hit(f) => {
                f.header.value_len == value.len()
                    && f.header.expiry == expiry
                    && f.header.origin == origin
                    && scratch[..] == *value
            }
            Probe::Small(_) | Probe::Miss => false,
        }
    }

    /// Start fetching `key`'s index bucket for writing, a few keys ahead of
    /// `holds` and `put_entry` of it: the bridge applies a batch this way,
    /// so that the bucket misses overlap instead of coming one by one.
    pub(crate) fn prefetch_bucket(&self, key: &[u8]) {
        if self.layout == Layout::Sets {
            self.prefetch_set(key);
        } else if !key.is_empty() && key.len() <= MAX_KEY {
            prefetch::<FOR_WRITE>(self.seg.bucket(self.locate(key).bucket), 0, 1);
        }
    }

    /// Remove and return the value for `key`. Of any number of processes
    /// taking the same entry at once, exactly one gets it. Only that one
    /// finds the value in its buffer: a take that ends in a miss or in
    /// [`Lookup::BufferTooSmall`] leaves no byte of any value there, even
    /// after losing a race for an entry it had already copied.
    pub fn take(&self, key: &[u8], buf: &mut [u8]) -> Lookup {
        if self.layout == Layout::Sets {
            return self.take_in_set(key, buf);
        }
        let slot = self.locate(key);
        // On a segment a bridge runs on, a winning take appends a
        // tombstone, most likely at the shard's current tail: start
        // fetching those lines for writing now, so the misses overlap with
        // reading the entry. A hint; wrong guesses cost nothing but the
        // hint (whether to append is decided after the CAS).
        if self.seg.replicated() {
            let t = self.seg.tail(slot.shard).load(Ordering::Relaxed);
            let tomb_words = ENTRY_HEADER_WORDS + key.len().min(MAX_KEY).div_ceil(8);
            prefetch::<FOR_WRITE>(self.seg.log(slot.shard), t, tomb_words);
        }
        for _ in 0..CAS_RETRIES {
            match self.probe_at(&slot, key, buf) {
                Probe::Hit(f) => {
                    #[cfg(all(test, not(loom)))]
                    tests::before_take_cas(self);
                    let w = &self.seg.bucket(slot.bucket)[f.word_index];
                    // AcqRel: the winner's read of the entry is ordered
                    // before the word disappears for everyone else. SeqCst
                    // for `tombstone_if_replicated`.
                    if w.compare_exchange(f.word, 0, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.count(Counter::Hits);
                        self.count(Counter::Takes);
                        self.tombstone_if_replicated(&slot, key);
                        return Lookup::Hit(f.header.value_len);
                    }
                    // Lost the race: another taker (or a put) got the word
                    // first. What was copied is not ours to hand out, and a
                    // retry that ends in a miss or "buffer too small" must
                    // leave nothing of it behind.
                    buf[..f.header.value_len].fill(0);
                }
                Probe::Small(n) => return Lookup::BufferTooSmall(n),
                Probe::Miss => break,
            }
        }
        self.count(Counter::Misses);
        Lookup::Miss
    }

    /// `take` into a new `Vec` sized to fit.
    pub fn take_vec(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.with_vec(|buf| self.take(key, buf))
    }

    fn with_vec(&self, mut op: impl FnMut(&mut [u8]) -> Lookup) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 1024.min(self.max_value)];
        for _ in 0..4 {
            match op(&mut buf) {
                Lookup::Hit(n) => {
                    buf.truncate(n);
                    return Some(buf);
                }
                Lookup::Miss => return None,
                Lookup::BufferTooSmall(n) => buf.resize(n.min(self.max_value), 0),
            }
        }
        None
    }

    /// Remove `key` everywhere (on a segment a bridge runs on, a tombstone
    /// tells the bridge). Returns whether a live entry was removed here.
    pub fn remove(&self, key: &[u8]) -> bool {
        if key.is_empty() || key.len() > MAX_KEY {
            return false;
        }
        self.count(Counter::Removes);
        if self.layout == Layout::Sets {
            let removed = self.remove_in_set(key);
            self.note_gone_if_replicated(key);
            return removed;
        }
        let slot = self.locate(key);
        let removed = self.unlink(&slot, key);
        self.tombstone_if_replicated(&slot, key);
        removed
    }

    /// Clear every index word of the bucket that points at `key`, without
    /// writing a tombstone (the bridge applies peers' tombstones this way).
    pub(crate) fn unlink_key(&self, key: &[u8]) -> bool {
        if key.is_empty() || key.len() > MAX_KEY {
            return false;
        }
        if self.layout == Layout::Sets {
            return self.remove_in_set(key);
        }
        self.unlink(&self.locate(key), key)
    }

    fn unlink(&self, slot: &index::Slot, key: &[u8]) -> bool {
        let bucket = self.seg.bucket(slot.bucket);
        let log = self.seg.log(slot.shard);
        let mut removed = false;
        for w in bucket {
            let v = w.load(Ordering::Acquire);
            if v == 0 || tag_of(v) != slot.tag {
                continue;
            }
            let t = self.seg.tail(slot.shard).load(Ordering::Relaxed);
            let pos = reconstruct(v, t);
            let hw = load_header(log, pos);
            let Some(h) = EntryHeader::decode(&hw).filter(|h| {
                h.pos == pos
                    && h.hash == slot.hash
                    && h.key_len == key.len()
                    && key_equals(log, pos.wrapping_add(ENTRY_HEADER_WORDS as u64), key)
            }) else {
                continue;
            };
            // An expired entry's word is cleared too, but it was no live
            // session: not counted as removed. SeqCst for
            // `tombstone_if_replicated`.
            if w.compare_exchange(v, 0, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
                && h.expiry >= now_secs()
            {
                removed = true;
            }
        }
        removed
    }

    /// Append a tombstone for `key`, the record from which the bridge
    /// removes it on every peer, if a bridge has ever run on this segment
    /// (docs/architecture.md, "Tombstones"). Until then no peer holds the
    /// key, and a tombstone would only cost the take or remove an append.
    /// Called after the SeqCst CAS that cleared the key's index word: with
    /// the SeqCst load in [`Segment::replicated`] and the fence in
    /// [`Segment::mark_replicated`], either this sees the mark, or the
    /// bridge's first look at the index, which comes after the mark, sees
    /// the word cleared and never ships the entry.
    fn tombstone_if_replicated(&self, slot: &index::Slot, key: &[u8]) {
        if !self.seg.replicated() {
            return;
        }
        let now = now_secs();
        self.append(
            slot,
            key,
            &[],
            (now + TOMBSTONE_TTL, now),
            self.host_id,
            FLAG_TOMBSTONE,
        );
    }

    // Inlined, with `probe_at` and `read_verified`, into `get`: the hit
    // path then keeps the header it checked in registers rather than
    // building a `Found` on the stack for one field of it.
    #[inline(always)]
    fn probe(&self, key: &[u8], buf: &mut [u8]) -> Probe {
        if key.is_empty() || key.len() > MAX_KEY {
            return Probe::Miss;
        }
        self.probe_at(&self.locate(key), key, buf)
    }

    /// Find the key's entry and copy its value into `buf` (I3 VERIFIED-READ).
    #[inline(always)]
    fn probe_at(&self, slot: &index::Slot, key: &[u8], buf: &mut [u8]) -> Probe {
        let bucket = self.seg.bucket(slot.bucket);
        // Read the whole bucket line first and pick the words with the key's
        // tag without a branch per word (the tag is never 0, so empty words
        // never match). Acquire pairs with the Release CAS in `publish`.
        let words = bucket.each_ref().map(|w| w.load(Ordering::Acquire));
        let mut matches = tag_matches(&words, slot.tag);
        // At most BUCKET_WORDS iterations (I4 BOUNDED).
        while matches != 0 {
            let i = matches.trailing_zeros() as usize;
            matches &= matches - 1;
            let word = words[i];
            match self.read_verified(slot, word, key, buf) {
                Ok(header) => {
                    return Probe::Hit(Found {
                        word_index: i,
                        word,
                        header,
                    })
                }
                Err(Reject::Small(needed)) => return Probe::Small(needed),
                Err(Reject::Miss) => continue,
                Err(Reject::Damaged) => {
                    // Damage inside the window never heals (the writer of
                    // the entry had finished before its word was
                    // published, and newer reservations make it stale, not
                    // damaged), so unlink the word: the damage is counted
                    // about once (by the lookups racing to it), not at
                    // every lookup, and `scsp verify` no
                    // longer finds it indexed. Only if the word is
                    // unchanged: a put may have replaced it meanwhile.
                    let _ =
                        bucket[i].compare_exchange(word, 0, Ordering::Relaxed, Ordering::Relaxed);
                }
            }
        }
        Probe::Miss
    }

    /// Copy and verify the entry a word points to.
    ///
    /// The shard tail, the one word every put writes, is read once, after
    /// the copy: a log is a power of two no larger than 2^40 words, so the
    /// word's low 40 position bits already name the entry's place in it,
    /// and the full position is proven with the tail only when it is needed
    /// anyway (the seqlock check). A get thus shares one line with the
    /// writers of other sessions instead of two (docs/architecture.md,
    /// "get").
    #[inline(always)]
    fn read_verified(
        &self,
        slot: &index::Slot,
        word: u64,
        key: &[u8],
        buf: &mut [u8],
    ) -> Result<EntryHeader, Reject> {
        let tail = self.seg.tail(slot.shard);
        let log = self.seg.log(slot.shard);
        let at = word & index::POS_MASK;
        // The header, key and value are read one after another below: start
        // fetching all their lines now, so the misses overlap instead of the
        // value's waiting for the header's. The length is the word's hint
        // (a prefetch is masked and never faults, so a wrong hint is harmless).
        prefetch_entry(log, at, hinted_words(word));
        // Reads are masked to the log, so `at` finds the same words as the
        // full position would; the header's own `pos` must agree with it.
        let header = load_header(log, at);
        let Some(h) = EntryHeader::decode(&header) else {
            return Err(self.corrupt_or_stale(word, tail));
        };
        // Bounded: lengths are checked before any copy uses them.
        if h.pos & index::POS_MASK != at
            || h.value_len > self.max_value
            || h.flags & FLAG_TOMBSTONE != 0
        {
            return Err(self.corrupt_or_stale(word, tail));
        }
        let key_at = at.wrapping_add(ENTRY_HEADER_WORDS as u64);
        if h.hash != slot.hash || h.key_len != key.len() || !key_equals(log, key_at, key) {
            // Another key's entry whose hash shares this bucket and 16-bit
            // tag (about one lookup in 20 000 on a busy table): a miss. Or
            // damage over the hash or key words (a lapped writer's header
            // lands there as often as anywhere else).
            return Err(if self.holds_other_key(slot, key_at, &h) {
                Reject::Miss
            } else {
                self.corrupt_or_stale(word, tail)
            });
        }
        // Expiry before the copy: an expired value never reaches `buf` (and
        // has no size to report: the retry would miss). The header is only
        // proven by the tail check below, but a header that fails it
        // would have been a miss anyway.
        if h.expiry < now_secs() {
            self.count(Counter::Expired);
            return Err(Reject::Miss);
        }
        if h.value_len > buf.len() {
            return Err(Reject::Small(h.value_len));
        }
        let value = &mut buf[..h.value_len];
        // Checksummed as it is copied; compared only after the tail check.
        let sum = copy_value_out(
            log,
            at.wrapping_add((ENTRY_HEADER_WORDS + key.len().div_ceil(8)) as u64),
            value,
            ValueSum::seed(&header),
        );
        // Pairs with the Release fence in `append`: if any word we read was
        // written by a later reservation, this load sees that reservation.
        fence(Ordering::Acquire);
        let t = tail.load(Ordering::Relaxed);
        let pos = reconstruct(word, t);
        // The header is the one written at the word's position, the whole
        // entry lies below the tail (where every reservation ends), and no
        // reservation has reached its bytes since: what was read is intact.
        // A failed check leaves no byte of what was copied in the caller's
        // buffer (off the hit path: only lost races and damage get here).
        if h.pos != pos
            || pos.checked_add(h.words()).is_none_or(|end| end > t)
            || !in_window(pos, t, self.log_words)
        {
            value.fill(0);
            return Err(self.corrupt_or_stale(word, tail));
        }
        if sum != h.checksum {
            value.fill(0);
            self.count(Counter::Corrupt);
            return Err(Reject::Damaged);
        }
        Ok(h)
    }

    /// Is the entry whose key starts at word `key_at` (header `h`) whole, and
    /// another key's that belongs under `slot`? Its key must hash to its
    /// hash, and that hash lead to this bucket and tag. Off the hit path:
    /// only tag collisions and damage come here.
    #[cold]
    #[inline(never)]
    fn holds_other_key(&self, slot: &index::Slot, key_at: u64, h: &EntryHeader) -> bool {
        let g = self.seg.geometry();
        let home = index::Slot::locate(h.hash, g.buckets, g.shards);
        if h.key_len == 0 || home.bucket != slot.bucket || home.tag != slot.tag {
            return false;
        }
        let mut stored = [0u8; MAX_KEY];
        // key_len is decoded from 8 bits: at most MAX_KEY (I4 BOUNDED).
        let stored = &mut stored[..h.key_len.min(MAX_KEY)];
        copy_out(self.seg.log(slot.shard), key_at, stored);
        self.hash_key(stored) == h.hash
    }

    /// A word whose entry does not check out is stale if it left the log
    /// window, damaged otherwise. The tail is read again for this: a writer
    /// that wrapped the log over the entry while it was read has moved it
    /// past the entry (Acquire pairs with the Release fence in `append`, as
    /// for the copy), so a busy table is not taken for damaged.
    #[cold]
    #[inline(never)]
    fn corrupt_or_stale(&self, word: u64, tail: &crate::sync::AtomicU64) -> Reject {
        fence(Ordering::Acquire);
        let t = tail.load(Ordering::Relaxed);
        if in_window(reconstruct(word, t), t, self.log_words) {
            self.count(Counter::Corrupt);
            return Reject::Damaged;
        }
        Reject::Miss
    }

    /// Counters and fill levels. Cheap: no index walk (with the sets
    /// layout, a read of at most 4096 tag lines), one `kill(pid, 0)`
    /// per attached process (to leave out dead ones).
    pub fn stats(&self) -> Stats {
        let g = self.seg.geometry();
        let mut appended = 0u64;
        let mut filled = 0u64;
        for s in 0..g.shards as usize {
            let t = self.seg.tail(s).load(Ordering::Relaxed);
            appended = appended.wrapping_add(t.wrapping_mul(8));
            filled += t.min(self.log_words);
        }
        let counters = stats::sum(&self.seg);
        let (appended, fill) = match self.layout {
            Layout::Log => (appended, filled as f64 / (self.log_words * g.shards) as f64),
            // Nothing is appended: what puts wrote, and the share of ways
            // in use (from a sample of the tag lines).
            Layout::Sets => (counters.bytes_written, self.way_fill()),
        };
        Stats {
            counters,
            capacity_bytes: g.log_bytes * g.shards,
            shards: g.shards,
            index_slots: g.buckets * 8,
            max_value: g.max_value,
            host_id: g.host_id,
            created: g.created,
            appended_bytes: appended,
            log_fill: fill,
            layout: self.layout,
        }
    }

    /// [`Cache::stats`] as a tool that only looks sees it (`scsp stats`):
    /// this handle is not counted among the processes.
    pub fn stats_as_observer(&self) -> Stats {
        let mut s = self.stats();
        if self.counters.is_own() {
            s.counters.processes = s.counters.processes.saturating_sub(1);
        }
        s
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.counters.release(&self.seg);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;

    type Hook = Box<dyn Fn(&Cache)>;

    thread_local! {
        /// Runs in `take` between copying a value and the CAS that takes
        /// it: where another process's take or put lands in a lost race.
        static BEFORE_TAKE_CAS: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    pub(super) fn before_take_cas(c: &Cache) {
        if let Some(hook) = BEFORE_TAKE_CAS.with(|h| h.borrow_mut().take()) {
            hook(c);
        }
    }

    /// A take that copies `key`'s value and loses the race for it to a put
    /// of a value too large for the buffer (the hook runs once).
    fn lose_take_race_to(c: &Cache, newer: Option<Vec<u8>>) -> (Lookup, Vec<u8>) {
        BEFORE_TAKE_CAS.with(|h| {
            *h.borrow_mut() = Some(Box::new(move |c: &Cache| match &newer {
                Some(v) => assert_eq!(c.put(b"key", v, 60), Stored::Ok),
                None => assert!(c.take_vec(b"key").is_some()),
            }))
        });
        let mut buf = vec![0xEEu8; 64];
        let got = c.take(b"key", &mut buf);
        (got, buf)
    }

    #[test]
    fn a_take_that_loses_the_race_then_finds_a_larger_value_copied_nothing() {
        let c = cache();
        assert_eq!(c.put(b"key", &[0x5Au8; 40], 60), Stored::Ok);
        let (got, buf) = lose_take_race_to(&c, Some(vec![0x77u8; 200]));
        assert_eq!(got, Lookup::BufferTooSmall(200));
        assert!(
            !buf.contains(&0x5A) && !buf.contains(&0x77),
            "a value's bytes were left in the buffer: {buf:x?}"
        );
        // The larger value was not taken.
        assert_eq!(c.get_vec(b"key"), Some(vec![0x77u8; 200]));
    }

    #[test]
    fn a_take_that_loses_the_race_to_another_take_leaves_nothing() {
        let c = cache();
        assert_eq!(c.put(b"key", &[0x5Au8; 40], 60), Stored::Ok);
        let (got, buf) = lose_take_race_to(&c, None);
        assert_eq!(got, Lookup::Miss);
        assert!(!buf.contains(&0x5A), "the lost value stayed: {buf:x?}");
    }

    fn cache() -> Cache {
        Cache::in_memory(Geometry::tiny(1, 4, 4096, 256))
    }

    #[test]
    fn a_damaged_entry_is_counted_once_and_unlinked() {
        let c = cache();
        let value = [7u8; 100];
        assert_eq!(c.put(b"key", &value, 60), Stored::Ok);
        let slot = c.locate(b"key");
        // A value word overwritten (as a lapped writer or a stray write
        // would), inside the window.
        let at = ENTRY_HEADER_WORDS + 1 + 3;
        c.seg.log(slot.shard)[at].store(0x5151, Ordering::Relaxed);
        assert_eq!(c.get_vec(b"key"), None);
        assert_eq!(c.get_vec(b"key"), None);
        assert_eq!(c.stats().counters.corrupt, 1, "counted once");
        assert!(c
            .seg
            .bucket(slot.bucket)
            .iter()
            .all(|w| w.load(Ordering::Relaxed) == 0));
        let report = c.verify();
        assert!(report.is_clean(), "{:?}", report.problems);
        // Walking the log steps over the damaged entry word by word.
        assert_eq!(report.skipped_words, (ENTRY_HEADER_WORDS + 1 + 13) as u64);
        assert_eq!(c.put(b"key", &value, 60), Stored::Ok);
        assert_eq!(c.get_vec(b"key").as_deref(), Some(&value[..]));
    }

    #[test]
    fn a_damaged_header_is_unlinked_too() {
        let c = cache();
        assert_eq!(c.put(b"key", b"value", 60), Stored::Ok);
        let slot = c.locate(b"key");
        c.seg.log(slot.shard)[1].store(12345, Ordering::Relaxed); // echoed pos
        assert_eq!(c.get_vec(b"key"), None);
        assert_eq!(c.get_vec(b"key"), None);
        assert_eq!(c.stats().counters.corrupt, 1);
        assert!(c.verify().is_clean());
    }

    /// A lapped writer for real: `key`'s newer entry (20 words) is put
    /// where the stalled reservation of another put lands `offset` words
    /// into it; then the stalled put writes its 12-word entry. (Its
    /// publish is refused, see the next test, so only `append` runs.)
    fn lapped(offset: u64) -> (Cache, index::Slot) {
        let c = cache();
        let slot = c.locate(b"key");
        let tail = c.seg.tail(slot.shard);
        let stalled = 100u64;
        // Others appended more than a lap since the stalled reservation.
        tail.store(stalled + c.log_words - offset, Ordering::Relaxed);
        assert_eq!(c.put(b"key", &[7u8; 100], 60), Stored::Ok);
        let now_tail = tail.load(Ordering::Relaxed);
        // The stalled put's stores (its fetch_add was long ago).
        tail.store(stalled, Ordering::Relaxed);
        let w = c.locate(b"w");
        assert_eq!(w.shard, slot.shard);
        let now = now_secs();
        let _ = c.append(&w, b"w", &[9u8; 40], (now + 60, now), 1, 0);
        tail.store(now_tail, Ordering::Relaxed);
        (c, slot)
    }

    #[test]
    fn lapped_writer_damage_anywhere_in_an_entry_is_counted_once_and_unlinked() {
        // Every offset: the stalled entry's header lands on the newer
        // entry's header, hash, key or value words.
        for offset in 0..20u64 {
            let (c, slot) = lapped(offset);
            assert_eq!(c.get_vec(b"key"), None, "offset {offset}");
            assert_eq!(c.get_vec(b"key"), None, "offset {offset}");
            assert_eq!(c.stats().counters.corrupt, 1, "offset {offset}");
            let linked = c.seg.bucket(slot.bucket).iter();
            assert!(
                linked.map(|w| w.load(Ordering::Relaxed)).all(|w| w == 0),
                "offset {offset}: still linked"
            );
            let report = c.verify();
            assert!(report.is_clean(), "offset {offset}: {:?}", report.problems);
        }
    }

    #[test]
    fn an_entry_larger_than_a_tiny_log_is_refused_not_truncated() {
        let c = Cache::in_memory(Geometry::tiny(1, 1, 256, 1024));
        assert_eq!(c.put(b"k", &[7u8; 1000], 60), Stored::TooLarge);
        assert_eq!(c.put(b"k", &[7u8; 100], 60), Stored::Ok);
        assert_eq!(c.get_vec(b"k"), Some(vec![7u8; 100]));
    }

    #[test]
    fn a_put_whose_reservation_the_log_lapped_publishes_nothing() {
        let c = cache();
        let slot = c.locate(b"key");
        // A put of the key reserved position 0 and stalled; the log
        // lapped it, and a newer put of the key was published meanwhile.
        let tail = c.seg.tail(slot.shard);
        tail.fetch_add(c.log_words, Ordering::Relaxed);
        assert_eq!(c.put(b"key", b"newer", 60), Stored::Ok);
        assert!(!in_window(0, tail.load(Ordering::Relaxed), c.log_words));
        let before = c
            .seg
            .bucket(slot.bucket)
            .each_ref()
            .map(|w| w.load(Ordering::Relaxed));
        // The stalled put publishes now: it must not replace the newer word.
        c.publish(&slot, 0, 8);
        let after = c
            .seg
            .bucket(slot.bucket)
            .each_ref()
            .map(|w| w.load(Ordering::Relaxed));
        assert_eq!(before, after);
        assert_eq!(c.get_vec(b"key").as_deref(), Some(&b"newer"[..]));
        assert_eq!(c.stats().counters.lost, 1);
    }
}
