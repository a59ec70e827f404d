//! Property tests: the table against a `HashMap` oracle with lossy semantics.
//!
//! Random sequences of put/get/take/remove over a small key space run on a
//! tiny in-memory table and on a real (small) segment file, both of which
//! evict constantly. Whatever the table returns must agree with the oracle:
//! - a hit is exactly the LAST value put for that key (never an older
//!   version, never another key's value);
//! - after `remove` or `take` the key misses until it is put again;
//! - `take` hands a value out at most once;
//! - lossy: a lookup may miss where the oracle has a value (eviction, log
//!   wrap), never the reverse.

use crate::common;

use common::{encode_value, key};
use proptest::prelude::*;
use scsp::segment::Geometry;
use scsp::{Cache, Config, Lookup, Stored};
use std::collections::HashMap;

const KEYS: u32 = 16;
const MAX_VALUE: usize = 256;

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: u32,
        len: usize,
    },
    Get {
        key: u32,
    },
    /// A get into a buffer too small for any value we store.
    GetSmall {
        key: u32,
    },
    Take {
        key: u32,
    },
    Remove {
        key: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS;
    prop_oneof![
        4 => (k.clone(), 24..=MAX_VALUE).prop_map(|(key, len)| Op::Put { key, len }),
        4 => k.clone().prop_map(|key| Op::Get { key }),
        1 => k.clone().prop_map(|key| Op::GetSmall { key }),
        2 => k.clone().prop_map(|key| Op::Take { key }),
        1 => k.prop_map(|key| Op::Remove { key }),
    ]
}

/// Run `ops` on `cache`, checking every answer against the oracle. Returns
/// how many lookups hit, so callers can insist the test is not vacuous.
fn run_against_oracle(cache: &Cache, ops: &[Op]) -> Result<u64, TestCaseError> {
    let mut oracle: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut version = 0u64;
    let mut hits = 0u64;
    let mut buf = [0u8; MAX_VALUE];
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Put { key: k, len } => {
                version += 1;
                let n = encode_value(k, version, len, &mut buf);
                prop_assert_eq!(cache.put(&key(k), &buf[..n], 3600), Stored::Ok);
                oracle.insert(k, buf[..n].to_vec());
            }
            Op::Get { key: k } | Op::Take { key: k } => {
                let taking = matches!(op, Op::Take { .. });
                let got = if taking {
                    cache.take(&key(k), &mut buf)
                } else {
                    cache.get(&key(k), &mut buf)
                };
                match got {
                    Lookup::Hit(n) => {
                        hits += 1;
                        let Some(want) = oracle.get(&k) else {
                            return Err(TestCaseError::fail(format!(
                                "step {step} {op:?}: hit for a key the oracle says is absent"
                            )));
                        };
                        prop_assert_eq!(&buf[..n], &want[..], "step {} {:?}", step, op);
                    }
                    Lookup::Miss => {}
                    Lookup::BufferTooSmall(n) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step} {op:?}: BufferTooSmall({n}) with a max-size buffer"
                        )))
                    }
                }
                if taking {
                    // Hit or miss, the key is gone now: a miss on a key the
                    // oracle holds means it was evicted.
                    oracle.remove(&k);
                }
            }
            Op::GetSmall { key: k } => {
                let mut small = [0u8; 8];
                match cache.get(&key(k), &mut small) {
                    Lookup::BufferTooSmall(n) => {
                        let want = oracle.get(&k).map(Vec::len);
                        prop_assert_eq!(Some(n), want, "step {} {:?}", step, op);
                    }
                    Lookup::Miss => {}
                    Lookup::Hit(n) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step} {op:?}: hit of {n} bytes in an 8-byte buffer"
                        )))
                    }
                }
            }
            Op::Remove { key: k } => {
                let removed = cache.remove(&key(k));
                if removed {
                    prop_assert!(oracle.contains_key(&k), "step {} {:?}", step, op);
                }
                oracle.remove(&k);
            }
        }
    }
    Ok(hits)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn in_memory_table_agrees_with_a_lossy_oracle(ops in prop::collection::vec(op(), 1..400)) {
        // 2 shards, 2 buckets (16 index words), 2 KiB of log per shard:
        // eviction and wrap happen within a few dozen puts.
        let cache = Cache::in_memory(Geometry::tiny(2, 2, 2048, MAX_VALUE as u64));
        run_against_oracle(&cache, &ops)?;
    }

    #[test]
    fn file_segment_agrees_with_a_lossy_oracle(ops in prop::collection::vec(op(), 1..400)) {
        let dir = tempfile::tempdir().unwrap();
        // The smallest real segment: one 8 KiB shard log, 8 buckets.
        let cfg = Config { size: 8192, shards: 1, max_value: MAX_VALUE as u32, ..Config::default() };
        let cache = Cache::create(dir.path().join("seg"), &cfg).unwrap();
        run_against_oracle(&cache, &ops)?;
        prop_assert!(cache.verify().is_clean());
    }
}

/// The properties above allow misses; make sure the table is not simply
/// missing everything: a fixed mixed workload must hit often.
#[test]
fn lossy_oracle_run_is_not_vacuous() {
    let cache = Cache::in_memory(Geometry::tiny(2, 2, 2048, MAX_VALUE as u64));
    let mut rng = common::Rng::new(7);
    // Miri interprets every hash: keep its run short (~1 min).
    let n = if cfg!(miri) { 200 } else { 2000 };
    let ops: Vec<Op> = (0..n)
        .map(|_| {
            let key = rng.below(4) as u32;
            match rng.below(4) {
                0 | 1 => Op::Put {
                    key,
                    len: 24 + rng.below(100) as usize,
                },
                2 => Op::Get { key },
                _ => Op::Take { key },
            }
        })
        .collect();
    let hits = run_against_oracle(&cache, &ops).unwrap();
    assert!(hits > n / 10, "only {hits} hits");
}
