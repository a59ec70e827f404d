//! Counters without contention: one slot of counters per process.
//!
//! Each process that opens the segment claims a slot (CAS of the owner word
//! from 0 to its pid) and from then on bumps only its own counters, so `get`
//! adds no cache line shared with other processes. Readers of statistics sum
//! every slot. Counts stay in their slot when its process closes the
//! segment or dies; the next owner adds to them. So every slot, and the sum,
//! only grows, which monitoring reads as a counter (a count moved between
//! slots could make a concurrent sum dip). Slot 0 is never owned: processes
//! that found no free slot share it.
//!
//! After `fork()` a child must not keep bumping its parent's slot; a
//! `pthread_atfork` child handler bumps `FORK_GENERATION`, and the next
//! counter update in the child claims a fresh slot.
//!
//! Slot layout (16 words, two cache lines):
//!
//! | word | meaning                         |
//! |------|---------------------------------|
//! | 0    | owner pid (0 = free)            |
//! | 1..  | one counter per [`Counter`]     |

use crate::segment::layout::{STATS_SLOTS, STATS_SLOT_WORDS};
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use std::sync::atomic::AtomicUsize;

/// Declares the counters once: the [`Counter`] enum, the [`Counters`]
/// totals and the [`COUNTERS`] table are all made from this list, and the
/// Prometheus series, the `scsp stats` table and the C struct from those
/// (`include/scsp.h` is checked against [`COUNTERS`] by a test).
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $variant:ident $field:ident $metric:literal;)*) => {
        /// What the table counts, in slot order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Counter {
            $($(#[doc = $doc])* $variant,)*
        }

        /// Totals of every counter, summed over all processes (past and
        /// present).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        pub struct Counters {
            $($(#[doc = $doc])* pub $field: u64,)*
            /// Counter slots held by live processes: one per open handle (a
            /// process with two handles counts twice; a killed process keeps
            /// its slot until another claims it, but is not counted).
            ///
            /// At most 1023 ([`STATS_SLOTS`] - 1): a segment has 1024
            /// counter slots, and once slots 1 to 1023 are held, further
            /// handles share slot 0, which is not counted here. Their hits,
            /// puts and other counts still add up in the totals.
            ///
            /// [`STATS_SLOTS`]: crate::segment::layout::STATS_SLOTS
            pub processes: u64,
        }

        /// Every counter, in slot order (and in the order of `scsp_stats`).
        pub const COUNTERS: &[CounterInfo] = &[
            $(CounterInfo {
                counter: Counter::$variant,
                field: stringify!($field),
                metric: $metric,
                doc: concat!($($doc),*),
            },)*
        ];

        impl Counters {
            /// The total of one counter.
            pub fn get(&self, c: Counter) -> u64 {
                match c {
                    $(Counter::$variant => self.$field,)*
                }
            }

            fn set(&mut self, c: Counter, v: u64) {
                match c {
                    $(Counter::$variant => self.$field = v,)*
                }
            }
        }
    };
}

/// A counter as monitoring and the C ABI see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterInfo {
    /// Which counter.
    pub counter: Counter,
    /// Its name in [`Counters`], `scsp stats --json` and `struct scsp_stats`.
    pub field: &'static str,
    /// Its Prometheus series: `scsp_<metric>_total`.
    pub metric: &'static str,
    /// Its doc comment above.
    doc: &'static str,
}

impl CounterInfo {
    /// What it counts, one sentence.
    pub fn help(&self) -> &'static str {
        self.doc.trim()
    }
}

counters! {
    /// Lookups (get, take) that returned a value.
    Hits hits "hits";
    /// Lookups that found nothing usable.
    Misses misses "misses";
    /// Values stored.
    Puts puts "puts";
    /// Values handed out once by take.
    Takes takes "takes";
    /// Remove calls.
    Removes removes "removes";
    /// Puts refused: value over max_value, or a bad key.
    TooLarge too_large "too_large";
    /// Live entries pushed out of a full index bucket (sets layout: a full set).
    Evictions evictions "evictions";
    /// Lookups that found only an expired entry.
    Expired expired "expired";
    /// Bytes appended to the logs by puts (sets layout: written to slots).
    BytesWritten bytes_written "written_bytes";
    /// Puts that could not publish: under contention, or stalled while the log lapped them (or their way was taken).
    Lost lost "lost";
    /// Damaged entries found by lookups (each unlinked, so counted about once).
    Corrupt corrupt "corrupt";
}

const _: () = assert!(COUNTERS.len() < STATS_SLOT_WORDS);

static FORK_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// This process's pid, kept here so that counting never asks the kernel
/// (`getpid` is a system call; get and put make none). Set when a handle is
/// opened and in every forked child.
static PID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // SAFETY: getpid is async-signal-safe and cannot fail.
    let pid = unsafe { libc::getpid() };
    PID.store(pid as u64, std::sync::atomic::Ordering::Relaxed);
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn register_fork_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handler only touches a static atomic, which is
        // async-signal-safe and valid in the child after fork.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// This process's claim on a counter slot.
pub(crate) struct Slot {
    index: AtomicUsize,
    /// The fork generation `index` was claimed in.
    generation: std::sync::atomic::AtomicU64,
    /// The last fork generation a thread started claiming for: after a
    /// fork, of several threads counting at once only the one that moves
    /// it claims a slot (the others count in the old slot meanwhile, which
    /// keeps the totals right). No lock: a lock held at fork time would stay
    /// locked in the child.
    claiming: std::sync::atomic::AtomicU64,
}

fn slot_words(seg: &Segment, slot: usize) -> &[AtomicU64] {
    let s = slot % STATS_SLOTS;
    &seg.stats_words()[s * STATS_SLOT_WORDS..(s + 1) * STATS_SLOT_WORDS]
}

/// Is there no process `pid` (in this pid namespace)? Not a hot path: slot
/// claims and statistics only.
fn pid_is_dead(pid: u64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return true;
    };
    if cfg!(miri) {
        return false; // Miri cannot call kill(2); every owner counts as alive
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

impl Slot {
    pub(crate) fn claim(seg: &Segment) -> Slot {
        register_fork_handler();
        PID.store(
            std::process::id().into(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let gen = FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed);
        let slot = Slot {
            index: AtomicUsize::new(0),
            generation: std::sync::atomic::AtomicU64::new(u64::MAX),
            claiming: std::sync::atomic::AtomicU64::new(gen),
        };
        slot.reclaim(seg, gen, true);
        slot
    }

    /// Find a free slot, else (`take_dead`) one whose owner died; else share
    /// slot 0. Looking for dead owners costs a `kill(2)` per slot, so only
    /// opening a handle does; a forked child's first count, on the get/put
    /// path, takes a free slot or slot 0.
    fn reclaim(&self, seg: &Segment, gen: u64, take_dead: bool) {
        let me = PID.load(std::sync::atomic::Ordering::Relaxed);
        let mut chosen = 0;
        for s in 1..STATS_SLOTS {
            let owner = &slot_words(seg, s)[0];
            if owner
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                chosen = s;
                break;
            }
        }
        if chosen == 0 && take_dead {
            for s in 1..STATS_SLOTS {
                let owner = &slot_words(seg, s)[0];
                let current = owner.load(Ordering::Relaxed);
                if pid_is_dead(current)
                    && owner
                        .compare_exchange(current, me, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    chosen = s;
                    break;
                }
            }
        }
        self.index
            .store(chosen, std::sync::atomic::Ordering::Relaxed);
        self.generation
            .store(gen, std::sync::atomic::Ordering::Relaxed);
    }

    /// Count `n` events. One relaxed add on this process's own cache line.
    #[inline]
    pub(crate) fn add(&self, seg: &Segment, c: Counter, n: u64) {
        let gen = FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed);
        if self.generation.load(std::sync::atomic::Ordering::Relaxed) != gen
            && self
                .claiming
                .swap(gen, std::sync::atomic::Ordering::Relaxed)
                != gen
        {
            self.reclaim(seg, gen, false);
        }
        let slot = self.index.load(std::sync::atomic::Ordering::Relaxed);
        slot_words(seg, slot)[1 + c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The slot this handle counts in (0: the shared one).
    #[inline]
    pub(crate) fn index(&self) -> usize {
        self.index.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether this handle counts in a slot of its own (not the shared slot
    /// 0, which every handle uses once all the others are taken).
    pub(crate) fn is_own(&self) -> bool {
        self.index.load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    /// Give the slot back; its counts stay for the next owner to add to.
    /// Only the process that claimed it releases it (a forked child that
    /// never counted does not).
    pub(crate) fn release(&self, seg: &Segment) {
        if self.generation.load(std::sync::atomic::Ordering::Relaxed)
            != FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let slot = self.index.load(std::sync::atomic::Ordering::Relaxed);
        // A file cut under the mapping takes the slot with it; storing there
        // would kill a process that did not guard against truncation (a
        // server's master closing the old handle on reload).
        if slot != 0 && seg.still_backs(&slot_words(seg, slot)[0]) {
            slot_words(seg, slot)[0].store(0, Ordering::Release);
        }
    }
}

/// Sum the counters of every slot. Racy by nature: a snapshot, not a transaction.
pub(crate) fn sum(seg: &Segment) -> Counters {
    let mut t = [0u64; COUNTERS.len()];
    let mut processes = 0;
    for s in 0..STATS_SLOTS {
        let w = slot_words(seg, s);
        let owner = w[0].load(Ordering::Relaxed);
        if s != 0 && owner != 0 && !pid_is_dead(owner) {
            processes += 1;
        }
        for (c, total) in t.iter_mut().enumerate() {
            *total = total.wrapping_add(w[1 + c].load(Ordering::Relaxed));
        }
    }
    let mut c = Counters {
        processes,
        ..Counters::default()
    };
    for info in COUNTERS {
        c.set(info.counter, t[info.counter as usize]);
    }
    c
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::segment::Geometry;

    #[test]
    fn counts_stay_when_a_slot_changes_hands() {
        let seg = Segment::heap(Geometry::tiny(1, 64, 4096, 256));
        let first = Slot::claim(&seg);
        first.add(&seg, Counter::Hits, 5);
        let slot = first.index.load(std::sync::atomic::Ordering::Relaxed);
        assert_ne!(slot, 0);
        first.release(&seg);
        let after = sum(&seg);
        assert_eq!((after.hits, after.processes), (5, 0));
        // The next process takes the same slot and adds to what is there.
        let next = Slot::claim(&seg);
        assert_eq!(next.index.load(std::sync::atomic::Ordering::Relaxed), slot);
        next.add(&seg, Counter::Hits, 1);
        let now = sum(&seg);
        assert_eq!((now.hits, now.processes), (6, 1));
    }

    #[test]
    #[cfg_attr(miri, ignore = "slow under Miri")]
    fn processes_are_counted_up_to_the_documented_cap() {
        let seg = Segment::heap(Geometry::tiny(1, 64, 4096, 256));
        let slots: Vec<Slot> = (0..STATS_SLOTS + 5).map(|_| Slot::claim(&seg)).collect();
        // Slots 1..STATS_SLOTS are held; the rest share slot 0, uncounted.
        assert_eq!(sum(&seg).processes, (STATS_SLOTS - 1) as u64);
        assert_eq!(slots.iter().filter(|s| !s.is_own()).count(), 6);
        // Their counts still add up.
        for s in &slots {
            s.add(&seg, Counter::Hits, 1);
        }
        assert_eq!(sum(&seg).hits, (STATS_SLOTS + 5) as u64);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot spawn processes")]
    fn a_killed_owner_is_not_counted_as_attached() {
        let seg = Segment::heap(Geometry::tiny(1, 64, 4096, 256));
        let mine = Slot::claim(&seg);
        mine.add(&seg, Counter::Hits, 1);
        // A slot whose owner died without giving it back (SIGKILL).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = u64::from(child.id());
        child.wait().unwrap();
        slot_words(&seg, STATS_SLOTS - 1)[0].store(dead, Ordering::Relaxed);
        assert_eq!(sum(&seg).processes, 1, "only this process");
    }
}
