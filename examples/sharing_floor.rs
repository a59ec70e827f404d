//! How well can *any* shared session store scale the `get90` mix of
//! `scsp bench scale` on this machine? The least a store can do: 10 000
//! fixed slots in one shared mapping, no index, no lock, no checks; a get
//! copies a slot's value out, a put copies a new one in (every tenth
//! visit), through 64-bit atomics as any memory other processes write must
//! be read (docs/architecture.md, I5 ATOMIC-ONLY). P forked processes visit
//! the keys in orders of their own, as the bench does. Printed beside it: the
//! same with each process on a mapping of its own (nothing shared), the
//! ceiling.
//!
//! ```text
//! cargo run --release -p scsp-lab --example sharing_floor [VALUE_BYTES] [ROUNDS]
//! ```
//! docs/perf-scaling.md, "Where scsp's speed-up goes", quotes its output.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const KEYS: usize = 10_000;
/// Operations per process per run.
const OPS: usize = 3_000_000;
/// One visit in this many is a put.
const PUT_EVERY: usize = 10;

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
    for shared in [true, false] {
        let mut one = Vec::new();
        let mut all = Vec::new();
        for _ in 0..rounds {
            one.push(run(1, words, shared));
            all.push(run(cpus, words, shared));
        }
        let (one, all) = (median(one), median(all));
        let name = if shared {
            "one shared mapping"
        } else {
            "a mapping per process"
        };
        println!(
            "{name:<26} {one:>8.2} Mops {all:>8.2} Mops {:>8.2}x",
            all / one
        );
    }
}

/// Total Mops/s of `procs` processes.
fn run(procs: usize, words: usize, shared: bool) -> f64 {
    let table = shared.then(|| slots(words));
    let mut pipes = Vec::new();
    let mut children = Vec::new();
    for p in 0..procs {
        let (rx, mut tx) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        // SAFETY: this process has one thread; the child only touches
        // memory, its own mapping or the shared one, and its socket.
        let child = unsafe {
            childguard::fork(move || {
                let t = table.unwrap_or_else(|| slots(words));
                let mops = work(t, words, p);
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

/// Zeroed slots for every key in a fresh shared anonymous mapping, shared
/// with children forked after it.
fn slots(words: usize) -> &'static [AtomicU64] {
    let len = KEYS * words;
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
