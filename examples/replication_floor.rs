//! How fast can any replicator that polls, as scsp's bridge must (workers
//! make no system call, docs/architecture.md I2 NO-SYSCALL), carry a put
//! from one process to another on this machine? The same path as
//! `scsp bench bridge` without TLS, frames or the table:
//!
//! - the prober stores a number in shared memory ("put on A");
//! - process A looks at that word every INTERVAL µs (a sleep with 1 ns of
//!   timer slack, as the bridge's hot connections do) and, when it moved,
//!   writes it to a socket;
//! - process B waits in `read` on the socket and stores what it reads in a
//!   second word ("readable on B");
//! - the prober polls that word with 10 µs sleeps, as the bench does.
//!
//! Also: what one timer wake-up costs in CPU (the price of polling often).
//!
//! ```text
//! cargo run --release --example replication_floor [INTERVAL_US ...]
//! ```
//! docs/perf-bridge.md, "Against the targets", quotes its output.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Probes per scenario; the idle-gap one takes a tenth.
const PROBES: usize = 1000;

fn main() {
    let intervals: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("intervals are whole microseconds"))
        .collect();
    let intervals = if intervals.is_empty() {
        vec![100, 50]
    } else {
        intervals
    };
    precise_timers();
    println!(
        "{:<34} {:>7} {:>7} {:>7} {:>7}",
        "", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    for &every in &intervals {
        let every = Duration::from_micros(every);
        for (gap, n) in [
            (Duration::from_millis(1), PROBES),
            (Duration::from_millis(250), PROBES / 10),
        ] {
            let us = chain(every, gap, n);
            print_row(&format!("poll {every:?}, puts {gap:?} apart"), us);
        }
    }
    for &every in &intervals {
        let (per_sec, cpu_pct, per_wake) = timer_cost(Duration::from_micros(every));
        println!(
            "sleeping {every} µs: {per_sec:.0} wake-ups/s, {cpu_pct:.1} % of a core, \
             {per_wake:.1} µs of CPU per wake-up"
        );
    }
}

/// Put-to-readable times of `n` probes `gap` apart, µs.
fn chain(every: Duration, gap: Duration, n: usize) -> Vec<f64> {
    let put = shared_word();
    let seen = shared_word();
    let (mut to_b, mut from_a) = UnixStream::pair().expect("socketpair");
    // SAFETY: this process has one thread, so the children inherit no lock
    // another thread held; they only sleep, use atomics and their sockets.
    let _a = unsafe {
        childguard::fork(|| {
            precise_timers();
            let mut last = 0;
            loop {
                std::thread::sleep(every);
                let v = put.load(Ordering::Acquire);
                if v != last {
                    last = v;
                    to_b.write_all(&v.to_ne_bytes()).expect("write to B");
                }
            }
        })
    }
    .expect("fork A");
    // SAFETY: as for A.
    let _b = unsafe {
        childguard::fork(|| loop {
            let mut v = [0u8; 8];
            from_a.read_exact(&mut v).expect("read from A"); // blocks in read
            seen.store(u64::from_ne_bytes(v), Ordering::Release);
        })
    }
    .expect("fork B");
    let mut us = Vec::with_capacity(n);
    for i in 1..=n as u64 {
        std::thread::sleep(gap);
        let t0 = Instant::now();
        put.store(i, Ordering::Release);
        while seen.load(Ordering::Acquire) != i {
            std::thread::sleep(Duration::from_micros(10));
        }
        us.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    us
}

/// CPU that sleeping `every` in a loop costs, over 3 s: (wake-ups per
/// second, % of a core, µs of CPU per wake-up).
fn timer_cost(every: Duration) -> (f64, f64, f64) {
    let cpu = || {
        let mut r = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage fills the struct it is given and nothing else.
        let r = unsafe {
            libc::getrusage(libc::RUSAGE_THREAD, r.as_mut_ptr());
            r.assume_init()
        };
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(r.ru_utime) + t(r.ru_stime)
    };
    let (c0, t0) = (cpu(), Instant::now());
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(every);
        n += 1;
    }
    let (secs, used) = (t0.elapsed().as_secs_f64(), cpu() - c0);
    (n as f64 / secs, 100.0 * used / secs, used / n as f64 * 1e6)
}

/// One word in memory that forked children share with this process.
fn shared_word() -> &'static AtomicU64 {
    // SAFETY: a fresh anonymous shared mapping of one page, never unmapped
    // (it lives as long as the process); page-aligned, so aligned for an
    // AtomicU64, and zeroed, a valid AtomicU64. Every access is atomic.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        &*(p as *const AtomicU64)
    }
}

/// Sleeps end when asked, not up to 50 µs later (the default timer slack).
fn precise_timers() {
    // SAFETY: PR_SET_TIMERSLACK takes nanoseconds and affects this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
}

fn print_row(name: &str, mut us: Vec<f64>) {
    us.sort_by(f64::total_cmp);
    let q = |f: f64| us[((us.len() - 1) as f64 * f).round() as usize];
    println!(
        "{name:<34} {:>7.0} {:>7.0} {:>7.0} {:>7.0}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}
