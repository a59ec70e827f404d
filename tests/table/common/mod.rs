//! Helpers shared by the verification tests: a seeded RNG, self-verifying
//! values, and a guard that kills and reaps forked children even when a test
//! fails half-way.
#![allow(dead_code)]

use nix::unistd::Pid;

/// A small, seeded, reproducible RNG (SplitMix64). Tests print their seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A seed from the clock and pid, so every run explores new ground.
    pub fn seed_from_env_or_clock() -> u64 {
        if let Ok(s) = std::env::var("SCSP_TEST_SEED") {
            if let Ok(v) = s.parse() {
                return v;
            }
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        t ^ (std::process::id() as u64).rotate_left(40)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// FNV-1a, 64 bit: independent of the table's own hashes, so a value that
/// passes this check was not merely "checksummed by the same code".
pub fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for b in *p {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The key for key number `id`.
pub fn key(id: u32) -> [u8; 8] {
    let mut k = *b"key-\0\0\0\0";
    k[4..].copy_from_slice(&id.to_le_bytes());
    k
}

/// Smallest self-verifying value.
pub const MIN_VALUE_LEN: usize = 24;

/// Fill `buf[..len]` with a value that names its key and version and carries
/// a checksum of both and of its payload:
/// `key_id:4 | version:8 | len:4 | payload… | fnv64 of everything before:8`.
pub fn encode_value(key_id: u32, version: u64, len: usize, buf: &mut [u8]) -> usize {
    let len = len.max(MIN_VALUE_LEN).min(buf.len());
    let v = &mut buf[..len];
    v[0..4].copy_from_slice(&key_id.to_le_bytes());
    v[4..12].copy_from_slice(&version.to_le_bytes());
    v[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    let mut x = version ^ (key_id as u64).rotate_left(32);
    for b in &mut v[16..len - 8] {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 56) as u8;
    }
    let sum = fnv64(&[&v[..len - 8]]);
    v[len - 8..].copy_from_slice(&sum.to_le_bytes());
    len
}

/// Check a value read for key number `key_id`: returns its version, or a
/// description of what is wrong with it.
pub fn check_value(key_id: u32, v: &[u8]) -> Result<u64, String> {
    if v.len() < MIN_VALUE_LEN {
        return Err(format!("value of {} bytes is too short", v.len()));
    }
    let n = v.len();
    let sum = u64::from_le_bytes(v[n - 8..].try_into().unwrap());
    if fnv64(&[&v[..n - 8]]) != sum {
        return Err("checksum mismatch (torn or foreign bytes)".into());
    }
    let k = u32::from_le_bytes(v[0..4].try_into().unwrap());
    if k != key_id {
        return Err(format!("value of key {k} returned for key {key_id}"));
    }
    let len = u32::from_le_bytes(v[12..16].try_into().unwrap()) as usize;
    if len != n {
        return Err(format!("value says {len} bytes, got {n}"));
    }
    Ok(u64::from_le_bytes(v[4..12].try_into().unwrap()))
}

/// Forked children, SIGKILLed and reaped when dropped (each is a
/// `childguard::Guard`), so a failing assertion never leaves processes
/// behind.
#[derive(Default)]
pub struct Children(Vec<childguard::Guard>);

impl Children {
    /// Fork; the child runs `work` and leaves with `_exit(code)` without ever
    /// returning into the test harness.
    pub fn spawn(&mut self, work: impl FnOnce() -> i32) -> Pid {
        // SAFETY: the child only runs `work` (memory operations on the
        // inherited mapping, writes to fds it owns) and then `_exit`s.
        let g = unsafe { childguard::fork(work) }.expect("fork");
        let pid = Pid::from_raw(g.pid() as i32);
        self.0.push(g);
        pid
    }

    fn take(&mut self, pid: Pid) -> childguard::Guard {
        let i = self.0.iter().position(|g| g.pid() as i32 == pid.as_raw());
        self.0.remove(i.expect("a child of this set"))
    }

    /// Wait for one child and return its exit code (or 128+signal).
    pub fn wait(&mut self, pid: Pid) -> i32 {
        self.take(pid).wait()
    }

    /// SIGKILL a child and reap it.
    pub fn kill(&mut self, pid: Pid) -> i32 {
        self.take(pid).kill()
    }

    /// Wait for every remaining child; returns their exit codes.
    pub fn wait_all(&mut self) -> Vec<i32> {
        std::mem::take(&mut self.0)
            .iter_mut()
            .map(|g| g.wait())
            .collect()
    }
}

/// A page of `AtomicU64`s shared with forked children (MAP_SHARED |
/// MAP_ANONYMOUS): stop flags and counters that survive a child's SIGKILL.
pub struct SharedWords {
    ptr: *mut std::sync::atomic::AtomicU64,
    len: usize,
}

// SAFETY: only ever accessed through atomics.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    pub fn new(len: usize) -> SharedWords {
        let bytes = (len * 8).max(8);
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap shared page");
        SharedWords { ptr: p.cast(), len }
    }

    pub fn word(&self, i: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(i < self.len);
        // SAFETY: `i` is in bounds of a zero-filled, page-aligned mapping
        // that lives as long as `self`; AtomicU64 accepts any bit pattern.
        unsafe { &*self.ptr.add(i) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), (self.len * 8).max(8)) };
    }
}
