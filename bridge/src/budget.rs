//! What one peer may cost this host: a share of the session log and a rate.
//!
//! The log is circular, so every entry a peer sends pushes the oldest entry
//! out; a runaway or compromised peer sending without end would push out
//! this host's own sessions. A [`Budget`] keeps, per peer, the bytes it
//! appended and where the log's appends stood then: an entry stays in the
//! log until the log has appended its whole capacity after it, so the
//! peer's entries appended within the last capacity's worth of appends are
//! what it holds now.
//!
//! An entry that would take the peer past its share is dropped and counted
//! — unless the peer's entries are all the log holds (nothing else wrote
//! in the last capacity's worth of appends, as on a host that only mirrors
//! or one that restarted empty and is being caught up): then it displaces
//! only itself, and is taken. Whether its oldest entry is the next to be
//! overwritten is not enough: an append moves the overwriting on by its
//! whole length, and a peer that went past its share that way would make
//! every session written after it live for fewer of this host's own
//! writes. An entry past the peer's rate is dropped too.

use crate::config::PeerBudget;
use std::collections::VecDeque;
use std::time::Instant;

/// One peer's account.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: PeerBudget,
    /// (log appends in words when a batch was applied, bytes it added).
    batches: VecDeque<(u64, u64)>,
    /// Sum of the bytes in `batches`.
    held: u64,
    /// Entries the rate still allows now, and when that was computed.
    tokens: f64,
    refilled: Instant,
}

impl Budget {
    pub(crate) fn new(limits: PeerBudget) -> Budget {
        Budget {
            limits,
            batches: VecDeque::new(),
            held: 0,
            tokens: limits.entries_per_sec as f64,
            refilled: Instant::now(),
        }
    }

    /// Start a batch: `appended_words` is the log's total appends so far
    /// (every shard's tail), `capacity_words` its size. Forgets batches the
    /// log has since overwritten, and refills the rate.
    pub(crate) fn start(&mut self, appended_words: u64, capacity_words: u64) -> Batch {
        let window_start = appended_words.saturating_sub(capacity_words);
        // A batch leaves once the log has overwritten all of it.
        while let Some(&(at, bytes)) = self.batches.front() {
            if at + bytes / 8 > window_start {
                break;
            }
            self.batches.pop_front();
            self.held -= bytes;
        }
        // The words of the window that are this peer's: its batches, less
        // the part of the oldest the log has overwritten already.
        let overwritten = self.batches.front().map_or(0, |&(at, bytes)| {
            window_start.saturating_sub(at).min(bytes / 8)
        });
        let own_words = (self.held / 8).saturating_sub(overwritten);
        let window_words = appended_words - window_start;
        // Everything in the window is the peer's, to the word: any other
        // write (a session of this host, another peer's, a hole a killed
        // writer left) ends the exception. A margin would let a peer that
        // turns the log over fast enough evict every session of a host that
        // writes fewer than the margin per turn.
        let sole_writer = own_words >= window_words;
        let rate = self.limits.entries_per_sec as f64;
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
        Batch {
            at: appended_words,
            share: (capacity_words * 8) as f64 * self.limits.log_share,
            sole_writer,
            added: 0,
        }
    }

    /// May an entry of `bytes` (as stored in the log) be applied? Takes it
    /// from the budget if so.
    pub(crate) fn admit(&mut self, batch: &mut Batch, bytes: u64) -> bool {
        let within_share = (self.held + batch.added + bytes) as f64 <= batch.share;
        if !(within_share || batch.sole_writer) || self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        batch.added += bytes;
        true
    }

    /// An admitted entry of `bytes` appended nothing (a tombstone for a key
    /// not here): the peer does not hold it. Counting it would make the
    /// peer look like the log's only writer when it is not.
    pub(crate) fn refund(&mut self, batch: &mut Batch, bytes: u64) {
        batch.added -= bytes.min(batch.added);
    }

    /// Close the batch; returns the share of the log the peer holds, in
    /// thousandths.
    pub(crate) fn finish(&mut self, batch: Batch) -> u64 {
        if batch.added > 0 {
            self.batches.push_back((batch.at, batch.added));
            self.held += batch.added;
        }
        let capacity = batch.share / self.limits.log_share;
        (self.held as f64 / capacity.max(1.0) * 1000.0) as u64
    }
}

/// One batch being applied.
#[derive(Debug)]
pub(crate) struct Batch {
    at: u64,
    share: f64,
    /// Everything the log holds is this peer's: it displaces only itself.
    sole_writer: bool,
    added: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_holds_at_most_its_share_until_the_log_moves_on() {
        let mut b = Budget::new(PeerBudget {
            log_share: 0.5,
            entries_per_sec: 1_000_000,
        });
        // A log of 1000 words (8000 bytes): 4000 bytes for this peer, which
        // starts writing after others wrote 500 words.
        let mut batch = b.start(500, 1000);
        let admitted = (0..100).filter(|_| b.admit(&mut batch, 100)).count();
        assert_eq!(admitted, 40);
        assert_eq!(b.finish(batch), 500);
        // The others' entries are the log's oldest: no more...
        let mut batch = b.start(1000, 1000);
        assert!(!b.admit(&mut batch, 100));
        b.finish(batch);
        // ... nor once the log overwrote them, for others wrote after the
        // peer: a peer's oldest entries being the next overwritten is no
        // reason to take more ...
        let mut batch = b.start(1500, 1000);
        assert!(!b.admit(&mut batch, 100));
        b.finish(batch);
        // ... until the log has overwritten the peer's first batch.
        let mut batch = b.start(2000, 1000);
        assert!(b.admit(&mut batch, 100));
        assert_eq!(b.finish(batch), 12);
    }

    #[test]
    fn a_peer_that_wrote_first_is_held_to_its_share_once_others_write() {
        let mut b = Budget::new(PeerBudget {
            log_share: 0.5,
            entries_per_sec: 1_000_000,
        });
        // A host that restarted empty: the peer's catch-up comes first
        // (800 bytes), then this host writes 300 words of its own.
        let mut batch = b.start(0, 1000);
        assert_eq!((0..8).filter(|_| b.admit(&mut batch, 100)).count(), 8);
        b.finish(batch);
        // The peer's entries are the log's oldest, but what it sends now
        // would push this host's out: 4000 bytes in all, no more.
        let mut batch = b.start(400, 1000);
        let admitted = (0..100).filter(|_| b.admit(&mut batch, 100)).count();
        assert_eq!(admitted, 32);
        assert_eq!(b.finish(batch), 500);
    }

    #[test]
    fn a_peer_that_filled_the_log_alone_waits_for_its_share_once_others_write() {
        let mut b = Budget::new(PeerBudget {
            log_share: 0.5,
            entries_per_sec: 1_000_000,
        });
        let mut appended = 0;
        for _ in 0..8 {
            let mut batch = b.start(appended, 1000);
            assert_eq!((0..10).filter(|_| b.admit(&mut batch, 100)).count(), 10);
            b.finish(batch);
            appended += 125;
        }
        // This host writes 200 words: the peer holds 800 of the window's
        // 1000, past its share, so it waits ...
        let mut batch = b.start(appended + 200, 1000);
        assert!(!b.admit(&mut batch, 100));
        assert_eq!(b.finish(batch), 875);
        // ... until this host's writes have pushed it down to its share.
        let mut batch = b.start(appended + 500, 1000);
        assert!(!b.admit(&mut batch, 100));
        assert_eq!(b.finish(batch), 500);
        let mut batch = b.start(appended + 625, 1000);
        assert!(b.admit(&mut batch, 100));
        b.finish(batch);
    }

    #[test]
    fn a_host_that_writes_a_little_holds_a_flooding_peer_to_its_share() {
        let mut b = Budget::new(PeerBudget {
            log_share: 0.5,
            entries_per_sec: 1_000_000,
        });
        // The peer alone fills a log of 10 000 words: all taken.
        let mut appended = 0;
        for _ in 0..8 {
            let mut batch = b.start(appended, 10_000);
            assert_eq!((0..100).filter(|_| b.admit(&mut batch, 100)).count(), 100);
            b.finish(batch);
            appended += 1250;
        }
        // This host writes one small session (5 words) between two of the
        // peer's batches: the peer is no longer the only writer, and waits
        // for its share, however little the host wrote.
        appended += 5;
        let mut batch = b.start(appended, 10_000);
        assert!(!b.admit(&mut batch, 100));
        b.finish(batch);
    }

    #[test]
    fn what_appended_nothing_is_not_held() {
        let mut b = Budget::new(PeerBudget {
            log_share: 0.5,
            entries_per_sec: 1_000_000,
        });
        // Others wrote the whole log; the peer's 4000 bytes of tombstones
        // for keys not here hold nothing, so they do not count.
        let mut batch = b.start(1000, 1000);
        for _ in 0..40 {
            assert!(b.admit(&mut batch, 100));
            b.refund(&mut batch, 100);
        }
        assert!(b.admit(&mut batch, 100));
        assert_eq!(b.finish(batch), 12);
    }

    #[test]
    fn a_peer_whose_entries_are_the_oldest_displaces_only_itself() {
        let mut b = Budget::new(PeerBudget {
            log_share: 0.5,
            entries_per_sec: 1_000_000,
        });
        // The only writer: past its share, the log overwrites its own
        // entries next, so it goes on.
        let mut appended = 0;
        for _ in 0..30 {
            let mut batch = b.start(appended, 1000);
            let n = (0..10).filter(|_| b.admit(&mut batch, 100)).count() as u64;
            assert_eq!(n, 10, "at {appended}");
            b.finish(batch);
            appended += n * 100 / 8;
        }
    }

    #[test]
    fn a_peer_gets_a_second_of_its_rate_at_once() {
        let mut b = Budget::new(PeerBudget {
            log_share: 1.0,
            entries_per_sec: 10,
        });
        let mut batch = b.start(0, 1 << 30);
        let admitted = (0..100).filter(|_| b.admit(&mut batch, 1)).count();
        assert_eq!(admitted, 10);
    }
}
