//! Damaged segment files: refused with the right error, or served safely.
//!
//! docs/architecture.md, invariant I4 BOUNDED: nothing read from the segment
//! may make a process crash, hang or read out of bounds. Random bytes are written over the
//! header, tails, counters, index and logs of a real segment file (seeded,
//! hundreds of rounds). `Cache::open` must either refuse with an error or
//! give a cache whose lookups return misses or exactly the values that were
//! put before the damage, and whose puts, takes, removes, `verify`, `stats`
//! and `occupancy` all return. Specific header fields are damaged one at a
//! time and must be refused with the matching `Error` variant.

use crate::common;

use common::{encode_value, key, Rng};
use scsp::{Cache, Config, Error, Layout, Lookup};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const MAX_VALUE: usize = 256;
const KEYS: u32 = 96;
const ROUNDS: usize = 400;
const PAGE: u64 = 4096;

// Header words (see the table in src/segment/layout.rs).
const H_VERSION: u64 = 1;
const H_FINGERPRINT: u64 = 2;
const H_SHARDS: u64 = 3;
const H_LOG_BYTES: u64 = 5;
const H_MAX_KEY: u64 = 6;
const H_MAX_VALUE: u64 = 7;
const H_HOST_ID: u64 = 11;
const H_TOTAL_LEN: u64 = 12;
const H_CHECKSUM: u64 = 13;
const H_STATE: u64 = 14;

fn config(layout: Layout) -> Config {
    match layout {
        Layout::Log => Config {
            size: 16 << 10,
            shards: 2,
            max_value: MAX_VALUE as u32,
            ..Config::default()
        },
        // 32 sets of 8 ways of 512 bytes.
        Layout::Sets => Config {
            layout,
            size: 128 << 10,
            max_value: MAX_VALUE as u32,
            ..Config::default()
        },
    }
}

/// Byte ranges of the segment's regions, derived from its public geometry.
struct Regions {
    header: (u64, u64),
    tails: (u64, u64),
    counters: (u64, u64),
    index: (u64, u64),
    logs: (u64, u64),
}

fn regions(cache: &Cache) -> Regions {
    let g = cache.segment().geometry();
    let logs = g.total_len - g.shards * g.log_bytes;
    let index = logs - g.buckets * 64;
    let counters = PAGE + (g.shards * 64).div_ceil(PAGE) * PAGE;
    Regions {
        header: (0, PAGE),
        tails: (PAGE, PAGE + g.shards * 64),
        counters: (counters, counters + 128 * 16 * 8),
        index: (index, logs),
        logs: (logs, g.total_len),
    }
}

/// A segment with `KEYS` values in it, and what was put (the oracle).
fn pristine(path: &Path, layout: Layout) -> (Vec<u8>, HashMap<u32, Vec<u8>>, Regions) {
    let cache = Cache::create(path, &config(layout)).unwrap();
    let mut oracle = HashMap::new();
    let mut buf = [0u8; MAX_VALUE];
    for k in 0..KEYS {
        let n = encode_value(k, k as u64 + 1, 24 + (k as usize * 7) % 200, &mut buf);
        let _ = cache.put(&key(k), &buf[..n], 3600);
        oracle.insert(k, buf[..n].to_vec());
    }
    let r = regions(&cache);
    drop(cache);
    (std::fs::read(path).unwrap(), oracle, r)
}

fn write_word(path: &Path, word: u64, value: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&value.to_le_bytes(), word * 8).unwrap();
}

fn read_word(image: &[u8], word: u64) -> u64 {
    let i = word as usize * 8;
    u64::from_le_bytes(image[i..i + 8].try_into().unwrap())
}

/// Overwrite header word `word` and recompute the header checksum, so the
/// field's own validation (not the checksum) has to catch it.
fn write_header_word_resealed(path: &Path, image: &[u8], word: u64, value: u64) {
    let mut bytes = image[..(H_CHECKSUM as usize * 8)].to_vec();
    bytes[word as usize * 8..word as usize * 8 + 8].copy_from_slice(&value.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&bytes);
    write_word(path, word, value);
    write_word(path, H_CHECKSUM, sum);
}

/// Use a possibly damaged cache every way there is; any hit must be exactly
/// the last value put for its key, before or after the damage, and a key
/// taken or removed stays gone. Returns the number of hits.
fn exercise(cache: &Cache, before: &HashMap<u32, Vec<u8>>, rng: &mut Rng) -> u64 {
    let mut oracle = before.clone();
    let mut buf = [0u8; MAX_VALUE];
    let mut hits = 0;
    let mut check =
        |what: &str, k: u32, got: Lookup, buf: &[u8], oracle: &HashMap<u32, Vec<u8>>| {
            if let Lookup::Hit(n) = got {
                hits += 1;
                let want = oracle.get(&k).map(Vec::as_slice);
                assert_eq!(Some(&buf[..n]), want, "{what} key {k} after damage");
            }
        };
    for k in 0..KEYS {
        let got = cache.get(&key(k), &mut buf);
        check("get", k, got, &buf, &oracle);
    }
    let mut small = [0u8; 4];
    for _ in 0..24 {
        let k = rng.below(KEYS as u64) as u32;
        match rng.below(5) {
            0 => {
                let got = cache.take(&key(k), &mut buf);
                check("take", k, got, &buf, &oracle);
                oracle.remove(&k);
            }
            1 => {
                let _ = cache.remove(&key(k));
                oracle.remove(&k);
            }
            2 => {
                let _ = cache.get(&key(k), &mut small);
            }
            3 => {
                let got = cache.get(&key(k), &mut buf);
                check("get", k, got, &buf, &oracle);
            }
            _ => {
                let mut v = [0u8; MAX_VALUE];
                let n = encode_value(k, 1 << 40, 24 + rng.below(200) as usize, &mut v);
                let _ = cache.put(&key(k), &v[..n], 3600);
                oracle.insert(k, v[..n].to_vec());
                let got = cache.get(&key(k), &mut buf);
                check("get after put", k, got, &buf, &oracle);
            }
        }
    }
    let _ = cache.verify();
    let _ = cache.stats();
    let _ = cache.occupancy();
    hits
}

/// Run `f` on another thread and fail (rather than hang the suite) if it
/// does not finish in time.
fn within(limit: Duration, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for more than {limit:?}"),
    }
}

#[test]
fn random_damage_is_refused_or_served_without_wrong_values() {
    within(Duration::from_secs(90), || random_damage(Layout::Log));
}

#[test]
fn random_damage_to_a_sets_segment_is_refused_or_served_without_wrong_values() {
    within(Duration::from_secs(90), || random_damage(Layout::Sets));
}

/// Damage the segment file at random places, open it and use it.
fn random_damage(layout: Layout) {
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let (image, oracle, r) = pristine(&path, layout);
        let seed = Rng::seed_from_env_or_clock();
        println!("seed {seed} (rerun with SCSP_TEST_SEED={seed})");
        let mut rng = Rng::new(seed);
        let (mut refused, mut opened, mut hits) = (0, 0, 0);
        for _ in 0..ROUNDS {
            std::fs::write(&path, &image).unwrap();
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            for _ in 0..1 + rng.below(8) {
                let (lo, hi) = match rng.below(20) {
                    0..=2 => (0, 15 * 8),
                    3 => r.header,
                    4..=6 => r.tails,
                    7..=8 => r.counters,
                    9..=13 => r.index,
                    _ => r.logs,
                };
                let at = lo + rng.below(hi - lo);
                let burst = if rng.below(4) == 0 { 64 } else { 8 };
                let len = (1 + rng.below(burst)).min(hi - at);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                f.write_all_at(&bytes, at).unwrap();
            }
            drop(f);
            match Cache::open(&path) {
                Err(_) => refused += 1,
                Ok(cache) => {
                    opened += 1;
                    hits += exercise(&cache, &oracle, &mut rng);
                }
            }
        }
        println!("rounds {ROUNDS}: refused {refused}, opened {opened}, good hits {hits}");
        assert!(refused > 0 && opened > 0 && hits > 0);
    }
}

#[test]
fn damaged_tails_near_the_end_of_the_position_space_do_not_panic() {
    within(Duration::from_secs(30), || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let (image, oracle, r) = pristine(&path, Layout::Log);
        let mut rng = Rng::new(1);
        for tail in [
            u64::MAX,
            u64::MAX - 3,
            u64::MAX - 40,
            1 << 63,
            (1 << 48) - 2,
            0,
        ] {
            std::fs::write(&path, &image).unwrap();
            for shard_word in (r.tails.0..r.tails.1).step_by(64) {
                write_word(&path, shard_word / 8, tail);
            }
            let cache = Cache::open(&path).unwrap();
            exercise(&cache, &oracle, &mut rng);
            // The table keeps working from the damaged position on.
            for k in 0..8 {
                let v = format!("fresh value {k}");
                let _ = cache.put(&key(k), v.as_bytes(), 3600);
                let got = cache.get_vec(&key(k));
                assert!(got.is_none() || got.as_deref() == Some(v.as_bytes()));
            }
        }
    });
}

#[test]
fn damaged_header_fields_are_refused_with_the_matching_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let (image, _, _) = pristine(&path, Layout::Log);
    let reset = || std::fs::write(&path, &image).unwrap();
    let open_err = || {
        Cache::open(&path)
            .err()
            .expect("damaged segment was opened")
    };

    reset();
    write_word(&path, 0, u64::from_le_bytes(*b"NOTSCSP!"));
    assert!(matches!(open_err(), Error::NotASegment(_)));

    reset();
    write_word(&path, H_VERSION, 99);
    match open_err() {
        Error::Version {
            found, expected, ..
        } => assert_eq!((found, expected), (99, read_word(&image, H_VERSION))),
        e => panic!("{e}"),
    }

    reset();
    write_word(&path, H_FINGERPRINT, read_word(&image, H_FINGERPRINT) ^ 1);
    assert!(matches!(open_err(), Error::Layout(_)));

    reset();
    write_word(&path, H_STATE, 0);
    assert!(matches!(open_err(), Error::NotReady(_)));

    // A changed field without a matching checksum: the checksum catches it.
    reset();
    write_word(&path, H_SHARDS, 4);
    let e = open_err();
    assert!(
        matches!(&e, Error::Corrupt { what, .. } if what.contains("checksum")),
        "{e}"
    );

    // Resealed with a valid checksum: each field's own check names it.
    for (word, value, names) in [
        (H_SHARDS, 3, "shards"),
        (H_SHARDS, 4096, "shards"),
        (H_MAX_KEY, 300, "max_key"),
        (H_MAX_VALUE, 1000, "max_value"),
        (H_MAX_VALUE, 1 << 20, "max_value"),
        (H_LOG_BYTES, 4096, "log_bytes"),
        (H_LOG_BYTES, 3 << 12, "log_bytes"),
        (H_HOST_ID, 0, "host_id"),
        (H_HOST_ID, 1 << 40, "host_id"),
        (H_TOTAL_LEN, read_word(&image, H_TOTAL_LEN) + 8, "length"),
    ] {
        reset();
        write_header_word_resealed(&path, &image, word, value);
        let e = open_err();
        assert!(
            matches!(&e, Error::Corrupt { what, .. } if what.contains(names)),
            "word {word} = {value}: {e}"
        );
        assert!(e.to_string().contains("recreate"), "{e}");
    }

    // A file cut short or grown no longer matches its geometry.
    reset();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(image.len() as u64 - PAGE).unwrap();
    let e = open_err();
    assert!(
        matches!(&e, Error::Corrupt { what, .. } if what.contains("length")),
        "{e}"
    );
    // Cut to less than a page or to no whole number of words: damaged
    // still (the magic says what it was), not "not a segment".
    for len in [image.len() as u64 - 3, 100] {
        reset();
        f.set_len(len).unwrap();
        let e = open_err();
        assert!(
            matches!(&e, Error::Corrupt { what, .. } if what.contains("length")),
            "{len} bytes: {e}"
        );
        assert!(e.to_string().contains("recreate"), "{e}");
    }
    f.set_len(0).unwrap();
    assert!(matches!(open_err(), Error::NotASegment(_)));

    // And the untouched image still opens.
    reset();
    Cache::open(&path).unwrap();
}
