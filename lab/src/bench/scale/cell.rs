//! One cell of `scsp bench scale`: P forked processes on one store for a
//! fixed time, optionally with one of them stopped and resumed over and
//! over (SIGSTOP, SIGCONT) by this process meanwhile.
//!
//! Every process opens the store, maps it and reads every stored session
//! once (see [`warm_up`]), says it is ready on a pipe, and waits for
//! the start signal (this process closing another pipe), so that all of
//! them run at once; each sends its report back on its own pipe.

use super::worker::{self, Plan, Report};
use crate::baselines::Store;
use crate::Result;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the stopped process is stopped: after a gap of
/// `GAP_US.0..GAP_US.1` µs it is stopped for `STOP_US.0..STOP_US.1` µs,
/// both drawn uniformly: about 160 stops a second, stopped ~18 % of the time.
pub(super) const GAP_US: (u64, u64) = (1_000, 9_000);
/// See [`GAP_US`].
pub(super) const STOP_US: (u64, u64) = (200, 2_000);

/// Where the processes run and how.
pub(super) struct Setup<'a> {
    /// The store's name and path, made and filled by the caller.
    pub imp: &'a str,
    pub seg: &'a Path,
    pub procs: usize,
    /// Process `i` is pinned to `cpus[i % cpus.len()]` (empty: not pinned).
    pub cpus: &'a [usize],
    /// Stop and resume process 0 throughout the run.
    pub stop_one: bool,
}

/// What a cell measured.
pub(super) struct Outcome {
    /// One per process, process 0 first.
    pub reports: Vec<Report>,
    /// When process 0 was stopped: (SIGSTOP sent, SIGCONT sent) on the
    /// monotonic clock.
    pub stops: Vec<(u64, u64)>,
}

/// Run one cell. `interrupted` ends the stopping early.
pub(super) fn run(setup: &Setup, plan: &Plan, interrupted: &AtomicBool) -> Result<Outcome> {
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    let (start_r, start_w) = nix::unistd::pipe()?;
    let (ready_w_fd, start_w_fd) = (ready_w.as_raw_fd(), start_w.as_raw_fd());
    let mut kids = Vec::with_capacity(setup.procs);
    let mut outs = Vec::with_capacity(setup.procs);
    for id in 0..setup.procs {
        let (out_r, out_w) = nix::unistd::pipe()?;
        let start = std::fs::File::from(start_r.try_clone()?);
        let mut ready = std::fs::File::from(ready_w.try_clone()?);
        let out = std::fs::File::from(out_w);
        let cpu = (!setup.cpus.is_empty()).then(|| setup.cpus[id % setup.cpus.len()]);
        let child = move || {
            // This process's copies of the parent's write ends: the start
            // signal and the end of the ready pipe must not wait for them.
            // SAFETY: closes descriptors this child owns and never uses.
            unsafe {
                libc::close(start_w_fd);
                libc::close(ready_w_fd);
            }
            child_setup(cpu);
            let store = if setup.imp == super::UNSHARED {
                own_store(setup.seg, id, plan)
            } else {
                Store::open(setup.imp, setup.seg)
            };
            let Ok(store) = store else {
                return 2;
            };
            warm_up(&store, plan);
            if std::io::Write::write_all(&mut ready, b"r").is_err() {
                return 3;
            }
            drop(ready);
            match worker::run(&store, plan, id, start, out) {
                Ok(()) => 0,
                Err(_) => 4,
            }
        };
        // SAFETY: the CLI is single-threaded here, so the child may allocate
        // and use any library. It leaves through `_exit` (childguard).
        let kid = unsafe { childguard::fork(child) }?;
        kids.push(kid);
        outs.push(std::fs::File::from(out_r));
    }
    drop((start_r, ready_w));
    // Every process ready (or one died: the pipe ends early).
    let mut ready = vec![0u8; setup.procs];
    std::fs::File::from(ready_r)
        .read_exact(&mut ready)
        .map_err(|_| failed(&mut kids, "opening the store"))?;
    let until = Instant::now() + plan.duration;
    drop(start_w);
    let mut stops = Vec::new();
    if setup.stop_one {
        stops = stop_and_resume(&mut kids[0], until, interrupted);
    }
    let mut reports = Vec::with_capacity(setup.procs);
    for out in &mut outs {
        match Report::read_from(out)? {
            Some(r) => reports.push(r),
            None => return Err(failed(&mut kids, "measuring")),
        }
    }
    let codes: Vec<i32> = kids.iter_mut().map(|k| k.wait()).collect();
    if codes.iter().any(|&c| c != 0) {
        return Err(format!("a benchmark process failed: exit codes {codes:?}").into());
    }
    Ok(Outcome { reports, stops })
}

/// Process `id`'s store of its own for the unshared reference: a new scsp
/// segment beside `seg`, unlinked at once (the mapping keeps it), filled
/// as the parent fills a shared one.
fn own_store(seg: &Path, id: usize, plan: &Plan) -> Result<Store> {
    let mut name = seg.as_os_str().to_owned();
    name.push(format!(".{id}"));
    let path = std::path::PathBuf::from(name);
    let store = Store::new("scsp", &path, plan.keys.len(), plan.value.len());
    let _ = std::fs::remove_file(&path);
    let store = store?;
    for k in plan.keys {
        store.put(k, plan.value);
    }
    Ok(store)
}

/// Before the start, bring this process to where the unshared reference's
/// processes are after filling their own stores: every page of a shared
/// store mapped (a process that opens one has touched none, so each first
/// touch would be a page fault inside the measured time: with 200 000
/// sessions up to a third of one process's time over 0.5 s), and every
/// stored session read once.
fn warm_up(store: &Store, plan: &Plan) {
    // Where the kernel cannot (before Linux 5.14), pages fault in as before.
    let _ = store.prefault();
    let mut buf = vec![0u8; plan.value.len()];
    for k in plan.keys {
        store.get(k, &mut buf);
    }
}

/// Before the child does anything else: die with the parent (so that no
/// process is left behind, stopped or not, even if the parent is killed
/// outright), take the default action on SIGINT and SIGTERM (the parent's
/// handlers only raise a flag), and go to `cpu` if given.
fn child_setup(cpu: Option<usize>) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and no pointers;
    // signal() puts back the default action, which needs no handler.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
    }
    if let Some(cpu) = cpu {
        // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside
        // it (cpu is below the number of CPUs the parent may use), and
        // sched_setaffinity reads it, for this process (pid 0).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// Stop and resume `kid` at random moments until `until`; it is always
/// left running. Returns when it was stopped.
fn stop_and_resume(
    kid: &mut childguard::Guard,
    until: Instant,
    interrupted: &AtomicBool,
) -> Vec<(u64, u64)> {
    // Sleeps of a fraction of a millisecond end when asked, not up to 50 µs
    // later (the default timer slack).
    // SAFETY: PR_SET_TIMERSLACK takes nanoseconds and affects this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    let mut rng = 0x5eed_u64 ^ u64::from(kid.pid());
    let mut draw = |(lo, hi): (u64, u64)| {
        // xorshift64: enough to scatter the stops.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Duration::from_micros(lo + rng % (hi - lo))
    };
    let mut stops = Vec::new();
    loop {
        let gap = draw(GAP_US);
        if Instant::now() + gap >= until || interrupted.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(gap);
        let from = worker::monotonic_ns();
        kid.signal(libc::SIGSTOP);
        std::thread::sleep(draw(STOP_US));
        kid.signal(libc::SIGCONT);
        stops.push((from, worker::monotonic_ns()));
    }
    stops
}

/// Kill and reap every process, and say what failed.
fn failed(kids: &mut [childguard::Guard], what: &str) -> crate::Error {
    let codes: Vec<i32> = kids.iter_mut().map(|k| k.kill()).collect();
    format!("a benchmark process failed while {what}: exit codes {codes:?}").into()
}
