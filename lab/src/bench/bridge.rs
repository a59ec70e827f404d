//! `scsp bench bridge`: how long a session takes to cross from one host to
//! another, and what the bridges cost, idle and busy.
//!
//! Two hosts on loopback (127.0.0.31 and .32), each with its own segment and
//! a real `scsp bridge` process, TLS 1.3 with certificates from the cluster
//! CA. This process maps both segments: it puts a fresh session on A and
//! looks for it on B, polling every ~10 µs with short sleeps (a spinning
//! prober would take the CPU the bridges need on a small machine). Each
//! figure is therefore put-on-A to readable-on-B, verified `get` included.
//!
//! Scenarios: back-to-back probes (a busy pair), probes after idle gaps
//! (the bridge has gone quiet), and probes under a paced background load
//! of puts on A; and the single-use window: a session taken on A (a TLS 1.3
//! stateful resumption) until it is gone on B, during which the same ticket
//! still resumes on B. The bridges' CPU, idle and over each scenario (where
//! a hot link looks at the log every `watch_interval_us`), comes from
//! `/proc/PID/stat`. With `--watch-us a,b` the whole run is repeated for
//! each `watch_interval_us`, interleaved, so settings are compared in one
//! run.

use crate::demo::pool;
use crate::{Error, Result};
use scsp::Cache;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The flags of `scsp bench bridge`.
#[derive(clap::Args, Debug)]
pub struct BridgeArgs {
    /// Probes per scenario (the idle-gap scenario takes a tenth of them).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    probes: u32,
    /// Idle gap before each probe of the idle scenario, ms.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    idle_gap_ms: u64,
    /// Background puts per second on A during the load scenario.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rate: u32,
    /// Seconds over which the idle bridges' CPU is measured.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    idle_secs: u64,
    /// Intervals at which a hot link looks at the log, µs, to compare (the bridge's `watch_interval_us`);
    /// empty: the bridge's default only.
    #[arg(long, value_delimiter = ',')]
    watch_us: Vec<u32>,
    /// Rounds: each setting is run this many times, interleaved.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Both hosts' segment layout: log, or sets (the bridge then reads the
    /// notice rings).
    #[arg(long, default_value = "log", value_parser = parse_layout)]
    layout: scsp::Layout,
    /// Print JSON (with each scenario's latency histogram) instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_layout(s: &str) -> std::result::Result<scsp::Layout, String> {
    scsp::Layout::from_name(s).ok_or_else(|| format!("'{s}' is not a layout; use log or sets"))
}

/// Latencies of one scenario.
#[derive(serde::Serialize)]
struct Latencies {
    scenario: String,
    probes: usize,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Each bridge's CPU over the scenario, % of one core: what looking at
    /// the log every `watch_interval_us` costs while the links are hot.
    bridge_cpu_pct: [f64; 2],
    /// (upper bound in µs, probes at or below it and above the previous
    /// bound): bounds double from 16 µs.
    histogram: Vec<(u64, usize)>,
}

impl Latencies {
    fn of(scenario: &str, mut us: Vec<f64>, bridge_cpu_pct: [f64; 2]) -> Latencies {
        us.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize];
        let mut histogram = Vec::new();
        let mut bound = 16u64;
        let mut from = 0;
        while from < us.len() {
            let to = us.partition_point(|&v| v <= bound as f64);
            histogram.push((bound, to - from));
            from = to;
            bound *= 2;
        }
        Latencies {
            scenario: scenario.to_string(),
            probes: us.len(),
            p50_us: pct(0.5),
            p90_us: pct(0.9),
            p99_us: pct(0.99),
            max_us: pct(1.0),
            bridge_cpu_pct,
            histogram,
        }
    }
}

/// One run of every scenario with one `watch_interval_us`.
#[derive(serde::Serialize)]
struct Run {
    /// Both segments' layout.
    layout: &'static str,
    /// The bridges' `watch_interval_us` (`None`: their default).
    watch_interval_us: Option<u32>,
    round: u32,
    /// Each bridge's CPU while idle, % of one core.
    idle_cpu_pct: [f64; 2],
    scenarios: Vec<Latencies>,
    /// Background puts per second achieved in the load scenario.
    background_rate: f64,
    load_average: String,
}

/// Run `scsp bench bridge`.
pub fn run(a: BridgeArgs) -> Result<ExitCode> {
    pool::check_loopback(2)?;
    let settings: Vec<Option<u32>> = if a.watch_us.is_empty() {
        vec![None]
    } else {
        a.watch_us.iter().map(|&w| Some(w)).collect()
    };
    let mut runs = Vec::new();
    for round in 1..=a.rounds {
        for &w in &settings {
            let r = measure(&a, w, round)?;
            if !a.json {
                print_run(&r);
            }
            runs.push(r);
        }
    }
    if a.json {
        let v = serde_json::json!({ "runs": runs });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("plain JSON values serialise")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_run(r: &Run) {
    let w = r
        .watch_interval_us
        .map_or("default".to_string(), |w| format!("{w} µs"));
    println!(
        "{} layout, watch interval {w}, round {}: idle bridge CPU {:.1}% and {:.1}% of a core; load average {}",
        r.layout,
        r.round, r.idle_cpu_pct[0], r.idle_cpu_pct[1], r.load_average
    );
    println!(
        "  {:<34} {:>9} {:>9} {:>9} {:>9} {:>16}",
        "put on A -> readable on B", "p50 µs", "p90 µs", "p99 µs", "max µs", "bridge CPU A, B"
    );
    for s in &r.scenarios {
        println!(
            "  {:<34} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>16}",
            s.scenario,
            s.p50_us,
            s.p90_us,
            s.p99_us,
            s.max_us,
            format!("{:.0}%, {:.0}%", s.bridge_cpu_pct[0], s.bridge_cpu_pct[1])
        );
    }
    println!(
        "  (background load achieved {:.0} puts/s)",
        r.background_rate
    );
}

/// A pair of hosts with their bridges; the bridges stop when it drops.
struct Pair {
    _dir: tempfile::TempDir,
    a: Cache,
    b: Cache,
    bridges: [pool::Guarded; 2],
}

fn start_pair(watch_us: Option<u32>, layout: scsp::Layout) -> Result<Pair> {
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    scsp_bridge::pki::write_cluster(&certs, "bench", 2)?;
    let ips = ["127.0.0.31", "127.0.0.32"];
    let mut addrs = Vec::new();
    for ip in ips {
        let port = pool::free_port(ip)?;
        addrs.push(
            format!("{ip}:{port}")
                .parse()
                .map_err(|e| Error::Failed(format!("{ip}:{port}: {e}")))?,
        );
    }
    let mesh = scsp_bridge::config::Mesh {
        cluster: "bench",
        addrs: &addrs,
        cert_dir: &certs,
        heartbeat_ms: Some(500),
        max_backoff_ms: Some(500),
    };
    let exe = std::env::current_exe().map_err(|e| Error::system("finding the scsp binary", e))?;
    let mut caches = Vec::new();
    let mut bridges = Vec::new();
    for id in 1..=2u32 {
        let seg = dir.path().join(format!("seg-{id}"));
        let cfg = scsp::Config {
            size: 64 << 20,
            host_id: id,
            layout,
            max_value: match layout {
                scsp::Layout::Log => scsp::config::DEFAULT_MAX_VALUE,
                scsp::Layout::Sets => scsp::config::DEFAULT_SETS_MAX_VALUE,
            },
            ..scsp::Config::default()
        };
        caches.push(Cache::create(&seg, &cfg)?);
        let mut text = mesh.config(id, &seg);
        if let Some(w) = watch_us {
            text = text.replacen(
                "[[peers]]",
                &format!("watch_interval_us = {w}\n[[peers]]"),
                1,
            );
        }
        let path = dir.path().join(format!("bridge-{id}.toml"));
        std::fs::write(&path, text)
            .map_err(|e| Error::system(format!("writing {}", path.display()), e))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("bridge").arg("--config").arg(&path);
        let (guard, _) =
            pool::start_until_ready(&format!("bridge {id}"), &mut cmd, Duration::from_secs(20))?;
        bridges.push(guard);
    }
    let [b0, b1]: [pool::Guarded; 2] = bridges.try_into().map_err(|_| "two bridges")?;
    let b = caches.pop().expect("two caches");
    let a = caches.pop().expect("two caches");
    let pair = Pair {
        _dir: dir,
        a,
        b,
        bridges: [b0, b1],
    };
    wait_connected(&pair.a)?;
    wait_connected(&pair.b)?;
    Ok(pair)
}

fn wait_connected(c: &Cache) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if scsp::replication::status::read(c)
            .is_some_and(|s| !s.peers.is_empty() && s.peers.iter().all(|p| p.connected))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::Failed(
        "the bridges did not connect within 20 s".into(),
    ))
}

/// The two bridges' CPU time from when it starts.
struct CpuMeter {
    pids: [u32; 2],
    before: [f64; 2],
    since: Instant,
}

impl CpuMeter {
    fn start(pids: [u32; 2]) -> CpuMeter {
        CpuMeter {
            pids,
            before: pids.map(cpu_secs),
            since: Instant::now(),
        }
    }

    /// Each bridge's CPU since `start`, % of one core.
    fn pct(&self) -> [f64; 2] {
        let secs = self.since.elapsed().as_secs_f64();
        [0, 1].map(|i| 100.0 * (cpu_secs(self.pids[i]) - self.before[i]) / secs)
    }
}

/// CPU seconds used so far by process `pid` (user + system).
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / tick
}

/// Take a key on A that B holds, and wait until B no longer returns it:
/// microseconds (the window in which one ticket resumes on both hosts).
fn take_window(p: &Pair, key: &[u8], value: &[u8]) -> Result<f64> {
    probe(p, key, value)?;
    let mut buf = vec![0u8; value.len()];
    let t0 = Instant::now();
    if !matches!(p.a.take(key, &mut buf), scsp::Lookup::Hit(_)) {
        return Err(Error::Failed("the take on A found nothing".into()));
    }
    loop {
        if !matches!(p.b.get(key, &mut buf), scsp::Lookup::Hit(_)) {
            return Ok(t0.elapsed().as_secs_f64() * 1e6);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(Error::Failed("a take did not reach B within 10 s".into()));
        }
        std::thread::sleep(Duration::from_micros(10));
    }
}

/// Put a fresh key on A and wait until B returns it: microseconds.
fn probe(p: &Pair, key: &[u8], value: &[u8]) -> Result<f64> {
    let t0 = Instant::now();
    if p.a.put(key, value, 300) != scsp::Stored::Ok {
        return Err(Error::Failed("a probe put was refused".into()));
    }
    let mut buf = vec![0u8; value.len()];
    loop {
        if let scsp::Lookup::Hit(_) = p.b.get(key, &mut buf) {
            return Ok(t0.elapsed().as_secs_f64() * 1e6);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(Error::Failed("a probe did not reach B within 10 s".into()));
        }
        std::thread::sleep(Duration::from_micros(10));
    }
}

fn measure(a: &BridgeArgs, watch_us: Option<u32>, round: u32) -> Result<Run> {
    // The prober's 10 µs sleeps end when asked, not up to the kernel's
    // default 50 µs timer slack later (which would add to every figure).
    // SAFETY: PR_SET_TIMERSLACK takes nanoseconds and affects this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    let p = start_pair(watch_us, a.layout)?;
    let pids = [p.bridges[0].pid(), p.bridges[1].pid()];
    // Idle CPU, once the connections have gone cold (the handshake's
    // ticket keys count as activity).
    std::thread::sleep(scsp_bridge::HOT + Duration::from_millis(500));
    let idle = CpuMeter::start(pids);
    std::thread::sleep(Duration::from_secs(a.idle_secs));
    let idle_cpu_pct = idle.pct();
    let value = vec![7u8; 256];
    let n = a.probes as usize;
    let mut scenarios = Vec::new();
    let mut key = 0u64;
    let mut next = || {
        key += 1;
        format!("probe-{round}-{key}").into_bytes()
    };
    let mut us = Vec::with_capacity(n);
    let cpu = CpuMeter::start(pids);
    for _ in 0..n {
        us.push(probe(&p, &next(), &value)?);
        std::thread::sleep(Duration::from_millis(1));
    }
    scenarios.push(Latencies::of("back-to-back (1 ms apart)", us, cpu.pct()));
    let mut us = Vec::new();
    let cpu = CpuMeter::start(pids);
    for _ in 0..(n / 10).max(5) {
        std::thread::sleep(Duration::from_millis(a.idle_gap_ms));
        us.push(probe(&p, &next(), &value)?);
    }
    scenarios.push(Latencies::of(
        &format!("after {} ms idle", a.idle_gap_ms),
        us,
        cpu.pct(),
    ));
    let cpu = CpuMeter::start(pids);
    let (us, background_rate) = under_load(&p, a.rate, n, &mut next, &value)?;
    scenarios.push(Latencies::of(
        &format!("{}/s background load", a.rate),
        us,
        cpu.pct(),
    ));
    let mut us = Vec::with_capacity(n / 4);
    let cpu = CpuMeter::start(pids);
    for _ in 0..(n / 4).max(5) {
        us.push(take_window(&p, &next(), &value)?);
        std::thread::sleep(Duration::from_millis(1));
    }
    scenarios.push(Latencies::of("take on A -> gone on B", us, cpu.pct()));
    Ok(Run {
        layout: a.layout.name(),
        watch_interval_us: watch_us,
        round,
        idle_cpu_pct,
        scenarios,
        background_rate,
        load_average: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    })
}

/// Probes while another thread puts `rate` sessions a second on A.
fn under_load(
    p: &Pair,
    rate: u32,
    n: usize,
    next: &mut impl FnMut() -> Vec<u8>,
    value: &[u8],
) -> Result<(Vec<f64>, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let seg = p.a.segment().path().map(Path::to_path_buf);
    let seg = seg.ok_or("segment A has a path")?;
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<f64> {
            let cache = Cache::open(&seg)?;
            let value = vec![9u8; 256];
            let start = Instant::now();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let _ = cache.put(format!("bg-{i}").as_bytes(), &value, 300);
                i += 1;
            }
            Ok(i as f64 / start.elapsed().as_secs_f64())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let mut us = Vec::with_capacity(n);
    let mut failed = None;
    for _ in 0..n {
        match probe(p, &next(), value) {
            Ok(v) => us.push(v),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let achieved = load
        .join()
        .map_err(|_| Error::Failed("the background load panicked".into()))??;
    match failed {
        Some(e) => Err(e),
        None => Ok((us, achieved)),
    }
}
