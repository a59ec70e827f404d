//! The parent process: bind, fork, supervise, shut down cleanly.

use super::worker;
use super::ServeOptions;
use crate::{Error, Result};
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the supervisor looks for exited workers and a stop signal.
const SUPERVISE_EVERY: Duration = Duration::from_millis(10);

/// A flag raised by SIGTERM or SIGINT.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::system(format!("installing the handler of signal {sig}"), e))?;
    }
    Ok(stop)
}

fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| {
        Error::system(
            format!("listening on {addr} (choose another --addr or port, or stop what uses it)"),
            e,
        )
    })
}

/// Bind every socket before forking, so address errors reach the operator.
fn bind_all(opts: &ServeOptions) -> Result<Vec<TcpListener>> {
    if !opts.port_per_worker {
        return Ok(vec![bind(opts.addr)?]);
    }
    (0..opts.workers)
        .map(|i| {
            let mut a = opts.addr;
            if a.port() != 0 {
                let port = a.port().checked_add(i as u16).ok_or_else(|| {
                    Error::Usage(format!("port {} + {i} workers exceeds 65535", a.port()))
                })?;
                a.set_port(port);
            }
            bind(a)
        })
        .collect()
}

/// A worker's exit status asking to be started again, not counted as a
/// failure: its segment was replaced and a new worker opens the new one.
const EXIT_REOPEN: i32 = 3;

fn spawn(opts: &ServeOptions, listener: &TcpListener, index: usize) -> Result<Pid> {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
    let supervisor = nix::unistd::getpid();
    // Until the child has put back the default actions, SIGTERM or SIGINT
    // would only run the supervisor's flag-setting handler in it: keep them
    // pending instead (the child unblocks them in `become_worker`).
    let mut stopping = SigSet::empty();
    stopping.add(Signal::SIGTERM);
    stopping.add(Signal::SIGINT);
    let mut before = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stopping), Some(&mut before))
        .map_err(|e| Error::system("sigprocmask", e))?;
    // SAFETY: the supervisor is single-threaded when it forks, so the child
    // may run arbitrary code; the child never returns from this function.
    let forked = unsafe { fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None);
    }
    match forked.map_err(|e| Error::system("fork", e))? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            // A panic must end this child here: unwinding out of `spawn`
            // would run the supervisor's loop in the worker.
            let run = std::panic::AssertUnwindSafe(|| worker::run(opts, listener, supervisor));
            let code = match std::panic::catch_unwind(run) {
                Ok(Ok(())) => {
                    eprintln!(
                        "scsp serve: worker {index}: the segment file was removed, replaced or \
                         truncated, or is usable again; restarting on it"
                    );
                    EXIT_REOPEN
                }
                Ok(Err(e)) => {
                    eprintln!("scsp serve: worker {index}: {e}");
                    1
                }
                // The panic hook has printed the message.
                Err(_) => 101,
            };
            // SAFETY: _exit ends the child without running the parent's
            // atexit handlers or destructors twice.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Run the server until SIGTERM/SIGINT. Prints one `listening` line per
/// worker socket and then `ready` on stdout.
pub fn run(opts: &ServeOptions) -> Result<()> {
    if opts.workers == 0 || opts.workers > 256 {
        return Err(Error::Usage(format!(
            "--workers {} must be from 1 to 256",
            opts.workers
        )));
    }
    worker::check_config(opts)?;
    let listeners = bind_all(opts)?;
    let stop = stop_on_signals()?;
    let listener_of = |i: usize| &listeners[if opts.port_per_worker { i } else { 0 }];
    let mut pids = Vec::with_capacity(opts.workers);
    for i in 0..opts.workers {
        pids.push(spawn(opts, listener_of(i), i)?);
    }
    {
        let mut out = std::io::stdout().lock();
        for (i, pid) in pids.iter().enumerate() {
            let addr = listener_of(i)
                .local_addr()
                .map_err(|e| Error::system("reading the listening address", e))?;
            let _ = writeln!(out, "worker {i} pid {pid} listening on {addr}");
        }
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    let mut restarts: Vec<Instant> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        // Polled: the handler restarts interrupted calls (SA_RESTART), so a
        // blocking waitpid would not notice the stop signal.
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(SUPERVISE_EVERY),
            Ok(WaitStatus::Exited(pid, EXIT_REOPEN)) => {
                // Not a failure: every worker may do this at once.
                if let Some(i) = pids.iter().position(|p| *p == pid) {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    pids[i] = spawn(opts, listener_of(i), i)?;
                }
            }
            Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => {
                let Some(i) = pids.iter().position(|p| *p == pid) else {
                    continue;
                };
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                restarts.retain(|t| t.elapsed() < Duration::from_secs(10));
                restarts.push(Instant::now());
                // Never give up on the service: workers that keep dying are
                // restarted more and more slowly (up to every 10 s), and the
                // others serve meanwhile.
                let wait = if restarts.len() > 10 {
                    let wait = Duration::from_millis(500) * (restarts.len() as u32 - 10);
                    wait.min(Duration::from_secs(10))
                } else {
                    Duration::ZERO
                };
                eprintln!(
                    "scsp serve: worker {i} (pid {pid}) exited; restarting it{}",
                    if wait.is_zero() {
                        String::new()
                    } else {
                        format!(
                            " in {wait:?} ({} restarts in 10 s; see the errors above)",
                            restarts.len()
                        )
                    }
                );
                let until = Instant::now() + wait;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(SUPERVISE_EVERY);
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                pids[i] = spawn(opts, listener_of(i), i)?;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                stop_all(&pids);
                return Err(Error::system("waitpid", e));
            }
        }
    }
    stop_all(&pids);
    Ok(())
}

/// SIGTERM every worker, wait for each; SIGKILL any still alive after 5 s.
fn stop_all(pids: &[Pid]) {
    for pid in pids {
        let _ = signal::kill(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in pids {
        loop {
            match waitpid(*pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(WaitStatus::StillAlive) => {
                    let _ = signal::kill(*pid, Signal::SIGKILL);
                    let _ = waitpid(*pid, None);
                    break;
                }
                _ => break,
            }
        }
    }
}
