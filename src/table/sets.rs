//! The sets layout: every session in place (docs/architecture.md, "The
//! sets layout").
//!
//! A key's hash picks two sets of [`SET_WAYS`] ways; it lives in one of
//! their 16 ways. A way is a slot of the segment's slot size holding an
//! entry encoded exactly as in a log (`entry.rs`; its echoed position is
//! the slot's first word), and a tag word; a set's 8 tag words fill one
//! cache line of the index region, apart from the slots:
//!
//! ```text
//!  63                 40 39              18 17           0
//! +---------------------+------------------+--------------+
//! |      tag (24)       |   stored (22)    | version (18) |
//! +---------------------+------------------+--------------+
//! ```
//!
//! - `tag`: the top 24 bits of the key hash, never 0; 0 is an empty way.
//!   A put takes the way holding its key's tag without reading the slot,
//!   so another key of the same tag in the same two sets loses its way:
//!   about one put in a million with both sets full (16 ways of 2^24 tags).
//! - `stored`: the low 22 bits of the unix second the way was written
//!   (48 days, beyond the longest TTL, before they wrap); a put evicts the
//!   way stored longest ago of the key's 16 (two sets of 8 keep far more
//!   of the newest sessions than one of 16: `examples/set_retention.rs`).
//! - `version`: odd while a put writes the slot. A put claims a way with
//!   one CAS that makes the version odd, writes the entry, and publishes it
//!   with a Release CAS to the next even version; a get copies the slot
//!   between an Acquire load of the word and a second load after an
//!   Acquire fence, and keeps the copy only if the word did not change (a
//!   seqlock per way; a copy that 2^17 rewrites of its way overlapped
//!   still has the checksum to fail). A put killed mid-write leaves its way
//!   odd: no get reads it, and the next put that evicts it takes it (I1
//!   NO-WAIT).
//!
//! Two puts that claim one way at once (the second taking it as a dead
//! writer's) can leave a mix of both entries under an even version; the
//! entry checksum makes that a miss, as it does a lapped writer's damage
//! in a log.

use super::entry::{
    copy_value_out, key_equals, load_header, prefetch, prefetch_entry, write_entry, EntryHeader,
    ValueSum, FLAG_TOMBSTONE, FOR_WRITE,
};
use super::{Cache, Lookup, Stored, CAS_RETRIES};
use crate::clock::now_secs;
use crate::segment::layout::{ENTRY_HEADER_WORDS, MAX_KEY, SET_WAYS};
use crate::stats::Counter;
use crate::sync::{fence, AtomicU64, Ordering};

/// Ways a key may live in: those of its two sets.
const CANDIDATES: usize = 2 * SET_WAYS;
const TAG_SHIFT: u32 = 40;
const STORED_SHIFT: u32 = 18;
const STORED_MASK: u64 = (1 << 22) - 1;
const VERSION_MASK: u64 = (1 << 18) - 1;
/// A way claimed this many seconds ago and still being written was left
/// by a writer killed mid-put: any put may take it. A put writes for
/// microseconds; only a writer stopped for seconds loses its way so.
const ABANDONED_SECS: u64 = 2;

/// Where a key lives in the sets layout.
#[derive(Clone, Copy)]
pub(crate) struct Place {
    hash: u64,
    sets: [usize; 2],
    tag: u64,
}

/// The tag lines of a key's two sets; candidate way `i` is word
/// `i % SET_WAYS` of line `i / SET_WAYS`.
type Lines<'a> = [&'a [AtomicU64; SET_WAYS]; 2];

#[inline(always)]
fn word_of<'a>(lines: &Lines<'a>, i: usize) -> &'a AtomicU64 {
    &lines[i / SET_WAYS % 2][i % SET_WAYS]
}

/// The words of a key's candidate ways (Acquire: pairs with the Release
/// CAS that published each).
#[inline(always)]
fn load_ways(lines: &Lines) -> [u64; CANDIDATES] {
    std::array::from_fn(|i| word_of(lines, i).load(Ordering::Acquire))
}

/// The two sets of a key with this hash, of `sets` (a power of two, at
/// least 2): the hash's low bits, and bits of a mix of the whole hash;
/// never one set twice.
#[inline]
fn sets_for(hash: u64, sets: u64) -> [usize; 2] {
    let mask = sets - 1;
    let a = hash & mask;
    let mut b = ((hash ^ hash >> 29).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 20) & mask;
    if b == a {
        b = a ^ 1;
    }
    [a as usize, b as usize]
}

#[inline]
fn tag_word(tag: u64, stored: u64, version: u64) -> u64 {
    tag << TAG_SHIFT | (stored & STORED_MASK) << STORED_SHIFT | version & VERSION_MASK
}

/// The tag of a key with this hash: its top 24 bits, never 0.
#[inline]
fn tag_for(hash: u64) -> u64 {
    match hash >> TAG_SHIFT {
        0 => 1,
        t => t,
    }
}

#[inline]
fn tag_of(word: u64) -> u64 {
    word >> TAG_SHIFT
}

#[inline]
fn version_of(word: u64) -> u64 {
    word & VERSION_MASK
}

/// Seconds since the way was stored, modulo 2^22.
#[inline]
fn age(word: u64, now: u64) -> u64 {
    now.wrapping_sub(word >> STORED_SHIFT) & STORED_MASK
}

/// A way holding a session, or being written.
#[inline]
fn in_use(word: u64) -> bool {
    tag_of(word) != 0 || word & 1 == 1
}

/// Sets `stats` looks at to tell how full the ways are.
const FILL_SAMPLE_SETS: u64 = 4096;

/// Bit `i` set for each way `i` of one set that carries `tag` and is not
/// being written.
#[inline(always)]
fn readable_in(words: &[u64; SET_WAYS], tag: u64) -> u32 {
    let mut m = 0u32;
    for (i, &w) in words.iter().enumerate() {
        m |= u32::from(tag_of(w) == tag && w & 1 == 0) << i;
    }
    m
}

/// [`readable_in`] over a key's 16 candidate ways.
#[inline(always)]
fn readable_matches(words: &[u64; CANDIDATES], tag: u64) -> u32 {
    let (lo, hi) = words.split_at(SET_WAYS);
    let lo: &[u64; SET_WAYS] = lo.try_into().expect("a set is 8 words");
    let hi: &[u64; SET_WAYS] = hi.try_into().expect("a set is 8 words");
    readable_in(lo, tag) | readable_in(hi, tag) << SET_WAYS
}

/// The way a put of a key with `tag` writes: the one holding the tag,
/// else an empty one (of the first set unless it has two fewer empty
/// ways than the second), else one a writer claimed [`ABANDONED_SECS`] or more
/// ago and never published, else the one stored longest ago (a way being
/// written last of all: it is most likely a live writer's). Also whether
/// that evicts another session.
///
/// A way with the key's tag is taken as the key's without reading its
/// slot (a second miss before every put): one put in about a million into
/// full sets so evicts another key of the same tag rather than the oldest
/// session, as the log layout's duplicate clearing does.
fn choose_way(tag: u64, words: &[u64; CANDIDATES], now: u64) -> (usize, bool) {
    if let Some(i) = first_bit(readable_matches(words, tag)) {
        return (i, false);
    }
    if let Some(i) = empty_way_of(words) {
        return (i, false);
    }
    // A way claimed long ago and never published: its writer died (or has
    // been stopped for seconds, and loses the way to this put).
    if let Some(i) = words
        .iter()
        .position(|&w| w & 1 == 1 && age(w, now) >= ABANDONED_SECS)
    {
        return (i, false);
    }
    // Of ways stored in the same second (a busy table stores thousands a
    // second), the one to go follows the new key's tag, so in effect is
    // drawn at random: a fixed choice would make each new session evict the
    // one stored just before it.
    let start = tag as usize % CANDIDATES;
    let oldest = (0..CANDIDATES)
        .map(|j| (start + j) % CANDIDATES)
        .max_by_key(|&i| (words[i] & 1 == 0, age(words[i], now)))
        .unwrap_or(0);
    (oldest, true)
}

/// An empty way for a new key: the first set's while it has at most one
/// empty way fewer than the second, so most sessions stay where a get
/// looks first, and the second's beyond that, so that a set does not fill
/// while its partner has room: a table filled from empty to three
/// quarters loses 0.04 % of its sessions to full pairs of sets, where
/// always the first set's would lose 1 % (docs/architecture.md, "The
/// sets layout").
fn empty_way_of(words: &[u64; CANDIDATES]) -> Option<usize> {
    let mut empty = 0u32;
    for (i, &w) in words.iter().enumerate() {
        empty |= u32::from(tag_of(w) == 0 && w & 1 == 0) << i;
    }
    let first = empty & ((1 << SET_WAYS) - 1);
    let second = empty >> SET_WAYS;
    if first != 0 && first.count_ones() + 1 >= second.count_ones() {
        first_bit(first)
    } else {
        first_bit(second << SET_WAYS).or_else(|| first_bit(first))
    }
}

fn first_bit(m: u32) -> Option<usize> {
    (m != 0).then(|| m.trailing_zeros() as usize)
}

/// What a lookup is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Get,
    Take,
    /// A get that counts no hit or miss.
    Peek,
}

/// How one slot's entry checked out.
enum Read {
    Hit(usize),
    Small(usize),
    Miss,
    /// Damaged for good: the way's word did not change while it was read.
    Damaged,
}

impl Cache {
    #[inline]
    fn place(&self, key: &[u8]) -> Place {
        let hash = self.hash_key(key);
        Place {
            hash,
            sets: sets_for(hash, self.sets),
            tag: tag_for(hash),
        }
    }

    #[inline]
    fn lines(&self, p: &Place) -> Lines<'_> {
        p.sets.map(|s| self.seg.bucket(s))
    }

    /// First word of the slot of way `way` of `set`, in the slots (the one
    /// shard log of a sets segment).
    #[inline]
    fn slot_at(&self, set: usize, way: usize) -> u64 {
        ((set * SET_WAYS + way) as u64).wrapping_mul(self.slot_words)
    }

    /// First word of the slot of `p`'s candidate way `i`.
    #[inline]
    fn slot_pos(&self, p: &Place, i: usize) -> u64 {
        self.slot_at(p.sets[i / SET_WAYS % 2], i % SET_WAYS)
    }

    #[inline]
    fn slots(&self) -> &[AtomicU64] {
        self.seg.log(0)
    }

    /// [`Cache::put_entry`] for the sets layout; sizes are checked.
    pub(super) fn put_in_set(
        &self,
        key: &[u8],
        value: &[u8],
        (expiry, now): (u64, u64),
        origin: u32,
        flags: u8,
    ) -> Stored {
        if flags & FLAG_TOMBSTONE != 0 {
            self.remove_in_set(key);
            return Stored::Ok;
        }
        let p = self.place(key);
        let tags = self.lines(&p);
        let slots = self.slots();
        let mut h = EntryHeader {
            flags,
            key_len: key.len(),
            value_len: value.len(),
            pos: 0,
            hash: p.hash,
            expiry,
            stored_at: now as u32,
            origin,
            checksum: 0,
        };
        for _ in 0..CAS_RETRIES {
            let words = load_ways(&tags);
            let (way, evicting) = choose_way(p.tag, &words, now);
            let old = words[way];
            let pos = self.slot_pos(&p, way);
            // Start taking the slot's lines for writing, so that their
            // misses overlap with the claim.
            prefetch::<FOR_WRITE>(slots, pos, h.words() as usize);
            // Odd: no get reads the slot until the Release CAS below.
            let claimed = tag_word(p.tag, now, version_of(old) + 1 + (old & 1));
            if word_of(&tags, way)
                .compare_exchange(old, claimed, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // Pairs with the Acquire fence in `read_slot`: a get that reads
            // any word written below then sees the claim (or later) when it
            // loads the tag word again, and drops its copy.
            fence(Ordering::Release);
            write_entry(slots, pos, &mut h, key, value);
            let published = tag_word(p.tag, now, version_of(claimed).wrapping_add(1));
            // Release pairs with the Acquire loads of the word in gets;
            // SeqCst with the load in `Segment::replicated` below, as a
            // take's CAS (a bridge that marked the segment after this put
            // missed it finds the way published). It fails only if another
            // put took the way as a dead writer's meanwhile; the slot is
            // then that put's.
            if word_of(&tags, way)
                .compare_exchange(claimed, published, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
            {
                self.count(Counter::Lost);
                return Stored::Ok;
            }
            self.counters
                .add(&self.seg, Counter::BytesWritten, h.words() * 8);
            if evicting {
                self.count(Counter::Evictions);
            }
            self.keep_lowest_copy(&p, &tags, way, published);
            if origin == self.host_id && self.seg.replicated() {
                let set = p.sets[way / SET_WAYS % 2];
                self.note_put(
                    (set * SET_WAYS + way % SET_WAYS) as u64,
                    version_of(published),
                );
            }
            self.count(Counter::Puts);
            return Stored::Ok;
        }
        self.count(Counter::Lost);
        Stored::Ok
    }

    /// The header of the slot of `way` if it holds an entry for `key`
    /// (header and key only: a hint for choosing a way or removing one,
    /// not a verified read).
    fn header_for_key(&self, p: &Place, way: usize, key: &[u8]) -> Option<EntryHeader> {
        let slots = self.slots();
        let pos = self.slot_pos(p, way);
        EntryHeader::decode(&load_header(slots, pos)).filter(|h| {
            h.pos == pos
                && h.hash == p.hash
                && h.key_len == key.len()
                && key_equals(slots, pos.wrapping_add(ENTRY_HEADER_WORDS as u64), key)
        })
    }

    /// Leave one copy of the key (by tag, as `choose_way` does) after this
    /// put published it in way `mine` (word `published`): two puts of a
    /// key at once may each have taken a way, the second seeing the first's
    /// still being written. The copy in the lowest way is kept, as gets and
    /// puts look there first: this put empties copies above its own, or
    /// its own if one below is published. Both puts do this once both have
    /// published, so one copy stays whichever runs first.
    fn keep_lowest_copy(&self, p: &Place, tags: &Lines, mine: usize, published: u64) {
        let words: [u64; CANDIDATES] =
            std::array::from_fn(|i| word_of(tags, i).load(Ordering::Relaxed));
        let others = readable_matches(&words, p.tag) & !(1 << mine);
        if others & ((1 << mine) - 1) != 0 {
            let _ = self.empty_way(tags, mine, published, Ordering::Relaxed);
            return;
        }
        let mut m = others;
        while let Some(i) = first_bit(m) {
            m &= m - 1;
            let _ = self.empty_way(tags, i, words[i], Ordering::Relaxed);
        }
    }

    /// Replace the word `seen` of way `i` with an empty one (a new version,
    /// so a get copying the slot meanwhile drops its copy).
    fn empty_way(&self, tags: &Lines, i: usize, seen: u64, order: Ordering) -> bool {
        let empty = tag_word(0, seen >> STORED_SHIFT, version_of(seen).wrapping_add(2));
        word_of(tags, i)
            .compare_exchange(seen, empty, order, Ordering::Relaxed)
            .is_ok()
    }

    /// [`Cache::get`] for the sets layout.
    #[inline(always)]
    pub(super) fn get_in_set(&self, key: &[u8], buf: &mut [u8]) -> Lookup {
        self.lookup_in_set(key, buf, Want::Get)
    }

    /// [`Cache::take`] for the sets layout.
    #[inline(always)]
    pub(super) fn take_in_set(&self, key: &[u8], buf: &mut [u8]) -> Lookup {
        self.lookup_in_set(key, buf, Want::Take)
    }

    /// A get that counts nothing: what the bridge asks of a key.
    pub(super) fn peek_in_set(&self, key: &[u8], buf: &mut [u8]) -> Lookup {
        self.lookup_in_set(key, buf, Want::Peek)
    }

    #[inline(always)]
    fn lookup_in_set(&self, key: &[u8], buf: &mut [u8], want: Want) -> Lookup {
        if key.is_empty() || key.len() > MAX_KEY {
            self.count_unless_peek(want, Counter::Misses);
            return Lookup::Miss;
        }
        let p = self.place(key);
        let tags = self.lines(&p);
        // The first set first: a put prefers its empty ways
        // (`empty_way_of`), so most sessions are there, and a get then
        // reads one tag line, not two (fewer lines that other processes'
        // puts take away).
        for _ in 0..CAS_RETRIES {
            let mut raced = false;
            for (set, line) in tags.iter().enumerate() {
                // Acquire pairs with the Release CAS that published each word.
                let words = line.each_ref().map(|w| w.load(Ordering::Acquire));
                let mut m = readable_in(&words, p.tag);
                // At most SET_WAYS iterations (I4 BOUNDED).
                while m != 0 {
                    let w = m.trailing_zeros() as usize;
                    m &= m - 1;
                    let i = set * SET_WAYS + w;
                    match self.read_slot(&p, &tags, i, words[w], key, buf) {
                        Read::Hit(n) => {
                            if want != Want::Take {
                                self.count_unless_peek(want, Counter::Hits);
                                return Lookup::Hit(n);
                            }
                            // SeqCst as in the log layout's take: exactly one
                            // taker's CAS empties the way; and with the load
                            // in `Segment::replicated` (see `put_in_set`).
                            if self.empty_way(&tags, i, words[w], Ordering::SeqCst) {
                                self.count(Counter::Hits);
                                self.count(Counter::Takes);
                                self.note_gone_if_replicated(key);
                                return Lookup::Hit(n);
                            }
                            // Lost to another take or a put: what was copied is
                            // not ours to hand out.
                            buf[..n].fill(0);
                            raced = true;
                        }
                        Read::Small(n) => return Lookup::BufferTooSmall(n),
                        Read::Miss => {}
                        Read::Damaged => {
                            self.count(Counter::Corrupt);
                            let _ = self.empty_way(&tags, i, words[w], Ordering::Relaxed);
                        }
                    }
                }
            }
            if !raced {
                break;
            }
        }
        self.count_unless_peek(want, Counter::Misses);
        Lookup::Miss
    }

    #[inline(always)]
    fn count_unless_peek(&self, want: Want, c: Counter) {
        if want != Want::Peek {
            self.count(c);
        }
    }

    /// Tell the bridge, if one has run on the segment, that `key` was
    /// taken or removed here.
    pub(super) fn note_gone_if_replicated(&self, key: &[u8]) {
        if self.seg.replicated() {
            self.note_gone(key);
        }
    }

    /// Copy and verify the slot of way `i`, whose word was `word` (I3
    /// VERIFIED-READ): the header is this slot's and this key's, the entry
    /// unexpired, and after the copy the word is unchanged and the checksum
    /// matches. A failed check leaves no byte of the copy in `buf`.
    #[inline(always)]
    fn read_slot(
        &self,
        p: &Place,
        tags: &Lines,
        i: usize,
        word: u64,
        key: &[u8],
        buf: &mut [u8],
    ) -> Read {
        let slots = self.slots();
        let pos = self.slot_pos(p, i);
        prefetch_entry(slots, pos, self.slot_words as usize);
        let header = load_header(slots, pos);
        let unchanged = || {
            // Pairs with the Release fence after the claim in `put_in_set`.
            fence(Ordering::Acquire);
            word_of(tags, i).load(Ordering::Relaxed) == word
        };
        // Any entry that fails these checks under an unchanged word is
        // damage (a whole put wrote it, and published it, before `word`);
        // under a changed one it is a lost race.
        let damaged_or_miss = |unchanged: bool| if unchanged { Read::Damaged } else { Read::Miss };
        let Some(h) = EntryHeader::decode(&header) else {
            return damaged_or_miss(unchanged());
        };
        // Bounded: lengths are checked before any copy uses them.
        if h.pos != pos
            || h.flags & FLAG_TOMBSTONE != 0
            || h.value_len > self.max_value
            || h.words() > self.slot_words
        {
            return damaged_or_miss(unchanged());
        }
        if h.hash != p.hash || h.key_len != key.len() {
            // Another key of this set with the same tag (one lookup in
            // about a million when both sets are full), or damage.
            let set = p.sets[i / SET_WAYS % 2];
            return if sets_for(h.hash, self.sets).contains(&set) && tag_for(h.hash) == p.tag {
                Read::Miss
            } else {
                damaged_or_miss(unchanged())
            };
        }
        if !key_equals(slots, pos.wrapping_add(ENTRY_HEADER_WORDS as u64), key) {
            return Read::Miss;
        }
        if h.expiry < now_secs() {
            self.count(Counter::Expired);
            return Read::Miss;
        }
        if h.value_len > buf.len() {
            return Read::Small(h.value_len);
        }
        let value = &mut buf[..h.value_len];
        let sum = copy_value_out(
            slots,
            pos.wrapping_add((ENTRY_HEADER_WORDS + key.len().div_ceil(8)) as u64),
            value,
            ValueSum::seed(&header),
        );
        if !unchanged() {
            value.fill(0);
            return Read::Miss;
        }
        if sum != h.checksum {
            value.fill(0);
            return Read::Damaged;
        }
        Read::Hit(h.value_len)
    }

    /// [`Cache::holds`] for the sets layout; `scratch` is `value`'s length.
    pub(super) fn holds_in_set(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: u64,
        origin: u32,
        scratch: &mut [u8],
    ) -> bool {
        if !matches!(self.peek_in_set(key, scratch), Lookup::Hit(n) if n == value.len())
            || scratch != value
        {
            return false;
        }
        // The value is verified; expiry and origin from the key's header (a
        // put racing this one at worst makes the bridge store it again).
        let p = self.place(key);
        let words = load_ways(&self.lines(&p));
        let m = readable_matches(&words, p.tag);
        first_bit(m)
            .and_then(|i| self.header_for_key(&p, i, key))
            .is_some_and(|h| h.expiry == expiry && h.origin == origin)
    }

    /// [`Cache::remove`] for the sets layout: empty every way holding `key`.
    pub(super) fn remove_in_set(&self, key: &[u8]) -> bool {
        let p = self.place(key);
        let tags = self.lines(&p);
        let words = load_ways(&tags);
        let mut m = readable_matches(&words, p.tag);
        let mut removed = false;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let Some(h) = self.header_for_key(&p, i, key) else {
                continue;
            };
            // An expired session's way is emptied too, but it was no live
            // session: not counted as removed.
            if self.empty_way(&tags, i, words[i], Ordering::SeqCst) && h.expiry >= now_secs() {
                removed = true;
            }
        }
        removed
    }

    /// Start fetching the tag lines of `key`'s two sets.
    pub(super) fn prefetch_set(&self, key: &[u8]) {
        for line in self.lines(&self.place(key)) {
            prefetch::<FOR_WRITE>(line, 0, SET_WAYS);
        }
    }
}

/// Walks of a sets segment for `scsp stats` and `scsp verify`.
impl Cache {
    /// Check way `i` of `set`, whose word was `word`, for any key:
    /// `Ok(Some(h))` a verified entry, `Ok(None)` rewritten while read,
    /// `Err` damage.
    fn check_way(
        &self,
        set: usize,
        i: usize,
        word: u64,
        scratch: &mut [u8],
    ) -> Result<Option<EntryHeader>, String> {
        let line = self.seg.bucket(set);
        let pos = self.slot_at(set, i);
        // The slot's end as the "tail": an entry must fit its slot.
        let read = self.read_any(0, pos, pos + self.slot_words, scratch);
        // Pairs with the Release fence after a put's claim.
        fence(Ordering::Acquire);
        if line[i].load(Ordering::Relaxed) != word {
            return Ok(None);
        }
        let h = read.map_err(|e| format!("set {set} way {i}: {e}"))?;
        if !sets_for(h.hash, self.sets).contains(&set) || tag_for(h.hash) != tag_of(word) {
            return Err(format!(
                "set {set} way {i}: holds an entry of another set or tag"
            ));
        }
        Ok(Some(h))
    }

    /// Ways of the segment: sets times [`SET_WAYS`].
    pub(crate) fn ways(&self) -> u64 {
        self.sets * SET_WAYS as u64
    }

    /// The session in `way` (set * 8 + way), verified, if the way holds
    /// one (and, given `version`, still that version of it): what a bridge
    /// sends of a way. Reuses `scratch`.
    pub(super) fn copy_way(
        &self,
        way: u64,
        version: Option<u64>,
        scratch: &mut Vec<u8>,
    ) -> Option<super::journal::JournalEntry> {
        if way >= self.ways() {
            return None;
        }
        let (set, i) = (
            (way / SET_WAYS as u64) as usize,
            (way % SET_WAYS as u64) as usize,
        );
        // Acquire pairs with the Release CAS that published the word.
        let word = self.seg.bucket(set)[i].load(Ordering::Acquire);
        if word & 1 == 1 || tag_of(word) == 0 || version.is_some_and(|v| v != version_of(word)) {
            return None;
        }
        scratch.resize(self.max_value + MAX_KEY + 8, 0);
        let h = self.check_way(set, i, word, scratch).ok().flatten()?;
        if h.flags & FLAG_TOMBSTONE != 0 {
            return None;
        }
        Some(super::journal::JournalEntry::copied(way, &h, scratch, true))
    }

    /// Every way's word, with its set and way: the walk the functions
    /// below share.
    fn each_way(&self) -> impl Iterator<Item = (usize, usize, u64)> + '_ {
        (0..self.sets as usize).flat_map(move |set| {
            let line = self.seg.bucket(set);
            (0..SET_WAYS).map(move |i| (set, i, line[i].load(Ordering::Acquire)))
        })
    }

    /// Ways holding a session, or being written.
    #[cfg(test)]
    fn used_ways(&self) -> u64 {
        self.each_way().filter(|&(_, _, w)| in_use(w)).count() as u64
    }

    /// The share of ways holding a session or being written, from at most
    /// [`FILL_SAMPLE_SETS`] sets spread over the table: `stats` runs on
    /// every metrics scrape, and a 16 GiB segment has 512 MiB of tag words.
    pub(super) fn way_fill(&self) -> f64 {
        let step = (self.sets / FILL_SAMPLE_SETS).max(1) as usize;
        let (mut used, mut seen) = (0u64, 0u64);
        for set in (0..self.sets as usize).step_by(step) {
            let line = self.seg.bucket(set);
            used += line
                .iter()
                .filter(|w| in_use(w.load(Ordering::Relaxed)))
                .count() as u64;
            seen += SET_WAYS as u64;
        }
        used as f64 / seen.max(1) as f64
    }

    /// [`Cache::occupancy`] for the sets layout.
    pub(super) fn occupancy_of_sets(&self) -> super::Occupancy {
        let mut tally = super::inspect::OccupancyTally::new();
        let mut scratch = vec![0u8; self.max_value + 256];
        for (set, i, word) in self.each_way() {
            if word & 1 == 1 {
                tally.stale();
            } else if tag_of(word) != 0 {
                tally.add(self.check_way(set, i, word, &mut scratch));
            }
        }
        tally.finish()
    }

    /// [`Cache::verify`] for the sets layout.
    pub(super) fn verify_sets(
        &self,
        problem: impl Fn(&mut super::VerifyReport, String),
    ) -> super::VerifyReport {
        let mut rep = super::VerifyReport::default();
        let mut scratch = vec![0u8; self.max_value + 256];
        for (set, i, word) in self.each_way() {
            if word & 1 == 1 {
                rep.unfinished_ways += 1;
                continue;
            }
            if tag_of(word) == 0 {
                continue;
            }
            rep.index_words += 1;
            match self.check_way(set, i, word, &mut scratch) {
                Ok(Some(_)) => rep.good_entries += 1,
                Ok(None) => {}
                Err(e) => problem(&mut rep, e),
            }
        }
        rep
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::segment::Geometry;

    fn cache() -> Cache {
        Cache::in_memory(Geometry::tiny_sets(16, 176))
    }

    /// `n` distinct keys that all have the two sets of the first one (in
    /// either order), with the place of the first.
    fn keys_of_one_pair(c: &Cache, n: usize) -> (Place, Vec<Vec<u8>>) {
        let key = |i: u32| format!("key-{i}").into_bytes();
        let first = c.place(&key(0));
        let pair = |p: &Place| {
            let mut s = p.sets;
            s.sort();
            s
        };
        let keys = (0u32..)
            .map(key)
            .filter(|k| pair(&c.place(k)) == pair(&first))
            .take(n)
            .collect();
        (first, keys)
    }

    /// The candidate way of `p` whose word has a tag.
    fn used_way(c: &Cache, p: &Place) -> usize {
        let lines = c.lines(p);
        (0..CANDIDATES)
            .find(|&i| tag_of(word_of(&lines, i).load(Ordering::Relaxed)) != 0)
            .expect("a way in use")
    }

    #[test]
    fn of_ways_stored_in_one_second_the_new_key_evicts_one_its_tag_picks() {
        // 16 sessions of other keys, all stored at second 1000, published.
        let words: [u64; CANDIDATES] = std::array::from_fn(|i| tag_word(0x100 + i as u64, 1000, 2));
        // New keys' tags, none of them held.
        let tags = || (0..64u64).map(|t| 0x1_0000 + t * 0x35);
        let chosen: std::collections::HashSet<usize> = tags()
            .map(|tag| {
                let (way, evicting) = choose_way(tag, &words, 1000);
                assert!(evicting);
                way
            })
            .collect();
        // Spread over the ways, not always the same one.
        assert!(chosen.len() >= 12, "{chosen:?}");
        // A way stored a second earlier still goes first, whatever the tag.
        let mut older = words;
        older[5] = tag_word(0x105, 999, 2);
        for tag in tags() {
            assert_eq!(choose_way(tag, &older, 1000), (5, true));
        }
    }

    #[test]
    fn a_new_key_takes_the_first_sets_empty_way_unless_it_has_two_fewer() {
        // `used` ways of the first set and of the second in use.
        let ways = |first: usize, second: usize| -> [u64; CANDIDATES] {
            std::array::from_fn(|i| {
                let used = if i < SET_WAYS {
                    i < first
                } else {
                    i - SET_WAYS < second
                };
                if used {
                    tag_word(7, 0, 2)
                } else {
                    0
                }
            })
        };
        assert_eq!(empty_way_of(&ways(0, 0)), Some(0));
        assert_eq!(empty_way_of(&ways(3, 2)), Some(3), "one fewer: the first");
        assert_eq!(empty_way_of(&ways(3, 1)), Some(9), "two fewer: the second");
        assert_eq!(empty_way_of(&ways(8, 6)), Some(14));
        assert_eq!(empty_way_of(&ways(6, 8)), Some(6));
        assert_eq!(empty_way_of(&ways(8, 8)), None);
        // A way being written (odd, no tag yet) is not empty.
        let mut w = ways(7, 8);
        w[7] = 1;
        assert_eq!(empty_way_of(&w), None);
    }

    #[test]
    fn a_key_has_two_different_sets() {
        let c = cache();
        for i in 0..1000u32 {
            let p = c.place(&i.to_le_bytes());
            assert_ne!(p.sets[0], p.sets[1]);
            assert!(p.sets.iter().all(|&s| (s as u64) < c.sets));
        }
    }

    #[test]
    fn put_get_take_remove_and_overwrite_in_place() {
        let c = cache();
        assert_eq!(c.put(b"a", b"one", 60), Stored::Ok);
        assert_eq!(c.get_vec(b"a").as_deref(), Some(&b"one"[..]));
        assert_eq!(c.put(b"a", b"two", 60), Stored::Ok);
        assert_eq!(c.get_vec(b"a").as_deref(), Some(&b"two"[..]));
        assert_eq!(c.used_ways(), 1, "an overwrite reuses the key's way");
        let mut small = [0u8; 2];
        assert_eq!(c.take(b"a", &mut small), Lookup::BufferTooSmall(3));
        assert_eq!(c.take_vec(b"a").as_deref(), Some(&b"two"[..]));
        assert_eq!(c.take_vec(b"a"), None);
        assert_eq!(c.put(b"b", b"x", 60), Stored::Ok);
        assert!(c.remove(b"b"));
        assert!(!c.remove(b"b"));
        assert_eq!(c.get_vec(b"b"), None);
        assert_eq!(c.used_ways(), 0);
    }

    #[test]
    fn what_does_not_fit_a_slot_is_refused() {
        let c = cache();
        // A 256-byte slot: a 48-byte header, a 32-byte key and 176 bytes.
        assert_eq!(c.put(&[1; 32], &[2; 176], 60), Stored::Ok);
        assert_eq!(c.put(&[1; 32], &[2; 177], 60), Stored::TooLarge);
        assert_eq!(c.put(&[1; 200], &[2; 100], 60), Stored::TooLarge);
        assert_eq!(c.put(&[], b"v", 60), Stored::BadKey);
        assert_eq!(c.get(&[], &mut [0; 8]), Lookup::Miss);
    }

    #[test]
    fn full_sets_evict_the_way_stored_longest_ago_of_both() {
        let c = cache();
        let (p, keys) = keys_of_one_pair(&c, CANDIDATES + 1);
        for k in &keys[..CANDIDATES] {
            assert_eq!(c.put(k, b"v", 60), Stored::Ok);
        }
        assert_eq!(c.stats().counters.evictions, 0, "16 keys fill both sets");
        // Make way 11 (in the second set) the oldest: stored 100 s ago.
        let lines = c.lines(&p);
        let w = word_of(&lines, 11).load(Ordering::Relaxed);
        let old = tag_word(tag_of(w), now_secs() - 100, version_of(w));
        word_of(&lines, 11).store(old, Ordering::Relaxed);
        let h = EntryHeader::decode(&load_header(c.slots(), c.slot_pos(&p, 11))).unwrap();
        let victim = (0..CANDIDATES)
            .find(|&i| c.hash_key(&keys[i]) == h.hash)
            .expect("one of the keys is in way 11");
        assert_eq!(c.put(&keys[CANDIDATES], b"new", 60), Stored::Ok);
        assert_eq!(c.get_vec(&keys[victim]), None, "the oldest went");
        assert_eq!(c.get_vec(&keys[CANDIDATES]).as_deref(), Some(&b"new"[..]));
        for (i, k) in keys[..CANDIDATES].iter().enumerate() {
            assert_eq!(c.get_vec(k).is_some(), i != victim, "key {i}");
        }
        assert_eq!(c.stats().counters.evictions, 1);
    }

    #[test]
    fn a_way_a_killed_writer_left_is_skipped_then_taken_by_a_later_put() {
        let c = cache();
        let (p, keys) = keys_of_one_pair(&c, CANDIDATES + 2);
        assert_eq!(c.put(&keys[0], b"v", 60), Stored::Ok);
        let lines = c.lines(&p);
        let way = used_way(&c, &p);
        let word = word_of(&lines, way);
        // The writer of a new version claimed the way and died.
        let w = word.load(Ordering::Relaxed);
        let claimed = tag_word(tag_of(w), now_secs(), version_of(w) + 1);
        word.store(claimed, Ordering::Relaxed);
        assert_eq!(
            c.get_vec(&keys[0]),
            None,
            "no get reads a way being written"
        );
        assert_eq!(c.verify().unfinished_ways, 1);
        // Fill both sets: while the claim is fresh, puts evict others.
        for k in &keys[1..=CANDIDATES] {
            assert_eq!(c.put(k, b"w", 60), Stored::Ok);
        }
        assert_eq!(word.load(Ordering::Relaxed), claimed);
        assert_eq!(c.stats().counters.evictions, 1);
        // Seconds later it is any put's, before any live session.
        let abandoned = tag_word(tag_of(w), now_secs() - ABANDONED_SECS, version_of(w) + 1);
        word.store(abandoned, Ordering::Relaxed);
        assert_eq!(c.put(&keys[CANDIDATES + 1], b"again", 60), Stored::Ok);
        assert_eq!(word.load(Ordering::Relaxed) & 1, 0, "published");
        assert_eq!(c.stats().counters.evictions, 1, "no session evicted");
        assert_eq!(
            c.get_vec(&keys[CANDIDATES + 1]).as_deref(),
            Some(&b"again"[..])
        );
        let report = c.verify();
        assert!(
            report.is_clean() && report.unfinished_ways == 0,
            "{report:?}"
        );
    }

    #[test]
    fn versions_wrap_and_stay_odd_while_written() {
        let c = cache();
        assert_eq!(c.put(b"k", b"1", 60), Stored::Ok);
        let p = c.place(b"k");
        let lines = c.lines(&p);
        let word = word_of(&lines, used_way(&c, &p));
        let w = word.load(Ordering::Relaxed);
        word.store(
            tag_word(tag_of(w), now_secs(), VERSION_MASK - 1),
            Ordering::Relaxed,
        );
        assert_eq!(c.put(b"k", b"2", 60), Stored::Ok);
        assert_eq!(version_of(word.load(Ordering::Relaxed)), 0);
        assert_eq!(c.get_vec(b"k").as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn a_damaged_slot_is_a_miss_counted_once_and_its_way_emptied() {
        let c = cache();
        assert_eq!(c.put(b"k", &[7; 100], 60), Stored::Ok);
        let p = c.place(b"k");
        let at = c.slot_pos(&p, used_way(&c, &p)) as usize + ENTRY_HEADER_WORDS + 4 + 3;
        c.slots()[at].fetch_xor(1 << 9, Ordering::Relaxed);
        let mut buf = [0u8; 176];
        assert_eq!(c.get(b"k", &mut buf), Lookup::Miss);
        assert_eq!(buf, [0; 176], "nothing of the damaged value is left");
        assert_eq!(c.get(b"k", &mut buf), Lookup::Miss);
        assert_eq!(c.stats().counters.corrupt, 1);
        assert_eq!(c.used_ways(), 0);
    }
}
