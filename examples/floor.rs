//! How fast can any cache return a cold 1 KiB value on this machine? A bare
//! copy from a random one of 10 000 places, found through a hashed index,
//! measured in the same process and the same slices as scsp's `get` and
//! rustls's in-memory cache (docs/perf.md, "Against the targets").
//! Cold means as in the benches: not in L1 or L2; the 11 MB of values fit
//! this VM's L3. x86-64 only (the padding rows are assembly).
//!
//! ```text
//! cargo run --release --example floor [VALUE_BYTES]
//! ```
//! The `copy + N` rows add N independent register adds to each copy: work
//! that waits for no memory, as a cache's hashing, checks and checksum
//! partly do. They show what a back-to-back loop of lookups measures: the
//! CPU overlaps one lookup's cache misses with the next lookup's only while
//! both fit its reorder window, so each instruction a lookup adds costs time
//! even though none of them waits for memory.

// Elsewhere `main` only says it needs x86-64.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use scsp_lab::baselines::{keys, shuffle, Store, TempSegment};
use std::time::Instant;

/// Sessions stored, as in the benches.
const ENTRIES: usize = 10_000;
/// Bytes before each value in the floor's arena: an scsp entry's header
/// words and a 32-byte key.
const BEFORE_VALUE: usize = 48 + 32;
/// Lookups per slice; the rows take turns slice by slice, so all see the
/// same noise.
const SLICE: usize = 20_000;
const SLICES: usize = 60;

/// A value of every entry at the stride an scsp log would give it, and a
/// linear-probing index of `entry << OFFSET_BITS | offset` words (empty:
/// all ones): the least a cache must touch to return a copy.
struct Arena {
    bytes: Vec<u8>,
    index: Vec<u64>,
}

const OFFSET_BITS: u32 = 40;

impl Arena {
    fn new(value_len: usize) -> Arena {
        let stride = (BEFORE_VALUE + value_len).next_multiple_of(8);
        let bytes: Vec<u8> = (0..ENTRIES * stride).map(|i| i as u8).collect();
        let mut index = vec![u64::MAX; (2 * ENTRIES).next_power_of_two()];
        for e in 0..ENTRIES {
            let mut i = Self::slot(e, index.len());
            while index[i] != u64::MAX {
                i = (i + 1) & (index.len() - 1);
            }
            index[i] = (e as u64) << OFFSET_BITS | (e * stride) as u64;
        }
        Arena { bytes, index }
    }

    fn slot(entry: usize, slots: usize) -> usize {
        ((entry as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize & (slots - 1)
    }

    /// Copy entry `e`'s value into `buf`.
    #[inline(always)]
    fn get(&self, e: usize, buf: &mut [u8]) {
        let mut i = Self::slot(e, self.index.len());
        let off = loop {
            let word = self.index[i];
            if word >> OFFSET_BITS == e as u64 {
                break (word & ((1 << OFFSET_BITS) - 1)) as usize + BEFORE_VALUE;
            }
            i = (i + 1) & (self.index.len() - 1);
        };
        buf.copy_from_slice(&self.bytes[off..off + buf.len()]);
    }
}

/// `4 * ROUNDS` register adds in four independent chains: instructions
/// that wait for no memory.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn busy<const ROUNDS: usize>(seed: u64) -> u64 {
    let (mut a, mut b, mut c, mut d) = (seed, 1u64, 2u64, 3u64);
    // SAFETY: register arithmetic on the four operands only: no memory, no
    // stack; the flags it changes are declared clobbered (no
    // `preserves_flags`).
    unsafe {
        std::arch::asm!(
            ".rept {n}",
            "add {a}, 1", "add {b}, 1", "add {c}, 1", "add {d}, 1",
            ".endr",
            n = const ROUNDS,
            a = inout(reg) a, b = inout(reg) b, c = inout(reg) c, d = inout(reg) d,
            options(nostack, nomem),
        );
    }
    a ^ b ^ c ^ d
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("floor: x86-64 only (its padding rows are x86-64 assembly)");
    std::process::exit(2);
}

#[cfg(target_arch = "x86_64")]
fn main() {
    let value_len: usize = std::env::args()
        .nth(1)
        .map_or(1024, |v| v.parse().expect("usage: floor [VALUE_BYTES]"));
    assert!(value_len > 0, "usage: floor [VALUE_BYTES] (at least 1)");
    let arena = Arena::new(value_len);
    let seg = TempSegment::new("floor");
    let scsp = Store::new("scsp", seg.path(), ENTRIES, value_len).expect("scsp segment");
    let rustls = Store::new("rustls-memory", seg.path(), ENTRIES, value_len).expect("rustls");
    let present = keys(1, ENTRIES);
    let value = vec![0x5au8; value_len];
    for k in &present {
        scsp.put(k, &value);
        rustls.put(k, &value);
    }
    let present = shuffle(&present);
    let mut order: Vec<usize> = (0..ENTRIES).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..ENTRIES).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }

    let rows = [
        "copy",
        "copy + 200",
        "copy + 400",
        "copy + 800",
        "scsp get",
        "rustls get",
    ];
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    let mut buf = vec![0u8; value_len];
    let mut sink = 0u64;
    let mut at = 0usize;
    for _ in 0..SLICES {
        for (row, times) in ns.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..SLICE {
                let n = at % ENTRIES;
                at += 1;
                match row {
                    0 => arena.get(order[n], &mut buf),
                    1 => {
                        arena.get(order[n], &mut buf);
                        sink ^= busy::<50>(n as u64);
                    }
                    2 => {
                        arena.get(order[n], &mut buf);
                        sink ^= busy::<100>(n as u64);
                    }
                    3 => {
                        arena.get(order[n], &mut buf);
                        sink ^= busy::<200>(n as u64);
                    }
                    4 => sink ^= u64::from(scsp.get(&present[n], &mut buf)),
                    _ => sink ^= u64::from(rustls.get(&present[n], &mut buf)),
                }
                sink = sink.wrapping_add(u64::from(buf[value_len - 1]));
            }
            times.push(start.elapsed().as_nanos() as f64 / SLICE as f64);
        }
    }
    std::hint::black_box(sink);
    println!("{ENTRIES} entries of {value_len} B, visited in random order; ns per lookup over {SLICES} interleaved slices of {SLICE}");
    for (row, times) in rows.iter().zip(&mut ns) {
        times.sort_by(f64::total_cmp);
        println!(
            "{row:12} p10 {:7.1}  median {:7.1}",
            times[SLICES / 10],
            times[SLICES / 2]
        );
    }
}
