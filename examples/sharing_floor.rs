//! How well can *any* shared session store scale the `get90` mix of
//! `scsp bench scale` on this machine, and how far is scsp from that?
//! P forked processes visit 10 000 keys exactly as the bench does: each in
//! an order of its own (a stride of its own, coprime to the key count),
//! and visit `i` of key `k` is a put when `(i / keys + k) % 10 == 0`, so
//! that every key is rewritten once every ten passes, by one process or
//! another, and gets read what other processes wrote. Nine stores:
//!
//! - **slots**: a fixed slot per key, rewritten in place, as bare as it can
//!   be (no hash, no checks, no counters). The least any store can do; but
//!   unguarded in-place rewrites let a reader copy half of two values.
//! - **versioned**: the slots with a version word each, a seqlock that
//!   waits for nobody: a put adds 1 before it writes and 1 after, a get
//!   copies between two loads of the version and misses if they differ or
//!   are odd. Two puts of one key at once can leave a mix of their values
//!   under an even version, so a real store of this shape would also need a
//!   checksum in each slot (as scsp's entries have), and a killed writer
//!   leaves its slot odd until the next put; neither costs sharing.
//! - **checked**: the versioned slots doing a get's and a put's work as
//!   scsp does it: each slot holds the version, the 32-byte key, the
//!   value's length and expiry, a checksum and the value; a get hashes the
//!   key (xxh3), compares it, reads the clock for the expiry and checksums
//!   the value as it copies it; a put hashes and checksums as it writes. A
//!   key has its own slot (the hash is computed, not used), so nothing is
//!   evicted.
//! - **indexed**: the checked slots reached as scsp reaches its entries:
//!   the key's hash picks a bucket (one cache line of 8 words, about four
//!   words per key, as scsp sizes its index) whose word with the key's tag
//!   names the slot. A put rewrites that slot in place, so the word does
//!   not change. What a table that rewrites sessions in place, with an
//!   index, could reach.
//! - **log**: scsp's shape, as bare. A put reserves room at the tail of one
//!   of 16 shard logs (`fetch_add`), writes a header word and the value
//!   there and publishes the position in the key's index word (one per
//!   cache line, as keys spread over scsp's buckets); a get loads the index
//!   word, copies the value from the position it names and loads the
//!   shard's tail once (the seqlock check).
//! - **log-own**: the log store with a shard log per process: a put
//!   appends to its own process's shard and the index word names the
//!   shard, so that no two processes write one tail or one log line.
//!   Whether spreading the appends so takes away what sharing costs a log.
//! - **log-chunk**: the log store with each process taking a shard's log
//!   space 512 words at a time (one `fetch_add` per chunk instead of per
//!   put, and no two processes' entries on one line) and gets that do not
//!   load the tail: what the log shape costs without its tail.
//! - **scsp**: `scsp::Cache` on a segment file in /dev/shm sized as
//!   `scsp bench scale` sizes it, with 32-byte keys: hash, index bucket,
//!   checks, checksum, expiry and counters included.
//! - **scsp-split**: scsp with the keys split between the processes (the
//!   key a visit names, moved to the nearest one of the visiting process's
//!   own share): nobody reads a session another process wrote, so what
//!   sharing still costs is the table's own shared lines (shard tails,
//!   index buckets, log lines two writers share).
//! - **sets**, **sets-split**: the same on a segment of the sets layout
//!   sized as `scsp bench scale` sizes it; split, what sharing still costs
//!   is the tag lines, which the sessions of both processes share.
//!
//! Three more run the mix as a TLS server's cache sees it, where a put stores
//! a *new* session (every full handshake makes one; no server rewrites a
//! session) rather than rewriting a key (see `new_key`):
//!
//! - **assoc-new**: an in-place store with no log and no tail: a key's hash
//!   picks a set of 8 ways (checked slots) and a line of 8 tag words; a
//!   put overwrites the way of the set's oldest session, a get reads the
//!   way whose tag matches. Nothing is shared but the sessions' own lines.
//! - **page-new**: what a table with sessions in place would ship: the
//!   same memory as scsp-new's segment cut into 4 KiB pages, one set per
//!   page (two lines of tag words, then up to 15 checked slots), a put
//!   overwriting its set's oldest way, and the record of puts a bridge
//!   needs as a ring of 8-byte notices (page and way) per process, its
//!   tail on a line only that process writes. One page walk per
//!   operation, no line any other process writes but the sessions' own.
//! - **scsp-new**: `scsp::Cache` under the same puts of new sessions.
//!
//! Bare stores are read and written through 64-bit atomics, as any memory
//! other processes write must be (docs/architecture.md, I5 ATOMIC-ONLY).
//! Each store runs on one shared mapping and on one per process (nothing
//! shared: the ceiling), and every round runs every store once with one
//! process and once with all, so that a round's ratios share the machine's
//! moment. The speed-up printed is the median of the rounds' ratios.
//!
//! ```text
//! cargo run --release -p scsp-lab --example sharing_floor [VALUE_BYTES] [ROUNDS]
//! SHAPES=indexed,scsp cargo run ...   # only these stores
//! # one cell of the first store named, for a profiler: 2 processes on one
//! # store (or `1,shared`, `2,unshared`), each working RUN_MS milliseconds
//! SHAPES=scsp ONLY_RUN=2,shared RUN_MS=3000 perf record -e cpu-clock \
//!     target/release/examples/sharing_floor 150
//! # the set-associative store with this many sets (a power of two)
//! ASSOC_SETS=16384 SHAPES=assoc-new cargo run ...
//! # every store, bare ones too, in files in this directory (e.g. a tmpfs
//! # mounted with huge=always) instead of anonymous memory and /dev/shm
//! SCSP_BENCH_DIR=/mnt/huge cargo run ...
//! ```
//!
//! The header line gives a cache line's round trip between the first two
//! CPUs before and after the run (`scsp_lab::bench::crosscore`): speed-ups
//! of shared stores fall as it grows.
//! docs/perf-scaling.md, "What a shared store can reach here", quotes its
//! output.

use scsp_lab::baselines::{
    bench_config, bench_config_sets, keys, rewrites, stride, Key, TempSegment,
};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEYS: usize = 10_000;
/// How long each process of a run works.
const RUN: Duration = Duration::from_millis(300);
/// Operations between looks at the clock.
const BATCH: usize = 1024;
/// Every key is rewritten once in this many passes.
const PUT_EVERY: usize = 10;
/// The log shape: shards, and words per shard log (a power of two).
const SHARDS: usize = 16;
/// Index words and tails each sit on a cache line of their own.
const LINE_WORDS: usize = 8;
/// The indexed store's buckets: about four index words per key, as scsp
/// sizes its index.
const BUCKETS: usize = (KEYS * 4 / LINE_WORDS).next_power_of_two();
/// scsp's TTL here: longer than any run.
const TTL_SECS: u32 = 3600;

/// Which store.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Slots,
    Versioned,
    Checked,
    Indexed,
    Log,
    LogOwn,
    LogChunk,
    Scsp,
    ScspSplit,
    Sets,
    SetsSplit,
    Assoc,
    Page,
    ScspNew,
}

impl Shape {
    const ALL: [Shape; 14] = [
        Shape::Slots,
        Shape::Versioned,
        Shape::Checked,
        Shape::Indexed,
        Shape::Log,
        Shape::LogOwn,
        Shape::LogChunk,
        Shape::Scsp,
        Shape::ScspSplit,
        Shape::Sets,
        Shape::SetsSplit,
        Shape::Assoc,
        Shape::Page,
        Shape::ScspNew,
    ];

    fn name(self) -> &'static str {
        match self {
            Shape::Slots => "slots",
            Shape::Versioned => "versioned",
            Shape::Checked => "checked",
            Shape::Indexed => "indexed",
            Shape::Log => "log",
            Shape::LogOwn => "log-own",
            Shape::LogChunk => "log-chunk",
            Shape::Scsp => "scsp",
            Shape::ScspSplit => "scsp-split",
            Shape::Sets => "sets",
            Shape::SetsSplit => "sets-split",
            Shape::Assoc => "assoc-new",
            Shape::Page => "page-new",
            Shape::ScspNew => "scsp-new",
        }
    }
}

/// Words of a bare store's mapping for values of `words` words.
fn bare_len(shape: Shape, words: usize) -> usize {
    match shape {
        Shape::Log | Shape::LogOwn | Shape::LogChunk => {
            KEYS * LINE_WORDS + SHARDS * LINE_WORDS + SHARDS * log_words(words)
        }
        Shape::Versioned => KEYS * (words + 1),
        Shape::Checked => KEYS * (words + CHECKED_HEADER),
        Shape::Indexed => BUCKETS * LINE_WORDS + KEYS * (words + CHECKED_HEADER),
        Shape::Assoc => {
            let sets = assoc_sets();
            sets * LINE_WORDS + sets * LINE_WORDS * (words + CHECKED_HEADER)
        }
        Shape::Page => page_count(words) * PAGE_WORDS + NOTICE_RINGS * (RING_WORDS + LINE_WORDS),
        _ => KEYS * words,
    }
}

/// Each shard log holds four times its share of the keys' entries.
fn log_words(words: usize) -> usize {
    (KEYS * (words + 1) * 4 / SHARDS).next_power_of_two()
}

/// A store the processes of one run use: a bare mapping or an scsp segment.
enum Store {
    Bare(&'static [AtomicU64]),
    Scsp(TempSegment),
}

fn main() {
    let mut args = std::env::args().skip(1);
    let value: usize = args.next().map_or(150, |a| a.parse().expect("VALUE_BYTES"));
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("ROUNDS"));
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let keys = keys(0x5eed, KEYS);
    let only = std::env::var("SHAPES").unwrap_or_default();
    let cells: Vec<(Shape, bool)> = Shape::ALL
        .iter()
        .filter(|s| only.is_empty() || only.split(',').any(|o| o == s.name()))
        .flat_map(|&s| [(s, true), (s, false)])
        .collect();
    if let Ok(cell) = std::env::var("ONLY_RUN") {
        let usage = "ONLY_RUN=PROCESSES,shared or ONLY_RUN=PROCESSES,unshared";
        let (procs, sharing) = cell.split_once(',').expect(usage);
        let procs: usize = procs.parse().expect(usage);
        assert!(
            procs > 0 && matches!(sharing, "shared" | "unshared"),
            "{usage}"
        );
        let (shape, _) = *cells.first().expect("SHAPES names no store");
        let mops = run(procs, value, shape, sharing == "shared", &keys);
        println!("{} {cell}: {mops:.2} Mops/s", shape.name());
        return;
    }
    let trip_before = round_trip();
    // Per cell: (one-process Mops/s, all-process Mops/s) of each round.
    let mut results = vec![Vec::new(); cells.len()];
    for _ in 0..rounds {
        for (c, &(shape, shared)) in cells.iter().enumerate() {
            let one = run(1, value, shape, shared, &keys);
            let all = run(cpus, value, shape, shared, &keys);
            results[c].push((one, all));
        }
    }
    println!(
        "get90, {value} B values, {KEYS} keys, {} ms per run, {rounds} rounds (medians); \
         cross-core line round trip {trip_before} ns before, {} after",
        run_for().as_millis(),
        round_trip()
    );
    println!(
        "{:<20} {:>11} {:>13} {:>9} {:>15} {:>14}",
        "",
        "1 process",
        format!("{cpus} processes"),
        "speed-up",
        "(rounds' range)",
        "ns/op 1 -> P"
    );
    for (&(shape, shared), r) in cells.iter().zip(&results) {
        let one = median(r.iter().map(|x| x.0).collect());
        let all = median(r.iter().map(|x| x.1).collect());
        let ratios: Vec<f64> = r.iter().map(|x| x.1 / x.0).collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        let name = format!(
            "{}, {}",
            shape.name(),
            if shared { "shared" } else { "unshared" }
        );
        println!(
            "{name:<20} {one:>6.2} Mops {all:>8.2} Mops {:>8.2}x {:>15} {:>14}",
            median(ratios),
            format!("{lo:.2}-{hi:.2}x"),
            format!("{:.0} -> {:.0}", 1e3 / one, 1e3 * cpus as f64 / all)
        );
    }
}

/// A cache line's round trip between the first two CPUs, ns, as text.
fn round_trip() -> String {
    use scsp_lab::bench::crosscore;
    crosscore::probe_pair()
        .and_then(|(a, b)| crosscore::round_trip_ns(a, b))
        .map_or("-".into(), |ns| format!("{ns:.0}"))
}

/// Total Mops/s of `procs` processes on a new store (one shared, or one
/// each).
fn run(procs: usize, value: usize, shape: Shape, shared: bool, keys: &[Key]) -> f64 {
    // New-key mode: a shared store's slots are shared out among the
    // processes; a store of its own is one process's alone.
    let owners = if shared { procs } else { 1 };
    let one_store = || new_store(shape, value, keys, owners);
    let shared_store = shared.then(one_store);
    let own: Vec<Store> = if shared {
        Vec::new()
    } else {
        (0..procs).map(|_| one_store()).collect()
    };
    // New-key mode: each process's pass, so that a get asks for the
    // session another process has put by now (a line each).
    let passes = mapping(procs * LINE_WORDS);
    let mut pipes = Vec::new();
    let mut children = Vec::new();
    for p in 0..procs {
        let store = shared_store.as_ref().or(own.get(p)).expect("a store");
        let (rx, mut tx) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        // SAFETY: this process has one thread; the child only touches
        // memory, its own store or the shared one, and its socket.
        let child = unsafe {
            childguard::fork(move || {
                let mops = match store {
                    Store::Bare(t) if shape == Shape::Slots => work_slots(t, value, p),
                    Store::Bare(t) if shape == Shape::Versioned => work_versioned(t, value, p),
                    Store::Bare(t) if shape == Shape::Checked => work_checked(t, value, keys, p),
                    Store::Bare(t) if shape == Shape::Indexed => work_indexed(t, value, keys, p),
                    Store::Bare(t) if shape == Shape::Assoc => {
                        let words = value.div_ceil(8);
                        work_sets(
                            "assoc-new",
                            value,
                            p,
                            Peers::new(procs, shared, passes),
                            |k, v| put_assoc(t, words, k, v),
                            |k, buf| get_in_set(assoc_set(t, words, k), LINE_WORDS, words, k, buf),
                        )
                    }
                    Store::Bare(t) if shape == Shape::Page => {
                        let words = value.div_ceil(8);
                        work_sets(
                            "page-new",
                            value,
                            p,
                            Peers::new(procs, shared, passes),
                            |k, v| put_page(t, words, k, v, p),
                            |k, buf| {
                                let (set, _) = page_set(t, words, k);
                                get_in_set(set, page_ways(words), words, k, buf)
                            },
                        )
                    }
                    Store::Scsp(seg) if shape == Shape::ScspNew => work_scsp_new(
                        &scsp::Cache::open(seg.path()).expect("opening the segment"),
                        value,
                        p,
                        Peers::new(procs, shared, passes),
                    ),
                    Store::Bare(t) => work_log(t, value, p, shape),
                    Store::Scsp(seg) => work_scsp(
                        &scsp::Cache::open(seg.path()).expect("opening the segment"),
                        value,
                        keys,
                        p,
                        if matches!(shape, Shape::ScspSplit | Shape::SetsSplit) {
                            procs
                        } else {
                            1
                        },
                    ),
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
    let total = pipes
        .iter_mut()
        .map(|r| {
            use std::io::Read;
            let mut b = [0u8; 8];
            r.read_exact(&mut b).expect("a child's result");
            f64::from_ne_bytes(b)
        })
        .sum();
    unmap(passes);
    for s in shared_store.into_iter().chain(own) {
        if let Store::Bare(t) = s {
            unmap(t);
        }
    }
    total
}

/// A new store of `shape`, every key put once (the bare slots start zeroed).
fn new_store(shape: Shape, value: usize, keys: &[Key], owners: usize) -> Store {
    let words = value.div_ceil(8);
    match shape {
        Shape::ScspNew => {
            let seg = TempSegment::new("sharing-floor");
            // Two generations of every slot's session live at once.
            let c = scsp::Cache::create(seg.path(), &bench_config(2 * KEYS, value))
                .expect("creating the segment");
            let v = vec![7u8; value];
            for key in first_sessions(owners) {
                assert_eq!(c.put(&key, &v, TTL_SECS), scsp::Stored::Ok);
            }
            Store::Scsp(seg)
        }
        Shape::Scsp | Shape::ScspSplit | Shape::Sets | Shape::SetsSplit => {
            let seg = TempSegment::new("sharing-floor");
            let cfg = if matches!(shape, Shape::Sets | Shape::SetsSplit) {
                bench_config_sets(KEYS, value)
            } else {
                bench_config(KEYS, value)
            };
            let c = scsp::Cache::create(seg.path(), &cfg).expect("creating the segment");
            let v = vec![7u8; value];
            for k in keys {
                assert_eq!(c.put(k, &v, TTL_SECS), scsp::Stored::Ok);
            }
            Store::Scsp(seg)
        }
        _ => {
            let t = mapping(bare_len(shape, words));
            if matches!(shape, Shape::Log | Shape::LogOwn | Shape::LogChunk) {
                for key in 0..KEYS {
                    append_log(t, words, key, key % SHARDS, 0);
                }
            }
            if shape == Shape::Checked {
                let len = words + CHECKED_HEADER;
                let v = vec![7u64; words];
                let expiry = scsp::clock::now_secs() + u64::from(TTL_SECS);
                for (k, key) in keys.iter().enumerate() {
                    put_checked(&t[k * len..(k + 1) * len], key, &v, expiry);
                }
            }
            if shape == Shape::Indexed {
                let len = words + CHECKED_HEADER;
                let (index, slots) = t.split_at(BUCKETS * LINE_WORDS);
                let v = vec![7u64; words];
                let expiry = scsp::clock::now_secs() + u64::from(TTL_SECS);
                for (k, key) in keys.iter().enumerate() {
                    let (b, tag) = bucket_of(key);
                    let bucket = &index[b * LINE_WORDS..(b + 1) * LINE_WORDS];
                    let free = bucket.iter().find(|w| w.load(Ordering::Relaxed) == 0);
                    free.expect("a free index word")
                        .store(tag | k as u64, Ordering::Relaxed);
                    put_checked(&slots[k * len..(k + 1) * len], key, &v, expiry);
                }
            }
            if shape == Shape::Assoc {
                let v = vec![7u64; words];
                for key in first_sessions(owners) {
                    put_assoc(t, words, &key, &v);
                }
            }
            if shape == Shape::Page {
                let v = vec![7u64; words];
                for (i, key) in first_sessions(owners).enumerate() {
                    put_page(t, words, &key, &v, i % NOTICE_RINGS);
                }
            }
            Store::Bare(t)
        }
    }
}

/// The indexed store's bucket for `key` and its tag (the top 16 bits of
/// the hash, in the word's top 16 bits).
#[inline(always)]
fn bucket_of(key: &Key) -> (usize, u64) {
    let h = xxhash_rust::xxh3::xxh3_64(key);
    (h as usize % BUCKETS, h & (0xffff << 48))
}

/// The slot `key`'s index word names, if its bucket has one.
#[inline(always)]
fn find_slot(index: &[AtomicU64], key: &Key) -> Option<usize> {
    let (b, tag) = bucket_of(key);
    let bucket = &index[b * LINE_WORDS..(b + 1) * LINE_WORDS];
    let words = std::array::from_fn::<u64, LINE_WORDS, _>(|i| bucket[i].load(Ordering::Acquire));
    words
        .iter()
        .find(|&&w| w != 0 && w & (0xffff << 48) == tag)
        .map(|&w| (w & ((1 << 48) - 1)) as usize)
}

/// One process's Mops/s on the indexed slots: the checked slots reached
/// through an index like scsp's (hash, bucket line, tag), a put rewriting
/// the slot its key's word names, in place (the word does not change).
fn work_indexed(t: &[AtomicU64], value: usize, keys: &[Key], p: usize) -> f64 {
    let words = value.div_ceil(8);
    let len = words + CHECKED_HEADER;
    let (index, slots) = t.split_at(BUCKETS * LINE_WORDS);
    let stride = stride(p, KEYS);
    let v: Vec<u64> = (0..words as u64).collect();
    let expiry = scsp::clock::now_secs() + u64::from(TTL_SECS);
    let mut buf = vec![0u64; words];
    timed_gets("indexed", |i| {
        let (key, is_put) = visit(i, stride);
        // Every key is indexed when the store is made; a lost one counts
        // as a get that missed.
        let Some(s) = find_slot(index, &keys[key]) else {
            return Some(false);
        };
        let slot = &slots[s * len..(s + 1) * len];
        if is_put {
            write_checked(slot, &keys[key], &v, expiry);
            return None;
        }
        let hit = read_checked(slot, &keys[key], &mut buf);
        std::hint::black_box(&buf);
        Some(hit)
    })
}

/// How long each process of a run works: RUN, or `RUN_MS`.
fn run_for() -> Duration {
    std::env::var("RUN_MS").map_or(RUN, |ms| {
        Duration::from_millis(ms.parse().expect("RUN_MS: milliseconds"))
    })
}

/// Call `op(i)` for i = 0, 1, ... for [`run_for`]; return Mops/s.
#[inline(always)]
fn timed(mut op: impl FnMut(usize)) -> f64 {
    let run = run_for();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < run {
        for _ in 0..BATCH {
            op(i);
            i += 1;
        }
    }
    i as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// `timed` for a mix of puts and gets: `op(i)` says whether a get hit, or
/// `None` for a put. Gets that miss are cheaper than hits and would flatter
/// a store, so only the rare lost race with a put of the same key is
/// allowed.
#[inline(always)]
fn timed_gets(store: &str, mut op: impl FnMut(usize) -> Option<bool>) -> f64 {
    let (mut gets, mut misses) = (0usize, 0usize);
    let mops = timed(|i| {
        if let Some(hit) = op(i) {
            gets += 1;
            misses += usize::from(!hit);
        }
    });
    assert!(
        misses * 100 < gets.max(1),
        "{store}: {misses} of {gets} gets missed"
    );
    mops
}

/// Visit `i` of a process walking the keys with `stride`: its key, and
/// whether it is a put (`scsp bench scale`'s own rule, `rewrites`).
#[inline(always)]
fn visit(i: usize, stride: usize) -> (usize, bool) {
    let key = i.wrapping_mul(stride) % KEYS;
    (key, rewrites(i, KEYS, key, PUT_EVERY))
}

/// The log store's parts: index words, tails, logs.
fn log_parts(t: &[AtomicU64], words: usize) -> (&[AtomicU64], &[AtomicU64], &[AtomicU64]) {
    let (index, rest) = t.split_at(KEYS * LINE_WORDS);
    let (tails, logs) = rest.split_at(SHARDS * LINE_WORDS);
    debug_assert_eq!(logs.len(), SHARDS * log_words(words));
    (index, tails, logs)
}

/// log-chunk: words of log a process takes from a shard's tail at a time.
const CHUNK_WORDS: usize = 512;

/// Where the log stores' index words keep the shard (above the position).
const SHARD_SHIFT: u32 = 56;

/// Append `key`'s new value to the log of `shard` and publish where it is.
fn append_log(t: &[AtomicU64], words: usize, key: usize, shard: usize, stamp: u64) {
    let (_, tails, _) = log_parts(t, words);
    let pos = tails[shard * LINE_WORDS].fetch_add(words as u64 + 1, Ordering::Relaxed) as usize;
    write_log(t, words, key, shard, pos, stamp);
}

/// Write `key`'s new value at `pos` of the log of `shard` (reserved) and
/// publish where it is.
fn write_log(t: &[AtomicU64], words: usize, key: usize, shard: usize, pos: usize, stamp: u64) {
    let (index, _, logs) = log_parts(t, words);
    let lw = log_words(words);
    let log = &logs[shard * lw..(shard + 1) * lw];
    fence(Ordering::Release);
    log[pos & (lw - 1)].store(key as u64, Ordering::Relaxed);
    for w in 0..words {
        log[(pos + 1 + w) & (lw - 1)].store(stamp ^ w as u64, Ordering::Relaxed);
    }
    index[key * LINE_WORDS].store(
        (shard as u64) << SHARD_SHIFT | pos as u64,
        Ordering::Release,
    );
}

/// One process's Mops/s on the log store (see the module docs), or with
/// `own_shard` on the log-own store: a put appends to its own process's
/// shard (`p % SHARDS`) instead of the key's. Either way the index word
/// names the shard beside the position.
fn work_log(t: &[AtomicU64], value: usize, p: usize, shape: Shape) -> f64 {
    let words = value.div_ceil(8);
    let stride = stride(p, KEYS);
    let (index, tails, logs) = log_parts(t, words);
    let lw = log_words(words);
    let mut buf = vec![0u64; words];
    // log-chunk: each shard's space taken CHUNK_WORDS at a time, (next, end).
    let mut chunks = [(0usize, 0usize); SHARDS];
    timed(|i| {
        let (key, is_put) = visit(i, stride);
        if is_put && shape == Shape::LogChunk {
            let shard = key % SHARDS;
            let (next, end) = &mut chunks[shard];
            if *next + words + 1 > *end {
                let take = CHUNK_WORDS.max(words + 1);
                *next =
                    tails[shard * LINE_WORDS].fetch_add(take as u64, Ordering::Relaxed) as usize;
                *end = *next + take;
            }
            write_log(t, words, key, shard, *next, i as u64);
            *next += words + 1;
        } else if is_put {
            let shard = if shape == Shape::LogOwn {
                p % SHARDS
            } else {
                key % SHARDS
            };
            append_log(t, words, key, shard, i as u64);
        } else if shape == Shape::LogChunk {
            // No look at the tail: what the shape costs without it.
            let word = index[key * LINE_WORDS].load(Ordering::Acquire);
            let shard = (word >> SHARD_SHIFT) as usize;
            let log = &logs[shard * lw..(shard + 1) * lw];
            let pos = word as usize;
            for (w, b) in buf.iter_mut().enumerate() {
                *b = log[(pos + 1 + w) & (lw - 1)].load(Ordering::Relaxed);
            }
            std::hint::black_box(&buf);
        } else {
            let word = index[key * LINE_WORDS].load(Ordering::Acquire);
            let shard = (word >> SHARD_SHIFT) as usize;
            let log = &logs[shard * lw..(shard + 1) * lw];
            let pos = word as usize;
            for (w, b) in buf.iter_mut().enumerate() {
                *b = log[(pos + 1 + w) & (lw - 1)].load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            let tail = tails[shard * LINE_WORDS].load(Ordering::Relaxed);
            std::hint::black_box((&buf, tail));
        }
    })
}

/// Words before a checked slot's value: version, key (4), length and
/// expiry, checksum.
const CHECKED_HEADER: usize = 7;

/// Write `key`'s slot of the checked store (see the module docs).
fn put_checked(slot: &[AtomicU64], key: &Key, value: &[u64], expiry: u64) {
    std::hint::black_box(xxhash_rust::xxh3::xxh3_64(key));
    write_checked(slot, key, value, expiry);
}

/// `put_checked` without the hash (the indexed store hashed to find the
/// slot).
fn write_checked(slot: &[AtomicU64], key: &Key, value: &[u64], expiry: u64) {
    let (version, rest) = slot.split_first().expect("a slot");
    version.fetch_add(1, Ordering::Relaxed);
    fence(Ordering::Release);
    for (w, k) in rest.iter().zip(key.chunks_exact(8)) {
        w.store(
            u64::from_le_bytes(k.try_into().expect("8 bytes")),
            Ordering::Relaxed,
        );
    }
    rest[4].store((value.len() as u64) << 40 | expiry, Ordering::Relaxed);
    let (mut a, mut b) = (expiry, 0u64);
    for (w, &v) in rest[6..].iter().zip(value) {
        w.store(v, Ordering::Relaxed);
        a = a.wrapping_add(v);
        b = b.wrapping_add(a);
    }
    rest[5].store(a ^ b.rotate_left(32), Ordering::Relaxed);
    version.fetch_add(1, Ordering::Release);
}

/// Read `key`'s value from its checked slot into `buf`: a hit only if the
/// key matches, it has not expired, no put overlapped the copy and the
/// checksum agrees.
fn get_checked(slot: &[AtomicU64], key: &Key, buf: &mut [u64]) -> bool {
    std::hint::black_box(xxhash_rust::xxh3::xxh3_64(key));
    read_checked(slot, key, buf)
}

/// `get_checked` without the hash (the indexed store hashed to find the
/// slot).
fn read_checked(slot: &[AtomicU64], key: &Key, buf: &mut [u64]) -> bool {
    let (version, rest) = slot.split_first().expect("a slot");
    let before = version.load(Ordering::Acquire);
    if before & 1 != 0 {
        return false;
    }
    let same_key = rest
        .iter()
        .zip(key.chunks_exact(8))
        .all(|(w, k)| w.load(Ordering::Relaxed) == u64::from_le_bytes(k.try_into().expect("8")));
    let meta = rest[4].load(Ordering::Relaxed);
    let expiry = meta & ((1 << 40) - 1);
    if !same_key || (meta >> 40) as usize != buf.len() || expiry < scsp::clock::now_secs() {
        return false;
    }
    let (mut a, mut b) = (expiry, 0u64);
    for (d, w) in buf.iter_mut().zip(&rest[6..]) {
        *d = w.load(Ordering::Relaxed);
        a = a.wrapping_add(*d);
        b = b.wrapping_add(a);
    }
    let sum = rest[5].load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    version.load(Ordering::Relaxed) == before && sum == a ^ b.rotate_left(32)
}

/// One process's Mops/s on the checked slots (see the module docs): every
/// key was put when the store was made, so gets miss only on lost races.
fn work_checked(t: &[AtomicU64], value: usize, keys: &[Key], p: usize) -> f64 {
    let words = value.div_ceil(8);
    let len = words + CHECKED_HEADER;
    let stride = stride(p, KEYS);
    let v: Vec<u64> = (0..words as u64).collect();
    let expiry = scsp::clock::now_secs() + u64::from(TTL_SECS);
    let mut buf = vec![0u64; words];
    timed_gets("checked", |i| {
        let (key, is_put) = visit(i, stride);
        let slot = &t[key * len..(key + 1) * len];
        if is_put {
            put_checked(slot, &keys[key], &v, expiry);
            return None;
        }
        let hit = get_checked(slot, &keys[key], &mut buf);
        std::hint::black_box(&buf);
        Some(hit)
    })
}

/// One process's Mops/s on the versioned slots (see the module docs).
fn work_versioned(t: &[AtomicU64], value: usize, p: usize) -> f64 {
    let words = value.div_ceil(8);
    let stride = stride(p, KEYS);
    let mut buf = vec![0u64; words];
    timed_gets("versioned", |i| {
        let (key, is_put) = visit(i, stride);
        let (version, slot) = t[key * (words + 1)..(key + 1) * (words + 1)]
            .split_first()
            .expect("a slot has a version word");
        if is_put {
            version.fetch_add(1, Ordering::Relaxed);
            fence(Ordering::Release);
            for (w, v) in slot.iter().enumerate() {
                v.store(i as u64 ^ w as u64, Ordering::Relaxed);
            }
            version.fetch_add(1, Ordering::Release);
            return None;
        }
        let before = version.load(Ordering::Acquire);
        for (b, v) in buf.iter_mut().zip(slot) {
            *b = v.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        let after = version.load(Ordering::Relaxed);
        std::hint::black_box(&buf);
        Some(before == after && before & 1 == 0)
    })
}

/// One process's Mops/s on the in-place slots.
fn work_slots(t: &[AtomicU64], value: usize, p: usize) -> f64 {
    let words = value.div_ceil(8);
    let stride = stride(p, KEYS);
    let mut buf = vec![0u64; words];
    timed(|i| {
        let (key, is_put) = visit(i, stride);
        let slot = &t[key * words..(key + 1) * words];
        if is_put {
            for (w, v) in slot.iter().enumerate() {
                v.store(i as u64 ^ w as u64, Ordering::Release);
            }
        } else {
            for (b, v) in buf.iter_mut().zip(slot) {
                *b = v.load(Ordering::Acquire);
            }
            std::hint::black_box(&buf);
        }
    })
}

/// One process's Mops/s on scsp (its gets must hit: `timed_gets`).
fn work_scsp(c: &scsp::Cache, value: usize, keys: &[Key], p: usize, split: usize) -> f64 {
    let stride = stride(p, KEYS);
    let v = vec![9u8; value];
    let mut buf = vec![0u8; value];
    timed_gets("scsp", |i| {
        let (key, is_put) = visit(i, stride);
        let key = (key - key % split + p % split).min(KEYS - 1);
        if is_put {
            let _ = c.put(&keys[key], &v, TTL_SECS);
            return None;
        }
        Some(matches!(c.get(&keys[key], &mut buf), scsp::Lookup::Hit(_)))
    })
}

/// `len` zeroed words in a fresh shared mapping, shared with children
/// forked after it, every page already faulted in (as scsp populates its
/// segments), so that no run pays for page faults; `unmap` releases it.
/// Anonymous, or, with `$SCSP_BENCH_DIR` set (where scsp's segments go too,
/// e.g. a tmpfs mounted with `huge=always`), an unlinked file there.
fn mapping(len: usize) -> &'static [AtomicU64] {
    let file = std::env::var_os("SCSP_BENCH_DIR").map(|dir| {
        let f = tempfile::tempfile_in(&dir).expect("a file in $SCSP_BENCH_DIR");
        f.set_len(len as u64 * 8).expect("sizing the file");
        f
    });
    let (flags, fd) = match &file {
        Some(f) => (libc::MAP_SHARED, std::os::fd::AsRawFd::as_raw_fd(f)),
        None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
    };
    // SAFETY: a fresh shared mapping (of a new zero-filled file or
    // anonymous memory), page-aligned, so `len` valid AtomicU64s, reached
    // only atomically; it stays mapped (the file's descriptor may close)
    // until `unmap`, which runs after every process using it has exited.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len * 8,
            libc::PROT_READ | libc::PROT_WRITE,
            flags | libc::MAP_POPULATE,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        std::slice::from_raw_parts(p as *const AtomicU64, len)
    }
}

/// Release a mapping from `mapping` (its children have reported, so exited
/// or about to: they hold their own copy of the mapping).
fn unmap(t: &'static [AtomicU64]) {
    // SAFETY: `t` came from `mapping` with this length, and this process
    // no longer uses it: `run` drops every reference before calling here.
    let rc = unsafe { libc::munmap(t.as_ptr() as *mut libc::c_void, t.len() * 8) };
    assert_eq!(rc, 0, "munmap");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// New-key mode (`assoc-new`, `scsp-new`): a put stores a *new* session,
/// as a TLS server does after every full handshake, rather than rewriting
/// a key. Sessions stand for a client population that does not grow with
/// the number of processes: slot `k` belongs to process `k % P` (on a
/// store of its own, to that process alone), which puts slot `k`'s next
/// session `P` times as often as a put every ten passes, so that every
/// process still puts on one visit in ten; every process reads every slot,
/// the owner's latest session for it (the one before if the owner's pass
/// has not reached the slot yet).
fn new_key(k: usize, generation: usize) -> Key {
    let mut key = [0x5a; 32];
    let id = k as u64 | (generation as u64) << 24;
    key[..8].copy_from_slice(&id.to_le_bytes());
    key
}

/// The processes of a new-key run: how many own slots (all of them if they
/// share the store, else one), and where each says which pass it is in.
#[derive(Clone, Copy)]
struct Peers {
    owners: usize,
    shared: bool,
    passes: &'static [AtomicU64],
}

/// Slot `k`'s first session, and how a store is filled with them.
fn first_sessions(owners: usize) -> impl Iterator<Item = Key> {
    let every = (PUT_EVERY / owners).max(1);
    (0..KEYS).map(move |k| new_key(k, k / every))
}

impl Peers {
    fn new(procs: usize, shared: bool, passes: &'static [AtomicU64]) -> Peers {
        Peers {
            owners: if shared { procs } else { 1 },
            shared,
            passes,
        }
    }

    /// Visit `i` of process `p`: slot, the session to put if this visit
    /// puts, and the owner's latest session of the slot with the one before.
    #[inline(always)]
    fn visit(&self, i: usize, stride: usize, p: usize) -> (Option<Key>, Key, Option<Key>) {
        let (k, _) = visit(i, stride);
        let pass = i / KEYS;
        if i % KEYS == 0 {
            self.passes[p * LINE_WORDS].store(pass as u64, Ordering::Relaxed);
        }
        let every = (PUT_EVERY / self.owners).max(1);
        let owner = k % self.owners;
        let mine = !self.shared || owner == p;
        let put = (mine && (pass + k) % every == 0).then(|| new_key(k, (pass + k) / every));
        let theirs = if mine {
            pass
        } else {
            self.passes[owner * LINE_WORDS].load(Ordering::Relaxed) as usize
        };
        let latest = (theirs + k) / every;
        (
            put,
            new_key(k, latest),
            latest.checked_sub(1).map(|g| new_key(k, g)),
        )
    }
}

/// Sets of 8 ways in the set-associative store: room for two generations
/// of every slot's session at half load, or `ASSOC_SETS`.
fn assoc_sets() -> usize {
    static SETS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SETS.get_or_init(|| {
        std::env::var("ASSOC_SETS").map_or((KEYS * 2 * 2 / LINE_WORDS).next_power_of_two(), |n| {
            let n: usize = n.parse().expect("ASSOC_SETS: a number of sets");
            assert!(n.is_power_of_two(), "ASSOC_SETS: a power of two");
            n
        })
    })
}

/// The set-associative store's parts for `key`: its tag line, its ways
/// (each a checked slot) and its tag.
#[inline(always)]
fn assoc_set<'a>(
    t: &'a [AtomicU64],
    words: usize,
    key: &Key,
) -> (&'a [AtomicU64], &'a [AtomicU64], u64) {
    let sets = assoc_sets();
    let h = xxhash_rust::xxh3::xxh3_64(key);
    let s = h as usize & (sets - 1);
    let (tags, ways) = t.split_at(sets * LINE_WORDS);
    let len = (words + CHECKED_HEADER) * LINE_WORDS;
    (
        &tags[s * LINE_WORDS..(s + 1) * LINE_WORDS],
        &ways[s * len..(s + 1) * len],
        (h >> 48) | 1,
    )
}

/// Store a new session in place of its set's oldest, of the set's first
/// `ways` ways: the way already holding the key, else an empty one, else
/// the one put longest ago (a tag word is `tag << 48 | n`, where `n` counts
/// the set's puts: first in, first out within the set). Returns the way.
fn put_in_set(
    (tags, slots, tag): (&[AtomicU64], &[AtomicU64], u64),
    ways: usize,
    words: usize,
    key: &Key,
    v: &[u64],
) -> usize {
    const N: u64 = (1 << 48) - 1;
    // At most PAGE_TAGS ways; on the stack, as this runs on every put.
    let mut words_seen = [0u64; PAGE_TAGS];
    for (seen, w) in words_seen.iter_mut().zip(&tags[..ways]) {
        *seen = w.load(Ordering::Acquire);
    }
    let seen = &words_seen[..ways];
    let way = seen
        .iter()
        .position(|&w| w >> 48 == tag)
        .or_else(|| seen.iter().position(|&w| w == 0))
        .unwrap_or_else(|| (0..ways).min_by_key(|&w| seen[w] & N).unwrap_or(0));
    let n = seen.iter().map(|&w| w & N).max().unwrap_or(0) + 1;
    let len = words + CHECKED_HEADER;
    let expiry = scsp::clock::now_secs() + u64::from(TTL_SECS);
    write_checked(&slots[way * len..(way + 1) * len], key, v, expiry);
    tags[way].store(tag << 48 | n & N, Ordering::Release);
    way
}

/// Read a session from its set (of `ways` ways) into `buf`.
fn get_in_set(
    (tags, slots, tag): (&[AtomicU64], &[AtomicU64], u64),
    ways: usize,
    words: usize,
    key: &Key,
    buf: &mut [u64],
) -> bool {
    let len = words + CHECKED_HEADER;
    (0..ways).any(|w| {
        tags[w].load(Ordering::Acquire) >> 48 == tag
            && read_checked(&slots[w * len..(w + 1) * len], key, buf)
    })
}

/// Store a new session in the set-associative store.
fn put_assoc(t: &[AtomicU64], words: usize, key: &Key, v: &[u64]) {
    put_in_set(assoc_set(t, words, key), LINE_WORDS, words, key, v);
}

/// One process's Mops/s on a store of sets, new-key mode: `put` stores a
/// session, `get` reads one into the buffer.
fn work_sets(
    name: &str,
    value: usize,
    p: usize,
    peers: Peers,
    put: impl Fn(&Key, &[u64]),
    get: impl Fn(&Key, &mut [u64]) -> bool,
) -> f64 {
    let words = value.div_ceil(8);
    let stride = stride(p, KEYS);
    let v: Vec<u64> = (0..words as u64).collect();
    let mut buf = vec![0u64; words];
    timed_gets(name, |i| match peers.visit(i, stride, p) {
        (Some(new), _, _) => {
            put(&new, &v);
            None
        }
        (None, latest, before) => {
            let hit = get(&latest, &mut buf) || before.is_some_and(|b| get(&b, &mut buf));
            std::hint::black_box(&buf);
            Some(hit)
        }
    })
}

/// Words in a page-new set: one 4 KiB page.
const PAGE_WORDS: usize = 512;
/// Tag words at the start of a page (two lines): one per way.
const PAGE_TAGS: usize = 16;
/// Notice rings of the page-new store (one per process, up to this many).
const NOTICE_RINGS: usize = 64;
/// Notices in a ring (8 bytes each).
const RING_WORDS: usize = 8192;

/// Pages of the page-new store: the bytes of scsp-new's segment.
fn page_count(words: usize) -> usize {
    static PAGES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGES.get_or_init(|| {
        (bench_config(2 * KEYS, words * 8).size as usize / (PAGE_WORDS * 8)).next_power_of_two()
    })
}

/// Ways in a page-new set: as many checked slots as fit after the tags.
fn page_ways(words: usize) -> usize {
    ((PAGE_WORDS - PAGE_TAGS) / (words + CHECKED_HEADER)).min(PAGE_TAGS - 1)
}

/// The page-new store's parts for `key`: its page's tag words, its ways
/// and its tag; and the page's number.
#[inline(always)]
fn page_set<'a>(
    t: &'a [AtomicU64],
    words: usize,
    key: &Key,
) -> ((&'a [AtomicU64], &'a [AtomicU64], u64), usize) {
    let h = xxhash_rust::xxh3::xxh3_64(key);
    let page = h as usize & (page_count(words) - 1);
    let (tags, ways) = t[page * PAGE_WORDS..(page + 1) * PAGE_WORDS].split_at(PAGE_TAGS);
    ((tags, ways, (h >> 48) | 1), page)
}

/// Store a new session in its page's oldest way (`put_in_set`), then
/// record the put in process `p`'s notice ring, as a bridge would read it.
fn put_page(t: &[AtomicU64], words: usize, key: &Key, v: &[u64], p: usize) {
    let (set, page) = page_set(t, words, key);
    let way = put_in_set(set, page_ways(words), words, key, v);
    let rings = &t[page_count(words) * PAGE_WORDS..];
    let tail = &rings[NOTICE_RINGS * RING_WORDS + p * LINE_WORDS];
    let at = tail.load(Ordering::Relaxed);
    rings[p * RING_WORDS + at as usize % RING_WORDS]
        .store((page as u64) << 4 | way as u64, Ordering::Relaxed);
    tail.store(at + 1, Ordering::Release);
}

/// One process's Mops/s on scsp, new-key mode.
fn work_scsp_new(c: &scsp::Cache, value: usize, p: usize, peers: Peers) -> f64 {
    let stride = stride(p, KEYS);
    let v = vec![9u8; value];
    let mut buf = vec![0u8; value];
    let mut hit = |k: &Key| matches!(c.get(k, &mut buf), scsp::Lookup::Hit(_));
    timed_gets("scsp-new", |i| match peers.visit(i, stride, p) {
        (Some(new), _, _) => {
            let _ = c.put(&new, &v, TTL_SECS);
            None
        }
        (None, latest, before) => Some(hit(&latest) || before.is_some_and(|b| hit(&b))),
    })
}
