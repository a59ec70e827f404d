//! `scsp bench [--values 150,1024] [--ops N] [--rounds R] [--processes P] [--json]`
//! and `scsp bench handshake` (full vs resumed TLS handshakes, see `handshake.rs`).
//!
//! A quick comparison without criterion: for each operation and value size,
//! the median ns/op over several rounds for scsp on a real segment file beside
//! two in-process baselines measured in the same run, a `Mutex<HashMap>` and
//! rustls's `ServerSessionMemoryCache`. Then a multi-process run: P forked
//! processes doing mixed gets and puts on one segment, total throughput
//! against one process. `benches/table.rs` is the careful (criterion) version.

mod handshake;
mod procs;

use super::{CliResult, Usage};
use rustls::server::ServerSessionMemoryCache;
use scsp::baselines::{keys, shuffle, Key, Store, TempSegment, IMPLS, OPS};
use scsp::{Cache, Config};
use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    kind: Option<handshake::Bench>,
    /// Value sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "150,1024")]
    values: Vec<usize>,
    /// Operations per timed round.
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
fn measure(
    store: &Store,
    op: &str,
    fill: &[Key],
    present: &[Key],
    absent: &[Key],
    value: &[u8],
    a: &Args,
) -> f64 {
    let mut buf = vec![0u8; value.len().max(1024)];
    let mut samples = Vec::with_capacity(a.rounds);
    for _ in 0..a.rounds {
        let n = present.len();
        let mut hits = 0usize;
        let (elapsed, done) = match op {
            "get-hit" | "get-miss" => {
                let keys = if op == "get-hit" { present } else { absent };
                let t = Instant::now();
                let mut j = 0;
                for _ in 0..a.ops {
                    hits += store.get(&keys[j], &mut buf) as usize;
                    j = if j + 1 == n { 0 } else { j + 1 };
                }
                (t.elapsed(), a.ops)
            }
            "put" => {
                let t = Instant::now();
                let mut j = 0;
                for _ in 0..a.ops {
                    store.put(&present[j], value);
                    j = if j + 1 == n { 0 } else { j + 1 };
                }
                (t.elapsed(), a.ops)
            }
            _ => {
                // take: every key present once, taken once; refill untimed.
                let mut total = std::time::Duration::ZERO;
                let mut done = 0;
                while done < a.ops {
                    let batch = (a.ops - done).min(n);
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

fn stores(seg: &TempSegment, entries: usize, max_value: usize) -> CliResult<Vec<Store>> {
    let cfg = Config {
        size: (entries as u64 * (max_value as u64 + 128) * 4).next_power_of_two(),
        max_value: max_value.next_power_of_two().max(256) as u32,
        ..Config::default()
    };
    let _ = std::fs::remove_file(seg.path());
    Ok(vec![
        Store::Scsp(Cache::create(seg.path(), &cfg)?),
        Store::Mutex(Mutex::new(HashMap::new())),
        Store::Rustls(ServerSessionMemoryCache::new(entries * 2)),
    ])
}

pub fn run(a: Args) -> CliResult<ExitCode> {
    if let Some(kind) = a.kind {
        return handshake::run(kind);
    }
    if a.values.is_empty() || a.values.iter().any(|&v| v == 0 || v > 8192) {
        return Err(Usage(
            "--values: give sizes between 1 and 8192 bytes, e.g. --values 150,1024".into(),
        )
        .into());
    }
    if a.ops == 0 || a.rounds == 0 || a.entries == 0 {
        return Err(Usage("--ops, --rounds and --entries must be at least 1".into()).into());
    }
    let seg = match &a.dir {
        Some(d) if !d.is_dir() => {
            return Err(Usage(format!("--dir {}: not a directory", d.display())).into())
        }
        Some(d) => TempSegment::in_dir(d, "cli"),
        None => TempSegment::new("cli"),
    };
    let present = keys(1, a.entries);
    let absent = keys(2, a.entries);
    let shuffled = shuffle(&present);
    let mut cells = Vec::new();
    for &size in &a.values {
        let value: Vec<u8> = (0..size).map(|i| i as u8).collect();
        for (imp, store) in IMPLS.iter().zip(stores(&seg, a.entries, size)?) {
            for k in &present {
                store.put(k, &value);
            }
            for op in OPS {
                let median_ns = measure(&store, op, &present, &shuffled, &absent, &value, &a);
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
        let v = serde_json::json!({ "cells": cells, "multi_process": multi });
        // An error (e.g. a closed pipe) is reported, not a panic.
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&v)?
        )?;
    } else {
        print_table(&cells, &a);
        if let Some(m) = multi {
            println!();
            m.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(cells: &[Cell], a: &Args) {
    println!(
        "median ns/op, {} rounds of {} ops, {} entries, 32 B keys (lower is better)",
        a.rounds, a.ops, a.entries
    );
    println!(
        "{:<9} {:>6} {:>9} {:>14} {:>14} {:>9} {:>9}",
        "op", "value", "scsp", "mutex-hashmap", "rustls-memory", "vs mutex", "vs rustls"
    );
    for &size in &a.values {
        for op in OPS {
            let ns = |imp: &str| {
                cells
                    .iter()
                    .find(|c| c.op == op && c.value_bytes == size && c.implementation == imp)
                    .map_or(f64::NAN, |c| c.median_ns)
            };
            let (s, m, r) = (ns("scsp"), ns("mutex-hashmap"), ns("rustls-memory"));
            println!(
                "{:<9} {:>6} {:>9.1} {:>14.1} {:>14.1} {:>8.2}x {:>8.2}x",
                op,
                size,
                s,
                m,
                r,
                m / s,
                r / s
            );
        }
    }
    println!("ratios: baseline time / scsp time (above 1 = scsp faster)");
}
