//! Fuzz `Cache::open` and the data path over a damaged segment file.
//!
//! The input is a list of patches `offset:u32 LE | len:u8 | len bytes`,
//! written over a valid segment image that holds known values. Opening must
//! refuse or succeed; every hit must be exactly the value that was put; no
//! operation may panic, hang or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scsp::{Cache, Config, Lookup};
use std::path::PathBuf;
use std::sync::OnceLock;

const KEYS: u32 = 64;

struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
    image: Vec<u8>,
    values: Vec<Vec<u8>>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

extern "C" {
    /// The C library's `atexit` (std links it; no crate needed for one call).
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

/// A static is never dropped, and libFuzzer ends with `exit()`: remove the
/// fixture's directory (in /dev/shm) then, or every run leaves one behind.
extern "C" fn remove_fixture_dir() {
    if let Some(f) = FIXTURE.get() {
        let _ = std::fs::remove_dir_all(f.dir.path());
    }
}

fn key(k: u32) -> [u8; 4] {
    k.to_le_bytes()
}

fn value(k: u32) -> Vec<u8> {
    (0..24 + (k as usize * 5) % 180)
        .map(|i| (i as u32 ^ k.wrapping_mul(2654435761)) as u8)
        .collect()
}

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        let path = dir.path().join("seg");
        let cfg = Config {
            size: 16 << 10,
            shards: 2,
            max_value: 256,
            ..Config::default()
        };
        let cache = Cache::create(&path, &cfg).expect("create segment");
        let values: Vec<Vec<u8>> = (0..KEYS).map(value).collect();
        for k in 0..KEYS {
            let _ = cache.put(&key(k), &values[k as usize], 3600);
        }
        drop(cache);
        let image = std::fs::read(&path).expect("read image");
        // SAFETY: registers a plain extern "C" fn, once (inside
        // get_or_init); it only removes the directory made here.
        unsafe { atexit(remove_fixture_dir) };
        Fixture {
            dir,
            path,
            image,
            values,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut image = f.image.clone();
    let mut rest = data;
    while rest.len() >= 5 {
        let off = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize % image.len();
        let n = (rest[4] as usize)
            .min(rest.len() - 5)
            .min(image.len() - off);
        image[off..off + n].copy_from_slice(&rest[5..5 + n]);
        rest = &rest[5 + n..];
    }
    std::fs::write(&f.path, &image).expect("write image");
    let Ok(cache) = Cache::open(&f.path) else {
        return;
    };
    let mut buf = [0u8; 256];
    for k in 0..KEYS {
        if let Lookup::Hit(n) = cache.get(&key(k), &mut buf) {
            assert_eq!(
                &buf[..n],
                &f.values[k as usize][..],
                "wrong value for key {k}"
            );
        }
    }
    let _ = cache.take(&key(1), &mut buf);
    let _ = cache.remove(&key(2));
    let _ = cache.put(&key(3), b"fresh", 60);
    if let Lookup::Hit(n) = cache.get(&key(3), &mut buf) {
        assert_eq!(&buf[..n], b"fresh");
    }
    let _ = cache.verify();
    let _ = cache.occupancy();
    let _ = cache.stats();
});
