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
//! — unless what the log overwrites next is the peer's own oldest entries
//! (its oldest batch sits at the start of the log's window): then it
//! displaces only itself, as when it is the only one writing, and is taken.
//! An entry past the peer's rate is dropped too.

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
        // Entries of one batch interleave with other writers' appends: the
        // peer's oldest counts as the log's oldest within 1 % of the log.
        let own_oldest = self
            .batches
            .front()
            .is_some_and(|&(at, _)| at.saturating_sub(window_start) <= capacity_words / 100);
        let rate = self.limits.entries_per_sec as f64;
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
        Batch {
            at: appended_words,
            share: (capacity_words * 8) as f64 * self.limits.log_share,
            own_oldest,
            added: 0,
        }
    }

    /// May an entry of `bytes` (as stored in the log) be applied? Takes it
    /// from the budget if so.
    pub(crate) fn admit(&mut self, batch: &mut Batch, bytes: u64) -> bool {
        let within_share = (self.held + batch.added + bytes) as f64 <= batch.share;
        if !(within_share || batch.own_oldest) || self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        batch.added += bytes;
        true
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
    /// The log overwrites this peer's own entries next.
    own_oldest: bool,
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
        // ... until the log overwrote them: then the peer's own entries are
        // the oldest, and it displaces only itself.
        let mut batch = b.start(1500, 1000);
        assert!(b.admit(&mut batch, 100));
        assert_eq!(b.finish(batch), 512);
        // Once the log has overwritten the peer's first batch, it holds
        // only the new entry.
        let batch = b.start(2100, 1000);
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
