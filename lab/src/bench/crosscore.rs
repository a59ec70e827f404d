//! How long a cache line takes to go from one CPU to another and back.
//!
//! A store that processes share pays this for every line another process
//! wrote, so its speed-up with processes follows it: on the same machine,
//! and on a virtual machine from one minute to the next, as the host moves
//! its vCPUs between core complexes (docs/perf-scaling.md, "Where the
//! vCPUs sit"). `scsp bench scale` and the sharing examples print it beside
//! their figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Round trips timed per batch, and batches (the median is reported).
const TRIPS: u64 = 4_000;
const BATCHES: usize = 5;
/// Give up when the other thread does not answer for this long (it was
/// descheduled, or its CPU is busy with something else).
const PATIENCE: Duration = Duration::from_millis(200);

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity writes at most
    // its size, and CPU_ISSET reads inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// The two CPUs a probe uses: the first two this process may run on.
pub fn probe_pair() -> Option<(usize, usize)> {
    match allowed_cpus()[..] {
        [a, b, ..] => Some((a, b)),
        _ => None,
    }
}

/// The median time, ns, for one line to be written on CPU `a`, read and
/// written back on CPU `b`, and read on `a` again; `None` if they are the
/// same CPU, if either cannot be used, or if the other thread did not
/// answer within 200 ms (`PATIENCE`). The calling thread's own CPU affinity is left alone (two
/// threads are spawned).
pub fn round_trip_ns(a: usize, b: usize) -> Option<f64> {
    if a == b {
        return None;
    }
    // One line of its own: nothing else on it moves with the flag.
    #[repr(align(128))]
    struct Line(AtomicU64);
    let line = Line(AtomicU64::new(0));
    let flag = &line.0;
    std::thread::scope(|s| {
        let echo = s.spawn(move || {
            pin(b)?;
            for n in 0..TRIPS * BATCHES as u64 {
                wait_for(flag, 2 * n + 1)?;
                flag.store(2 * n + 2, Ordering::Release);
            }
            Some(())
        });
        let ping = s.spawn(move || {
            let pinned = pin(a);
            let mut batches = Vec::with_capacity(BATCHES);
            for batch in 0..BATCHES as u64 {
                let start = Instant::now();
                for n in batch * TRIPS..(batch + 1) * TRIPS {
                    // Unpinned, still answer the echo so that it ends.
                    flag.store(2 * n + 1, Ordering::Release);
                    wait_for(flag, 2 * n + 2)?;
                }
                batches.push(start.elapsed().as_nanos() as f64 / TRIPS as f64);
            }
            pinned?;
            batches.sort_by(f64::total_cmp);
            Some(batches[BATCHES / 2])
        });
        let trip = ping.join().ok().flatten();
        // An echo that could not be pinned never answered: the ping gave up.
        echo.join().ok().flatten().and(trip)
    })
}

/// Spin until `flag` holds `value`; `None` after [`PATIENCE`].
fn wait_for(flag: &AtomicU64, value: u64) -> Option<()> {
    let start = Instant::now();
    loop {
        for _ in 0..1024 {
            if flag.load(Ordering::Acquire) == value {
                return Some(());
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > PATIENCE {
            return None;
        }
    }
}

/// Run the calling thread on `cpu` only.
fn pin(cpu: usize) -> Option<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return None;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
    // inside it (cpu < CPU_SETSIZE); sched_setaffinity(0, ..) reads it and
    // changes only the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    (rc == 0).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_between_two_cpus_takes_time_and_a_missing_cpu_gives_none() {
        let cpus = allowed_cpus();
        if let [a, b, ..] = cpus[..] {
            let ns = round_trip_ns(a, b).expect("two allowed CPUs answer");
            assert!(ns > 0.0 && ns.is_finite(), "{ns}");
        }
        assert_eq!(round_trip_ns(cpus[0], libc::CPU_SETSIZE as usize), None);
    }
}
