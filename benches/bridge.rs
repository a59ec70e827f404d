//! Bridge benchmark: two hosts on 127.0.0.1/127.0.0.2, real `scsp bridge`
//! processes. Measures replication latency put-on-A -> visible-on-B (idle
//! and under a paced background load), sustained sessions/s over one link,
//! and the replay of a whole window after a bridge restart, with the
//! bridges' CPU time. Run: `cargo bench --bench bridge`.
//! Results go in docs/perf-bridge.md.

#[path = "../cli/tests/bridge/support/mod.rs"]
mod bridge_support;

use bridge_support::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0; // USER_HZ
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (ut + st) / tick
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Put a fresh key on A and spin until B sees it; microseconds.
fn probe(c: &Cluster, i: u64, value: &[u8]) -> f64 {
    let key = format!("probe-{i}");
    let t0 = Instant::now();
    assert_eq!(
        c.hosts[0].cache.put(key.as_bytes(), value, 300),
        scsp::Stored::Ok
    );
    let mut buf = vec![0u8; 1024];
    loop {
        if let scsp::Lookup::Hit(_) = c.hosts[1].cache.get(key.as_bytes(), &mut buf) {
            return t0.elapsed().as_secs_f64() * 1e6;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            panic!("probe {i} never arrived");
        }
        // Sleep rather than spin: on a small machine a spinning prober
        // steals the CPU the bridges need and inflates the tail.
        std::thread::sleep(Duration::from_micros(20));
    }
}

fn latency(c: &Cluster, label: &str, n: u64, base: u64) {
    let value = vec![3u8; 256];
    let mut v: Vec<f64> = (0..n).map(|i| probe(c, base + i, &value)).collect();
    println!(
        "{label:<34} p50 {:>8.0} us   p99 {:>8.0} us   max {:>8.0} us   (n={n})",
        pct(&mut v, 0.5),
        pct(&mut v, 0.99),
        pct(&mut v, 1.0)
    );
}

fn main() {
    let mut c = Cluster::start(Options {
        hosts: 2,
        size: "128MiB",
        ..Options::default()
    });
    c.wait_connected();
    let pids: Vec<u32> = c
        .hosts
        .iter()
        .map(|h| h.child.as_ref().unwrap().pid())
        .collect();
    println!("scsp bridge benchmark: 2 hosts on loopback, 256-byte sessions");

    let cpu0: Vec<f64> = pids.iter().map(|&p| cpu_secs(p)).collect();
    std::thread::sleep(Duration::from_secs(3));
    let idle: Vec<f64> = pids
        .iter()
        .zip(&cpu0)
        .map(|(&p, c0)| cpu_secs(p) - c0)
        .collect();
    println!(
        "idle bridge CPU                    {:.1}% and {:.1}% of one core",
        100.0 * idle[0] / 3.0,
        100.0 * idle[1] / 3.0
    );
    println!(
        "load average                       {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    latency(&c, "latency, back-to-back probes", 2000, 0);

    // Paced background load on A while probing.
    for rate in [1_000u64, 10_000] {
        let stop = Arc::new(AtomicBool::new(false));
        let seg = c.hosts[0].segment.clone();
        let s2 = stop.clone();
        let bg = std::thread::spawn(move || {
            let cache = scsp::Cache::open(&seg).unwrap();
            let value = vec![9u8; 256];
            let start = Instant::now();
            let mut i = 0u64;
            while !s2.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let _ = cache.put(format!("bg-{rate}-{i}").as_bytes(), &value, 300);
                i += 1;
            }
            i as f64 / start.elapsed().as_secs_f64()
        });
        std::thread::sleep(Duration::from_millis(300));
        latency(
            &c,
            &format!("latency, {rate}/s background"),
            2000,
            1_000_000 * rate,
        );
        stop.store(true, Ordering::Relaxed);
        let achieved = bg.join().unwrap();
        println!("{:<34} achieved {achieved:.0} puts/s", "");
    }

    // Sustained throughput over one link: A puts as fast as it can; time
    // until B holds the last one.
    let n = 300_000u64;
    let value = vec![7u8; 256];
    let cpu0: Vec<f64> = pids.iter().map(|&p| cpu_secs(p)).collect();
    let t0 = Instant::now();
    for i in 0..n {
        let _ = c.hosts[0]
            .cache
            .put(format!("tp-{i}").as_bytes(), &value, 300);
    }
    let put_secs = t0.elapsed().as_secs_f64();
    let last = format!("tp-{}", n - 1);
    while c.hosts[1].get(last.as_bytes()).is_none() {
        std::thread::sleep(Duration::from_micros(200));
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "throughput run stuck"
        );
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu0)
        .map(|(&p, c0)| cpu_secs(p) - c0)
        .collect();
    let present = (0..n)
        .step_by(97)
        .filter(|i| c.hosts[1].get(format!("tp-{i}").as_bytes()).is_some())
        .count();
    let on_a = (0..n)
        .step_by(97)
        .filter(|i| c.hosts[0].get(format!("tp-{i}").as_bytes()).is_some())
        .count();
    let sampled = (0..n).step_by(97).count();
    println!(
        "throughput, one link               {:.0} sessions/s replicated ({n} in {secs:.2} s; A's puts took {put_secs:.2} s)",
        n as f64 / secs
    );
    println!(
        "  bridge CPU                       sender {:.2} s ({:.0}% of one core), receiver {:.2} s ({:.0}%)",
        cpu[0],
        100.0 * cpu[0] / secs,
        cpu[1],
        100.0 * cpu[1] / secs
    );
    println!(
        "  afterwards                       {present}/{sampled} sampled keys on B, {on_a} on A (lossy index); A->B lost_words {}",
        c.hosts[0].peer_status(2).lost_words
    );
    replay(&mut c, pids[0]);
}

/// B's bridge restarts: A replays its whole window, which B already holds.
/// How long that takes, what it costs, and that B stores none of it again.
fn replay(c: &mut Cluster, a_pid: u32) {
    let b_tails = c.hosts[1].log_words_written();
    let sent0 = c.hosts[0].peer_status(2).sent_entries;
    let a_cpu0 = cpu_secs(a_pid);
    c.host(2).kill9();
    c.host(2).start();
    let t0 = Instant::now();
    let b_pid = c.hosts[1].child.as_ref().unwrap().pid();
    loop {
        let a = c.hosts[0].peer_status(2);
        if a.connected && a.sent_entries > sent0 && a.backlog_words == 0 && a.lag_entries == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "replay stuck");
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = t0.elapsed().as_secs_f64();
    let replayed = c.hosts[0].peer_status(2).sent_entries - sent0;
    let b = c.hosts[1].peer_status(1);
    println!(
        "replay after B's bridge restarts   {replayed} entries in {secs:.2} s ({:.0}/s, connect included); B stored {} again ({} already there), B's log grew {} words",
        replayed as f64 / secs,
        b.received_entries,
        b.unchanged_entries,
        c.hosts[1].log_words_written() - b_tails
    );
    println!(
        "  bridge CPU                       sender {:.2} s, receiver {:.2} s",
        cpu_secs(a_pid) - a_cpu0,
        cpu_secs(b_pid)
    );
}
