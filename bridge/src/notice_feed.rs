//! The local change feed of a sets segment: what this host has to send one
//! peer, from the segment's notice rings (docs/architecture.md, "Notice
//! rings").
//!
//! A new feed walks every way once (the catch-up: each local, unexpired
//! session) and reads every ring from where the last connection to this
//! peer stopped, or from the oldest notice still there. Notices are read
//! into the feed as soon as it runs, so a peer that is slow to acknowledge
//! does not let the rings wrap, and each is judged only when its turn to be
//! sent comes: a put is sent if its way still holds the noted version, a
//! take or remove as a tombstone unless the key was put again since.
//!
//! So everything sent states what the table held when the feed looked, and
//! the feed looks in the order it sends: the peer ends with what this host
//! last held of each key, whatever order the rings were read in. A ring
//! that wrapped past the feed lost notices: the feed counts the lost words
//! and walks the ways again, which sends every session those notices named
//! (a lost take or remove is gone for good, as one a log overwrote).

use super::journal::{send_pending, FeedProgress};
use super::wire::EntriesBuilder;
use scsp::replication::{JournalEntry, Notice, NoticeCursor, Replica};
use scsp::segment::layout::NOTICE_WORDS;
use std::collections::VecDeque;

/// Ways walked per turn of the catch-up.
const WALK_CHUNK: u64 = 256;
/// Notices read from one ring per call, at most.
const READ_CHUNK: usize = 4096;
/// Notices held in the feed, at most (tens of MiB at worst): past this the
/// rings keep them, and may wrap.
const MAX_QUEUED: usize = 1 << 20;

/// One peer's view of a sets segment's changes.
pub struct NoticeFeed {
    cursors: Vec<NoticeCursor>,
    /// The next way of the catch-up walk; `ways` once done.
    walk: u64,
    notices: VecDeque<Notice>,
    pending: VecDeque<JournalEntry>,
    read: Vec<Notice>,
    scratch: Vec<u8>,
}

impl NoticeFeed {
    /// A feed reading each ring from `saved` (where an earlier connection
    /// to this peer stopped), or from the oldest notice still there.
    pub fn new(r: &Replica, saved: Option<&[u64]>) -> NoticeFeed {
        let saved = saved.filter(|s| s.len() == r.notice_rings());
        NoticeFeed {
            cursors: (0..r.notice_rings())
                .map(|ring| r.notice_cursor(ring, saved.map_or(0, |s| s[ring])))
                .collect(),
            walk: 0,
            notices: VecDeque::new(),
            pending: VecDeque::new(),
            read: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Where this feed has read each ring up to (kept across reconnects).
    pub fn positions(&self) -> Vec<u64> {
        self.cursors.iter().map(NoticeCursor::next).collect()
    }

    /// Words of notices the rings overwrote since a feed stopped at
    /// `saved`.
    pub fn lost_since(r: &Replica, saved: &[u64]) -> u64 {
        saved
            .iter()
            .enumerate()
            .take(r.notice_rings())
            .map(|(ring, &at)| {
                let oldest = r.notices_written(ring).saturating_sub(r.notice_records());
                oldest.saturating_sub(at) * NOTICE_WORDS as u64
            })
            .sum()
    }

    /// Read new notices from every ring into the feed (up to
    /// 2^20 of them). A ring that wrapped past the feed starts the walk
    /// over.
    pub fn collect(&mut self, r: &Replica) -> FeedProgress {
        let mut prog = FeedProgress::default();
        for cur in &mut self.cursors {
            if self.notices.len() >= MAX_QUEUED {
                break;
            }
            let room = (MAX_QUEUED - self.notices.len()).min(READ_CHUNK);
            let p = r.read_notices(cur, room, &mut self.read);
            prog.lost_words += p.lost_words;
            prog.skipped_words += p.skipped_words;
            self.notices.extend(self.read.drain(..));
        }
        if prog.lost_words > 0 {
            self.walk = 0;
        }
        prog.backlog_words = self.backlog(r);
        prog
    }

    /// Move entries into `b` until it is full or nothing is left to send.
    pub fn fill(&mut self, r: &Replica, b: &mut EntriesBuilder) -> FeedProgress {
        let mut prog = self.collect(r);
        // Bounded: each turn sends, walks a chunk, or judges a notice.
        loop {
            if !send_pending(&mut self.pending, b) {
                prog.backlog_words = self.backlog(r);
                return prog;
            }
            if self.walk < r.ways() {
                let mut found = Vec::new();
                self.walk = r.scan_ways(self.walk, WALK_CHUNK, &mut found);
                self.pending.extend(found);
            } else if let Some(n) = self.notices.pop_front() {
                self.pending.extend(r.resolve_notice(&n, &mut self.scratch));
            } else {
                break;
            }
        }
        prog.backlog_words = self.backlog(r);
        prog
    }

    /// Walked, every notice read and judged, nothing left to send.
    pub fn caught_up(&self, r: &Replica) -> bool {
        self.pending.is_empty()
            && self.notices.is_empty()
            && self.walk >= r.ways()
            && self
                .cursors
                .iter()
                .all(|c| c.next() >= r.notices_written(c.ring()))
    }

    /// Words of notices read or written and not yet judged.
    fn backlog(&self, r: &Replica) -> u64 {
        let unread: u64 = self
            .cursors
            .iter()
            .map(|c| r.notices_written(c.ring()).saturating_sub(c.next()))
            .sum();
        (unread + self.notices.len() as u64) * NOTICE_WORDS as u64
    }
}
