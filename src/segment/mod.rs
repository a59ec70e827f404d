//! The shared segment: the only code that touches raw memory.
//!
//! A segment is a file (normally on `/dev/shm`) mapped into every process that
//! uses the cache. Inside it live only `AtomicU64` words, reached through
//! `Segment::words`: no `&[u8]` or `&T` is ever formed over memory another
//! process may be writing (docs/architecture.md, invariant I5 ATOMIC-ONLY).
//! Regions are addressed by word offsets from the start, never by pointers.

// File creation and mapping; under `cfg(loom)` shared words are model-checker
// objects, not memory, so only heap segments exist there.
#[cfg(not(loom))]
mod file;
pub mod layout;
pub mod pages;
#[cfg(not(loom))]
mod truncation;

#[cfg(not(loom))]
pub use file::remove;
pub use layout::Geometry;

use crate::config::Config;
use crate::sync::{AtomicU64, Ordering};
use layout::{H_STATE, STATE_READY};

/// How an existing segment may be opened.
///
/// A segment of our own (our effective uid owns it) is always accepted.
/// One of another user only with `allow_foreign_owner`, and then only if
/// its owner is root or `owner`, and its group is `group`: a user who can
/// create a name where the segment is expected (any user, in /dev/shm)
/// cannot make workers trust a file of their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Accept a segment owned by another user (off by default).
    pub allow_foreign_owner: bool,
    /// The user, besides root, a segment of another user may be owned by.
    pub owner: Option<u32>,
    /// The group a segment of another user must belong to (the group it
    /// is shared through). `None` refuses every segment of another user.
    pub group: Option<u32>,
}

impl Access {
    /// Accept a segment of another user owned by root or `owner` and
    /// belonging to `group`.
    pub fn foreign(owner: Option<u32>, group: u32) -> Access {
        Access {
            allow_foreign_owner: true,
            owner,
            group: Some(group),
        }
    }
}

impl From<&Config> for Access {
    fn from(c: &Config) -> Self {
        Access {
            allow_foreign_owner: c.allow_foreign_owner,
            owner: c.owner,
            group: c.group,
        }
    }
}

/// Where the words live: a shared file mapping, or (for tests and model
/// checking) the heap.
enum Backing {
    #[cfg(not(loom))]
    Mapped(#[allow(dead_code)] memmap2::MmapRaw),
    // A Vec, not a Box: moving a Box into `_backing` would retag it as unique
    // and invalidate `base` (Miri, Stacked Borrows); moving a Vec does not.
    Heap(#[allow(dead_code)] Vec<AtomicU64>),
}

/// A validated, mapped segment. Cheap to share between threads.
pub struct Segment {
    base: *const AtomicU64,
    len_words: usize,
    geo: Geometry,
    path: Option<std::path::PathBuf>,
    /// Device and inode of the mapped file, to notice it being replaced.
    file_id: Option<(u64, u64)>,
    _backing: Backing,
}

// SAFETY: the segment only hands out `&AtomicU64`, which are Sync; `base`
// points into `_backing`, which lives exactly as long as the Segment and is
// never moved or unmapped while it exists.
unsafe impl Send for Segment {}
// SAFETY: as above; all access to the memory is through atomics.
unsafe impl Sync for Segment {}

impl Segment {
    /// A segment on the heap, private to this process. For tests, fuzzing and
    /// the loom model; behaves exactly like a mapped one.
    #[doc(hidden)]
    pub fn heap(mut geo: Geometry) -> Segment {
        if geo.seed == [0, 0] {
            geo.seed = [0x5eed_0001, 0x5eed_0002];
        }
        let words: Vec<AtomicU64> = (0..geo.total_words()).map(|_| AtomicU64::new(0)).collect();
        let seg = Segment {
            base: words.as_ptr(),
            len_words: words.len(),
            geo,
            path: None,
            file_id: None,
            _backing: Backing::Heap(words),
        };
        seg.write_header();
        seg
    }

    /// Fill the header and publish READY last, with Release: an opener that
    /// reads READY with Acquire sees every header word.
    fn write_header(&self) {
        let w = self.words();
        for (i, v) in self.geo.header_words().iter().enumerate() {
            w[i].store(*v, Ordering::Relaxed);
        }
        w[H_STATE].store(STATE_READY, Ordering::Release);
    }

    /// All words of the segment.
    #[inline]
    pub(crate) fn words(&self) -> &[AtomicU64] {
        // SAFETY: `base` points to `len_words` initialised AtomicU64s owned by
        // `_backing` (a page-aligned shared mapping, or a Vec that is never resized) for the
        // lifetime of `self`. AtomicU64 has the size and alignment of u64 and
        // any bit pattern is a valid value, so other processes' writes cannot
        // make this slice invalid; they only race through atomics.
        unsafe { std::slice::from_raw_parts(self.base, self.len_words) }
    }

    /// The validated geometry (a local copy, never re-read from shared memory).
    #[inline]
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The file behind the segment, if it is mapped from one.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Whether the path no longer names the mapped file: it was removed, or
    /// replaced by a new segment (docs/operations.md, "Upgrades"); or the
    /// file no longer holds this segment: cut or grown to another length,
    /// or its header gone (cut and grown back). Servers and the bridge keep
    /// using the old mapping until they reopen, so a long-running process
    /// should check this and reopen. A heap segment never is; a failure
    /// other than "not found" is not taken as replaced.
    pub fn replaced(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Some(path), Some(id)) = (&self.path, self.file_id) else {
            return false;
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if (m.dev(), m.ino()) != id => true,
            // The header is read only once the file is known to be as long
            // as the mapping (and its page still backed by it).
            Ok(m) => {
                let magic = &self.words()[layout::H_MAGIC];
                m.len() != (self.len_words * 8) as u64
                    || !self.still_backs(magic)
                    || magic.load(Ordering::Relaxed) != self.magic()
            }
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }

    /// The magic word this segment's header starts with.
    fn magic(&self) -> u64 {
        match self.geo.layout {
            crate::config::Layout::Log => layout::MAGIC,
            crate::config::Layout::Sets => layout::MAGIC_SETS,
        }
    }

    /// Map every page of the segment into this process now. Otherwise the
    /// first get or put to touch each page takes a page fault, a kernel
    /// entry on the hot path: 260 000 of them per GiB over a worker's first
    /// laps, each a few microseconds at a moment no one chose. About 0.3 s
    /// per GiB on a small virtual machine, once; a worker may call it
    /// right after opening, benchmarks do to measure the steady state. It
    /// holds for the calling process only: a child forked afterwards starts
    /// with none of a shared mapping's pages mapped, so a server that opens
    /// the segment before forking its workers calls it in each worker.
    /// Before Linux 5.14 (no `MADV_POPULATE_READ`) this is an error and
    /// nothing changes: pages keep faulting in as they are touched.
    pub fn prefault(&self) -> std::io::Result<()> {
        match &self._backing {
            #[cfg(not(loom))]
            Backing::Mapped(map) => map.advise(memmap2::Advice::PopulateRead),
            Backing::Heap(_) => Ok(()),
        }
    }

    /// Whether the file still backs the page holding `word`: false once the
    /// file was cut under the mapping, where a store would raise SIGBUS in
    /// a process that did not guard against truncation. A kernel that
    /// cannot tell (before 5.14) says yes. One system call: for rare moments
    /// such as closing a handle, never a get or put.
    #[cfg_attr(loom, allow(unused_variables))]
    pub(crate) fn still_backs(&self, word: &AtomicU64) -> bool {
        match &self._backing {
            #[cfg(not(loom))]
            Backing::Mapped(map) => {
                let offset = (word as *const AtomicU64 as usize).wrapping_sub(self.base as usize);
                !matches!(
                    map.advise_range(memmap2::Advice::PopulateRead, offset, 8),
                    Err(e) if e.raw_os_error() == Some(libc::EFAULT)
                )
            }
            Backing::Heap(_) => true,
        }
    }

    /// Shard tails: one word per shard, each on its own cache line.
    #[inline]
    pub(crate) fn tail(&self, shard: usize) -> &AtomicU64 {
        &self.words()[self.geo.tails_off + (shard & (self.geo.shards as usize - 1)) * 8]
    }

    /// The 8 words of an index bucket.
    #[inline]
    pub(crate) fn bucket(&self, bucket: usize) -> &[AtomicU64; layout::BUCKET_WORDS] {
        let start = self.geo.index_off + (bucket & (self.geo.buckets as usize - 1)) * 8;
        // A slice of exactly BUCKET_WORDS words always converts.
        self.words()[start..start + layout::BUCKET_WORDS]
            .try_into()
            .expect("bucket slice has BUCKET_WORDS words")
    }

    /// The words of one shard's circular log.
    #[inline]
    pub(crate) fn log(&self, shard: usize) -> &[AtomicU64] {
        let n = (self.geo.log_bytes / 8) as usize;
        let start = self.geo.logs_off + (shard & (self.geo.shards as usize - 1)) * n;
        &self.words()[start..start + n]
    }

    /// Notice ring `ring` of a sets segment (empty for the log layout): its
    /// count of records written, then the records.
    #[inline]
    pub(crate) fn notice_ring(&self, ring: usize) -> &[AtomicU64] {
        let n = layout::notice_ring_words(self.geo.notice_records) as usize;
        if self.geo.notice_records == 0 {
            return &[];
        }
        let start = self.geo.notices_off + (ring % layout::NOTICE_RINGS) * n;
        &self.words()[start..start + n]
    }

    /// The per-process counter slots.
    #[inline]
    pub(crate) fn stats_words(&self) -> &[AtomicU64] {
        let n = layout::STATS_SLOTS * layout::STATS_SLOT_WORDS;
        &self.words()[self.geo.stats_off..self.geo.stats_off + n]
    }

    /// Start address and length in bytes of a file mapping; (0, 0) for a
    /// heap segment.
    #[cfg(not(loom))]
    fn mapped_range(&self) -> (usize, usize) {
        match self._backing {
            Backing::Mapped(_) => (self.base as usize, self.len_words * 8),
            Backing::Heap(_) => (0, 0),
        }
    }

    /// The words of one region of the extension area. Only the module that
    /// owns the region reads or writes them.
    pub(crate) fn region(&self, r: Region) -> &[AtomicU64] {
        let (start, len) = r.words();
        &self.words()[self.geo.ext_off + start..self.geo.ext_off + start + len]
    }

    /// Whether a bridge has ever run on this segment. Until one has, no
    /// peer holds any of its sessions, so takes and removes need no
    /// tombstone (docs/architecture.md, "Tombstones"). SeqCst: the take's
    /// or remove's SeqCst CAS of the index word and this load pair with
    /// [`Segment::mark_replicated`]'s store and fence.
    ///
    /// A status area claimed by a bridge of an earlier release, which did
    /// not set the mark, counts too.
    #[inline]
    pub(crate) fn replicated(&self) -> bool {
        let w = self.region(Region::BridgeStatus);
        w[layout::BRIDGE_REPLICATED_WORD].load(Ordering::SeqCst) == layout::REPLICATED_MAGIC
            || w[0].load(Ordering::Relaxed) == layout::BRIDGE_STATUS_MAGIC
    }

    /// Record for good that a bridge runs on this segment, before it reads
    /// any of the log: from then on every take and remove appends a
    /// tombstone. The fence orders the mark before the bridge's first read
    /// of an index word, so a take either saw the mark (and appends a
    /// tombstone) or cleared its word before the bridge could ship the
    /// entry.
    pub fn mark_replicated(&self) {
        self.region(Region::BridgeStatus)[layout::BRIDGE_REPLICATED_WORD]
            .store(layout::REPLICATED_MAGIC, Ordering::SeqCst);
        crate::sync::fence(Ordering::SeqCst);
    }

    /// Where a region lies in the segment file, in bytes: for tools and
    /// tests that inspect or damage the file itself.
    pub fn region_bytes(&self, r: Region) -> std::ops::Range<u64> {
        let (start, len) = r.words();
        let from = ((self.geo.ext_off + start) * 8) as u64;
        from..from + (len * 8) as u64
    }
}

#[cfg(not(loom))]
impl Drop for Segment {
    fn drop(&mut self) {
        // Before the mapping goes: the SIGBUS handler must not remap an
        // address range the process may reuse.
        self.unguard();
    }
}

/// The named regions of a segment's extension area, each owned by one
/// module of this crate; no other code gets their words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The shared ticket-key ring ([`crate::keyring`]).
    KeyRing,
    /// The bridge's liveness and per-peer counters
    /// (`crate::replication::status`), and the mark that a bridge has run
    /// (`Segment::replicated`, read by the table).
    BridgeStatus,
}

impl Region {
    /// First word (from the start of the extension area) and length.
    fn words(self) -> (usize, usize) {
        match self {
            Region::KeyRing => (0, layout::KEYRING_WORDS),
            Region::BridgeStatus => (layout::KEYRING_WORDS, layout::BRIDGE_STATUS_WORDS),
        }
    }
}
