//! How well can *any* shared session store scale the `get90` mix of
//! `scsp bench scale` on this machine, and what does scsp's shape cost?
//! P forked processes visit 10 000 keys in orders of their own, as the
//! bench does; one visit in ten is a put. Two stores, each as bare as it
//! can be (no hash, no checks, no counters), through 64-bit atomics as any
//! memory other processes write must be read (docs/architecture.md, I5
//! ATOMIC-ONLY):
//!
//! - **slots**: a fixed slot per key, rewritten in place. The least any
//!   store can do; but in-place rewrites need a writer lock (or a reader
//!   could copy half of two values), which I1 NO-WAIT rules out.
//! - **log**: scsp's shape. A put reserves room at the tail of one of 16
//!   shard logs (`fetch_add`), writes a header word and the value there and
//!   publishes the position in the key's index word (one per cache line,
//!   as keys spread over scsp's buckets); a get loads the index word,
//!   copies the value from the position it names and loads the shard's
//!   tail once (the seqlock check).
//!
//! Each on one shared mapping and on a mapping per process (nothing
//! shared, the ceiling).
//!
//! ```text
//! cargo run --release -p scsp-lab --example sharing_floor [VALUE_BYTES] [ROUNDS]
//! ```
//! docs/perf-scaling.md, "Where scsp's speed-up goes", quotes its output.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Instant;

const KEYS: usize = 10_000;
/// Operations per process per run.
const OPS: usize = 3_000_000;
/// One visit in this many is a put.
const PUT_EVERY: usize = 10;
/// The log shape: shards, and words per shard log (a power of two).
const SHARDS: usize = 16;
/// Index words and tails each sit on a cache line of their own.
const LINE_WORDS: usize = 8;

/// Which store.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Slots,
    Log,
}

impl Shape {
    /// Words of the store's mapping for values of `words` words.
    fn len(self, words: usize) -> usize {
        match self {
            Shape::Slots => KEYS * words,
            Shape::Log => KEYS * LINE_WORDS + SHARDS * LINE_WORDS + SHARDS * log_words(words),
        }
    }
}

/// Each shard log holds four times its share of the keys' entries.
fn log_words(words: usize) -> usize {
    (KEYS * (words + 1) * 4 / SHARDS).next_power_of_two()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let value: usize = args.next().map_or(150, |a| a.parse().expect("VALUE_BYTES"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("ROUNDS"));
    let words = value.div_ceil(8);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("get90, {value} B values, {KEYS} keys, {OPS} ops per process, median of {rounds}");
    println!(
        "{:<26} {:>12} {:>12} {:>9}",
        "",
        "1 process",
        format!("{cpus} processes"),
        "speed-up"
    );
    for shape in [Shape::Slots, Shape::Log] {
        for shared in [true, false] {
            let mut one = Vec::new();
            let mut all = Vec::new();
            for _ in 0..rounds {
                one.push(run(1, words, shape, shared));
                all.push(run(cpus, words, shape, shared));
            }
            let (one, all) = (median(one), median(all));
            let name = format!(
                "{}, {}",
                if shape == Shape::Slots {
                    "slots"
                } else {
                    "log"
                },
                if shared { "shared" } else { "unshared" }
            );
            println!(
                "{name:<26} {one:>8.2} Mops {all:>8.2} Mops {:>8.2}x",
                all / one
            );
        }
    }
}

/// Total Mops/s of `procs` processes.
fn run(procs: usize, words: usize, shape: Shape, shared: bool) -> f64 {
    let table = shared.then(|| store(words, shape));
    let mut pipes = Vec::new();
    let mut children = Vec::new();
    for p in 0..procs {
        let (rx, mut tx) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        // SAFETY: this process has one thread; the child only touches
        // memory, its own mapping or the shared one, and its socket.
        let child = unsafe {
            childguard::fork(move || {
                let t = table.unwrap_or_else(|| store(words, shape));
                let mops = match shape {
                    Shape::Slots => work(t, words, p),
                    Shape::Log => work_log(t, words, p),
                };
                use std::io::Write;
                tx.write_all(&mops.to_ne_bytes()).expect("report");
                0
            })
        }
        .expect("fork");
        children.push(child);
        pipes.push(rx);
    }
    pipes
        .iter_mut()
        .map(|r| {
            use std::io::Read;
            let mut b = [0u8; 8];
            r.read_exact(&mut b).expect("a child's result");
            f64::from_ne_bytes(b)
        })
        .sum()
}

/// A new store: zeroed slots, or a log with every key put once.
fn store(words: usize, shape: Shape) -> &'static [AtomicU64] {
    let t = mapping(shape.len(words));
    if shape == Shape::Log {
        for key in 0..KEYS {
            put_log(t, words, key, 0);
        }
    }
    t
}

/// The log store's parts: index words, tails, logs.
fn log_parts(t: &[AtomicU64], words: usize) -> (&[AtomicU64], &[AtomicU64], &[AtomicU64]) {
    let (index, rest) = t.split_at(KEYS * LINE_WORDS);
    let (tails, logs) = rest.split_at(SHARDS * LINE_WORDS);
    debug_assert_eq!(logs.len(), SHARDS * log_words(words));
    (index, tails, logs)
}

/// Append `key`'s new value to its shard's log and publish its position.
fn put_log(t: &[AtomicU64], words: usize, key: usize, stamp: u64) {
    let (index, tails, logs) = log_parts(t, words);
    let shard = key % SHARDS;
    let lw = log_words(words);
    let log = &logs[shard * lw..(shard + 1) * lw];
    let pos = tails[shard * LINE_WORDS].fetch_add(words as u64 + 1, Ordering::Relaxed) as usize;
    fence(Ordering::Release);
    log[pos & (lw - 1)].store(key as u64, Ordering::Relaxed);
    for w in 0..words {
        log[(pos + 1 + w) & (lw - 1)].store(stamp ^ w as u64, Ordering::Relaxed);
    }
    index[key * LINE_WORDS].store(pos as u64, Ordering::Release);
}

/// One process's Mops/s on the log store (see the module docs).
fn work_log(t: &[AtomicU64], words: usize, p: usize) -> f64 {
    let stride = [7919, 7927, 7933, 7937, 7949, 7951, 7963, 7993][p % 8];
    let (index, tails, logs) = log_parts(t, words);
    let lw = log_words(words);
    let mut buf = vec![0u64; words];
    let mut key = p * 997 % KEYS;
    let start = Instant::now();
    for i in 0..OPS {
        key = (key + stride) % KEYS;
        if i % PUT_EVERY == 0 {
            put_log(t, words, key, i as u64);
        } else {
            let shard = key % SHARDS;
            let log = &logs[shard * lw..(shard + 1) * lw];
            let pos = index[key * LINE_WORDS].load(Ordering::Acquire) as usize;
            for (w, b) in buf.iter_mut().enumerate() {
                *b = log[(pos + 1 + w) & (lw - 1)].load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            let tail = tails[shard * LINE_WORDS].load(Ordering::Relaxed);
            std::hint::black_box((&buf, tail));
        }
    }
    OPS as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// One process's Mops/s over its own visiting order (a stride coprime to
/// the key count, different per process).
fn work(t: &[AtomicU64], words: usize, p: usize) -> f64 {
    let stride = [7919, 7927, 7933, 7937, 7949, 7951, 7963, 7993][p % 8];
    let mut buf = vec![0u64; words];
    let mut key = p * 997 % KEYS;
    let start = Instant::now();
    for i in 0..OPS {
        key = (key + stride) % KEYS;
        let slot = &t[key * words..(key + 1) * words];
        if i % PUT_EVERY == 0 {
            for (w, v) in slot.iter().enumerate() {
                v.store(i as u64 ^ w as u64, Ordering::Release);
            }
        } else {
            for (b, v) in buf.iter_mut().zip(slot) {
                *b = v.load(Ordering::Acquire);
            }
            std::hint::black_box(&buf);
        }
    }
    OPS as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// `len` zeroed words in a fresh shared anonymous mapping, shared with
/// children forked after it.
fn mapping(len: usize) -> &'static [AtomicU64] {
    // SAFETY: a fresh anonymous shared mapping, never unmapped (it lives as
    // long as the process); page-aligned and zeroed, so `len` valid
    // AtomicU64s, reached only atomically.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len * 8,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        std::slice::from_raw_parts(p as *const AtomicU64, len)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
