//! Model checking of the table's ordering core with loom.
//!
//! Under `--cfg loom` every shared word of the segment is a loom atomic
//! (through `src/sync.rs`), so loom explores the interleavings — and the
//! weak-memory outcomes of the Relaxed loads — of two threads on one tiny
//! in-memory table (1 shard, 1 bucket, a log of 16 or 64 words). Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom-release cargo test -p scsp --release --test loom
//! ```
#![cfg(loom)]

use loom::sync::Arc;
use scsp::segment::Geometry;
use scsp::{Cache, Lookup};

const KEY: &[u8] = b"k";
const V1: &[u8] = b"value number one";
const V2: &[u8] = b"second value, v2";

/// 1 shard, 1 bucket of 8 words, `log_bytes` of log, values up to 64 bytes.
fn tiny_cache(log_bytes: u64) -> Arc<Cache> {
    Arc::new(Cache::in_memory(Geometry::tiny(1, 1, log_bytes, 64)))
}

/// Two sets of 8 ways of 256-byte slots (the sets layout: every key may
/// live in either), values up to 64 bytes.
fn tiny_sets() -> Arc<Cache> {
    Arc::new(Cache::in_memory(Geometry::tiny_sets(2, 64)))
}

/// Explore the interleavings of `f` exhaustively: the log layout's models
/// are small enough (about 15 s for all of them, as
/// `scripts/check/loom.sh` builds them) that no preemption bound is
/// needed; two of the sets layout's are bounded (see there). `LOOM_MAX_PREEMPTIONS=N`
/// bounds them if they ever grow.
fn model(f: impl Fn() + Sync + Send + 'static) {
    explore(None, f)
}

/// Explore with at most `bound` forced thread switches per execution.
fn explore(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let mut b = loom::model::Builder::new();
    if bound.is_some() {
        b.preemption_bound = bound;
    }
    b.max_branches = 100_000;
    b.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f()
    });
    let runs = runs.load(Ordering::Relaxed);
    println!("explored {runs} executions");
    assert!(runs > 1, "loom explored only {runs} execution(s)");
}

fn get(c: &Cache) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    match c.get(KEY, &mut buf) {
        Lookup::Hit(n) => Some(buf[..n].to_vec()),
        Lookup::Miss => None,
        Lookup::BufferTooSmall(n) => panic!("buffer too small: {n}"),
    }
}

fn take(c: &Cache) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    match c.take(KEY, &mut buf) {
        Lookup::Hit(n) => Some(buf[..n].to_vec()),
        Lookup::Miss => None,
        Lookup::BufferTooSmall(n) => panic!("buffer too small: {n}"),
    }
}

// The reader runs in the spawned thread and the writer in the model's main
// thread: loom runs the main thread first, and every load the reader then
// makes of a word the writer stored becomes a backtracking point, so the
// reader gets scheduled at each step of the put. (The other way round,
// loom's DPOR, which remembers only the last access per atomic, sees the
// writer's own loads of the index word and explores a single execution.)

#[test]
fn get_racing_a_put_sees_nothing_or_the_whole_value() {
    get_racing_a_put(|| tiny_cache(512));
}

#[test]
fn in_a_set_get_racing_a_put_sees_nothing_or_the_whole_value() {
    get_racing_a_put(tiny_sets);
}

fn get_racing_a_put(cache: fn() -> Arc<Cache>) {
    model(move || {
        let c = cache();
        let reader = {
            let c = c.clone();
            loom::thread::spawn(move || get(&c))
        };
        let _ = c.put(KEY, V1, 60);
        let seen = reader.join().unwrap();
        assert!(
            seen.is_none() || seen.as_deref() == Some(V1),
            "get returned {seen:?}"
        );
        // Once the put is done in this thread, the value is visible here.
        assert_eq!(get(&c).as_deref(), Some(V1));
    });
}

#[test]
fn get_racing_a_put_that_overwrites_its_entry_is_never_torn() {
    // A 16-word log: an entry here is 9 words, so the second put wraps onto
    // the first entry's header while the reader may be copying it. The tail
    // check after the Acquire fence must catch every such overlap.
    get_racing_an_overwrite(|| tiny_cache(128), None);
}

#[test]
fn in_a_set_get_racing_an_overwrite_in_place_is_never_torn() {
    // The put rewrites the very slot the reader may be copying: the way's
    // version, loaded again after the Acquire fence, must catch it. Two
    // forced switches (the reader's first load, the put's claim and
    // writes, the reader's copy and second load) in about 35 000
    // executions, 100 s here; unbounded, the 16 tag words a put loads
    // twice make it run for hours.
    get_racing_an_overwrite(tiny_sets, Some(2));
}

/// A get racing a put of a new version over the entry it may be copying
/// sees nothing, the old value or the new one, never a torn one.
fn get_racing_an_overwrite(cache: fn() -> Arc<Cache>, preemptions: Option<usize>) {
    explore(preemptions, move || {
        let c = cache();
        let _ = c.put(KEY, V1, 60);
        let reader = {
            let c = c.clone();
            loom::thread::spawn(move || get(&c))
        };
        let _ = c.put(KEY, V2, 60);
        let seen = reader.join().unwrap();
        assert!(
            seen.is_none() || seen.as_deref() == Some(V1) || seen.as_deref() == Some(V2),
            "get returned {seen:?}"
        );
        assert_eq!(get(&c).as_deref(), Some(V2));
    });
}

#[test]
fn two_takes_of_one_entry_hand_it_out_exactly_once() {
    two_takes(|| tiny_cache(512));
}

#[test]
fn in_a_set_two_takes_of_one_entry_hand_it_out_exactly_once() {
    two_takes(tiny_sets);
}

fn two_takes(cache: fn() -> Arc<Cache>) {
    model(move || {
        let c = cache();
        let _ = c.put(KEY, V1, 60);
        let other = {
            let c = c.clone();
            loom::thread::spawn(move || take(&c))
        };
        let mine = take(&c);
        let theirs = other.join().unwrap();
        let winners = [&mine, &theirs].iter().filter(|t| t.is_some()).count();
        assert_eq!(winners, 1, "mine {mine:?}, theirs {theirs:?}");
        assert_eq!(mine.or(theirs).as_deref(), Some(V1));
        assert_eq!(get(&c), None);
    });
}

#[test]
fn racing_puts_of_one_key_leave_one_of_the_two_values() {
    racing_puts(|| tiny_cache(512));
}

#[test]
fn in_a_set_racing_puts_of_one_key_leave_one_of_the_two_values() {
    racing_puts(tiny_sets);
}

fn racing_puts(cache: fn() -> Arc<Cache>) {
    model(move || {
        let c = cache();
        let other = {
            let c = c.clone();
            loom::thread::spawn(move || {
                let _ = c.put(KEY, V2, 60);
            })
        };
        let _ = c.put(KEY, V1, 60);
        other.join().unwrap();
        let got = get(&c);
        assert!(
            got.as_deref() == Some(V1) || got.as_deref() == Some(V2),
            "after both puts: {got:?}"
        );
    });
}

#[test]
fn take_racing_a_put_takes_one_version_and_leaves_the_other_or_nothing() {
    take_racing_a_put(|| tiny_cache(512), false);
}

#[test]
fn in_a_set_take_racing_a_put_takes_one_version_and_leaves_the_other_or_nothing() {
    take_racing_a_put(tiny_sets, true);
}

/// `in_place`: the put overwrites the very slot the take reads, so a take
/// that meets it mid-write misses (the old version is already going, the
/// new one not there yet), which a cache may always do.
fn take_racing_a_put(cache: fn() -> Arc<Cache>, in_place: bool) {
    // In place, one forced switch (2 000 executions): the version check
    // the take's copy relies on is the get's, explored above with two.
    explore(in_place.then_some(1), move || {
        let c = cache();
        let _ = c.put(KEY, V1, 60);
        let taker = {
            let c = c.clone();
            loom::thread::spawn(move || take(&c))
        };
        let _ = c.put(KEY, V2, 60);
        let taken = taker.join().unwrap();
        let left = get(&c);
        // Either the take won the old version and the new one stays, or the
        // put came first and the take removed the new one. Never both
        // versions handed out, never the old one left behind.
        match (taken.as_deref(), left.as_deref()) {
            (Some(V1), Some(V2)) | (Some(V2), None) => {}
            (None, Some(V2)) if in_place => {}
            other => panic!("take/put race ended as {other:?}"),
        }
    });
}

/// A writer stalled between reserving log space and writing it, while the
/// log wraps past its reservation, writes over a newer entry. The reader's
/// post-copy tail check cannot see this (the stalled reservation is older, not
/// newer); the checksum must, so the newer entry reads as a miss, never as
/// torn bytes. The read that finds the damage unlinks the entry, so once
/// both keys have been read the table verifies clean, and a read counts
/// damage only where `verify` saw it (no live entry is unlinked). Run with
/// two lengths of the other key's value, so that the stalled header lands
/// on the newer entry's value words, and on its key. The model counts
/// the executions that found damage, to show it reaches the case.
#[test]
fn a_lapped_writer_damages_a_newer_entry_but_never_tears_a_read() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DAMAGED: AtomicUsize = AtomicUsize::new(0);
    // 16 words of log. KEY's entry is 9 words. With V1, "j"'s is 9 too and
    // the second reservation wraps onto the first one's last two (value)
    // words. With J_KEY "j"'s entry is 10 words: when "j" reserves first and
    // stalls, its header lands on word 6 of KEY's entry (the key).
    const J_KEY: &[u8] = b"24 bytes: ten words, key";
    // Two preemptions are needed for the first layout; one reaches the
    // case in the second. (A header landing on the hash word needs a
    // 14-word entry, and 23 000 executions even with one preemption: the
    // unit test `lapped_writer_damage_anywhere_in_an_entry_is_counted_once_
    // and_unlinked` covers every landing offset, without interleavings.)
    for (lands_on, j_value, bound) in [("value words", V1, 2), ("key word", J_KEY, 1)] {
        DAMAGED.store(0, Ordering::Relaxed);
        explore(Some(bound), move || {
            let c = tiny_cache(128);
            let newer = {
                let c = c.clone();
                loom::thread::spawn(move || {
                    let _ = c.put(KEY, V2, 60);
                    get(&c)
                })
            };
            let _ = c.put(b"j", j_value, 60);
            let seen = newer.join().unwrap();
            assert!(
                seen.is_none() || seen.as_deref() == Some(V2),
                "get returned {seen:?}"
            );
            let damage_seen = !c.verify().is_clean();
            let counted = c.stats().counters.corrupt;
            let again = get(&c);
            assert!(
                again.is_none() || again.as_deref() == Some(V2),
                "get returned {again:?}"
            );
            let j = c.get_vec(b"j");
            assert!(
                j.is_none() || j.as_deref() == Some(j_value),
                "get returned {j:?}"
            );
            assert!(
                c.stats().counters.corrupt == counted || damage_seen,
                "a read counted damage that verify did not see"
            );
            let report = c.verify();
            assert!(report.is_clean(), "{:?}", report.problems);
            if c.stats().counters.corrupt > 0 {
                DAMAGED.fetch_add(1, Ordering::Relaxed);
            }
        });
        let damaged = DAMAGED.load(Ordering::Relaxed);
        println!("stalled header on the {lands_on}: a read found damage in {damaged} executions");
        assert!(
            damaged > 0,
            "the model never reached the lapped-writer case ({lands_on})"
        );
    }
}
