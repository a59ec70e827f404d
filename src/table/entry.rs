//! Entries in a shard log, and the word-by-word copies in and out of them.
//!
//! An entry is 8-byte aligned and may wrap around the end of the circular
//! log: every word index is masked, so no offset read from shared memory can
//! reach outside the log.
//!
//! ```text
//!  word 0  | magic:16 | flags:8 | key_len:8 | value_len:32 |
//!  word 1  | pos: where this entry starts, in words (echoed) |
//!  word 2  | hash: xxh3-64 of the key, seeded per segment   |
//!  word 3  | expiry: unix seconds                           |
//!  word 4  | stored_at: unix seconds:32 | origin host:32    |
//!  word 5  | checksum: of words 0..=4 and the value (below) |
//!  word 6… | key, zero-padded to 8 bytes                    |
//!          | value, zero-padded to 8 bytes                  |
//! ```
//!
//! checksum: computed while the value is copied in (`append`) and out
//! (`get`, `read_any`), so there is no second pass over the value. With
//! `seed = w0 ^ w1.rotl(13) ^ w2.rotl(29) ^ w3.rotl(41) ^ w4.rotl(53)`, each
//! of four lanes keeps two sums, starting at `a = seed ^ K[l]` (`K` =
//! `SUM_LANES`) and `b = 0`. Value word `j` (little endian, the last one
//! zero-padded) goes into lane `j % 4`, its low 32-bit half and then its
//! high half, each as `a += half; b += a` (wrapping: a Fletcher checksum
//! over the lane's 32-bit halves, in 64-bit sums). With
//! `x[l] = fmix64(a ^ b.rotl(32))` (murmur3's finaliser), the result is
//! `x[0] ^ x[1].rotl(16) ^ x[2].rotl(32) ^ x[3].rotl(48)`.
//!
//! - `a` is the sum of the lane's halves and `b` weighs each half by its
//!   distance from the lane's end, so changed, swapped or shifted words
//!   change them. Halves are below 2^32 and a lane holds at most 4096 of
//!   them (64 KiB values), so a change moves `a` and `b` by less than 2^64:
//!   the sums never wrap a change away. One or two flipped bits in a lane
//!   always change its `(a, b)` (two flips leave `a` alone only if they are
//!   the same bit, set in one half and cleared in another; then `b` moves
//!   by that bit times their distance).
//! - The 64-bit finish lets a changed `(a, b)` through with odds of about
//!   2^-64, as it does random damage, a torn mix of two entries (which the
//!   post-copy tail check also catches) or damaged header words. It detects
//!   tearing and damage; it is not a MAC.
//! - No multiply per word: the copy loops run at about the speed of the
//!   copy, and a group of four words is one 32-byte vector step (`bulk`).
//!
//! The echoed `pos` makes the log self-synchronising: a walker that lands in
//! the middle of an entry (or in a hole left by a killed writer) steps one
//! word at a time until a word 0 with the magic is followed by its own
//! position.

use super::bulk;
use crate::segment::layout::ENTRY_HEADER_WORDS;
use crate::sync::{AtomicU64, Ordering};

pub(crate) const ENTRY_MAGIC: u64 = 0xE5C5;
/// The entry records a removal (or a `take`); it holds no value.
pub const FLAG_TOMBSTONE: u8 = 1;

/// The decoded header of an entry. Nothing in it is trusted until checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Entry flags ([`FLAG_TOMBSTONE`]).
    pub flags: u8,
    /// Key length in bytes.
    pub key_len: usize,
    /// Value length in bytes.
    pub value_len: usize,
    /// Position of the entry in its shard log, in words.
    pub pos: u64,
    /// Keyed hash of the key.
    pub hash: u64,
    /// Expiry, unix seconds.
    pub expiry: u64,
    /// When the entry was written, unix seconds (low 32 bits).
    pub stored_at: u32,
    /// Host that created the entry.
    pub origin: u32,
    /// Checksum over the header words and value.
    pub checksum: u64,
}

impl EntryHeader {
    /// Words the whole entry occupies.
    #[inline]
    pub fn words(&self) -> u64 {
        (ENTRY_HEADER_WORDS + self.key_len.div_ceil(8) + self.value_len.div_ceil(8)) as u64
    }

    pub(crate) fn encode(&self) -> [u64; ENTRY_HEADER_WORDS] {
        let w0 = ENTRY_MAGIC << 48
            | (self.flags as u64) << 40
            | (self.key_len as u64 & 0xff) << 32
            | (self.value_len as u64 & 0xffff_ffff);
        let w4 = (self.stored_at as u64) << 32 | self.origin as u64;
        [w0, self.pos, self.hash, self.expiry, w4, self.checksum]
    }

    /// Decode, or `None` if word 0 lacks the magic.
    #[inline]
    pub(crate) fn decode(w: &[u64; ENTRY_HEADER_WORDS]) -> Option<EntryHeader> {
        if w[0] >> 48 != ENTRY_MAGIC {
            return None;
        }
        Some(EntryHeader {
            flags: (w[0] >> 40) as u8,
            key_len: ((w[0] >> 32) & 0xff) as usize,
            value_len: (w[0] & 0xffff_ffff) as usize,
            pos: w[1],
            hash: w[2],
            expiry: w[3],
            stored_at: (w[4] >> 32) as u32,
            origin: w[4] as u32,
            checksum: w[5],
        })
    }

    /// The checksum this header and `value` should carry, in one separate
    /// pass (the reference the fused copies are tested against).
    #[cfg(test)]
    pub(crate) fn compute_checksum(&self, value: &[u8]) -> u64 {
        let mut sum = ValueSum::from_seed(ValueSum::seed(&self.encode()));
        for (j, chunk) in value.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            sum.add(j & 3, u64::from_le_bytes(b));
        }
        sum.finish()
    }
}

/// Starting values of the four lanes' sums `a` (xxh64's primes), so equal
/// words in different lanes count differently.
pub(super) const SUM_LANES: [u64; 4] = [
    0x9E37_79B1_85EB_CA87,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x85EB_CA77_C2B2_AE63,
];

/// The entry checksum in progress (module docs): four independent lanes,
/// each the running sum `a` of its words' 32-bit halves and the running sum
/// `b` of those sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueSum {
    pub(super) a: [u64; 4],
    pub(super) b: [u64; 4],
}

impl ValueSum {
    /// The seed the checksum of the entry with header words `w` (0..=4)
    /// starts from. A reader passes the words as loaded: decoding and
    /// encoding again gives the same words, so it need not.
    #[inline(always)]
    pub(crate) fn seed(w: &[u64; ENTRY_HEADER_WORDS]) -> u64 {
        w[0] ^ w[1].rotate_left(13)
            ^ w[2].rotate_left(29)
            ^ w[3].rotate_left(41)
            ^ w[4].rotate_left(53)
    }

    /// Start the checksum from its seed.
    #[inline(always)]
    pub(super) fn from_seed(seed: u64) -> ValueSum {
        ValueSum {
            a: SUM_LANES.map(|k| seed ^ k),
            b: [0; 4],
        }
    }

    /// Add one value word to lane `lane`: its low 32-bit half, then its
    /// high half.
    #[inline(always)]
    pub(super) fn add(&mut self, lane: usize, word: u64) {
        let (a, b) = (&mut self.a[lane], &mut self.b[lane]);
        *a = a.wrapping_add(word & 0xffff_ffff);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_add(word >> 32);
        *b = b.wrapping_add(*a);
    }

    /// Renumber the lanes so that lane `n` becomes lane 0 (a run of value
    /// words that starts at value word `n`, modulo 4); `rotate_right(n)`
    /// undoes it.
    #[inline]
    fn rotate_left(&mut self, n: usize) {
        self.a.rotate_left(n);
        self.b.rotate_left(n);
    }

    #[inline]
    fn rotate_right(&mut self, n: usize) {
        self.a.rotate_right(n);
        self.b.rotate_right(n);
    }

    #[inline]
    pub(super) fn finish(self) -> u64 {
        finish_lanes([0, 1, 2, 3].map(|l| self.a[l] ^ self.b[l].rotate_left(32)))
    }
}

/// The checksum from each lane's `a ^ b.rotate_left(32)`.
#[inline(always)]
fn finish_lanes(x: [u64; 4]) -> u64 {
    fmix64(x[0])
        ^ fmix64(x[1]).rotate_left(16)
        ^ fmix64(x[2]).rotate_left(32)
        ^ fmix64(x[3]).rotate_left(48)
}

/// murmur3's 64-bit finaliser: a bijection in which every input bit
/// affects every output bit.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Read the header words of the entry at `pos`.
#[inline]
pub(crate) fn load_header(log: &[AtomicU64], pos: u64) -> [u64; ENTRY_HEADER_WORDS] {
    let mask = log.len() - 1;
    let mut w = [0u64; ENTRY_HEADER_WORDS];
    for (i, out) in w.iter_mut().enumerate() {
        *out = log[(pos as usize).wrapping_add(i) & mask].load(Ordering::Relaxed);
    }
    w
}

/// Prefetch hint: the lines will be written (`prefetchw`: fetch exclusive).
pub(crate) const FOR_WRITE: i32 = 7; // _MM_HINT_ET0
/// Prefetch hint: the lines will be read (into every cache level).
pub(crate) const FOR_READ: i32 = 3; // _MM_HINT_T0

/// `prefetch::<FOR_READ>` of an entry whose index word claims `words` words
/// from word `start`, in fewer instructions: only the lines up to the end of
/// the log (the rare entry that wraps has the rest of it fetched on demand).
#[inline(always)]
pub(crate) fn prefetch_entry(log: &[AtomicU64], start: u64, words: usize) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    {
        let first = start as usize & (log.len().wrapping_sub(1)) & !7;
        // At most LINES_MAX + 1 lines (I4 BOUNDED), none beyond the log.
        let end = (first + (start as usize & 7) + words).min(log.len());
        let mut word = first;
        while word < end {
            // SAFETY: as in `prefetch`; `word < log.len()`.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<FOR_READ>(log.as_ptr().wrapping_add(word).cast())
            };
            word += 8;
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = (log, start, words);
}

/// Ask the CPU to start fetching the cache lines of words `start..start + words`
/// of `words_of` now, so several misses overlap instead of queueing one after
/// another. A hint only: it reads and writes nothing in the program's sense.
#[inline]
pub(crate) fn prefetch<const HINT: i32>(words_of: &[AtomicU64], start: u64, words: usize) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    {
        let len = words_of.len();
        if words == 0 || len == 0 {
            return;
        }
        // One word in each 64-byte line the range touches (the log is
        // line-aligned, so line `k` is words `8k..8k + 8`): the lines up to
        // the end of `words_of`, then those that wrapped to its start.
        // `words` is clamped by the caller; the loops are bounded by it and
        // by the length of `words_of` (I4 BOUNDED).
        let first = start as usize & (len - 1) & !7;
        let lines = (((start as usize & 7) + words - 1) / 8 + 1).min(len.div_ceil(8));
        let head = lines.min((len - first).div_ceil(8));
        let at = |word: usize| {
            // SAFETY: `_mm_prefetch` never faults and is not a memory access
            // in the language's sense (a cache hint), so it cannot race with
            // other processes' stores; `word < len`, so the pointer is inside
            // `words_of` anyway. SSE is in the x86_64 baseline; `prefetchw`
            // is a no-op on CPUs that lack it.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<HINT>(words_of.as_ptr().wrapping_add(word).cast())
            }
        };
        for i in 0..head {
            at(first + 8 * i);
        }
        for i in 0..lines - head {
            at(8 * i);
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = (words_of, start, words);
}

/// Copy `dst.len()` bytes out of the log, starting at word `start`.
#[inline]
pub(crate) fn copy_out(log: &[AtomicU64], start: u64, dst: &mut [u8]) {
    let mask = log.len() - 1;
    let mut chunks = dst.chunks_exact_mut(8);
    let mut i = start as usize;
    for chunk in &mut chunks {
        let w = log[i & mask].load(Ordering::Relaxed);
        chunk.copy_from_slice(&w.to_le_bytes());
        i = i.wrapping_add(1);
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let w = log[i & mask].load(Ordering::Relaxed).to_le_bytes();
        rest.copy_from_slice(&w[..rest.len()]);
    }
}

/// Does the log hold exactly `key` (its padding aside) from word `start`?
#[inline]
pub(crate) fn key_equals(log: &[AtomicU64], start: u64, key: &[u8]) -> bool {
    let mask = log.len() - 1;
    let mut i = start as usize;
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let w = log[i & mask].load(Ordering::Relaxed);
        if w.to_le_bytes() != *chunk {
            return false;
        }
        i = i.wrapping_add(1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let w = log[i & mask].load(Ordering::Relaxed).to_le_bytes();
        if w[..rest.len()] != *rest {
            return false;
        }
    }
    true
}

/// Store `src` into the log from word `start`, zero-padding the last word.
#[inline]
pub(crate) fn copy_in(log: &[AtomicU64], start: u64, src: &[u8]) {
    let mask = log.len() - 1;
    let mut i = start as usize;
    let mut chunks = src.chunks_exact(8);
    for chunk in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        log[i & mask].store(u64::from_le_bytes(b), Ordering::Relaxed);
        i = i.wrapping_add(1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        log[i & mask].store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

/// Split the `words` words from word `start` of a circular log of
/// `log_len` (a power of two) words into the run up to the end of the log
/// and the run that wrapped to its start: `(start, first_len, second_len)`.
/// `words` is at most `log_len` (callers clamp lengths to `max_value`, which
/// is far below a shard log), so both runs lie inside the log.
#[inline(always)]
fn runs(log_len: usize, start: u64, words: usize) -> (usize, usize, usize) {
    let start = start as usize & (log_len - 1);
    let words = words.min(log_len);
    let first = words.min(log_len - start);
    (start, first, words - first)
}

/// Store the value `src` into the log from word `start`, zero-padding the
/// last word, and return the entry checksum (`sum` finished over `src`).
#[inline]
pub(crate) fn copy_value_in(log: &[AtomicU64], start: u64, src: &[u8], seed: u64) -> u64 {
    copy_value_in_by::<true>(log, start, src, seed)
}

/// `copy_value_in`; `ONE_BLOCK = false` takes the general path whatever the
/// value.
#[inline(always)]
fn copy_value_in_by<const ONE_BLOCK: bool>(
    log: &[AtomicU64],
    start: u64,
    src: &[u8],
    seed: u64,
) -> u64 {
    let (at, first, second) = runs(log.len(), start, src.len().div_ceil(8));
    if ONE_BLOCK && second == 0 {
        // The common case, in one pass with the sums in registers.
        if let Some(x) = bulk::store_value(&log[at..at + first], src, seed, &SUM_LANES) {
            return finish_lanes(x);
        }
    }
    let mut sum = ValueSum::from_seed(seed);
    let (src1, src2) = src.split_at(src.len().min(first * 8));
    store_run(&log[at..at + first], src1, &mut sum);
    if second > 0 {
        // The second run starts at value word `first`: its word 0 goes into
        // lane `first % 4`.
        sum.rotate_left(first & 3);
        store_run(&log[..second], src2, &mut sum);
        sum.rotate_right(first & 3);
    }
    sum.finish()
}

/// `copy_value_in` on one contiguous run: `run` has exactly
/// `src.len().div_ceil(8)` words. Whole groups of four words go through
/// `bulk`, the rest (at most 3 words and a partial one) word by word.
#[inline(always)]
fn store_run(run: &[AtomicU64], src: &[u8], sum: &mut ValueSum) {
    let grouped = (src.len() / 32 * 4).min(run.len());
    let (body, rest) = src.split_at(grouped * 8);
    let (run_body, run_rest) = run.split_at(grouped);
    bulk::store(run_body, body, sum);
    // At most 3 full words and one partial word remain (I4 BOUNDED). Whole
    // words first: slices of a known length copy without a `memcpy` call.
    let mut words = rest.chunks_exact(8);
    let mut k = 0;
    for (chunk, r) in (&mut words).zip(run_rest) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let w = u64::from_le_bytes(bytes);
        r.store(w, Ordering::Relaxed);
        sum.add(k & 3, w);
        k += 1;
    }
    if let (false, Some(r)) = (words.remainder().is_empty(), run_rest.get(k)) {
        let mut bytes = [0u8; 8];
        bytes[..words.remainder().len()].copy_from_slice(words.remainder());
        let w = u64::from_le_bytes(bytes);
        r.store(w, Ordering::Relaxed);
        sum.add(k & 3, w);
    }
}

/// Copy `dst.len()` value bytes out of the log from word `start`, and return
/// the entry checksum of the words as read (`sum` finished over them; the
/// last word's padding included, which the writer zeroed).
#[inline(always)]
pub(crate) fn copy_value_out(log: &[AtomicU64], start: u64, dst: &mut [u8], seed: u64) -> u64 {
    copy_value_out_by::<true>(log, start, dst, seed)
}

/// `copy_value_out`; `ONE_BLOCK = false` takes the general path whatever
/// the value (the tests check both paths on every CPU).
#[inline(always)]
fn copy_value_out_by<const ONE_BLOCK: bool>(
    log: &[AtomicU64],
    start: u64,
    dst: &mut [u8],
    seed: u64,
) -> u64 {
    let (at, first, second) = runs(log.len(), start, dst.len().div_ceil(8));
    if ONE_BLOCK && second == 0 {
        // The common case, in one pass with the sums in registers.
        if let Some(x) = bulk::load_value(&log[at..at + first], dst, seed, &SUM_LANES) {
            return finish_lanes(x);
        }
    }
    let mut sum = ValueSum::from_seed(seed);
    let split = dst.len().min(first * 8);
    let (dst1, dst2) = dst.split_at_mut(split);
    load_run(&log[at..at + first], dst1, &mut sum);
    if second > 0 {
        // See `copy_value_in`.
        sum.rotate_left(first & 3);
        load_run(&log[..second], dst2, &mut sum);
        sum.rotate_right(first & 3);
    }
    sum.finish()
}

/// `copy_value_out` on one contiguous run: `run` has exactly
/// `dst.len().div_ceil(8)` words.
#[inline(always)]
fn load_run(run: &[AtomicU64], dst: &mut [u8], sum: &mut ValueSum) {
    let grouped = (dst.len() / 32 * 4).min(run.len());
    let (body, rest) = dst.split_at_mut(grouped * 8);
    let (run_body, run_rest) = run.split_at(grouped);
    bulk::load(run_body, body, sum);
    // At most 3 whole words and one partial word remain (I4 BOUNDED). Word
    // `k` of them goes into lane `k` (the groups end on lane 3). Unrolled,
    // so that every lane index is a constant, and the partial word is
    // stored from a register (no `memcpy` call, no copy of it left on the
    // stack).
    let whole = rest.len() / 8;
    let (whole_bytes, partial) = rest.split_at_mut(whole * 8);
    for lane in 0..3 {
        if let (true, Some(r)) = (lane < whole, run_rest.get(lane)) {
            let w = r.load(Ordering::Relaxed);
            whole_bytes[8 * lane..8 * lane + 8].copy_from_slice(&w.to_le_bytes());
            sum.add(lane, w);
        }
    }
    if let (false, Some(r)) = (partial.is_empty(), run_rest.get(whole)) {
        let w = r.load(Ordering::Relaxed);
        store_partial(partial, w);
        match whole {
            0 => sum.add(0, w),
            1 => sum.add(1, w),
            2 => sum.add(2, w),
            _ => sum.add(3, w),
        }
    }
}

/// Store the first `dst.len()` (1..=7) little-endian bytes of `w` into
/// `dst`, in two overlapping stores of 4 or 2 bytes (or one byte).
#[inline(always)]
fn store_partial(dst: &mut [u8], w: u64) {
    let n = dst.len();
    if n >= 4 {
        dst[..4].copy_from_slice(&(w as u32).to_le_bytes());
        dst[n - 4..n].copy_from_slice(&((w >> (8 * (n - 4))) as u32).to_le_bytes());
    } else if n >= 2 {
        dst[..2].copy_from_slice(&(w as u16).to_le_bytes());
        dst[n - 2..n].copy_from_slice(&((w >> (8 * (n - 2))) as u16).to_le_bytes());
    } else if n == 1 {
        dst[0] = w as u8;
    }
}

/// Write a whole entry at `pos` with relaxed stores: key, then value
/// (its checksum computed in the same pass, into `h`), then the header
/// that holds the checksum. `h` gets `pos` too. The caller has made the
/// space its own and fenced (the log's reservation, a way's claim).
#[inline]
pub(crate) fn write_entry(
    log: &[AtomicU64],
    pos: u64,
    h: &mut EntryHeader,
    key: &[u8],
    value: &[u8],
) {
    h.pos = pos;
    copy_in(log, pos.wrapping_add(ENTRY_HEADER_WORDS as u64), key);
    h.checksum = copy_value_in(
        log,
        pos.wrapping_add((ENTRY_HEADER_WORDS + key.len().div_ceil(8)) as u64),
        value,
        ValueSum::seed(&h.encode()),
    );
    store_header(log, pos, &h.encode());
}

/// Store the header words at `pos`.
#[inline]
pub(crate) fn store_header(log: &[AtomicU64], pos: u64, w: &[u64; ENTRY_HEADER_WORDS]) {
    let mask = log.len() - 1;
    for (i, v) in w.iter().enumerate() {
        log[(pos as usize).wrapping_add(i) & mask].store(*v, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value_len: usize) -> EntryHeader {
        EntryHeader {
            flags: 0,
            key_len: 32,
            value_len,
            pos: 0x1234_5678,
            hash: 0xdead_beef_f00d_cafe,
            expiry: 1_800_000_000,
            stored_at: 1_790_000_000,
            origin: 7,
            checksum: 0,
        }
    }

    fn value(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 + 17) as u8).collect()
    }

    #[test]
    fn fused_copies_match_the_reference_checksum_and_wrap() {
        let log: Vec<AtomicU64> = (0..128).map(|_| AtomicU64::new(u64::MAX)).collect();
        // Fewer lengths under Miri, which runs this about 10^4 times slower.
        for len in 0..=if cfg!(miri) { 80 } else { 300 } {
            let (h, v) = (header(len), value(len));
            let reference = h.compute_checksum(&v);
            // Start near the end so most lengths wrap around the log, at
            // every lane offset of the second run.
            // Each direction on the one-block path (where the CPU has it)
            // and the general one, stored by one and read by the other.
            type In = fn(&[AtomicU64], u64, &[u8], u64) -> u64;
            type Out = fn(&[AtomicU64], u64, &mut [u8], u64) -> u64;
            let ins: [In; 2] = [copy_value_in_by::<true>, copy_value_in_by::<false>];
            let outs: [Out; 2] = [copy_value_out_by::<true>, copy_value_out_by::<false>];
            let seed = ValueSum::seed(&h.encode());
            for start in [0u64, 97, 110, 121, 126, 127, 128 + 5] {
                for (i, copy_in) in ins.iter().enumerate() {
                    for (o, copy_out) in outs.iter().enumerate() {
                        let at = format!("len {len} start {start} paths {i}/{o}");
                        let put = copy_in(&log, start, &v, seed);
                        let mut out = vec![0u8; len];
                        let got = copy_out(&log, start, &mut out, seed);
                        assert_eq!(put, reference, "{at}");
                        assert_eq!(got, reference, "{at}");
                        assert_eq!(out, v, "{at}");
                    }
                }
            }
        }
    }

    #[test]
    fn decoding_then_encoding_gives_the_loaded_header_words() {
        // A reader seeds the checksum from the header words it loaded
        // (`ValueSum::seed`), a writer from the header it encodes:
        // the two agree only if no bit of words 0..=4 is lost in decoding.
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..1000 {
            let mut w = [0u64; ENTRY_HEADER_WORDS];
            for v in &mut w {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x;
            }
            w[0] = ENTRY_MAGIC << 48 | w[0] & ((1 << 48) - 1);
            let h = EntryHeader::decode(&w).expect("the magic is there");
            assert_eq!(h.encode(), w);
        }
    }

    #[test]
    fn checksum_is_pinned() {
        // The checksum is part of the segment format (FORMAT_VERSION 5 and
        // later): every build that opens a segment must compute the same
        // value, on the vector path and the word-by-word one. (Cross-checked
        // against a separate Python rendering of the module docs'
        // definition.)
        let pinned = [
            (0, 0xf30d_76d4_7e47_a7d6),
            (150, 0x5fe1_7e8e_f9a5_cb7b),
            (1024, 0x0e56_ad6a_e96e_8380),
        ];
        let log: Vec<AtomicU64> = (0..256).map(|_| AtomicU64::new(0)).collect();
        for (len, want) in pinned {
            let (h, v) = (header(len), value(len));
            assert_eq!(h.compute_checksum(&v), want, "len {len}");
            assert_eq!(
                copy_value_in(&log, 0, &v, ValueSum::seed(&h.encode())),
                want
            );
            let mut out = vec![0u8; len];
            assert_eq!(
                copy_value_out(&log, 0, &mut out, ValueSum::seed(&h.encode())),
                want
            );
        }
    }

    #[test]
    fn any_changed_word_or_header_field_changes_the_checksum() {
        let (h, v) = (header(70), value(70));
        let sum = h.compute_checksum(&v);
        for byte in 0..v.len() {
            for bit in 0..8 {
                let mut w = v.clone();
                w[byte] ^= 1 << bit;
                assert_ne!(h.compute_checksum(&w), sum, "byte {byte} bit {bit}");
            }
        }
        // Bit 63 flipped in two words of one lane, one and two lane steps
        // apart. Sums of whole 64-bit words would cancel both in `a` and
        // the second in `b` too (2 * 2^63 wraps to 0); sums of 32-bit
        // halves do not wrap.
        let (h150, v150) = (header(150), value(150));
        let sum150 = h150.compute_checksum(&v150);
        for other in [39, 71] {
            let mut w = v150.clone();
            w[7] ^= 0x80;
            w[other] ^= 0x80;
            assert_ne!(h150.compute_checksum(&w), sum150, "bytes 7 and {other}");
        }
        // The same bit set in one half and cleared in another of its lane.
        let (mut w, bit) = (v.clone(), 1u8 << 5);
        let (i, j) = (0, 32);
        assert_ne!(w[i] & bit, w[j] & bit, "pick bytes that differ in the bit");
        w[i] ^= bit;
        w[j] ^= bit;
        assert_ne!(h.compute_checksum(&w), sum);
        // Two words swapped within a lane and across lanes.
        let mut w = v.clone();
        w.copy_within(0..8, 32);
        w[..8].copy_from_slice(&v[32..40]);
        assert_ne!(h.compute_checksum(&w), sum);
        let mut w = v.clone();
        w.copy_within(0..8, 8);
        w[..8].copy_from_slice(&v[8..16]);
        assert_ne!(h.compute_checksum(&w), sum);
        for changed in [
            EntryHeader {
                pos: h.pos + 1,
                ..h
            },
            EntryHeader {
                hash: h.hash ^ 1,
                ..h
            },
            EntryHeader {
                expiry: h.expiry + 1,
                ..h
            },
            EntryHeader { origin: 8, ..h },
            EntryHeader { value_len: 69, ..h },
            EntryHeader {
                flags: FLAG_TOMBSTONE,
                ..h
            },
        ] {
            assert_ne!(changed.compute_checksum(&v), sum, "{changed:?}");
        }
    }
}
