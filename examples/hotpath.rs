//! One table operation in a loop, for profilers: `perf stat`, `perf record`,
//! `valgrind --tool=callgrind`. Wall-clock medians on a shared 2-core machine
//! are noisy; user-mode cycles and instructions of this one process are not.
//!
//! ```text
//! cargo build --release --example hotpath
//! perf stat -e cycles:u,instructions:u target/release/examples/hotpath get-hit 1024 2000000
//! ```
//! Subtract a run with 0 ops (segment creation and fill) and divide by the
//! op count to get cycles per op.

use scsp::{Cache, Config, Lookup};
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: hotpath get-hit|get-miss|put|take VALUE_BYTES OPS";
    let (op, size, ops) = match &args[1..] {
        [op, size, ops] => (
            op.as_str(),
            size.parse::<usize>().expect(usage),
            ops.parse::<usize>().expect(usage),
        ),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    const N: usize = 10_000;
    let key = |seed: u64, i: usize| {
        let mut k = [0u8; 32];
        for (j, c) in k.chunks_exact_mut(8).enumerate() {
            let mut z = (seed << 40) ^ ((i as u64) << 2 | j as u64);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            c.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        k
    };
    let present: Vec<[u8; 32]> = (0..N).map(|i| key(1, i)).collect();
    let absent: Vec<[u8; 32]> = (0..N).map(|i| key(2, i)).collect();
    let path = std::env::temp_dir().join(format!("scsp-hotpath-{}", std::process::id()));
    let cfg = Config {
        size: (N as u64 * (size as u64 + 128) * 4).next_power_of_two(),
        max_value: size.next_power_of_two().max(256) as u32,
        ..Config::default()
    };
    let c = Cache::create(&path, &cfg).expect("create segment");
    let _ = std::fs::remove_file(&path);
    let value = vec![0x5au8; size];
    for k in &present {
        let _ = c.put(k, &value, 3600);
    }
    let mut buf = vec![0u8; size.max(1)];
    let mut hits = 0usize;
    for i in 0..ops {
        let k = i % N;
        match op {
            "get-hit" => hits += matches!(c.get(&present[k], &mut buf), Lookup::Hit(_)) as usize,
            "get-miss" => hits += matches!(c.get(&absent[k], &mut buf), Lookup::Hit(_)) as usize,
            "put" => {
                let _ = black_box(c.put(&present[k], &value, 3600));
            }
            "take" => {
                if k == 0 && i > 0 {
                    for p in &present {
                        let _ = c.put(p, &value, 3600);
                    }
                }
                hits += matches!(c.take(&present[k], &mut buf), Lookup::Hit(_)) as usize;
            }
            _ => panic!("{usage}"),
        }
    }
    black_box(hits);
}
