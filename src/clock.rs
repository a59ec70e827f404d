//! Wall-clock seconds without a syscall.
//!
//! Expiry is stored as unix seconds so that it means the same on every host of
//! a pool. `CLOCK_REALTIME_COARSE` is served by the vDSO on Linux: a few memory
//! reads, no kernel entry, which keeps `get`/`put` syscall-free.

/// Current unix time in whole seconds (coarse: may lag by one tick, ~4 ms).
pub fn now_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec.max(0) as u64
}

/// Current unix time in milliseconds, for status timestamps (not the hot path).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
