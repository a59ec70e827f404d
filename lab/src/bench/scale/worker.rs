//! One forked process of `scsp bench scale`: a mix of operations on the
//! shared store for a fixed time, one operation in [`SAMPLE_EVERY`] timed.
//!
//! The clock is read twice per [`SAMPLE_EVERY`] operations: around the first
//! operation of each block (its latency), and the second read also closes
//! the block (the longest block is the longest this process was held up,
//! by the store or by the scheduler). Timing every operation would double
//! the cost of a fast one; a sampled operation's latency includes about one
//! clock read (~20 ns), the same for every store.

use crate::baselines::{rewrites, stride, Key, Store};
use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// One operation in this many is timed. Odd, so that the timed operation
/// alternates between the take and the put of the TLS 1.3 mix.
pub(super) const SAMPLE_EVERY: u64 = 63;
/// A block of SAMPLE_EVERY operations this long was held up: unhindered,
/// the slowest mix takes about 30 µs for one.
pub(super) const STALL: Duration = Duration::from_micros(100);

/// What the processes do, in the order `--mixes` lists them.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// Gets of stored keys, one put in ten (a resumption-heavy server).
    Get90,
    /// One put per get.
    Get50,
    /// TLS 1.3 stateful resumption: take the session (single use), put its
    /// successor.
    Tls13,
    /// Gets only (not in the default run): what reading shared sessions
    /// alone scales to, the ceiling for the other mixes.
    Get100,
}

impl Mix {
    /// A key is rewritten once every this many visits (get mixes).
    fn put_every(self) -> Option<usize> {
        match self {
            Mix::Get90 => Some(10),
            Mix::Get50 => Some(2),
            Mix::Tls13 | Mix::Get100 => None,
        }
    }

    /// The name used in tables and JSON.
    pub(super) fn name(self) -> &'static str {
        match self {
            Mix::Get90 => "get90",
            Mix::Get50 => "get50",
            Mix::Tls13 => "tls13",
            Mix::Get100 => "get100",
        }
    }
}

/// What one process measured; sent to the parent through a pipe.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub ops: u64,
    /// Gets and takes, and how many found their key.
    pub lookups: u64,
    pub hits: u64,
    /// From the start signal to the end of the last block.
    pub elapsed_ns: u64,
    /// The longest block of SAMPLE_EVERY operations.
    pub worst_block_ns: u64,
    /// Time in blocks of at least [`STALL`]: held up by another process
    /// or by the scheduler.
    pub stalled_ns: u64,
    /// Latencies of the timed operations.
    pub samples_ns: Vec<u32>,
    /// The blocks of at least [`STALL`], as (start, end) on the monotonic
    /// clock ([`monotonic_ns`]), the first [`MAX_STALLS`].
    pub stalls: Vec<(u64, u64)>,
}

/// Stalls kept per process: enough for 10 s of a stall every 0.1 ms.
const MAX_STALLS: usize = 100_000;

/// CLOCK_MONOTONIC in ns: the clock `Instant` reads, as a number that means
/// the same in every process (to line stalls up with the parent's stops).
pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

const FIELDS: usize = 8;

impl Report {
    pub(super) fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        let head = [
            self.ops,
            self.lookups,
            self.hits,
            self.elapsed_ns,
            self.worst_block_ns,
            self.stalled_ns,
            self.samples_ns.len() as u64,
            self.stalls.len() as u64,
        ];
        let mut bytes =
            Vec::with_capacity(FIELDS * 8 + self.samples_ns.len() * 4 + self.stalls.len() * 16);
        for h in head {
            bytes.extend_from_slice(&h.to_le_bytes());
        }
        for s in &self.samples_ns {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        for (from, to) in &self.stalls {
            bytes.extend_from_slice(&from.to_le_bytes());
            bytes.extend_from_slice(&to.to_le_bytes());
        }
        w.write_all(&bytes)
    }

    /// Read a report; `None` if the bytes are not one (the process died).
    pub(super) fn read_from(r: &mut impl Read) -> std::io::Result<Option<Report>> {
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)?;
        if bytes.len() < FIELDS * 8 {
            return Ok(None);
        }
        let (head, rest) = bytes.split_at(FIELDS * 8);
        let h: Vec<u64> = head
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let (samples, stalls) = (h[6] as usize, h[7] as usize);
        if rest.len() as u64 != h[6] * 4 + h[7] * 16 {
            return Ok(None);
        }
        let (samples_bytes, stall_bytes) = rest.split_at(samples * 4);
        let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
        Ok(Some(Report {
            ops: h[0],
            lookups: h[1],
            hits: h[2],
            elapsed_ns: h[3],
            worst_block_ns: h[4],
            stalled_ns: h[5],
            samples_ns: samples_bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
            stalls: stall_bytes
                .chunks_exact(16)
                .map(|c| (word(&c[..8]), word(&c[8..])))
                .take(stalls)
                .collect(),
        }))
    }
}

/// What every process of a cell is given.
pub(super) struct Plan<'a> {
    pub mix: Mix,
    pub keys: &'a [Key],
    pub value: &'a [u8],
    pub duration: Duration,
}

/// Run `plan` on `store` as process `id`, starting when `start` can be read
/// (the parent closes it), and write the report to `out`.
pub(super) fn run(
    store: &Store,
    plan: &Plan,
    id: usize,
    mut start: std::fs::File,
    mut out: std::fs::File,
) -> std::io::Result<()> {
    let _ = start.read(&mut [0u8; 1])?;
    let r = measure(store, plan, id);
    r.write_to(&mut out)
}

fn measure(store: &Store, plan: &Plan, id: usize) -> Report {
    let n = plan.keys.len();
    let mut buf = vec![0u8; plan.value.len()];
    let expected = plan.duration.as_secs_f64() * 50e6 / SAMPLE_EVERY as f64;
    let mut r = Report::default();
    // Operation `i`: which key, and whether it reads or writes. Each
    // process visits the keys in an order of its own (a stride of its own), as
    // clients resume sessions independently. With one order for all, two
    // processes that meet fall into step on the same keys and stay there:
    // they then contend on every line, and in the TLS 1.3 mix the one
    // behind finds each session just taken by the one ahead.
    let stride = stride(id, n);
    let mut op = |i: u64| {
        let i = i as usize;
        match plan.mix {
            Mix::Get90 | Mix::Get50 | Mix::Get100 => {
                let at = i.wrapping_mul(stride) % n;
                if plan.mix.put_every().is_some_and(|p| rewrites(i, n, at, p)) {
                    store.put(&plan.keys[at], plan.value);
                } else {
                    r.lookups += 1;
                    r.hits += u64::from(store.get(&plan.keys[at], &mut buf));
                }
            }
            Mix::Tls13 => {
                let at = (i / 2).wrapping_mul(stride) % n;
                if i % 2 == 0 {
                    r.lookups += 1;
                    r.hits += u64::from(store.take(&plan.keys[at], &mut buf));
                } else {
                    store.put(&plan.keys[at], plan.value);
                }
            }
        }
        black_box(&buf);
    };
    let start = Instant::now();
    let start_ns = monotonic_ns();
    let deadline = start + plan.duration;
    let mut stalls = Vec::new();
    let mut samples = Vec::with_capacity(expected as usize + 1024);
    let mut worst = Duration::ZERO;
    let mut stalled = Duration::ZERO;
    let mut i = 0u64;
    let mut t0 = start;
    loop {
        op(i);
        let t1 = Instant::now();
        for j in 1..SAMPLE_EVERY {
            op(i + j);
        }
        i += SAMPLE_EVERY;
        let t2 = Instant::now();
        samples.push((t1 - t0).as_nanos().min(u32::MAX as u128) as u32);
        let block = t2 - t0;
        worst = worst.max(block);
        if block >= STALL {
            stalled += block;
            if stalls.len() < MAX_STALLS {
                let at = |t: Instant| start_ns + (t - start).as_nanos() as u64;
                stalls.push((at(t0), at(t2)));
            }
        }
        t0 = t2;
        if t2 >= deadline {
            break;
        }
    }
    r.ops = i;
    r.elapsed_ns = (t0 - start).as_nanos() as u64;
    r.worst_block_ns = worst.as_nanos() as u64;
    r.stalled_ns = stalled.as_nanos() as u64;
    r.stalls = stalls;
    r.samples_ns = samples;
    r
}
