//! `scsp bench scale`: does the table scale with processes, and does a
//! stopped process cost the others anything?
//!
//! P forked processes (P = 1, 2, 4 ... up to the cores, or `--procs`),
//! each with every page of the store mapped and every session read once
//! (`cell::warm_up`), run one mix of operations on one shared store for
//! `--duration`: scsp on a
//! segment of each layout (`scsp`, `scsp-sets`), and the locked baseline
//! ([`crate::baselines::Locked`], the design of nginx's `ssl_session_cache
//! shared:` and Apache's shmcb) in the same run. Each cell gives total Mops/s, the speed-up over one process of
//! the same store, and the latency of sampled operations (see `worker.rs`).
//!
//! The stopped-process table runs every cell with P >= 2 again while this
//! process stops process 0 (SIGSTOP) for 0.2-2 ms every ~5 ms and resumes it
//! (SIGCONT), as a worker preempted or descheduled on a busy host behaves,
//! and compares the *other* processes' throughput and tail latency with the
//! run without stops. A lock-free table should not notice; a process stopped
//! while it holds a lock stalls every process that needs it.

mod cell;
mod worker;

use super::crosscore::{self, allowed_cpus};
use crate::baselines::{keys, Store, TempSegment, LOCKED_IMPL, SETS_IMPL};
use crate::{Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use worker::{Mix, Plan, Report, SAMPLE_EVERY};

/// The stores compared, in print order: scsp on a segment of each layout,
/// and the locked baseline.
const STORES: [&str; 3] = ["scsp", SETS_IMPL, LOCKED_IMPL];
/// The scaling table's reference: scsp with a segment per process, so that
/// nothing is shared. What it scales to is what this machine allows any
/// store on this mix (memory bandwidth, caches, the CPUs' own speed-up),
/// measured in the same round; the shared store's speed-up is read against
/// it.
pub(super) const UNSHARED: &str = "unshared";

/// The flags of `scsp bench scale`.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// Process counts, comma-separated; one number N means 1, 2, 4 ... up
    /// to N (default: up to the CPUs this process may use). More than the
    /// cores is allowed: the processes then share them.
    #[arg(long, value_delimiter = ',')]
    procs: Vec<usize>,
    /// Mixes: get90 (gets of stored keys, 10 % puts), get50, tls13 (take +
    /// put, a TLS 1.3 stateful resumption); get100 (gets only) on request.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "get90,get50,tls13"
    )]
    mixes: Vec<Mix>,
    /// Value sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "150,1024")]
    values: Vec<usize>,
    /// Seconds each cell runs.
    #[arg(long, default_value_t = 0.5)]
    duration: f64,
    /// Runs of the whole grid; each figure is the median over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Sessions stored before measuring, comma-separated (every process
    /// visits all of them): 10000 stay in the caches; 200000 and more live
    /// in memory, as on a busy server.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    entries: Vec<usize>,
    /// Pin process i to the i-th CPU this process may use (modulo their number).
    #[arg(long)]
    pin: bool,
    /// Only the stopped-process table (and the runs without stops it compares with).
    #[arg(long, conflicts_with = "no_stop_one")]
    stop_one: bool,
    /// Only the scaling table.
    #[arg(long)]
    no_stop_one: bool,
    /// Mark every scsp segment as a bridge does when it starts, so that
    /// puts, takes and removes also write what a bridge reads (tombstones
    /// in a log, notices in sets): a host in a pool (no bridge reads them).
    #[arg(long)]
    replicated: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Directory for the stores' files (default: $SCSP_BENCH_DIR, else /dev/shm).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

impl ScaleArgs {
    /// Every (sessions stored, value size) pair of the grid, in run order.
    fn sizes(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.entries
            .iter()
            .flat_map(|&n| self.values.iter().map(move |&v| (n, v)))
    }
}

/// What some of a cell's processes did, together.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct Figures {
    /// Operations per second, all processes together, millions.
    mops: f64,
    p50_ns: f64,
    p99_ns: f64,
    p999_ns: f64,
    /// The longest any process took for SAMPLE_EVERY operations, µs: how
    /// long it was held up at worst.
    worst_block_us: f64,
    /// Share of the time spent in blocks of SAMPLE_EVERY operations that
    /// took 0.1 ms or more, %: held up by another process or the scheduler.
    stalled_pct: f64,
    /// Gets and takes that found their key, %.
    hit_pct: f64,
    ops: u64,
    samples: usize,
}

impl Figures {
    fn of(reports: &[Report]) -> Figures {
        let mut samples: Vec<u32> = reports
            .iter()
            .flat_map(|r| r.samples_ns.iter().copied())
            .collect();
        samples.sort_unstable();
        let pct = |p: f64| {
            samples
                .get(((samples.len().max(1) - 1) as f64 * p).round() as usize)
                .map_or(0.0, |&v| f64::from(v))
        };
        let lookups: u64 = reports.iter().map(|r| r.lookups).sum();
        let hits: u64 = reports.iter().map(|r| r.hits).sum();
        Figures {
            mops: reports
                .iter()
                .map(|r| r.ops as f64 * 1e3 / r.elapsed_ns.max(1) as f64)
                .sum(),
            p50_ns: pct(0.5),
            p99_ns: pct(0.99),
            p999_ns: pct(0.999),
            worst_block_us: reports.iter().map(|r| r.worst_block_ns).max().unwrap_or(0) as f64
                / 1e3,
            stalled_pct: 100.0 * reports.iter().map(|r| r.stalled_ns).sum::<u64>() as f64
                / reports.iter().map(|r| r.elapsed_ns).sum::<u64>().max(1) as f64,
            hit_pct: 100.0 * hits as f64 / lookups.max(1) as f64,
            ops: reports.iter().map(|r| r.ops).sum(),
            samples: samples.len(),
        }
    }

    /// Each field's median over rounds.
    fn median(rounds: &[Figures]) -> Figures {
        let m = |f: fn(&Figures) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Figures {
            mops: m(|f| f.mops),
            p50_ns: m(|f| f.p50_ns),
            p99_ns: m(|f| f.p99_ns),
            p999_ns: m(|f| f.p999_ns),
            worst_block_us: m(|f| f.worst_block_us),
            stalled_pct: m(|f| f.stalled_pct),
            hit_pct: m(|f| f.hit_pct),
            ops: m(|f| f.ops as f64) as u64,
            samples: m(|f| f.samples as f64) as usize,
        }
    }
}

/// Which cell: store, mix, value size, processes, sessions stored.
type CellId = (&'static str, Mix, usize, usize, usize);

/// Every round's figures of every cell.
#[derive(Default)]
struct Measured {
    /// All processes, no process stopped.
    running: HashMap<CellId, Vec<Figures>>,
    /// Processes 1..P of the same runs (cells with P >= 2 only).
    others: HashMap<CellId, Vec<Figures>>,
    /// Processes 1..P while process 0 was stopped and resumed, how many
    /// times it was stopped, and the share of that time they were held up.
    stopped: HashMap<CellId, Vec<(Figures, u64, f64)>>,
    /// A cache line's round trip between two CPUs, ns, before each round
    /// (`None` where it could not be measured).
    round_trips: Vec<Option<f64>>,
    /// The same, before each row of the scaling table ran, every round.
    row_trips: HashMap<RowId, Vec<f64>>,
}

/// A row of the scaling table: mix, value size, processes, sessions stored.
type RowId = (Mix, usize, usize, usize);

/// What to run: the flags, resolved.
struct Grid<'a> {
    a: &'a ScaleArgs,
    procs: Vec<usize>,
    /// Process i runs on `pin[i % pin.len()]` (empty: anywhere).
    pin: &'a [usize],
    /// The scaling table is wanted.
    scaling: bool,
    /// The stopped-process table is wanted.
    stopping: bool,
}

/// One cell of the scaling table.
#[derive(serde::Serialize)]
struct ScaleRow {
    store: &'static str,
    mix: &'static str,
    value_bytes: usize,
    /// Sessions stored (`--entries`).
    entries: usize,
    procs: usize,
    /// The median over rounds of Mops/s over the same store's with one
    /// process in that round (`null` without P = 1).
    speedup: Option<f64>,
    /// A cache line's round trip between two CPUs just before the row ran,
    /// ns, median over rounds (`null` with one CPU): the further apart the
    /// host ran the CPUs, the less shared stores scale.
    round_trip_ns: Option<f64>,
    #[serde(flatten)]
    all: Figures,
}

/// One cell of the stopped-process table: processes 1..P, without and with
/// process 0 being stopped.
#[derive(serde::Serialize)]
struct StopRow {
    store: &'static str,
    mix: &'static str,
    value_bytes: usize,
    /// Sessions stored (`--entries`).
    entries: usize,
    procs: usize,
    /// Times process 0 was stopped (median over rounds).
    stops: u64,
    /// The other processes, no process stopped.
    running: Figures,
    /// The other processes, process 0 stopped and resumed throughout.
    stopped: Figures,
    /// stopped / running Mops/s.
    mops_ratio: f64,
    /// stopped / running p99.9.
    p999_ratio: f64,
    /// While process 0 was stopped, the share of that time the others spent
    /// held up (in blocks that took 0.1 ms or more), %: what a stopped
    /// process costs them.
    held_while_stopped_pct: f64,
}

/// Of the time in `stops`, the share that `reports`' processes spent in
/// stalls, % (averaged over the processes).
fn held_while_stopped(reports: &[Report], stops: &[(u64, u64)]) -> f64 {
    let stopped: u64 = stops.iter().map(|(a, b)| b.saturating_sub(*a)).sum();
    let held: u64 = reports
        .iter()
        .flat_map(|r| &r.stalls)
        .map(|&(a, b)| {
            stops
                .iter()
                .map(|&(c, d)| b.min(d).saturating_sub(a.max(c)))
                .sum::<u64>()
        })
        .sum();
    100.0 * held as f64 / (stopped * reports.len() as u64).max(1) as f64
}

/// Raised by SIGINT or SIGTERM: the run stops after the current cell.
fn interrupted() -> &'static Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::<AtomicBool>::default();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register(sig, flag.clone());
        }
        flag
    })
}

/// `/proc/loadavg`'s first three fields: other jobs on the machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A cache line's round trip between the first two CPUs this process may
/// use, ns (`None` with fewer than two, or if it could not be measured).
fn round_trip() -> Option<f64> {
    crosscore::probe_pair().and_then(|(a, b)| crosscore::round_trip_ns(a, b))
}

/// The round trips of a run, for the header of its tables.
fn describe_round_trips(trips: &[Option<f64>]) -> String {
    let Some((a, b)) = crosscore::probe_pair() else {
        return "cross-core line round trip: one CPU, not measured".into();
    };
    let each: Vec<String> = trips
        .iter()
        .map(|t| t.map_or("-".into(), |ns| format!("{ns:.0}")))
        .collect();
    format!(
        "cross-core line round trip (CPU {a} <-> {b}), ns, before each round and after: {} \
         (a shared store's speed-up falls as it grows; docs/perf-scaling.md)",
        each.join(" ")
    )
}

/// 1, 2, 4 ... up to `max`, and `max` itself.
fn doubling(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |p| Some(p * 2))
        .take_while(|&p| p < max)
        .collect();
    v.push(max);
    v
}

/// Run `scsp bench scale`.
pub fn run(a: ScaleArgs) -> Result<ExitCode> {
    let cpus = allowed_cpus();
    let procs = match a.procs[..] {
        [] => doubling(cpus.len()),
        [max] => doubling(max),
        _ => a.procs.clone(),
    };
    if procs.iter().any(|&p| p == 0 || p > 512) {
        return Err(Error::Usage("--procs: between 1 and 512 processes".into()));
    }
    if a.values.is_empty() || a.values.iter().any(|&v| v == 0 || v > 8192) {
        return Err(Error::Usage(
            "--values: give sizes between 1 and 8192 bytes, e.g. --values 150,1024".into(),
        ));
    }
    if !(a.duration > 0.0 && a.duration <= 600.0) {
        return Err(Error::Usage(
            "--duration: seconds, above 0, at most 600".into(),
        ));
    }
    if a.entries.is_empty() || a.entries.iter().any(|&n| n == 0 || n > 100_000_000) {
        return Err(Error::Usage(
            "--entries: give session counts between 1 and 100000000, e.g. --entries 10000,200000"
                .into(),
        ));
    }
    if a.mixes.is_empty() {
        return Err(Error::Usage("--mixes: at least one".into()));
    }
    if let Some(d) = a.dir.as_ref().filter(|d| !d.is_dir()) {
        return Err(Error::Usage(format!(
            "--dir {}: not a directory",
            d.display()
        )));
    }
    let load_before = load_average();
    let grid = Grid {
        a: &a,
        pin: if a.pin { &cpus } else { &[] },
        scaling: !a.stop_one,
        stopping: !a.no_stop_one && procs.iter().any(|&p| p >= 2),
        procs,
    };
    let mut measured = measure(&grid)?;
    measured.round_trips.push(round_trip());
    let load = [load_before, load_average()];
    let (scale_rows, stop_rows) = tabulate(&grid, &measured);
    if a.json {
        let v = serde_json::json!({
            "cpus": cpus.len(),
            "load_average": {"before": load[0], "after": load[1]},
            "cross_core": {
                "cpus": crosscore::probe_pair().map(|(a, b)| [a, b]),
                "round_trip_ns_before_each_round_and_after": measured.round_trips,
            },
            "pinned": a.pin,
            "replicated": a.replicated,
            "duration_s": a.duration,
            "rounds": a.rounds,
            "entries": a.entries,
            "sample_every": SAMPLE_EVERY,
            "stop_gap_us": [cell::GAP_US.0, cell::GAP_US.1],
            "stop_for_us": [cell::STOP_US.0, cell::STOP_US.1],
            "scaling": scale_rows,
            "stop_one": stop_rows,
        });
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&v).expect("plain JSON values serialise")
        )?;
    } else {
        println!(
            "scsp bench scale: {} CPUs{}{}, {} s per cell, median of {} round(s), {} sessions stored",
            cpus.len(),
            if a.pin { ", pinned" } else { "" },
            if a.replicated {
                ", segments marked as a bridge marks them"
            } else {
                ""
            },
            a.duration,
            a.rounds,
            a.entries
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        );
        println!("load average before: {}, after: {}", load[0], load[1]);
        println!("{}", describe_round_trips(&measured.round_trips));
        println!(
            "latency: 1 operation in {SAMPLE_EVERY} timed, ns, one clock read included; \
             x: speed-up over 1 process of the same store (median of each round's)"
        );
        if grid.scaling {
            print_scaling(&scale_rows);
        }
        if !stop_rows.is_empty() {
            print_stopped(&stop_rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run every cell `--rounds` times: for each value size, mix, process
/// count and store, a fresh store, filled, then the processes on it; and
/// again with process 0 stopped and resumed where the stopped-process
/// table wants it.
fn measure(g: &Grid) -> Result<Measured> {
    let a = g.a;
    let interrupted = interrupted();
    // Cells per process count: the run without stops, and the one with.
    let wanted = |p: usize| {
        let stop_too = g.stopping && p >= 2;
        usize::from(g.scaling || stop_too) + usize::from(stop_too)
    };
    let per_round: usize = (g.procs.iter().map(|&p| wanted(p)).sum::<usize>() * STORES.len()
        + if g.scaling { g.procs.len() } else { 0 })
        * a.mixes.len()
        * a.values.len()
        * a.entries.len();
    let bar = indicatif::ProgressBar::new((per_round as u64) * u64::from(a.rounds));
    let mut m = Measured::default();
    for _ in 0..a.rounds {
        m.round_trips.push(round_trip());
        for (entries, size) in a.sizes() {
            let keys = keys(1, entries);
            let value: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let plan = |mix| Plan {
                mix,
                keys: &keys,
                value: &value,
                duration: Duration::from_secs_f64(a.duration),
            };
            for &mix in &a.mixes {
                for &p in &g.procs {
                    let stop_too = g.stopping && p >= 2;
                    if !g.scaling && !stop_too {
                        continue;
                    }
                    if let Some(ns) = round_trip() {
                        let row = m.row_trips.entry((mix, size, p, entries)).or_default();
                        row.push(ns);
                    }
                    let reference = g.scaling.then_some(UNSHARED);
                    for imp in STORES.into_iter().chain(reference) {
                        let stop_too = stop_too && imp != UNSHARED;
                        let id = (imp, mix, size, p, entries);
                        let run = |stop_one: bool| -> Result<cell::Outcome> {
                            if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                                return Err("interrupted".into());
                            }
                            let seg = match &a.dir {
                                Some(d) => TempSegment::in_dir(d, "scale"),
                                None => TempSegment::new("scale"),
                            };
                            // The unshared reference's processes make
                            // their own stores (`cell::own_store`).
                            if imp != UNSHARED {
                                let store = Store::new(imp, seg.path(), entries, size)?;
                                if a.replicated {
                                    store.mark_replicated();
                                }
                                for k in &keys {
                                    store.put(k, &value);
                                }
                            }
                            let setup = cell::Setup {
                                imp,
                                seg: seg.path(),
                                procs: p,
                                cpus: g.pin,
                                stop_one,
                            };
                            let out = cell::run(&setup, &plan(mix), interrupted)?;
                            bar.inc(1);
                            Ok(out)
                        };
                        let out = run(false)?;
                        m.running
                            .entry(id)
                            .or_default()
                            .push(Figures::of(&out.reports));
                        if stop_too {
                            let others = Figures::of(&out.reports[1..]);
                            m.others.entry(id).or_default().push(others);
                            let out = run(true)?;
                            let others = &out.reports[1..];
                            let held = held_while_stopped(others, &out.stops);
                            let stopped = (Figures::of(others), out.stops.len() as u64, held);
                            m.stopped.entry(id).or_default().push(stopped);
                        }
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(m)
}

/// The median over rounds of each round's speed-up: its P-process cell's
/// Mops/s over its one-process cell's, which ran a second before. On a
/// shared machine whose speed drifts from one second to the next, a ratio
/// within a round is steadier than the ratio of two medians.
fn speedup(rounds: &[Figures], one: &[Figures]) -> f64 {
    let mut x: Vec<f64> = rounds
        .iter()
        .zip(one)
        .map(|(all, one)| all.mops / one.mops)
        .collect();
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

/// The two tables' rows, in run order, from every round's figures.
fn tabulate(g: &Grid, m: &Measured) -> (Vec<ScaleRow>, Vec<StopRow>) {
    let mut scale_rows = Vec::new();
    let mut stop_rows = Vec::new();
    for (entries, size) in g.a.sizes() {
        for &mix in &g.a.mixes {
            for &p in &g.procs {
                let reference = g.scaling.then_some(UNSHARED);
                for imp in STORES.into_iter().chain(reference) {
                    let id = (imp, mix, size, p, entries);
                    if g.scaling {
                        let rounds = &m.running[&id];
                        let speedup = m
                            .running
                            .get(&(imp, mix, size, 1, entries))
                            .map(|one| speedup(rounds, one));
                        scale_rows.push(ScaleRow {
                            store: imp,
                            mix: mix.name(),
                            value_bytes: size,
                            entries,
                            procs: p,
                            speedup,
                            round_trip_ns: m
                                .row_trips
                                .get(&(mix, size, p, entries))
                                .map(|t| super::median(t.clone())),
                            all: Figures::median(rounds),
                        });
                    }
                    if let Some(s) = m.stopped.get(&id) {
                        let run = Figures::median(&m.others[&id]);
                        let stop = Figures::median(&s.iter().map(|x| x.0).collect::<Vec<_>>());
                        let mut n: Vec<u64> = s.iter().map(|x| x.1).collect();
                        n.sort_unstable();
                        let mut held: Vec<f64> = s.iter().map(|x| x.2).collect();
                        held.sort_by(f64::total_cmp);
                        stop_rows.push(StopRow {
                            store: imp,
                            mix: mix.name(),
                            value_bytes: size,
                            entries,
                            procs: p,
                            stops: n[n.len() / 2],
                            running: run,
                            stopped: stop,
                            mops_ratio: stop.mops / run.mops,
                            p999_ratio: stop.p999_ns / run.p999_ns.max(1.0),
                            held_while_stopped_pct: held[held.len() / 2],
                        });
                    }
                }
            }
        }
    }
    (scale_rows, stop_rows)
}

fn print_scaling(rows: &[ScaleRow]) {
    println!();
    let head = |s: &str| format!("{:-^44}", format!(" {s} "));
    let heads: Vec<String> = STORES.iter().map(|s| head(s)).collect();
    println!(
        "{:<26} {} {:-^14}",
        "",
        heads.join(" "),
        format!(" {UNSHARED} ")
    );
    let cols = format!(
        "{:>7} {:>6} {:>6} {:>6} {:>7} {:>8}",
        "Mops/s", "x", "p50", "p99", "p99.9", "hit%"
    );
    println!(
        "{:<6} {:>6} {:>8} {:>3} {} {:>7} {:>6} {:>7}",
        "mix",
        "value",
        "sessions",
        "P",
        vec![cols; STORES.len()].join(" "),
        "Mops/s",
        "x",
        "line ns"
    );
    let x = |c: &ScaleRow| c.speedup.map_or("-".into(), |s| format!("{s:.2}x"));
    for cell in rows.chunks(STORES.len() + 1) {
        let r = &cell[0];
        print!(
            "{:<6} {:>6} {:>8} {:>3}",
            r.mix, r.value_bytes, r.entries, r.procs
        );
        for c in &cell[..STORES.len()] {
            print!(
                " {:>7.2} {:>6} {:>6.0} {:>6.0} {:>7.0} {:>8.2}",
                c.all.mops,
                x(c),
                c.all.p50_ns,
                c.all.p99_ns,
                c.all.p999_ns,
                c.all.hit_pct
            );
        }
        if let Some(u) = cell.get(STORES.len()) {
            print!(" {:>7.2} {:>6}", u.all.mops, x(u));
        }
        let trip = r.round_trip_ns.map_or("-".into(), |ns| format!("{ns:.0}"));
        println!(" {trip:>7}");
    }
    println!(
        "{UNSHARED}: scsp with a segment per process (nothing shared), the most this \
         machine allows any store on the mix; line ns: a cache line's round trip between \
         two CPUs before the row ran (median of rounds)"
    );
}

fn print_stopped(rows: &[StopRow]) {
    println!();
    println!(
        "one process stopped (SIGSTOP) for {}-{} ms after gaps of {}-{} ms, resumed (SIGCONT);",
        cell::STOP_US.0 as f64 / 1e3,
        cell::STOP_US.1 as f64 / 1e3,
        cell::GAP_US.0 as f64 / 1e3,
        cell::GAP_US.1 as f64 / 1e3
    );
    println!("the OTHER processes, without stops -> with stops:");
    println!(
        "{:<6} {:>6} {:>8} {:>3} {:<11} {:>5} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>7}",
        "mix",
        "value",
        "sessions",
        "P",
        "store",
        "stops",
        "Mops/s",
        "->",
        "ratio",
        "p99.9",
        "->",
        "ratio",
        "worst us",
        "->",
        "stall%",
        "->",
        "held%"
    );
    for r in rows {
        println!(
            "{:<6} {:>6} {:>8} {:>3} {:<11} {:>5} {:>7.2} {:>7.2} {:>5.2}x {:>6.0} {:>6.0} {:>5.2}x {:>8.0} {:>8.0} {:>7.2} {:>7.2} {:>7.2}",
            r.mix,
            r.value_bytes,
            r.entries,
            r.procs,
            r.store,
            r.stops,
            r.running.mops,
            r.stopped.mops,
            r.mops_ratio,
            r.running.p999_ns,
            r.stopped.p999_ns,
            r.p999_ratio,
            r.running.worst_block_us,
            r.stopped.worst_block_us,
            r.running.stalled_pct,
            r.stopped.stalled_pct,
            r.held_while_stopped_pct,
        );
    }
    println!(
        "worst us: the longest any of them took for {SAMPLE_EVERY} operations; stall%: share of \
         their time in such blocks of 0.1 ms or more; held%: the same, of the time process 0 was \
         stopped"
    );
}
