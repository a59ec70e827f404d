//! The locked baseline: the design servers share sessions with today.
//!
//! nginx's `ssl_session_cache shared:` and Apache httpd's `shmcb` keep one
//! table in a shared mapping and put one process-shared mutex around every
//! operation on it. This is that design, small: a file mapped `MAP_SHARED`
//! by every process (or inherited across `fork`), one `pthread_mutex_t`
//! with `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST` (as APR's
//! process mutex is on Linux), and under it a hash table that copies keys
//! and values in and out and checks expiry, as scsp does. The key's hash
//! is computed, and the clock read, before the lock is taken; only the
//! table's memory is touched while it is held.
//!
//! Where it differs from nginx, all in its favour except the last:
//! - Fixed-size slots (room for `max_value` each) in 8-way buckets, one
//!   cache line of hashes per bucket, instead of nginx's slab allocator and
//!   red-black tree of 32-bit hashes: a lookup touches two or three lines
//!   where nginx walks a tree, so the lock is held for less time.
//! - A full bucket evicts its oldest slot; nginx frees expired sessions from
//!   the tail of an LRU queue and, when the slab is full, the oldest one.
//! - The mutex is glibc's robust one, which never spins by itself; a
//!   locker first spins as nginx's `ngx_shmtx` does (tries between 1, 2, 4
//!   ... 1024 `pause`s), then sleeps in the kernel (futex) where nginx
//!   sleeps on a semaphore. APR's process mutex (Apache) sleeps at once.
//! - Keys are at most [`MAX_KEY`] bytes, the length of a TLS session id.
//!
//! A process that dies holding the lock leaves the table in whatever state
//! it was; the robust mutex tells the next locker (`EOWNERDEAD`), which
//! drops the slot that was being written and marks the mutex consistent.

use memmap2::MmapMut;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Longest key: a TLS session id.
pub const MAX_KEY: usize = 32;
/// Slots per bucket: their hashes fill one cache line.
const WAYS: usize = 8;
/// `b"SCSPLOCK"`, written last by the creator.
const MAGIC: u64 = u64::from_le_bytes(*b"SCSPLOCK");
/// Most pauses between two tries before a locker sleeps (nginx's
/// `ngx_shmtx` spins up to 2048 on machines of more than one CPU).
const SPIN: u32 = 1024;
/// `Header::writing` when no put is under way.
const NONE: u64 = u64::MAX;

/// The start of the mapping. Fields other than the mutex are read and
/// written only while it is held (the geometry only before any sharing).
#[repr(C, align(64))]
struct Header {
    mutex: libc::pthread_mutex_t,
    magic: u64,
    buckets: u64,
    max_value: u64,
    /// The slot a put is writing, or [`NONE`].
    writing: u64,
    /// Puts so far: each slot's `stamp` says how old it is.
    stamps: u64,
}

/// The fixed part of a slot; the value follows it.
#[repr(C)]
struct SlotHead {
    /// Unix seconds after which the value is expired.
    expiry: u64,
    /// `Header::stamps` when stored: a full bucket evicts the smallest.
    stamp: u64,
    key_len: u32,
    value_len: u32,
    key: [u8; MAX_KEY],
}

const HEADER_BYTES: usize = 128;
const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);
const BUCKET_BYTES: usize = WAYS * 8;

/// A session table in a shared mapping behind one robust process-shared mutex.
pub struct Locked {
    /// Keeps the mapping alive; accessed only through `base`.
    _map: MmapMut,
    base: *mut u8,
    buckets: usize,
    max_value: usize,
    slot_bytes: usize,
}

// SAFETY: `base` points into `_map`, which lives as long as the value; every
// access to the shared table through it is made while the process-shared
// mutex is held, which also orders it between threads.
unsafe impl Send for Locked {}
// SAFETY: as for Send: `&Locked` only reaches the table under the mutex.
unsafe impl Sync for Locked {}

/// The lock held; dropping it unlocks.
struct Held<'a>(&'a Locked);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: this process locked the mutex (it is `Held`), and it lives
        // in the mapping, which outlives `self.0`.
        unsafe { libc::pthread_mutex_unlock(self.0.mutex()) };
    }
}

/// Bytes a slot takes for values up to `max_value`: a whole number of
/// cache lines.
fn slot_bytes(max_value: usize) -> usize {
    (std::mem::size_of::<SlotHead>() + max_value).next_multiple_of(64)
}

fn hash(key: &[u8]) -> u64 {
    // 0 marks an empty way.
    xxhash_rust::xxh3::xxh3_64(key) | 1
}

impl Locked {
    /// A new table at `path` (replacing any file there) for `entries`
    /// values of up to `max_value` bytes: four slots per entry, one to two
    /// keys per bucket of eight on average, so that hardly any bucket
    /// overflows and evicts a live key (as nginx's cache, sized by its
    /// operator for the sessions it must hold, does not).
    pub fn create(path: &Path, entries: usize, max_value: usize) -> std::io::Result<Locked> {
        let buckets = (entries * 4).div_ceil(WAYS).next_power_of_two();
        let len = HEADER_BYTES + buckets * BUCKET_BYTES + buckets * WAYS * slot_bytes(max_value);
        let _ = std::fs::remove_file(path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.set_len(len as u64)?;
        let t = Self::map(&file, buckets, max_value)?;
        let h = t.header();
        // SAFETY: the file is new and not yet shared, so nothing else reads
        // or writes the header; the attribute lives on this stack frame and
        // is destroyed after the mutex is initialised from it.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            check(libc::pthread_mutexattr_init(&mut attr))?;
            check(libc::pthread_mutexattr_setpshared(
                &mut attr,
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            check(libc::pthread_mutexattr_setrobust(
                &mut attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))?;
            check(libc::pthread_mutex_init(&raw mut (*h).mutex, &attr))?;
            libc::pthread_mutexattr_destroy(&mut attr);
            (*h).buckets = buckets as u64;
            (*h).max_value = max_value as u64;
            (*h).writing = NONE;
            (*h).stamps = 0;
            (*h).magic = MAGIC;
        }
        Ok(t)
    }

    /// Map the table another process created at `path`.
    pub fn open(path: &Path) -> std::io::Result<Locked> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut head = [0u64; 4];
        // The geometry is written before the table is shared and never
        // changes: read it with plain file reads, not through the mapping.
        let mut bytes = [0u8; 32];
        std::os::unix::fs::FileExt::read_exact_at(
            &file,
            &mut bytes,
            std::mem::offset_of!(Header, magic) as u64,
        )?;
        for (w, b) in head.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_ne_bytes(b.try_into().expect("8 bytes"));
        }
        let [magic, buckets, max_value, _] = head;
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        if magic != MAGIC {
            return Err(bad("not a locked-baseline table"));
        }
        if !buckets.is_power_of_two() || max_value == 0 || max_value > 1 << 20 {
            return Err(bad("locked-baseline table with a bad geometry"));
        }
        let t = Self::map(&file, buckets as usize, max_value as usize)?;
        if t._map.len() < HEADER_BYTES + t.buckets * (BUCKET_BYTES + WAYS * t.slot_bytes) {
            return Err(bad("locked-baseline table shorter than its geometry"));
        }
        Ok(t)
    }

    /// Map every page into this process now (see `scsp::Cache::prefault`).
    pub fn prefault(&self) -> std::io::Result<()> {
        self._map.advise(memmap2::Advice::PopulateRead)
    }

    fn map(file: &File, buckets: usize, max_value: usize) -> std::io::Result<Locked> {
        // SAFETY: a shared mapping of a file only this benchmark's processes
        // use; every access goes through raw pointers under the mutex, never
        // through references the compiler could assume unchanging.
        let mut map = unsafe { MmapMut::map_mut(file)? };
        let base = map.as_mut_ptr();
        Ok(Locked {
            _map: map,
            base,
            buckets,
            max_value,
            slot_bytes: slot_bytes(max_value),
        })
    }

    fn header(&self) -> *mut Header {
        self.base.cast()
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the header is at the start of the mapping.
        unsafe { &raw mut (*self.header()).mutex }
    }

    /// The bucket's hashes.
    fn ways(&self, bucket: usize) -> *mut u64 {
        // SAFETY: `bucket < self.buckets`, so the line is inside the mapping.
        unsafe { self.base.add(HEADER_BYTES + bucket * BUCKET_BYTES).cast() }
    }

    fn slot(&self, bucket: usize, way: usize) -> *mut SlotHead {
        let at =
            HEADER_BYTES + self.buckets * BUCKET_BYTES + (bucket * WAYS + way) * self.slot_bytes;
        // SAFETY: `bucket < self.buckets` and `way < WAYS`: inside the mapping
        // (checked against its length at open).
        unsafe { self.base.add(at).cast() }
    }

    /// Take the lock: spin a while as nginx's `ngx_shmtx_lock` does (try,
    /// then pause 1, 2, 4 ... 1024 times between tries), then sleep in
    /// `pthread_mutex_lock`. A holder that died mid-put left its slot half
    /// written: drop that slot, then mark the mutex consistent.
    fn lock(&self) -> Held<'_> {
        let mut rc = libc::EBUSY;
        let mut pauses = 1;
        while rc == libc::EBUSY && pauses <= SPIN {
            // SAFETY: the mutex was initialised by the creator and lives in
            // the mapping, which outlives the returned guard.
            rc = unsafe { libc::pthread_mutex_trylock(self.mutex()) };
            if rc == libc::EBUSY {
                for _ in 0..pauses {
                    std::hint::spin_loop();
                }
                pauses *= 2;
            }
        }
        if rc == libc::EBUSY {
            // SAFETY: as above.
            rc = unsafe { libc::pthread_mutex_lock(self.mutex()) };
        }
        let held = match rc {
            0 => Held(self),
            libc::EOWNERDEAD => {
                let held = Held(self);
                // SAFETY: we hold the lock, so the header and the slot it
                // names are ours to change; then the mutex is made usable.
                unsafe {
                    let h = self.header();
                    let w = (*h).writing;
                    if w != NONE {
                        let (b, way) = (w as usize / WAYS, w as usize % WAYS);
                        if b < self.buckets {
                            *self.ways(b).add(way) = 0;
                        }
                        (*h).writing = NONE;
                    }
                    libc::pthread_mutex_consistent(self.mutex());
                }
                held
            }
            e => panic!(
                "locked baseline: pthread_mutex_lock: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        };
        held
    }

    /// The way of `bucket` that holds `key`, under the lock.
    ///
    /// # Safety
    /// The caller holds the lock; `bucket < self.buckets`.
    unsafe fn find(&self, bucket: usize, h: u64, key: &[u8]) -> Option<usize> {
        let ways = self.ways(bucket);
        (0..WAYS).find(|&w| {
            // SAFETY: under the lock (caller), inside the bucket's line.
            unsafe {
                *ways.add(w) == h && {
                    let s = self.slot(bucket, w);
                    (*s).key_len as usize == key.len() && (&(*s).key)[..key.len()] == *key
                }
            }
        })
    }

    /// Store `value` under `key` for `ttl_secs`. False if the key or value
    /// is too long.
    pub fn put(&self, key: &[u8], value: &[u8], ttl_secs: u32) -> bool {
        if key.len() > MAX_KEY || value.len() > self.max_value {
            return false;
        }
        let h = hash(key);
        let bucket = (h >> 32) as usize & (self.buckets - 1);
        let now = scsp::clock::now_secs();
        let _held = self.lock();
        // SAFETY: we hold the lock; `bucket` is masked to the table, every
        // way index is below WAYS, and the copies stay inside the slot
        // (key and value lengths checked above).
        unsafe {
            let ways = self.ways(bucket);
            let way = self.find(bucket, h, key).unwrap_or_else(|| {
                // An empty or expired way, else the oldest.
                (0..WAYS)
                    .min_by_key(|&w| {
                        let s = self.slot(bucket, w);
                        let free = *ways.add(w) == 0 || (*s).expiry <= now;
                        (!free, (*s).stamp)
                    })
                    .expect("WAYS > 0")
            });
            let head = self.header();
            (*head).writing = (bucket * WAYS + way) as u64;
            *ways.add(way) = 0;
            let s = self.slot(bucket, way);
            (*head).stamps += 1;
            (*s).expiry = now + u64::from(ttl_secs);
            (*s).stamp = (*head).stamps;
            (*s).key_len = key.len() as u32;
            (*s).value_len = value.len() as u32;
            (&mut (*s).key)[..key.len()].copy_from_slice(key);
            std::ptr::copy_nonoverlapping(value.as_ptr(), s.add(1).cast(), value.len());
            *ways.add(way) = h;
            (*head).writing = NONE;
        }
        true
    }

    /// Copy the value for `key` into `buf`: its length, or `None` for a
    /// miss (absent, expired, or longer than `buf`). `take` also removes it.
    fn lookup(&self, key: &[u8], buf: &mut [u8], take: bool) -> Option<usize> {
        if key.len() > MAX_KEY {
            return None;
        }
        let h = hash(key);
        let bucket = (h >> 32) as usize & (self.buckets - 1);
        let now = scsp::clock::now_secs();
        let _held = self.lock();
        // SAFETY: we hold the lock; `bucket` is masked to the table; the
        // copy reads `value_len <= max_value` bytes inside the slot and
        // writes at most `buf.len()`.
        unsafe {
            let way = self.find(bucket, h, key)?;
            let s = self.slot(bucket, way);
            let n = (*s).value_len as usize;
            if (*s).expiry <= now || n > buf.len() {
                return None;
            }
            std::ptr::copy_nonoverlapping(s.add(1).cast::<u8>(), buf.as_mut_ptr(), n);
            if take {
                *self.ways(bucket).add(way) = 0;
            }
            Some(n)
        }
    }

    /// Copy the value for `key` into `buf`.
    pub fn get(&self, key: &[u8], buf: &mut [u8]) -> Option<usize> {
        self.lookup(key, buf, false)
    }

    /// Copy the value for `key` into `buf` and remove it: of processes
    /// taking one key at once, one gets it.
    pub fn take(&self, key: &[u8], buf: &mut [u8]) -> Option<usize> {
        self.lookup(key, buf, true)
    }
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    match rc {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: usize, max_value: usize) -> (tempfile::TempDir, Locked) {
        let dir = tempfile::tempdir().unwrap();
        let t = Locked::create(&dir.path().join("t"), entries, max_value).unwrap();
        (dir, t)
    }

    #[test]
    fn puts_gets_and_takes_once() {
        let (_d, t) = table(100, 1024);
        let v: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let mut buf = vec![0u8; 1024];
        assert_eq!(t.get(b"k", &mut buf), None);
        assert!(t.put(b"k", &v, 60));
        assert!(t.put(b"other", b"o", 60));
        assert_eq!(t.get(b"k", &mut buf), Some(1000));
        assert_eq!(buf[..1000], v[..]);
        assert!(t.put(b"k", b"new", 60));
        assert_eq!(t.take(b"k", &mut buf), Some(3));
        assert_eq!(&buf[..3], b"new");
        assert_eq!(t.take(b"k", &mut buf), None);
        assert_eq!(t.get(b"other", &mut buf), Some(1));
        assert!(!t.put(&[0; MAX_KEY + 1], b"v", 60), "a long key was stored");
        assert!(!t.put(b"k", &[0; 1025], 60), "a long value was stored");
        assert_eq!(t.get(b"other", &mut [0u8; 0]), None, "copied past a buffer");
    }

    #[test]
    fn expired_values_are_misses() {
        let (_d, t) = table(10, 256);
        assert!(t.put(b"k", b"v", 0));
        assert_eq!(t.get(b"k", &mut [0u8; 8]), None);
    }

    #[test]
    fn a_full_bucket_evicts_its_oldest_and_keeps_the_rest() {
        // One bucket: every key lands in it.
        let (_d, t) = table(1, 256);
        assert_eq!(t.buckets, 1);
        for i in 0..=WAYS as u8 {
            assert!(t.put(&[i], &[i], 60));
        }
        let mut buf = [0u8; 8];
        assert_eq!(t.get(&[0], &mut buf), None, "the oldest was kept");
        for i in 1..=WAYS as u8 {
            assert_eq!(t.get(&[i], &mut buf), Some(1), "key {i} lost");
            assert_eq!(buf[0], i);
        }
    }

    #[test]
    fn another_process_sees_puts_and_a_holder_that_dies_leaves_the_table_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let t = Locked::create(&path, 100, 256).unwrap();
        assert!(t.put(b"before", b"1", 60));
        // The child dies holding the lock, in the middle of a put.
        let child = || {
            let t = Locked::open(&path).unwrap();
            assert!(t.put(b"child", b"2", 60));
            assert!(t.put(b"doomed", b"3", 60));
            let h = hash(b"doomed");
            let bucket = (h >> 32) as usize & (t.buckets - 1);
            let held = t.lock();
            // SAFETY: under the lock: mark the put of "doomed" under way,
            // as if it died before publishing it again.
            unsafe {
                let way = t.find(bucket, h, b"doomed").unwrap();
                (*t.header()).writing = (bucket * WAYS + way) as u64;
            }
            // Dies here, the lock held and the table still mapped (an
            // unmapped lock would not be released by the kernel).
            std::mem::forget(held);
            std::mem::forget(t);
            0
        };
        // SAFETY: the child only uses the mapping it opens, and exits.
        let mut kid = unsafe { childguard::fork(child) }.unwrap();
        assert_eq!(kid.wait(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(t.get(b"child", &mut buf), Some(1), "EOWNERDEAD not handled");
        assert_eq!(buf[0], b'2');
        assert_eq!(t.get(b"doomed", &mut buf), None, "a half-written slot kept");
        assert_eq!(t.get(b"before", &mut buf), Some(1));
        assert!(t.put(b"after", b"4", 60));
        assert_eq!(t.get(b"after", &mut buf), Some(1));
        assert!(Locked::open(&dir.path().join("missing")).is_err());
        std::fs::write(dir.path().join("junk"), [0u8; 4096]).unwrap();
        assert!(Locked::open(&dir.path().join("junk")).is_err());
    }
}
