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
//!  word 5  | checksum: xxh3 of the value, seeded by 0..=4   |
//!  word 6… | key, zero-padded to 8 bytes                    |
//!          | value, zero-padded to 8 bytes                  |
//! ```
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

    /// The checksum this header and `value` should carry.
    #[inline]
    pub(crate) fn compute_checksum(&self, value: &[u8]) -> u64 {
        let w = self.encode();
        let seed = w[0]
            ^ w[1].rotate_left(13)
            ^ w[2].rotate_left(29)
            ^ w[3].rotate_left(41)
            ^ w[4].rotate_left(53);
        xxhash_rust::xxh3::xxh3_64_with_seed(value, seed)
    }
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

/// Ask the CPU to start fetching the cache lines of words `start..start + words`
/// of `words_of` now, so several misses overlap instead of queueing one after
/// another. A hint only: it reads and writes nothing in the program's sense.
#[inline]
pub(crate) fn prefetch<const HINT: i32>(words_of: &[AtomicU64], start: u64, words: usize) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    {
        let mask = words_of.len().wrapping_sub(1);
        let start = start as usize;
        if words == 0 || words_of.is_empty() {
            return;
        }
        // Every 8th word, plus the last: that covers every 64-byte line of
        // an unaligned range. `words` is clamped by the caller and the loop
        // is bounded by it (BOUNDED).
        let last = words - 1;
        for i in (0..words.saturating_add(7)).step_by(8) {
            let p = words_of[start.wrapping_add(i.min(last)) & mask].as_ptr();
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

/// Store the header words at `pos`.
#[inline]
pub(crate) fn store_header(log: &[AtomicU64], pos: u64, w: &[u64; ENTRY_HEADER_WORDS]) {
    let mask = log.len() - 1;
    for (i, v) in w.iter().enumerate() {
        log[(pos as usize).wrapping_add(i) & mask].store(*v, Ordering::Relaxed);
    }
}
