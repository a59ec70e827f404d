//! What scsp is measured against, shared by `benches/table.rs`,
//! `examples/hotpath.rs` and `scsp bench`: the same stores behind one
//! interface, the same keys, the same visiting order. Not part of the API.

mod locked;
mod redis;

pub use locked::Locked;
pub use redis::{RedisClient, RedisServer, RedisSessionStore, REDIS_SERVER};

use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use scsp::{Cache, Config, Lookup};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A key like a TLS session id.
pub type Key = [u8; 32];

/// The operations measured, in print order.
pub const OPS: [&str; 4] = ["get-hit", "get-miss", "put", "take"];
/// The stores measured, in print order (see [`Store`]'s variants).
pub const IMPLS: [&str; 6] = [
    "scsp",
    SETS_IMPL,
    LOCKED_IMPL,
    "mutex-hashmap",
    "rustls-memory",
    "redis-loopback",
];
/// scsp on a segment of the sets layout ([`scsp::Layout::Sets`]).
pub const SETS_IMPL: &str = "scsp-sets";
/// The design nginx and Apache httpd share sessions with: a table in
/// shared memory behind one process-shared mutex ([`Locked`]).
pub const LOCKED_IMPL: &str = "locked-shm";
/// The one store that talks over the network: tens of microseconds per
/// operation, so runs give it fewer operations.
pub const NETWORK_IMPL: &str = "redis-loopback";

/// Lifetime of every stored session, seconds.
const TTL_SECS: u32 = 3600;

/// The stores behind one interface. Baselines take owned `Vec`s where
/// their API does: that allocation is part of their real cost.
// Few instances, never moved: boxing `Cache` would only add an indirection
// to the measured path.
#[allow(clippy::large_enum_variant)]
pub enum Store {
    /// scsp on a segment file.
    Scsp(Cache),
    /// One table in a shared file behind one process-shared mutex.
    Locked(Locked),
    /// An in-process `Mutex<HashMap>` (shares nothing across processes).
    Mutex(Mutex<HashMap<Vec<u8>, Vec<u8>>>),
    /// rustls' in-process session cache.
    Rustls(Arc<ServerSessionMemoryCache>),
    /// A `redis-server` on loopback: what a pool shares without scsp.
    Redis(Redis),
}

/// A private `redis-server` and one connection to it. The connection is
/// declared first so it closes before the server is stopped.
pub struct Redis {
    client: Mutex<RedisClient>,
    server: RedisServer,
}

impl Redis {
    fn client(&self) -> std::sync::MutexGuard<'_, RedisClient> {
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A failed round trip ends the measurement: there is no number to report.
    fn failed(&self, e: std::io::Error) -> ! {
        panic!("redis-loopback baseline ({}): {e}", self.server.addr())
    }
}

/// Why `imp` cannot be measured on this machine, or `None` if it can.
pub fn unavailable(imp: &str) -> Option<String> {
    let on_path = |bin: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
    };
    (imp == NETWORK_IMPL && !on_path(REDIS_SERVER)).then(|| {
        format!("{REDIS_SERVER} is not on PATH (install it, e.g. apt-get install redis-server)")
    })
}

/// The segment the benches give scsp for `entries` sessions of
/// `value_len` bytes: a log of four times their size, sized for these
/// values as an operator would (`--max-value`, `--typical-value`).
pub fn bench_config(entries: usize, value_len: usize) -> Config {
    let mut cfg = Config {
        size: (entries as u64 * (value_len as u64 + 128) * 4).next_power_of_two(),
        max_value: value_len.next_power_of_two().max(256) as u32,
        typical_value: (value_len as u32).max(64),
        ..Config::default()
    };
    cfg.size = cfg.size.max(scsp::segment::layout::min_size(&cfg));
    cfg
}

/// The segment the benches give scsp's sets layout for `entries` sessions
/// of `value_len` bytes: slots that hold such a value with a 32-byte key,
/// at least two per session (docs/operations.md, "Choosing a layout").
pub fn bench_config_sets(entries: usize, value_len: usize) -> Config {
    let max_value = value_len.max(64) as u32;
    let slot = scsp::segment::layout::slot_bytes_for(max_value);
    Config {
        layout: scsp::Layout::Sets,
        size: (entries as u64 * 2 * slot).next_power_of_two(),
        max_value,
        ..Config::default()
    }
}

impl Store {
    /// The store named `imp` (one of [`IMPLS`]), sized for `entries`
    /// sessions of `value_len` bytes. scsp gets a new segment file at `seg`
    /// (replacing any file there); redis gets a new server process.
    pub fn new(imp: &str, seg: &Path, entries: usize, value_len: usize) -> crate::Result<Store> {
        Ok(match imp {
            "scsp" => {
                let _ = std::fs::remove_file(seg);
                Store::Scsp(Cache::create(seg, &bench_config(entries, value_len))?)
            }
            SETS_IMPL => {
                let _ = std::fs::remove_file(seg);
                Store::Scsp(Cache::create(seg, &bench_config_sets(entries, value_len))?)
            }
            LOCKED_IMPL => Store::Locked(
                Locked::create(seg, entries, value_len)
                    .map_err(|e| crate::Error::system(format!("creating {}", seg.display()), e))?,
            ),
            "mutex-hashmap" => Store::Mutex(Mutex::new(HashMap::new())),
            "rustls-memory" => Store::Rustls(ServerSessionMemoryCache::new(entries * 2)),
            "redis-loopback" => {
                let server = RedisServer::start()
                    .map_err(|e| crate::Error::system(format!("starting {REDIS_SERVER}"), e))?;
                let client = Mutex::new(server.connect().map_err(|e| {
                    crate::Error::system(format!("connecting to {REDIS_SERVER}"), e)
                })?);
                Store::Redis(Redis { client, server })
            }
            other => {
                return Err(crate::Error::Usage(format!(
                    "unknown store {other:?} (one of {IMPLS:?})"
                )))
            }
        })
    }

    /// Open the store another process made with [`Store::new`] at `seg`:
    /// only the stores that processes share (scsp and [`LOCKED_IMPL`]).
    pub fn open(imp: &str, seg: &Path) -> crate::Result<Store> {
        Ok(match imp {
            "scsp" | SETS_IMPL => Store::Scsp(Cache::open(seg)?),
            LOCKED_IMPL => Store::Locked(
                Locked::open(seg)
                    .map_err(|e| crate::Error::system(format!("opening {}", seg.display()), e))?,
            ),
            other => {
                return Err(crate::Error::Usage(format!(
                    "{other:?} is not shared between processes"
                )))
            }
        })
    }

    /// Mark an scsp segment as a bridge does when it starts: from then on
    /// its puts, takes and removes also write what a bridge reads (a
    /// tombstone in a log, a notice in sets), as on a host in a pool.
    pub fn mark_replicated(&self) {
        if let Store::Scsp(c) = self {
            c.segment().mark_replicated();
        }
    }

    /// Map a shared store's pages into this process now, so that the
    /// first touch of each is not a page fault in a measurement (the other
    /// stores live in this process's own memory: nothing to do).
    pub fn prefault(&self) -> std::io::Result<()> {
        match self {
            Store::Scsp(c) => c.prefault(),
            Store::Locked(l) => l.prefault(),
            _ => Ok(()),
        }
    }

    /// Store `v` under `k`.
    #[inline]
    pub fn put(&self, k: &[u8], v: &[u8]) {
        match self {
            Store::Scsp(c) => {
                let _ = black_box(c.put(k, v, TTL_SECS));
            }
            Store::Locked(l) => {
                black_box(l.put(k, v, TTL_SECS));
            }
            Store::Mutex(m) => {
                m.lock().unwrap().insert(k.to_vec(), v.to_vec());
            }
            Store::Rustls(r) => {
                black_box(r.put(k.to_vec(), v.to_vec()));
            }
            Store::Redis(r) => {
                if let Err(e) = r.client().set(k, v, TTL_SECS) {
                    r.failed(e)
                }
            }
        }
    }

    /// Copy the value out (into `buf`, except rustls, which returns a `Vec`).
    #[inline]
    pub fn get(&self, k: &[u8], buf: &mut [u8]) -> bool {
        match self {
            Store::Scsp(c) => matches!(c.get(k, buf), Lookup::Hit(_)),
            Store::Locked(l) => l.get(k, buf).is_some(),
            Store::Mutex(m) => match m.lock().unwrap().get(k) {
                Some(v) => {
                    buf[..v.len()].copy_from_slice(v);
                    true
                }
                None => false,
            },
            Store::Rustls(r) => black_box(r.get(k)).is_some(),
            Store::Redis(r) => match r.client().get(k, buf) {
                Ok(found) => found.is_some(),
                Err(e) => r.failed(e),
            },
        }
    }

    /// Remove and return the value.
    #[inline]
    pub fn take(&self, k: &[u8], buf: &mut [u8]) -> bool {
        match self {
            Store::Scsp(c) => matches!(c.take(k, buf), Lookup::Hit(_)),
            Store::Locked(l) => l.take(k, buf).is_some(),
            Store::Mutex(m) => match m.lock().unwrap().remove(k) {
                Some(v) => {
                    buf[..v.len()].copy_from_slice(&v);
                    true
                }
                None => false,
            },
            Store::Rustls(r) => black_box(r.take(k)).is_some(),
            Store::Redis(r) => match r.client().getdel(k, buf) {
                Ok(found) => found.is_some(),
                Err(e) => r.failed(e),
            },
        }
    }
}

/// `n` distinct pseudo-random keys from a seed (splitmix64).
pub fn keys(seed: u64, n: usize) -> Vec<Key> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            let mut k = [0u8; 32];
            for c in k.chunks_exact_mut(8) {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                c.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
            }
            k
        })
        .collect()
}

/// Process `id`'s stride through `n` keys: its own, and coprime to `n`,
/// so that each pass (`n` visits) visits every key once. Visit `i` goes to
/// key `i * stride % n`. The multi-process benchmarks and
/// `examples/sharing_floor.rs` all walk the keys this way.
pub fn stride(id: usize, n: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    (7919 + 64 * id..)
        .find(|&s| gcd(s, n) == 1)
        .expect("some number is coprime to n")
}

/// Is visit `i` (of `n`-key passes) to key `at` a put, when each key is
/// rewritten once every `put_every` passes? Which pass a key's put falls in
/// moves with the key, so every key is rewritten, by whichever process
/// comes by, and gets read what other processes wrote.
#[inline]
pub fn rewrites(i: usize, n: usize, at: usize, put_every: usize) -> bool {
    (i / n + at) % put_every == 0
}

/// `keys` in the order a benchmark visits them: a fixed stride permutation.
/// Clients resume sessions in no particular order; visiting keys in the
/// order they were stored would hand the heap-based baselines (whose values
/// sit in allocation order) a sequential memory stream no server sees.
pub fn shuffle(keys: &[Key]) -> Vec<Key> {
    let n = keys.len();
    // 7919 is prime; with n not a multiple of it this visits every key once.
    let stride = if n % 7919 == 0 { 1 } else { 7919 };
    (0..n).map(|j| keys[(j * stride) % n]).collect()
}

/// A segment path, unlinked on drop: in `$SCSP_BENCH_DIR` if set (to
/// measure another mount, e.g. a huge-page tmpfs), else /dev/shm, else the
/// temp dir.
pub struct TempSegment(PathBuf);

impl TempSegment {
    /// A fresh path named after this process and `tag`, in the default
    /// directory (see the type's docs).
    pub fn new(tag: &str) -> TempSegment {
        let dir = match std::env::var_os("SCSP_BENCH_DIR") {
            Some(d) => PathBuf::from(d),
            None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
            None => std::env::temp_dir(),
        };
        Self::in_dir(&dir, tag)
    }

    /// A fresh path in `dir`: named after this process, `tag` and a count
    /// of the paths this process made, so that two segments alive at once
    /// never share a file.
    pub fn in_dir(dir: &Path, tag: &str) -> TempSegment {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = dir.join(format!("scsp-bench-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempSegment(p)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempSegment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
