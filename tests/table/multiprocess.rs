//! Several forked processes hammer one small segment file.
//!
//! Four processes run a million mixed operations between them on a segment
//! whose logs wrap hundreds of times. Every value names its key and version
//! and carries a checksum, so a reader can tell a torn, foreign or corrupt
//! value from a good one. Each key is put by exactly one process (its owner),
//! so versions of a key only grow and a reader can also catch a value going
//! back in time. Children report their counts through a pipe.

use crate::common;

use common::{check_value, encode_value, key, Children, Rng};
use scsp::{Cache, Config, Layout, Lookup};
use std::io::Read;
use std::os::fd::AsRawFd;

const PROCS: u32 = 4;
const OPS_PER_PROC: u64 = 250_000;
const KEYS: u32 = 512;
const MAX_VALUE: usize = 256;

/// What one child saw.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    ops: u64,
    puts: u64,
    hits: u64,
    /// Hits on keys another process put: proof the processes share a table.
    foreign_hits: u64,
    /// Values that failed their own check: torn, other key, bad checksum.
    wrong: u64,
    /// Hits older than a version this process had already seen (or put).
    stale: u64,
}

impl Tally {
    fn to_bytes(self) -> [u8; 48] {
        let mut b = [0u8; 48];
        let f = [
            self.ops,
            self.puts,
            self.hits,
            self.foreign_hits,
            self.wrong,
            self.stale,
        ];
        for (i, v) in f.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    fn from_bytes(b: &[u8]) -> Tally {
        let f = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        Tally {
            ops: f(0),
            puts: f(1),
            hits: f(2),
            foreign_hits: f(3),
            wrong: f(4),
            stale: f(5),
        }
    }
}

/// The body of one worker process.
fn worker(cache: &Cache, me: u32, seed: u64) -> Tally {
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    // Highest version of each key this process has put or seen.
    let mut seen = vec![0u64; KEYS as usize];
    let mut buf = [0u8; MAX_VALUE];
    let mut val = [0u8; MAX_VALUE];
    let mut version = 0u64;
    for _ in 0..OPS_PER_PROC {
        t.ops += 1;
        let roll = rng.below(100);
        let k = rng.below(KEYS as u64) as u32;
        if roll < 30 {
            // Put one of our own keys (k rounded to the next key we own).
            let k = k - k % PROCS + me;
            version += 1;
            let len = 24 + rng.below((MAX_VALUE - 24) as u64 + 1) as usize;
            let n = encode_value(k, version, len, &mut val);
            let _ = cache.put(&key(k), &val[..n], 3600);
            seen[k as usize] = version;
            t.puts += 1;
            continue;
        }
        if roll >= 95 {
            let _ = cache.remove(&key(k));
            continue;
        }
        let got = if roll < 85 {
            cache.get(&key(k), &mut buf)
        } else {
            cache.take(&key(k), &mut buf)
        };
        if let Lookup::Hit(n) = got {
            t.hits += 1;
            if k % PROCS != me {
                t.foreign_hits += 1;
            }
            match check_value(k, &buf[..n]) {
                Ok(v) if v < seen[k as usize] => t.stale += 1,
                Ok(v) => seen[k as usize] = v,
                Err(_) => t.wrong += 1,
            }
        }
    }
    t
}

#[test]
fn four_processes_share_one_wrapping_segment_without_wrong_values() {
    // 64 KiB of log in 2 shards, 512 index words: the logs wrap hundreds of
    // times and buckets evict constantly.
    four_processes_share(Config {
        size: 64 << 10,
        shards: 2,
        max_value: MAX_VALUE as u32,
        ..Config::default()
    });
}

#[test]
fn four_processes_share_one_segment_of_sets_without_wrong_values() {
    // 32 sets of 8 ways of 512 bytes for 512 keys: sets evict constantly.
    four_processes_share(Config {
        layout: Layout::Sets,
        size: 128 << 10,
        max_value: MAX_VALUE as u32,
        ..Config::default()
    });
}

fn four_processes_share(cfg: Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let cache = Cache::create(&path, &cfg).unwrap();
    let seed = Rng::seed_from_env_or_clock();
    println!("seed {seed} (rerun with SCSP_TEST_SEED={seed})");

    let mut children = Children::default();
    let mut readers = Vec::new();
    for me in 0..PROCS {
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let cache = &cache;
        let path = &path;
        let tx_fd = tx.as_raw_fd();
        children.spawn(move || {
            // Half the workers use the mapping inherited over fork (like a
            // pre-forking server), half open the segment themselves.
            let own;
            let c = if me % 2 == 0 {
                cache
            } else {
                own = Cache::open(path).unwrap();
                &own
            };
            let bytes = worker(c, me, seed ^ (me as u64 + 1).wrapping_mul(0x9e37_79b9));
            let bytes = bytes.to_bytes();
            // SAFETY: `tx_fd` is the write end of our pipe, open in the child; the buffer is valid for
            // its length. A 48-byte write to a pipe is atomic.
            let n = unsafe { libc::write(tx_fd, bytes.as_ptr().cast(), bytes.len()) };
            if n == bytes.len() as isize {
                0
            } else {
                2
            }
        });
        drop(tx);
        readers.push(std::fs::File::from(rx));
    }

    let mut total = Tally::default();
    for (me, r) in readers.iter_mut().enumerate() {
        let mut b = Vec::new();
        r.read_to_end(&mut b).unwrap();
        assert_eq!(b.len(), 48, "worker {me} reported nothing");
        let t = Tally::from_bytes(&b);
        println!("worker {me}: {t:?}");
        total.ops += t.ops;
        total.puts += t.puts;
        total.hits += t.hits;
        total.foreign_hits += t.foreign_hits;
        total.wrong += t.wrong;
        total.stale += t.stale;
    }
    let codes = children.wait_all();
    assert!(codes.iter().all(|c| *c == 0), "exit codes {codes:?}");

    let stats = cache.stats();
    println!("total: {total:?}");
    println!("table: {:?}", stats.counters);
    assert!(total.ops >= 1_000_000);
    assert_eq!(total.wrong, 0, "wrong values returned");
    assert_eq!(total.stale, 0, "values went back in time");
    assert!(total.hits > 0 && total.foreign_hits > 0, "{total:?}");
    // The logs really wrapped many times.
    assert!(
        stats.appended_bytes > 100 * stats.capacity_bytes,
        "{stats:?}"
    );
    // Four processes on two cores and 32 KiB shard logs: a process
    // descheduled mid-put is sometimes lapped and then damages a newer
    // entry (docs/architecture.md, "lapped writer"). Lookups unlink such
    // entries, so `verify` is clean once every key has been read. The
    // damage must stay rare.
    for k in 0..KEYS {
        let _ = cache.get_vec(&key(k));
    }
    let corrupt = cache.stats().counters.corrupt;
    println!("damaged entries found: {corrupt}");
    assert!(corrupt * 100 <= total.puts, "{corrupt} damaged entries");
    let report = cache.verify();
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn threads_counting_at_once_after_a_fork_claim_one_slot_for_their_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        size: 1 << 20,
        shards: 1,
        ..Config::default()
    };
    let cache = Cache::create(dir.path().join("seg"), &cfg).unwrap();
    assert_eq!(cache.stats().counters.processes, 1);
    let mut children = Children::default();
    let pid = children.spawn(|| {
        // The forked child starts threads that all make their first call
        // at once: each sees the new fork generation.
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    let _ = cache.get_vec(b"nothing");
                });
            }
        });
        let seen = cache.stats().counters.processes;
        eprintln!("the child sees {seen} processes attached");
        i32::from(seen != 2)
    });
    assert_eq!(
        children.wait(pid),
        0,
        "the parent and the child, one slot each"
    );
}

#[test]
fn a_busy_wrapping_table_counts_no_corruption() {
    // One writer laps an 8 KiB log over and over while two readers look
    // keys up: headers they read are often being overwritten. That is a
    // stale word, a miss; never damage (`scsp_corrupt_total` is an alarm).
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        size: 8192,
        shards: 1,
        max_value: 256,
        ..Config::default()
    };
    let c = Cache::create(dir.path().join("seg"), &cfg).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let hits = std::thread::scope(|s| {
        s.spawn(|| {
            let mut v = [0u8; 200];
            let mut i = 0u64;
            while !stopped() {
                let k = (i % 64) as u32;
                v[..8].copy_from_slice(&i.to_le_bytes());
                v[8..12].copy_from_slice(&k.to_le_bytes());
                let _ = c.put(&k.to_le_bytes(), &v, 60);
                i += 1;
            }
        });
        let readers: Vec<_> = (0..2u32)
            .map(|r| {
                let c = &c;
                s.spawn(move || {
                    let (mut buf, mut x, mut hits) = ([0u8; 256], r, 0u64);
                    while !stopped() {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        let k = (x >> 8) % 64;
                        if let Lookup::Hit(n) = c.get(&k.to_le_bytes(), &mut buf) {
                            assert_eq!((n, &buf[8..12]), (200, &k.to_le_bytes()[..]));
                            hits += 1;
                        }
                    }
                    hits
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        readers.into_iter().map(|r| r.join().unwrap()).sum::<u64>()
    });
    let counters = c.stats().counters;
    println!(
        "{hits} hits, {} misses, {} corrupt",
        counters.misses, counters.corrupt
    );
    assert!(hits > 0);
    assert_eq!(counters.corrupt, 0, "an undamaged table counted as corrupt");
    assert!(c.verify().is_clean());
}
