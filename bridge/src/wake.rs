//! Waking cold connections when the local logs grow.
//!
//! Workers never make a syscall, so nothing tells the bridge that a put
//! landed: someone has to look at the shard tails. A hot connection, one
//! that sent or received entries within [`HOT`], looks itself every
//! `watch_interval_us` (100 µs by default): sessions come in bursts (a
//! client's parallel connections right after its first handshake), and
//! the first put after a short pause is the one a client waits for on
//! another host. Cold connections leave it to one watcher thread, which
//! reads the tails and wakes them through an eventfd, however many peers
//! there are: every [`WATCH_EVERY`] for [`WARM`] after the logs last
//! moved, every [`WATCH_IDLE_EVERY`] after that, so a bridge with nothing
//! to do costs one slow timer.

use nix::sys::eventfd::{EfdFlags, EventFd};
use scsp::replication::Replica;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::Duration;

/// How long after its last entries a connection stays hot (looks at the
/// logs itself, every `watch_interval_us`).
pub const HOT: Duration = Duration::from_secs(2);
/// How often the watcher looks at the tails for the cold connections.
pub const WATCH_EVERY: Duration = Duration::from_millis(1);
/// How long after the logs last moved the watcher keeps [`WATCH_EVERY`].
pub const WARM: Duration = Duration::from_secs(60);
/// The watcher's interval once the logs have not moved for [`WARM`]: on
/// a virtual machine a timer wake-up can cost 20-25 µs of CPU, so 1 ms
/// would be 2-2.5 % of a core spent on a bridge with nothing to do.
pub const WATCH_IDLE_EVERY: Duration = Duration::from_millis(5);

/// One connection's doorbell.
pub(crate) struct Waker {
    fd: EventFd,
    /// The connection is waiting and wants a wake-up when the logs grow.
    waiting: AtomicBool,
}

impl Waker {
    pub fn new() -> Result<Waker, crate::Error> {
        let fd =
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).map_err(|e| {
                crate::Error::System {
                    what: "eventfd",
                    source: e.into(),
                }
            })?;
        Ok(Waker {
            fd,
            waiting: AtomicBool::new(false),
        })
    }

    /// The descriptor to wait on (readable after a wake-up).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Ask for a wake-up (before checking one last time that there is
    /// nothing to send, so a put in between is not missed).
    pub fn arm(&self) {
        self.waiting.store(true, Ordering::SeqCst);
        // Pairs with the watcher's fence: either it sees `waiting`, or the
        // caller's check that follows sees the tail the watcher saw move.
        fence(Ordering::SeqCst);
    }

    /// Back to work: no more wake-ups, and forget a pending one.
    pub fn disarm(&self) {
        if self.waiting.swap(false, Ordering::SeqCst) {
            let _ = self.fd.read(); // EAGAIN when nothing was pending
        }
    }

    fn ring(&self) {
        if self.waiting.load(Ordering::SeqCst) {
            let _ = self.fd.write(1);
        }
    }
}

/// Until `stop`: whenever a shard tail or a notice ring has moved since the
/// last look, wake every waiting connection.
pub(crate) fn watch(cache: &Replica, wakers: &[Waker], stop: &AtomicBool) {
    if wakers.is_empty() {
        return; // no peers: nobody to wake
    }
    precise_timers();
    let mut seen = cache.activity();
    let mut moved_at = None::<std::time::Instant>;
    while !stop.load(Ordering::Relaxed) {
        let warm = moved_at.is_some_and(|t| t.elapsed() < WARM);
        std::thread::sleep(if warm { WATCH_EVERY } else { WATCH_IDLE_EVERY });
        let now = cache.activity();
        let moved = now != seen;
        seen = now;
        if moved {
            moved_at = Some(std::time::Instant::now());
            fence(Ordering::SeqCst); // see `Waker::arm`
            wakers.iter().for_each(Waker::ring);
        }
    }
}

/// Sleeps and polls of this thread end when asked, not up to the kernel's
/// default 50 µs later (timer slack): at 100 µs intervals that slack would
/// be half the interval again.
pub(crate) fn precise_timers() {
    // SAFETY: PR_SET_TIMERSLACK takes a number of nanoseconds and only
    // affects the calling thread's timers.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use scsp::segment::Geometry;
    use std::sync::Arc;

    fn readable(fd: RawFd, ms: i32) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot run poll(2)")]
    fn a_put_wakes_waiting_connections_only() {
        let cache = Arc::new(scsp::Cache::in_memory(Geometry::tiny(2, 64, 4096, 256)));
        let replica = Replica::new(cache.clone());
        let wakers = Arc::new([Waker::new().unwrap(), Waker::new().unwrap()]);
        let stop = Arc::new(AtomicBool::new(false));
        let t = {
            let (c, w, s) = (replica, wakers.clone(), stop.clone());
            std::thread::spawn(move || watch(&c, &w[..], &s))
        };
        wakers[0].arm();
        assert!(!readable(wakers[0].fd(), 20), "nothing happened yet");
        assert_eq!(cache.put(b"k", b"v", 60), scsp::Stored::Ok);
        assert!(readable(wakers[0].fd(), 5000), "the waiting one is woken");
        assert!(!readable(wakers[1].fd(), 20), "the busy one is not");
        wakers[0].disarm();
        assert!(!readable(wakers[0].fd(), 0), "disarm forgets the wake-up");
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }
}
