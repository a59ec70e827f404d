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
//! `seed = w0 ^ w1.rotl(13) ^ w2.rotl(29) ^ w3.rotl(41) ^ w4.rotl(53)`, four
//! lanes start at `seed ^ K[l]` (`K` = `SUM_LANES`); value word `j` (little
//! endian, the last one zero-padded) goes into lane `j % 4` as
//! `lane = ((lane ^ word) * SUM_MUL).rotl(SUM_ROT)`; the result is
//! `fmix64(l0) ^ fmix64(l1).rotl(16) ^ fmix64(l2).rotl(32) ^ fmix64(l3).rotl(48)`
//! (murmur3's finaliser). Each step is a bijection of the lane and of the
//! word, so any one changed word (or header word 0..=4) always changes the
//! checksum, and a torn mix of two entries passes with odds of about 2^-64.
//! It detects tearing and damage; it is not a MAC.
//!
//! The echoed `pos` makes the log self-synchronising: a walker that lands in
//! the middle of an entry (or in a hole left by a killed writer) steps one
//! word at a time until a word 0 with the magic is followed by its own
//! position.

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
        let mut sum = ValueSum::new(self);
        for (j, chunk) in value.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            sum.0[j & 3] = ValueSum::mix(sum.0[j & 3], u64::from_le_bytes(b));
        }
        sum.finish()
    }
}

/// Multiplier of a checksum step (the 64-bit golden ratio). Odd, so
/// `x * SUM_MUL` is a bijection of `u64`.
const SUM_MUL: u64 = 0x9E37_79B9_7F4A_7C15;
/// Rotation after each multiply: feeds the high bits back into the low ones
/// (a multiply alone only carries upwards, so two flips of bit 63 in one
/// lane would cancel).
const SUM_ROT: u32 = 31;
/// Starting offsets of the four lanes (xxh64's primes), so equal words in
/// different lanes count differently.
const SUM_LANES: [u64; 4] = [
    0x9E37_79B1_85EB_CA87,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x85EB_CA77_C2B2_AE63,
];

/// The entry checksum in progress: four independent lanes, so consecutive
/// words do not wait on each other's multiply. See the module docs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ValueSum([u64; 4]);

impl ValueSum {
    /// Start the checksum of the entry `h` describes (its words 0..=4).
    #[inline]
    pub(crate) fn new(h: &EntryHeader) -> ValueSum {
        let w = h.encode();
        let seed = w[0]
            ^ w[1].rotate_left(13)
            ^ w[2].rotate_left(29)
            ^ w[3].rotate_left(41)
            ^ w[4].rotate_left(53);
        ValueSum(SUM_LANES.map(|k| seed ^ k))
    }

    #[inline(always)]
    fn mix(lane: u64, word: u64) -> u64 {
        (lane ^ word).wrapping_mul(SUM_MUL).rotate_left(SUM_ROT)
    }

    #[inline]
    fn finish(self) -> u64 {
        let [a, b, c, d] = self.0;
        fmix64(a)
            ^ fmix64(b).rotate_left(16)
            ^ fmix64(c).rotate_left(32)
            ^ fmix64(d).rotate_left(48)
    }
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

/// Eight bytes as a little-endian word (`chunk` is 8 bytes long).
#[inline(always)]
fn le_word(chunk: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(chunk);
    u64::from_le_bytes(b)
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

/// Ask the CPU to start fetching the cache lines of words `start..start + words`
/// of `words_of` now, so several misses overlap instead of queueing one after
/// another. A hint only: it reads and writes nothing in the program's sense.
#[inline]
pub(crate) fn prefetch<const HINT: i32>(words_of: &[AtomicU64], start: u64, words: usize) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    {
        let mask = words_of.len().wrapping_sub(1);
        if words == 0 || words_of.is_empty() {
            return;
        }
        // One word in each 64-byte line the range touches (the log is
        // line-aligned, so line `k` is words `8k..8k + 8`). `words` is
        // clamped by the caller and the loop is bounded by it (BOUNDED).
        let first = start as usize & !7;
        let lines = ((start as usize & 7) + words - 1) / 8 + 1;
        for i in 0..lines {
            let p = words_of[first.wrapping_add(i * 8) & mask].as_ptr();
            // SAFETY: `p` points at a word of `words_of`, mapped for the life
            // of the borrow. `_mm_prefetch` never faults and is not a memory
            // access in the language's sense (a cache hint), so it cannot
            // race with other processes' stores. SSE is in the x86_64
            // baseline; `prefetchw` is a no-op on CPUs that lack it.
            unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(p as *const i8) };
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
pub(crate) fn copy_value_in(log: &[AtomicU64], start: u64, src: &[u8], sum: ValueSum) -> u64 {
    let (at, first, second) = runs(log.len(), start, src.len().div_ceil(8));
    let (src1, src2) = src.split_at(src.len().min(first * 8));
    let mut lanes = store_run(&log[at..at + first], src1, sum.0);
    if second > 0 {
        // The second run starts at value word `first`: its word 0 goes into
        // lane `first % 4`.
        lanes.rotate_left(first & 3);
        lanes = store_run(&log[..second], src2, lanes);
        lanes.rotate_right(first & 3);
    }
    ValueSum(lanes).finish()
}

/// `copy_value_in` on one contiguous run: `run` has exactly
/// `src.len().div_ceil(8)` words. No masking, so the loop is a plain load,
/// store and mix per word.
#[inline(always)]
fn store_run(run: &[AtomicU64], src: &[u8], [mut a, mut b, mut c, mut d]: [u64; 4]) -> [u64; 4] {
    let full = src.len() / 8;
    let (body, rest) = src.split_at(full * 8);
    let (run, last) = run.split_at(full.min(run.len()));
    let mut quads = body.chunks_exact(32);
    let mut run_quads = run.chunks_exact(4);
    for (q, r) in (&mut quads).zip(&mut run_quads) {
        let w = le_word(&q[..8]);
        r[0].store(w, Ordering::Relaxed);
        a = ValueSum::mix(a, w);
        let w = le_word(&q[8..16]);
        r[1].store(w, Ordering::Relaxed);
        b = ValueSum::mix(b, w);
        let w = le_word(&q[16..24]);
        r[2].store(w, Ordering::Relaxed);
        c = ValueSum::mix(c, w);
        let w = le_word(&q[24..]);
        r[3].store(w, Ordering::Relaxed);
        d = ValueSum::mix(d, w);
    }
    let mut lanes = [a, b, c, d];
    // At most 3 full words and one partial word remain (BOUNDED).
    let words = quads.remainder().chunks_exact(8);
    let mut k = 0;
    for (chunk, r) in words.zip(run_quads.remainder()) {
        let w = le_word(chunk);
        r.store(w, Ordering::Relaxed);
        lanes[k & 3] = ValueSum::mix(lanes[k & 3], w);
        k += 1;
    }
    if let (false, Some(r)) = (rest.is_empty(), last.first()) {
        let mut bytes = [0u8; 8];
        bytes[..rest.len()].copy_from_slice(rest);
        let w = u64::from_le_bytes(bytes);
        r.store(w, Ordering::Relaxed);
        lanes[k & 3] = ValueSum::mix(lanes[k & 3], w);
    }
    lanes
}

/// Copy `dst.len()` value bytes out of the log from word `start`, and return
/// the entry checksum of the words as read (`sum` finished over them; the
/// last word's padding included, which the writer zeroed).
#[inline]
pub(crate) fn copy_value_out(log: &[AtomicU64], start: u64, dst: &mut [u8], sum: ValueSum) -> u64 {
    let (at, first, second) = runs(log.len(), start, dst.len().div_ceil(8));
    let split = dst.len().min(first * 8);
    let (dst1, dst2) = dst.split_at_mut(split);
    let mut lanes = load_run(&log[at..at + first], dst1, sum.0);
    if second > 0 {
        // See `copy_value_in`.
        lanes.rotate_left(first & 3);
        lanes = load_run(&log[..second], dst2, lanes);
        lanes.rotate_right(first & 3);
    }
    ValueSum(lanes).finish()
}

/// `copy_value_out` on one contiguous run: `run` has exactly
/// `dst.len().div_ceil(8)` words.
#[inline(always)]
fn load_run(run: &[AtomicU64], dst: &mut [u8], [mut a, mut b, mut c, mut d]: [u64; 4]) -> [u64; 4] {
    let full = dst.len() / 8;
    let (body, rest) = dst.split_at_mut(full * 8);
    let (run, last) = run.split_at(full.min(run.len()));
    let mut quads = body.chunks_exact_mut(32);
    let mut run_quads = run.chunks_exact(4);
    for (q, r) in (&mut quads).zip(&mut run_quads) {
        let w = r[0].load(Ordering::Relaxed);
        q[..8].copy_from_slice(&w.to_le_bytes());
        a = ValueSum::mix(a, w);
        let w = r[1].load(Ordering::Relaxed);
        q[8..16].copy_from_slice(&w.to_le_bytes());
        b = ValueSum::mix(b, w);
        let w = r[2].load(Ordering::Relaxed);
        q[16..24].copy_from_slice(&w.to_le_bytes());
        c = ValueSum::mix(c, w);
        let w = r[3].load(Ordering::Relaxed);
        q[24..].copy_from_slice(&w.to_le_bytes());
        d = ValueSum::mix(d, w);
    }
    let mut lanes = [a, b, c, d];
    // At most 3 full words and one partial word remain (BOUNDED).
    let words = quads.into_remainder().chunks_exact_mut(8);
    let mut k = 0;
    for (chunk, r) in words.zip(run_quads.remainder()) {
        let w = r.load(Ordering::Relaxed);
        chunk.copy_from_slice(&w.to_le_bytes());
        lanes[k & 3] = ValueSum::mix(lanes[k & 3], w);
        k += 1;
    }
    if let (false, Some(r)) = (rest.is_empty(), last.first()) {
        let w = r.load(Ordering::Relaxed);
        rest.copy_from_slice(&w.to_le_bytes()[..rest.len()]);
        lanes[k & 3] = ValueSum::mix(lanes[k & 3], w);
    }
    lanes
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
        let log: Vec<AtomicU64> = (0..64).map(|_| AtomicU64::new(u64::MAX)).collect();
        for len in 0..=100 {
            let (h, v) = (header(len), value(len));
            let reference = h.compute_checksum(&v);
            // Start near the end so most lengths wrap around the log.
            for start in [0u64, 40, 61, 63, 64 + 5] {
                let put = copy_value_in(&log, start, &v, ValueSum::new(&h));
                let mut out = vec![0u8; len];
                let got = copy_value_out(&log, start, &mut out, ValueSum::new(&h));
                assert_eq!(put, reference, "len {len} start {start}");
                assert_eq!(got, reference, "len {len} start {start}");
                assert_eq!(out, v, "len {len} start {start}");
            }
        }
    }

    #[test]
    fn checksum_is_pinned() {
        // The checksum is part of the segment format (FORMAT_VERSION 3 and later):
        // every build that opens a segment must compute the same value.
        // (Cross-checked against a separate Python rendering of the module
        // docs' definition.)
        assert_eq!(header(0).compute_checksum(&[]), 0xf30d_76d4_7e47_a7d6);
        assert_eq!(
            header(150).compute_checksum(&value(150)),
            0xaafa_b127_89d3_fc5f
        );
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
        // Bit 63 flipped in two words of one lane: a multiply-only lane
        // would let these cancel; the rotation does not.
        let mut w = v.clone();
        w[7] ^= 0x80;
        w[39] ^= 0x80;
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
