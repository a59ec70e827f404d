//! The session table beside its baselines, measured in the same run.
//!
//! Groups `get-hit`, `get-miss`, `put`, `take` for 150 B and 1 KiB values,
//! each with three functions: `scsp` (a real segment file in /dev/shm),
//! `mutex-hashmap` (`Mutex<HashMap<Vec<u8>, Vec<u8>>>`) and `rustls-memory`
//! (`rustls::server::ServerSessionMemoryCache` through `StoresServerSessions`).
//! Keys are 32 random bytes (a TLS session id); 10 000 entries are stored
//! first. Then `2proc-*`: a forked child hammers the same segment with puts
//! and gets while this process measures `get-hit` and `put`.
//!
//! Run: `cargo bench --bench table`. A comparison table (criterion medians,
//! ratios) is printed at the end.

use criterion::Criterion;
use rustls::server::ServerSessionMemoryCache;
use scsp::baselines::{keys, shuffle, Key, Store, TempSegment, IMPLS, OPS};
use scsp::{Cache, Config};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const ENTRIES: usize = 10_000;
const SIZES: [usize; 2] = [150, 1024];

fn segment_config(value: usize) -> Config {
    Config {
        size: (ENTRIES as u64 * (value as u64 + 128) * 4).next_power_of_two(),
        max_value: value.next_power_of_two().max(256) as u32,
        ..Config::default()
    }
}

fn make(imp: &str, seg: &TempSegment, value: usize) -> Store {
    match imp {
        "scsp" => {
            Store::Scsp(Cache::create(seg.path(), &segment_config(value)).expect("create segment"))
        }
        "mutex-hashmap" => Store::Mutex(Mutex::new(HashMap::new())),
        _ => Store::Rustls(ServerSessionMemoryCache::new(ENTRIES * 2)),
    }
}

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

/// A forked process that puts and gets on the segment until killed; killed
/// (by pid) and reaped on drop.
struct Hammer(nix::unistd::Pid);

impl Hammer {
    fn start(seg: &TempSegment, present: &[Key], value: &[u8]) -> Hammer {
        // SAFETY: the bench is single-threaded at this point (criterion runs
        // benchmarks on the calling thread), so the child may use the
        // allocator; it never returns: it loops until SIGKILLed.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let c = Cache::open(seg.path()).expect("child: open segment");
                let mut buf = vec![0u8; value.len()];
                loop {
                    for (j, k) in present.iter().enumerate() {
                        let _ = c.put(k, value, 3600);
                        let _ = c.get(&present[(j * 7919) % present.len()], &mut buf);
                    }
                }
            }
            nix::unistd::ForkResult::Parent { child } => Hammer(child),
        }
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.0, None);
    }
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

/// Criterion's median (ns) for one benchmark of this run, if it ran.
fn median_ns(group: &str, func: &str) -> Option<f64> {
    let p = criterion_home()
        .join(group)
        .join(func)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn print_comparison() {
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
    let r = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", b / a),
        _ => "-".to_string(),
    };
    println!("\ncriterion medians, ns/op (ratio = baseline / scsp; above 1 = scsp faster)");
    println!(
        "{:<16} {:>9} {:>14} {:>14} {:>9} {:>10}",
        "group", "scsp", "mutex-hashmap", "rustls-memory", "vs mutex", "vs rustls"
    );
    for size in SIZES {
        for op in OPS {
            let g = format!("{op}-{size}B");
            let (s, m, l) = (
                median_ns(&g, "scsp"),
                median_ns(&g, "mutex-hashmap"),
                median_ns(&g, "rustls-memory"),
            );
            println!(
                "{g:<16} {:>9} {:>14} {:>14} {:>9} {:>10}",
                f(s),
                f(m),
                f(l),
                r(s, m),
                r(s, l)
            );
        }
    }
    println!("\nwith a forked child hammering the same segment (puts + gets):");
    println!(
        "{:<16} {:>9} {:>12} {:>9}",
        "group", "alone", "2 processes", "slowdown"
    );
    for size in SIZES {
        for op in ["get-hit", "put"] {
            let alone = median_ns(&format!("{op}-{size}B"), "scsp");
            let g = format!("2proc-{op}-{size}B");
            let two = median_ns(&g, "scsp");
            println!(
                "{g:<16} {:>9} {:>12} {:>9}",
                f(alone),
                f(two),
                r(two, alone)
            );
        }
    }
}

fn main() {
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
            let seg = TempSegment::new(imp);
            let store = make(imp, &seg, size);
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
        let store = make("scsp", &seg, size);
        for k in &present {
            store.put(k, &value);
        }
        let hammer = Hammer::start(&seg, &present, &value);
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
        drop(hammer);
    }
    c.final_summary();
    print_comparison();
}
