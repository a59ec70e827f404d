//! # childguard: no process left behind
//!
//! A [`Guard`] owns one child process, spawned ([`Guard::spawned`]) or
//! forked ([`fork`]). Dropping the guard stops the child — SIGTERM, then
//! SIGKILL once its grace period is over (SIGKILL at once with no grace) —
//! and reaps it. So an error, a failed assertion or a panic in the owner
//! leaves no process running, and no zombie. scsp's demo, benchmarks and
//! tests all start their processes through it.
#![deny(missing_docs)]

use std::io;
use std::process::Child;
use std::time::{Duration, Instant};

/// How the child ended: its exit code, or 128 + the signal that killed it
/// (the shell's convention).
pub type ExitCode = i32;

/// A child process, stopped and reaped when the guard drops.
#[derive(Debug)]
pub struct Guard {
    pid: libc::pid_t,
    /// The `Child` of a spawned process (its pipes, and the std bookkeeping
    /// that must see the reap); `None` for a forked one.
    child: Option<Child>,
    grace: Duration,
    ended: Option<ExitCode>,
}

impl Guard {
    /// Guard a process started with `std::process::Command`. Dropped, it
    /// gets SIGKILL (see [`Guard::grace`] for a gentler stop).
    pub fn spawned(child: Child) -> Guard {
        Guard {
            pid: child.id() as libc::pid_t,
            child: Some(child),
            grace: Duration::ZERO,
            ended: None,
        }
    }

    /// On drop, send SIGTERM first and SIGKILL only if the child is still
    /// running after `grace` (a server that stops its own workers, a bridge
    /// that says goodbye to its peers).
    pub fn grace(mut self, grace: Duration) -> Guard {
        self.grace = grace;
        self
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The `std::process::Child` of a spawned process (to take its pipes).
    pub fn child(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// How the child ended, if it has (reaps it then); `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitCode> {
        self.reap(false)
    }

    /// Wait for the child to end by itself.
    pub fn wait(&mut self) -> ExitCode {
        self.reap(true).expect("a blocking wait reaps the child")
    }

    /// Send `signal` (if the child still runs).
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.ended.is_none() && self.try_wait().is_none() {
            // SAFETY: kill(2) on our own child, which is not reaped yet (so
            // its pid cannot have been reused).
            unsafe { libc::kill(self.pid, signal) };
        }
    }

    /// SIGKILL the child and reap it.
    pub fn kill(&mut self) -> ExitCode {
        self.signal(libc::SIGKILL);
        self.wait()
    }

    /// Stop the child as a drop does (SIGTERM, SIGKILL after the grace
    /// period) and reap it.
    pub fn stop(&mut self) -> ExitCode {
        if self.grace.is_zero() {
            return self.kill();
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Some(code) = self.try_wait() {
                return code;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill()
    }

    fn reap(&mut self, block: bool) -> Option<ExitCode> {
        if self.ended.is_some() {
            return self.ended;
        }
        let code = match &mut self.child {
            Some(c) => {
                let status = if block {
                    c.wait().ok()
                } else {
                    c.try_wait().ok().flatten()
                };
                status.map(|s| {
                    use std::os::unix::process::ExitStatusExt;
                    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
                })
            }
            None => loop {
                let mut status = 0;
                let flags = if block { 0 } else { libc::WNOHANG };
                // SAFETY: waitpid on our own child with a valid status pointer.
                let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
                if r == self.pid {
                    break Some(if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    });
                }
                if r == 0 {
                    break None;
                }
                if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    // Not our child any more (reaped elsewhere): nothing to wait for.
                    break Some(-1);
                }
            },
        };
        self.ended = code;
        code
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.ended.is_none() {
            self.stop();
        }
    }
}

/// Fork. The child runs `work` and leaves with `_exit(code)` (101 if `work`
/// panics): it never returns into the caller, so it runs none of the
/// parent's destructors, and never unwinds into a test harness.
///
/// # Safety
/// The usual rules of `fork` in a process that may have threads: `work`
/// must only do what is safe in a child of a multi-threaded process (no
/// lock another thread may have held, for example; memory operations and
/// system calls on the child's own descriptors are fine).
pub unsafe fn fork(work: impl FnOnce() -> ExitCode) -> io::Result<Guard> {
    // SAFETY: the caller upholds the rules above; the child only runs `work`.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(101);
            // SAFETY: ends the child at once, running no atexit handlers or
            // destructors that belong to the parent.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(Guard {
            pid,
            child: None,
            grace: Duration::ZERO,
            ended: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_leaves_no_process() {
        let g = Guard::spawned(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap(),
        );
        let pid = g.pid() as libc::pid_t;
        drop(g);
        // SAFETY: signal 0 only checks for existence.
        assert_eq!(
            unsafe { libc::kill(pid, 0) },
            -1,
            "child {pid} still exists"
        );
    }

    #[test]
    fn forked_children_report_their_exit_code_or_signal() {
        // SAFETY: the child only returns a number.
        let mut g = unsafe { fork(|| 7) }.unwrap();
        assert_eq!(g.wait(), 7);
        // SAFETY: the child only sleeps.
        let mut g = unsafe {
            fork(|| {
                std::thread::sleep(Duration::from_secs(60));
                0
            })
        }
        .unwrap();
        assert_eq!(g.try_wait(), None);
        assert_eq!(g.kill(), 128 + libc::SIGKILL);
    }

    #[test]
    fn a_graceful_stop_sends_sigterm_first() {
        let mut g = Guard::spawned(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap(),
        )
        .grace(Duration::from_secs(5));
        assert_eq!(g.stop(), 128 + libc::SIGTERM);
    }
}
