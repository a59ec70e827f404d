//! Do the shard tails need 128 bytes apart, or do 64 do?
//!
//! A put's one contended write is the `fetch_add` on its shard's tail, and
//! the tails sit one per 64-byte line (`segment/layout.rs`, `CACHE_LINE`).
//! Intel's L2 "adjacent line" (spatial) prefetcher fetches lines in
//! 128-byte-aligned pairs, so two tails 64 B apart can still pull each
//! other's line away between cores; that is why crossbeam's `CachePadded`
//! is 128 bytes on x86-64. This measures it: two threads pinned to two
//! different CPUs each bump a tail of their own in a loop, with the tails
//!
//! - `same-line`: 8 B apart (true false sharing: the upper bound of harm),
//! - `64`: adjacent lines of one 128-byte pair (today's stride, shards 2k
//!   and 2k + 1),
//! - `128`: one pair apart (the proposed stride),
//! - `4096`: pages apart (nothing shared: the machine's ceiling),
//!
//! and then the shape of real puts: each bump goes to a pseudo-random one
//! of 16 tails (the default shard count) at stride 64 or 128, with some
//! private work between bumps standing in for the rest of a put.
//!
//! ```text
//! cargo run --release -p scsp-lab --example tail_stride [-- ROUNDS [BUMPS]]
//! ```
//! Cases are interleaved round by round; the median ns per bump (the slower
//! thread's) is reported. Needs two CPUs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

/// Words in the area the tails live in: 8 KiB.
const WORDS: usize = 1024;
/// Shards in the random-tail cases (scsp's default).
const SHARDS: usize = 16;

#[repr(align(4096))]
struct Area([AtomicU64; WORDS]);

/// Which tails the two threads bump.
#[derive(Clone, Copy)]
enum Case {
    /// Thread t always bumps the word at `t * stride` bytes.
    Fixed { stride: usize },
    /// Each bump goes to a pseudo-random one of SHARDS tails `stride`
    /// bytes apart, after `work` rounds of private arithmetic.
    Random { stride: usize, work: u32 },
}

impl Case {
    fn name(self) -> String {
        match self {
            Case::Fixed { stride: 8 } => "fixed, same line (8 B apart)".into(),
            Case::Fixed { stride } => format!("fixed, {stride} B apart"),
            Case::Random { stride, work } => {
                format!("random of {SHARDS}, stride {stride} B, work {work}")
            }
        }
    }
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it;
    // sched_setaffinity reads it, for the calling thread (0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            panic!(
                "cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Thread `t` (pinned to CPU `t`) does `bumps` bumps; ns per bump of the
/// slower thread.
fn run(area: &Area, case: Case, bumps: u64) -> f64 {
    let start = Barrier::new(2);
    let ns = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    pin(t);
                    let mut x = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(t as u64 + 1);
                    start.wait();
                    let begin = Instant::now();
                    match case {
                        Case::Fixed { stride } => {
                            let w = &area.0[t * stride / 8];
                            for _ in 0..bumps {
                                w.fetch_add(1, Ordering::AcqRel);
                            }
                        }
                        Case::Random { stride, work } => {
                            for _ in 0..bumps {
                                // xorshift64: the next shard, and as many
                                // rounds again of private work.
                                for _ in 0..=work {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                }
                                let shard = (x >> 32) as usize % SHARDS;
                                area.0[shard * stride / 8].fetch_add(1, Ordering::AcqRel);
                            }
                        }
                    }
                    std::hint::black_box(x);
                    begin.elapsed().as_nanos() as f64 / bumps as f64
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|h| h.join().expect("bumping thread"))
            .fold(0.0f64, f64::max)
    });
    for w in &area.0 {
        w.store(0, Ordering::Relaxed);
    }
    ns
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: tail_stride [ROUNDS [BUMPS]]"))
        .collect();
    let rounds = args.first().copied().unwrap_or(11) as usize;
    let bumps = args.get(1).copied().unwrap_or(5_000_000);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "needs two CPUs, this process may use {cpus}");
    let area = Box::new(Area(std::array::from_fn(|_| AtomicU64::new(0))));
    let mut cases = vec![
        Case::Fixed { stride: 8 },
        Case::Fixed { stride: 64 },
        Case::Fixed { stride: 128 },
        Case::Fixed { stride: 4096 },
    ];
    for work in [0, 20] {
        for stride in [64, 128] {
            cases.push(Case::Random { stride, work });
        }
    }
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, &c) in cases.iter().enumerate() {
            ns[i].push(run(&area, c, bumps));
        }
    }
    println!("two threads pinned to CPUs 0 and 1, {bumps} bumps each, {rounds} rounds");
    println!("{:<42} {:>8} {:>8} {:>8}", "case", "min", "median", "max");
    for (c, mut v) in cases.into_iter().zip(ns) {
        v.sort_by(f64::total_cmp);
        println!(
            "{:<42} {:>8.2} {:>8.2} {:>8.2}",
            c.name(),
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
    println!("ns per bump, the slower thread's");
}
