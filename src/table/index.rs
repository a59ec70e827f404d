//! Index words and where a key lives.
//!
//! The index is an array of 64-byte buckets of 8 words. A word points at an
//! entry in the shard log that the bucket belongs to:
//!
//! ```text
//!  63            48 47      40 39                              0
//! +----------------+----------+--------------------------------+
//! |   tag (16)     | lines (8)|  pos in words, low 40 bits     |
//! +----------------+----------+--------------------------------+
//!  0 = empty. The tag is the top 16 bits of the key hash, never 0.
//! ```
//!
//! `lines` is the entry's length in 64-byte units (saturating at 255): a
//! reader starts fetching every line of the entry as soon as it has the
//! word, instead of discovering the length one miss later from the entry
//! header. It is a prefetch hint only; nothing trusts it.
//!
//! A key's bucket is `hash mod buckets` and its shard is `bucket mod shards`,
//! so every word of a bucket points into the same log and positions within a
//! bucket are comparable (the smallest is the oldest).
//!
//! Positions only grow, so 40 bits (far more than any log window) plus the
//! shard's current tail identify a full position: the largest value not above the tail with those low bits
//! (`reconstruct`). A word whose entry has left the log window is stale.

const POS_BITS: u32 = 40;
pub(crate) const POS_MASK: u64 = (1 << POS_BITS) - 1;
const LINES_MAX: u64 = 0xff;
const TAG_SHIFT: u32 = 48;

/// Where a key lives: hash, bucket, shard and tag, computed once per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub hash: u64,
    pub bucket: usize,
    pub shard: usize,
    pub tag: u64,
}

impl Slot {
    #[inline]
    pub fn locate(hash: u64, buckets: u64, shards: u64) -> Slot {
        let bucket = (hash & (buckets - 1)) as usize;
        let tag = match hash >> TAG_SHIFT {
            0 => 1,
            t => t,
        };
        Slot {
            hash,
            bucket,
            shard: bucket & (shards as usize - 1),
            tag,
        }
    }

    /// The index word for this key's entry at `pos`, `words` long.
    #[inline]
    pub fn word(&self, pos: u64, words: u64) -> u64 {
        let lines = words.div_ceil(8).min(LINES_MAX);
        self.tag << TAG_SHIFT | lines << POS_BITS | (pos & POS_MASK)
    }
}

#[inline]
pub(crate) fn tag_of(word: u64) -> u64 {
    word >> TAG_SHIFT
}

/// Bit `i` set for each word `i` of a bucket that carries `tag`.
///
/// Word by word, in general registers: the words were just loaded into
/// them, and moving them into vector registers for one compare goes
/// through the stack, where a 16-byte load of two 8-byte stores cannot be
/// forwarded and waits for them (a 150-byte hit took 4-6 ns longer so,
/// docs/journal/perf-get-hit-2026-12-06.md).
#[inline(always)]
pub(crate) fn tag_matches(words: &[u64; 8], tag: u64) -> u32 {
    let mut matches = 0u32;
    for (i, &word) in words.iter().enumerate() {
        matches |= u32::from(tag_of(word) == tag) << i;
    }
    matches
}

/// The entry length a word claims, in words (a hint; see the module docs).
#[inline]
pub(crate) fn hinted_words(word: u64) -> usize {
    ((word >> POS_BITS & LINES_MAX) * 8) as usize
}

/// The full position a word refers to, given the shard tail (in words).
#[inline]
pub(crate) fn reconstruct(word: u64, tail: u64) -> u64 {
    let low = word & POS_MASK;
    tail.wrapping_sub(tail.wrapping_sub(low) & POS_MASK)
}

/// Is an entry at `pos` still wholly inside a log of `log_words` ending at `tail`?
#[inline]
pub(crate) fn in_window(pos: u64, tail: u64, log_words: u64) -> bool {
    tail.wrapping_sub(pos) <= log_words && pos <= tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_matches_looks_at_each_words_top_16_bits_only() {
        let tag = 0xBEEFu64;
        let words = [
            tag << 48 | 5,                     // the tag: a match
            0,                                 // empty
            (tag ^ 1) << 48 | tag << 16 | tag, // the tag in lower lanes only
            tag << 48 | POS_MASK,              // the tag: a match
            (tag ^ 0x8000) << 48,              // differs in the tag's top bit
            tag,                               // the tag in the lowest lane only
            u64::MAX,                          // all ones
            tag << 48,                         // the tag, position 0: a match
        ];
        assert_eq!(tag_matches(&words, tag), 0b1000_1001);
        assert_eq!(tag_matches(&words, 0xFFFF), 0b0100_0000);
        assert_eq!(tag_matches(&[0; 8], 1), 0);
    }

    #[test]
    fn reconstruct_recovers_positions_across_the_40_bit_wrap() {
        for &pos in &[0u64, 5, POS_MASK - 3, POS_MASK + 10, 3 << 50] {
            for ahead in [0u64, 1, 1000, 1 << 20] {
                let s = Slot::locate(0xabcd_0000_0000_0000, 8, 1);
                assert_eq!(reconstruct(s.word(pos, 20), pos + ahead), pos);
            }
        }
    }

    #[test]
    fn word_carries_tag_and_a_saturating_length_hint() {
        let s = Slot::locate(0xabcd_0000_0000_0000, 8, 1);
        for (words, hinted) in [
            (7u64, 8usize),
            (8, 8),
            (9, 16),
            (140, 144),
            (1 << 20, 255 * 8),
        ] {
            let w = s.word(POS_MASK, words);
            assert_eq!(tag_of(w), 0xabcd);
            assert_eq!(hinted_words(w), hinted, "{words} words");
            assert_eq!(w & POS_MASK, POS_MASK);
        }
    }

    #[test]
    fn key_hash_is_xxh3_with_the_segment_seed() {
        // The documented algorithm: other builds and languages must agree.
        let c = crate::Cache::in_memory(crate::segment::Geometry::tiny(2, 64, 1 << 16, 1024));
        let seed = c.segment().geometry().seed[0];
        for len in [1usize, 7, 8, 9, 16, 31, 32, 33, 255] {
            let key: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            assert_eq!(
                c.hash_key(&key),
                xxhash_rust::xxh3::xxh3_64_with_seed(&key, seed)
            );
        }
    }

    #[test]
    fn tag_is_never_zero() {
        let s = Slot::locate(0x0000_ffff_ffff_ffff, 8, 1);
        assert_eq!(s.tag, 1);
        assert_ne!(s.word(0, 0), 0);
    }
}
