//! Wall-clock seconds without a syscall.
//!
//! Expiry is stored as unix seconds so that it means the same on every host of
//! a pool. `time()` is served by the vDSO on Linux: one load of the seconds
//! the kernel keeps for `CLOCK_REALTIME_COARSE`, no kernel entry, which keeps
//! `get`/`put` syscall-free (and costs about half of a `clock_gettime` call
//! for the same clock).

/// Current unix time in whole seconds (coarse: may lag by one tick, ~4 ms).
pub fn now_secs() -> u64 {
    #[cfg(not(miri))]
    // SAFETY: `time` with a null pointer only returns the time.
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    // Miri emulates `clock_gettime`, not `time`.
    #[cfg(miri)]
    let t = {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; only written.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        ts.tv_sec
    };
    t.max(0) as u64
}

/// Current unix time in milliseconds, for status timestamps (not the hot path).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
