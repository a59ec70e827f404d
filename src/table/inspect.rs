//! Whole-table walks for operators: occupancy (for `scsp stats`) and
//! consistency checking (for `scsp verify`). Not on any hot path.

use super::entry::{load_header, EntryHeader};
use super::index::{in_window, reconstruct};
use super::Cache;
use crate::clock::now_secs;
use crate::segment::layout::{Layout, ENTRY_HEADER_WORDS};
use crate::sync::{fence, Ordering};

/// What the index currently points at.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Occupancy {
    /// Index words pointing at live, unexpired entries.
    pub live_entries: u64,
    /// Bytes those entries occupy in the logs.
    pub live_bytes: u64,
    /// Index words pointing at expired entries.
    pub expired_entries: u64,
    /// Index words whose entry has been overwritten by the log.
    pub stale_words: u64,
    /// Seconds since the oldest live entry was stored (how long sessions
    /// survive before eviction; if it is below your session lifetime, grow
    /// the segment).
    pub oldest_age_secs: Option<u64>,
}

/// Findings of [`Cache::verify`].
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VerifyReport {
    /// Index words checked.
    pub index_words: u64,
    /// Index words pointing at live entries that verified.
    pub good_entries: u64,
    /// Entries found walking the logs (including tombstones).
    pub log_entries: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Words of log skipped because no entry starts there: holes left by
    /// writers killed mid-write, or partly overwritten entries at the
    /// window's start. Harmless; reclaimed when the log wraps.
    pub skipped_words: u64,
    /// Ways of a sets segment left mid-write: by a put killed while it
    /// wrote, or being written right now. Harmless; a later put of the set
    /// takes them.
    pub unfinished_ways: u64,
    /// Problems that mean corruption (empty when the table is healthy).
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// No corruption found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

const MAX_PROBLEMS: usize = 100;

/// What [`Cache::occupancy`] adds up, word by word (or way by way).
pub(super) struct OccupancyTally {
    now: u64,
    occ: Occupancy,
    oldest: u32,
}

impl OccupancyTally {
    pub(super) fn new() -> OccupancyTally {
        OccupancyTally {
            now: now_secs(),
            occ: Occupancy::default(),
            oldest: u32::MAX,
        }
    }

    /// One checked entry: live, expired, or stale (gone or damaged).
    pub(super) fn add(&mut self, checked: Result<Option<EntryHeader>, String>) {
        match checked {
            Ok(Some(h)) if h.expiry >= self.now => {
                self.occ.live_entries += 1;
                self.occ.live_bytes += h.words() * 8;
                self.oldest = self.oldest.min(h.stored_at);
            }
            Ok(Some(_)) => self.occ.expired_entries += 1,
            Ok(None) | Err(_) => self.occ.stale_words += 1,
        }
    }

    /// A word (or way) counted as stale without a look at its entry.
    pub(super) fn stale(&mut self) {
        self.occ.stale_words += 1;
    }

    pub(super) fn finish(mut self) -> Occupancy {
        if self.oldest != u32::MAX {
            let age = (self.now as u32).wrapping_sub(self.oldest);
            self.occ.oldest_age_secs = Some(age.into());
        }
        self.occ
    }
}

impl Cache {
    /// Check the entry an index word points at, without knowing its key.
    /// `Ok(Some(h))`: live entry; `Ok(None)`: stale; `Err`: corrupt.
    fn check_word(
        &self,
        bucket: usize,
        word: u64,
        scratch: &mut [u8],
    ) -> Result<Option<EntryHeader>, String> {
        let g = self.seg.geometry();
        let shard = bucket & (g.shards as usize - 1);
        let t = self.seg.tail(shard).load(Ordering::Acquire);
        let pos = reconstruct(word, t);
        if !in_window(pos, t, self.log_words) {
            return Ok(None);
        }
        let h = self.read_any(shard, pos, t, scratch)?;
        let home = super::index::Slot::locate(h.hash, g.buckets, g.shards);
        if home.bucket != bucket || super::index::tag_of(word) != home.tag {
            return Err(format!(
                "bucket {bucket}: word {word:#x} points at an entry of another bucket"
            ));
        }
        // Pairs with the Release fence in `append`: if a writer reserved the
        // bytes we copied, this tail load sees it and the entry is stale.
        fence(Ordering::Acquire);
        if !in_window(
            pos,
            self.seg.tail(shard).load(Ordering::Relaxed),
            self.log_words,
        ) {
            return Ok(None);
        }
        Ok(Some(h))
    }

    /// Read and fully verify the entry at `pos` of `shard` (any key).
    /// `scratch` must hold `max_value + 256` bytes.
    pub(crate) fn read_any(
        &self,
        shard: usize,
        pos: u64,
        tail: u64,
        scratch: &mut [u8],
    ) -> Result<EntryHeader, String> {
        let log = self.seg.log(shard);
        let h = EntryHeader::decode(&load_header(log, pos))
            .ok_or_else(|| format!("shard {shard} pos {pos}: no entry magic"))?;
        if h.pos != pos {
            return Err(format!(
                "shard {shard} pos {pos}: entry echoes pos {}",
                h.pos
            ));
        }
        if h.key_len == 0 || h.value_len > self.max_value {
            return Err(format!("shard {shard} pos {pos}: bad lengths"));
        }
        if pos.checked_add(h.words()).is_none_or(|end| end > tail) {
            return Err(format!("shard {shard} pos {pos}: entry runs past the tail"));
        }
        let key_words = h.key_len.div_ceil(8);
        let (key, rest) = scratch.split_at_mut(key_words * 8);
        super::entry::copy_out(log, pos.wrapping_add(ENTRY_HEADER_WORDS as u64), key);
        // The key's hash before the value's checksum: damaged words that
        // happen to look like a header are turned down after reading at most
        // 255 key bytes, not a whole value (a walk over a log of such words
        // would otherwise read `max_value` bytes at every word).
        if self.hash_key(&key[..h.key_len]) != h.hash {
            return Err(format!(
                "shard {shard} pos {pos}: key does not match its hash"
            ));
        }
        let value = &mut rest[..h.value_len];
        let sum = super::entry::copy_value_out(
            log,
            pos.wrapping_add((ENTRY_HEADER_WORDS + key_words) as u64),
            value,
            super::entry::ValueSum::seed(&h.encode()),
        );
        if sum != h.checksum {
            return Err(format!("shard {shard} pos {pos}: checksum mismatch"));
        }
        Ok(h)
    }

    /// Walk the index: how many live entries, how old the oldest.
    pub fn occupancy(&self) -> Occupancy {
        if self.layout == Layout::Sets {
            return self.occupancy_of_sets();
        }
        let g = *self.seg.geometry();
        let mut tally = OccupancyTally::new();
        let mut scratch = vec![0u8; self.max_value + 256];
        for b in 0..g.buckets as usize {
            for w in self.seg.bucket(b) {
                let word = w.load(Ordering::Acquire);
                if word != 0 {
                    tally.add(self.check_word(b, word, &mut scratch));
                }
            }
        }
        tally.finish()
    }

    /// Check every index word and walk every shard log. Meant for a quiet
    /// table (`scsp verify`); under concurrent writes it may report entries
    /// overwritten while it looked as problems.
    pub fn verify(&self) -> VerifyReport {
        let problem = |rep: &mut VerifyReport, p: String| {
            if rep.problems.len() < MAX_PROBLEMS {
                rep.problems.push(p);
            }
        };
        if self.layout == Layout::Sets {
            return self.verify_sets(problem);
        }
        let g = *self.seg.geometry();
        let mut rep = VerifyReport::default();
        let mut scratch = vec![0u8; self.max_value + 256];
        for b in 0..g.buckets as usize {
            for w in self.seg.bucket(b) {
                let word = w.load(Ordering::Acquire);
                if word == 0 {
                    continue;
                }
                rep.index_words += 1;
                match self.check_word(b, word, &mut scratch) {
                    Ok(Some(_)) => rep.good_entries += 1,
                    Ok(None) => {}
                    Err(e) => problem(&mut rep, format!("index {e}")),
                }
            }
        }
        for shard in 0..g.shards as usize {
            let t = self.seg.tail(shard).load(Ordering::Acquire);
            let mut pos = t.saturating_sub(self.log_words);
            // Bounded: every step advances pos by at least one word.
            while pos < t {
                match self.read_any(shard, pos, t, &mut scratch) {
                    Ok(h) => {
                        rep.log_entries += 1;
                        if h.flags & super::FLAG_TOMBSTONE != 0 {
                            rep.tombstones += 1;
                        }
                        pos += h.words();
                    }
                    Err(_) => {
                        rep.skipped_words += 1;
                        pos += 1;
                    }
                }
            }
        }
        rep
    }
}
