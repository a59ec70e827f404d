//! `scsp bench [--values 150,1024] [--ops N] [--rounds R] [--processes P] [--json]`
//! and `scsp bench handshake` (full vs resumed TLS handshakes, see `handshake.rs`),
//! `scsp bench bridge` (`bridge.rs`), `scsp bench scale` (`scale.rs`).
//!
//! A quick comparison without criterion: for each operation and value size,
//! the median ns/op over several rounds for scsp on a real segment file beside
//! baselines measured in the same run: two in-process caches, a
//! `Mutex<HashMap>` and rustls's `ServerSessionMemoryCache`, and, when
//! `redis-server` is installed, a loopback network cache. Then a
//! multi-process run: P forked processes doing mixed gets and puts on one
//! segment, total throughput against one process. `benches/table.rs` is the
//! careful (criterion) version.

mod bridge;
pub mod crosscore;
mod handshake;
mod procs;
mod scale;

use crate::baselines::{
    keys, shuffle, unavailable, Key, Store, TempSegment, IMPLS, NETWORK_IMPL, OPS,
};
use crate::{Error, Result};
use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// The network baseline runs this many times fewer operations per round:
/// each one is a loopback round trip, a hundred times slower.
const NETWORK_OPS_DIVISOR: usize = 50;

/// The flags of `scsp bench`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    kind: Option<handshake::Bench>,
    /// Value sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "150,1024")]
    values: Vec<usize>,
    /// Operations per timed round (the network baseline does 1/50 of them).
    #[arg(long, default_value_t = 100_000)]
    ops: usize,
    /// Timed rounds per cell; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Entries stored before measuring.
    #[arg(long, default_value_t = 10_000)]
    entries: usize,
    /// Processes for the multi-process run (0 skips it).
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Directory for the benchmark's segment (default: $SCSP_BENCH_DIR, else
    /// /dev/shm), e.g. a tmpfs mounted with huge=within_size.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// A baseline left out of the run, and why.
#[derive(serde::Serialize)]
struct Skipped {
    implementation: &'static str,
    reason: String,
}

/// One measured cell.
#[derive(serde::Serialize)]
struct Cell {
    op: &'static str,
    value_bytes: usize,
    implementation: &'static str,
    median_ns: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ns/op of `op` on `store` over `rounds` rounds of `ops` operations.
/// `fill` is the storing order, `present` the visiting order of the same
/// keys, `absent` keys never stored.
fn measure(
    store: &Store,
    op: &str,
    (fill, present, absent): (&[Key], &[Key], &[Key]),
    value: &[u8],
    ops: usize,
    rounds: usize,
) -> f64 {
    let mut buf = vec![0u8; value.len().max(1024)];
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let n = present.len();
        let mut hits = 0usize;
        let (elapsed, done) = match op {
            "get-hit" | "get-miss" => {
                let keys = if op == "get-hit" { present } else { absent };
                let t = Instant::now();
                let mut j = 0;
                for _ in 0..ops {
                    hits += store.get(&keys[j], &mut buf) as usize;
                    j = if j + 1 == n { 0 } else { j + 1 };
                }
                (t.elapsed(), ops)
            }
            "put" => {
                let t = Instant::now();
                let mut j = 0;
                for _ in 0..ops {
                    store.put(&present[j], value);
                    j = if j + 1 == n { 0 } else { j + 1 };
                }
                (t.elapsed(), ops)
            }
            _ => {
                // take: every key present once, taken once; refill untimed.
                let mut total = std::time::Duration::ZERO;
                let mut done = 0;
                while done < ops {
                    let batch = (ops - done).min(n);
                    for k in fill {
                        store.put(k, value);
                    }
                    let t = Instant::now();
                    for k in &present[..batch] {
                        hits += store.take(k, &mut buf) as usize;
                    }
                    total += t.elapsed();
                    done += batch;
                }
                // Leave the table as the other ops expect it: full.
                for k in fill {
                    store.put(k, value);
                }
                (total, done)
            }
        };
        black_box(hits);
        samples.push(elapsed.as_nanos() as f64 / done as f64);
    }
    median(samples)
}

/// Run `scsp bench`.
pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(kind) = a.kind {
        return handshake::run(kind);
    }
    if a.values.is_empty() || a.values.iter().any(|&v| v == 0 || v > 8192) {
        return Err(Error::Usage(
            "--values: give sizes between 1 and 8192 bytes, e.g. --values 150,1024".into(),
        ));
    }
    if a.ops == 0 || a.rounds == 0 || a.entries == 0 {
        return Err(Error::Usage(
            "--ops, --rounds and --entries must be at least 1".into(),
        ));
    }
    let seg = match &a.dir {
        Some(d) if !d.is_dir() => {
            return Err(Error::Usage(format!(
                "--dir {}: not a directory",
                d.display()
            )))
        }
        Some(d) => TempSegment::in_dir(d, "cli"),
        None => TempSegment::new("cli"),
    };
    let present = keys(1, a.entries);
    let absent = keys(2, a.entries);
    let shuffled = shuffle(&present);
    // Baselines this machine cannot run are left out, with the reason.
    let (mut impls, skipped): (Vec<&str>, Vec<_>) =
        IMPLS.iter().partition(|i| unavailable(i).is_none());
    let mut skipped: Vec<Skipped> = skipped
        .into_iter()
        .map(|i| Skipped {
            implementation: i,
            reason: unavailable(i).unwrap_or_default(),
        })
        .collect();
    let mut cells = Vec::new();
    for &size in &a.values {
        let value: Vec<u8> = (0..size).map(|i| i as u8).collect();
        for imp in impls.clone() {
            let store = match Store::new(imp, seg.path(), a.entries, size) {
                Ok(s) => s,
                // A network baseline that will not start is reported, not
                // fatal: the in-process figures still stand.
                Err(e) if imp == NETWORK_IMPL => {
                    impls.retain(|&i| i != imp);
                    cells.retain(|c: &Cell| c.implementation != imp);
                    skipped.push(Skipped {
                        implementation: imp,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            for k in &present {
                store.put(k, &value);
            }
            let ops = network_ops(imp, a.ops);
            for op in OPS {
                let keys = (&present[..], &shuffled[..], &absent[..]);
                let median_ns = measure(&store, op, keys, &value, ops, a.rounds);
                cells.push(Cell {
                    op,
                    value_bytes: size,
                    implementation: imp,
                    median_ns,
                });
            }
        }
    }
    let multi = if a.processes > 0 {
        Some(procs::run(
            seg.path(),
            a.processes,
            a.ops,
            a.values[0],
            &present,
        )?)
    } else {
        None
    };
    if a.json {
        let v = serde_json::json!({ "cells": cells, "skipped": skipped, "multi_process": multi });
        // An error (e.g. a closed pipe) is reported, not a panic.
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&v).expect("plain JSON values serialise")
        )?;
    } else {
        print_table(&cells, &impls, &a);
        for s in &skipped {
            println!("{}: not measured: {}", s.implementation, s.reason);
        }
        if let Some(m) = multi {
            println!();
            m.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Operations per round for `imp`: fewer for the network baseline.
fn network_ops(imp: &str, ops: usize) -> usize {
    if imp == NETWORK_IMPL {
        (ops / NETWORK_OPS_DIVISOR).max(1)
    } else {
        ops
    }
}

fn print_table(cells: &[Cell], impls: &[&str], a: &Args) {
    let network = if impls.contains(&NETWORK_IMPL) {
        format!(" ({} for {NETWORK_IMPL})", network_ops(NETWORK_IMPL, a.ops))
    } else {
        String::new()
    };
    println!(
        "median ns/op, {} rounds of {} ops{network}, {} entries, 32 B keys (lower is better)",
        a.rounds, a.ops, a.entries
    );
    let baselines = &impls[1..];
    // "vs mutex" for "mutex-hashmap": the name up to its first dash.
    let short = |imp: &str| format!("vs {}", imp.split('-').next().unwrap_or(imp));
    print!("{:<9} {:>6}", "op", "value");
    for imp in impls {
        print!(" {imp:>14}");
    }
    for imp in baselines {
        print!(" {:>9}", short(imp));
    }
    println!();
    for &size in &a.values {
        for op in OPS {
            let ns = |imp: &str| {
                cells
                    .iter()
                    .find(|c| c.op == op && c.value_bytes == size && c.implementation == imp)
                    .map_or(f64::NAN, |c| c.median_ns)
            };
            print!("{op:<9} {size:>6}");
            for imp in impls {
                print!(" {:>14.1}", ns(imp));
            }
            for imp in baselines {
                print!(" {:>8.2}x", ns(imp) / ns(impls[0]));
            }
            println!();
        }
    }
    println!("ratios: baseline time / scsp time (above 1 = scsp faster)");
}
