//! The session table beside its baselines, measured in the same run.
//!
//! Groups `get-hit`, `get-miss`, `put`, `take` for 150 B and 1 KiB values,
//! each with four functions: `scsp` (a real segment file in /dev/shm),
//! `mutex-hashmap` (`Mutex<HashMap<Vec<u8>, Vec<u8>>>`), `rustls-memory`
//! (`rustls::server::ServerSessionMemoryCache` through `StoresServerSessions`)
//! and `redis-loopback` (a `redis-server` started on 127.0.0.1; left out,
//! with a note, when it is not installed).
//! Keys are 32 random bytes (a TLS session id); 10 000 entries are stored
//! first. Then `2proc-*`: a forked child hammers the same segment with puts
//! and gets while this process measures `get-hit` and `put`.
//!
//! Run: `cargo bench --bench table`. A comparison table (criterion medians,
//! ratios) is printed at the end.

use criterion::Criterion;
use scsp::Cache;
use scsp_lab::baselines::{keys, shuffle, unavailable, Key, Store, TempSegment, IMPLS, OPS};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const ENTRIES: usize = 10_000;
const SIZES: [usize; 2] = [150, 1024];

/// Register one benchmark of `op` on `store`.
fn bench_op(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    op: &str,
    store: &Store,
    (fill, present, absent): (&[Key], &[Key], &[Key]),
    value: &[u8],
) {
    let mut buf = vec![0u8; value.len().max(1024)];
    let n = present.len();
    let mut i = 0usize;
    match op {
        "get-hit" | "get-miss" => {
            let ks = if op == "get-hit" { present } else { absent };
            g.bench_function(name, |b| {
                b.iter(|| {
                    i = if i + 1 == n { 0 } else { i + 1 };
                    store.get(&ks[i], &mut buf)
                })
            });
        }
        "put" => {
            g.bench_function(name, |b| {
                b.iter(|| {
                    i = if i + 1 == n { 0 } else { i + 1 };
                    store.put(&present[i], value)
                })
            });
        }
        _ => {
            // Take each present key once per batch (in visiting order);
            // refills, in storing order, are not timed.
            g.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut left = iters as usize;
                    let mut total = Duration::ZERO;
                    while left > 0 {
                        let batch = left.min(n);
                        for k in fill {
                            store.put(k, value);
                        }
                        let t = Instant::now();
                        for k in &present[..batch] {
                            black_box(store.take(k, &mut buf));
                        }
                        total += t.elapsed();
                        left -= batch;
                    }
                    total
                })
            });
            for k in fill {
                store.put(k, value);
            }
        }
    }
}

/// A forked process that puts and gets on the segment until its guard
/// drops (SIGKILL and reap).
fn hammer(seg: &TempSegment, present: &[Key], value: &[u8]) -> childguard::Guard {
    // SAFETY: the bench is single-threaded at this point (criterion runs
    // benchmarks on the calling thread), so the child may use the
    // allocator; it loops until killed.
    unsafe {
        childguard::fork(|| {
            let c = Cache::open(seg.path()).expect("child: open segment");
            let mut buf = vec![0u8; value.len()];
            loop {
                for (j, k) in present.iter().enumerate() {
                    let _ = c.put(k, value, 3600);
                    let _ = c.get(&present[(j * 7919) % present.len()], &mut buf);
                }
            }
        })
    }
    .expect("fork")
}

/// Where criterion writes its estimates (its own rule: CRITERION_HOME, then
/// CARGO_TARGET_DIR, then the target dir holding this executable).
fn criterion_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("criterion")
}

/// Criterion's median (ns) for one benchmark, if it ran since `since`
/// (older estimates from earlier or filtered runs are not shown).
fn median_ns(since: SystemTime, group: &str, func: &str) -> Option<f64> {
    let p = criterion_home()
        .join(group)
        .join(func)
        .join("new/estimates.json");
    if std::fs::metadata(&p).ok()?.modified().ok()? < since {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn print_comparison(since: SystemTime) {
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
    let r = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", b / a),
        _ => "-".to_string(),
    };
    let baselines = &IMPLS[1..];
    println!("\ncriterion medians, ns/op (ratio = baseline / scsp; above 1 = scsp faster)");
    print!("{:<16}", "group");
    for imp in IMPLS {
        print!(" {imp:>14}");
    }
    for imp in baselines {
        print!(
            " {:>10}",
            format!("vs {}", imp.split('-').next().unwrap_or(imp))
        );
    }
    println!();
    for size in SIZES {
        for op in OPS {
            let g = format!("{op}-{size}B");
            let scsp = median_ns(since, &g, IMPLS[0]);
            print!("{g:<16}");
            for imp in IMPLS {
                print!(" {:>14}", f(median_ns(since, &g, imp)));
            }
            for imp in baselines {
                print!(" {:>10}", r(scsp, median_ns(since, &g, imp)));
            }
            println!();
        }
    }
    println!("\nwith a forked child hammering the same segment (puts + gets):");
    println!(
        "{:<20} {:>9} {:>12} {:>9}",
        "group", "alone", "2 processes", "slowdown"
    );
    for size in SIZES {
        for op in ["get-hit", "put"] {
            let alone = median_ns(since, &format!("{op}-{size}B"), "scsp");
            let g = format!("2proc-{op}-{size}B");
            let two = median_ns(since, &g, "scsp");
            println!(
                "{g:<20} {:>9} {:>12} {:>9}",
                f(alone),
                f(two),
                r(two, alone)
            );
        }
    }
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .configure_from_args();
    let present = keys(1, ENTRIES);
    let absent = keys(2, ENTRIES);
    let shuffled = shuffle(&present);
    for size in SIZES {
        let value: Vec<u8> = (0..size).map(|i| i as u8).collect();
        for imp in IMPLS {
            if let Some(why) = unavailable(imp) {
                eprintln!("{imp}: not measured: {why}");
                continue;
            }
            let seg = TempSegment::new(imp);
            let store = Store::new(imp, seg.path(), ENTRIES, size).expect("baseline store");
            for k in &present {
                store.put(k, &value);
            }
            for op in OPS {
                let mut g = c.benchmark_group(format!("{op}-{size}B"));
                bench_op(
                    &mut g,
                    imp,
                    op,
                    &store,
                    (&present, &shuffled, &absent),
                    &value,
                );
                g.finish();
            }
        }
        // Two processes on one segment.
        let seg = TempSegment::new("2proc");
        let store = Store::new("scsp", seg.path(), ENTRIES, size).expect("create segment");
        for k in &present {
            store.put(k, &value);
        }
        let child = hammer(&seg, &present, &value);
        for op in ["get-hit", "put"] {
            let mut g = c.benchmark_group(format!("2proc-{op}-{size}B"));
            bench_op(
                &mut g,
                "scsp",
                op,
                &store,
                (&present, &shuffled, &absent),
                &value,
            );
            g.finish();
        }
        drop(child);
    }
    c.final_summary();
    print_comparison(since);
}
