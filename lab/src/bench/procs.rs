//! The multi-process part of `scsp bench`: P forked processes doing mixed
//! gets and puts on one segment, total throughput against one process.

use crate::baselines::{rewrites, stride};
use crate::Result;
use scsp::Cache;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Instant;

/// One operation in this many is a put; the rest are gets of stored keys.
const PUT_EVERY: usize = 4;

/// Result of the multi-process run.
#[derive(serde::Serialize)]
pub(super) struct Multi {
    processes: usize,
    ops_per_process: usize,
    value_bytes: usize,
    put_fraction: f64,
    one_process_mops: f64,
    all_processes_mops: f64,
    scaling: f64,
}

impl Multi {
    pub(super) fn print(&self) {
        println!(
            "multi-process: {} ops per process, 1 put : {} gets, {} B values",
            self.ops_per_process,
            PUT_EVERY - 1,
            self.value_bytes
        );
        println!("{:<12} {:>10}", "processes", "Mops/s");
        println!("{:<12} {:>10.2}", 1, self.one_process_mops);
        println!(
            "{:<12} {:>10.2}   ({:.2}x one process)",
            self.processes, self.all_processes_mops, self.scaling
        );
    }
}

/// Fill a fresh segment at `path`, then time 1 and `processes` processes.
pub(super) fn run(
    path: &Path,
    processes: usize,
    ops: usize,
    value_bytes: usize,
    keys: &[[u8; 32]],
) -> Result<Multi> {
    let cfg = crate::baselines::bench_config(keys.len(), value_bytes);
    let _ = std::fs::remove_file(path);
    let value: Vec<u8> = (0..value_bytes).map(|i| i as u8).collect();
    {
        let cache = Cache::create(path, &cfg)?;
        for k in keys {
            let _ = cache.put(k, &value, 3600);
        }
    }
    let per = ops * 10;
    let one = throughput(path, 1, per, keys, &value)?;
    let all = throughput(path, processes, per, keys, &value)?;
    Ok(Multi {
        processes,
        ops_per_process: per,
        value_bytes,
        put_fraction: 1.0 / PUT_EVERY as f64,
        one_process_mops: one,
        all_processes_mops: all,
        scaling: all / one,
    })
}

/// Fork `n` workers that start together (a pipe closing is the start gun)
/// and each do `per` ops; returns total Mops/s over the wall time.
fn throughput(path: &Path, n: usize, per: usize, keys: &[[u8; 32]], value: &[u8]) -> Result<f64> {
    let (start_r, start_w) = nix::unistd::pipe()?;
    let mut kids = Vec::with_capacity(n);
    for id in 0..n {
        let r = start_r.try_clone()?;
        let w = start_w.as_raw_fd();
        // SAFETY: the CLI is single-threaded here, so the child may allocate
        // and use any library.
        let kid = unsafe {
            childguard::fork(move || {
                // Only the parent holds the write end, so that closing it is
                // the start gun for everyone.
                // SAFETY: closes this child's copy of a descriptor it owns.
                libc::close(w);
                worker(path, id, per, keys, value, std::fs::File::from(r))
            })
        }?;
        kids.push(kid);
    }
    drop(start_r);
    let t = Instant::now();
    drop(start_w);
    let mut failed = 0;
    for (i, kid) in kids.iter_mut().enumerate() {
        let code = kid.wait();
        if code != 0 {
            eprintln!(
                "scsp bench: worker {i} (pid {}): exit code {code}",
                kid.pid()
            );
            failed += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if failed > 0 {
        return Err(format!("{failed} of {n} benchmark processes failed").into());
    }
    Ok((n * per) as f64 / secs / 1e6)
}

/// The body of one forked worker: exit code 0 if every get of a stored key hit.
fn worker(
    path: &Path,
    id: usize,
    per: usize,
    keys: &[[u8; 32]],
    value: &[u8],
    mut start: std::fs::File,
) -> i32 {
    let Ok(cache) = Cache::open(path) else {
        return 2;
    };
    let _ = start.read(&mut [0u8; 1]);
    let mut buf = vec![0u8; value.len()];
    let mut misses = 0usize;
    let n = keys.len();
    // Each process visits the keys in an order of its own (with one order
    // for all, processes that meet fall into step on the same keys); each
    // pass of `n` ops visits every key once, and a key is rewritten every
    // PUT_EVERY passes, long before the log wraps.
    let stride = stride(id, n);
    for i in 0..per {
        let at = i.wrapping_mul(stride) % n;
        if rewrites(i, n, at, PUT_EVERY) {
            let _ = cache.put(&keys[at], value, 3600);
        } else if !matches!(cache.get(&keys[at], &mut buf), scsp::Lookup::Hit(_)) {
            misses += 1;
        }
    }
    drop(cache);
    // A few misses are possible (lossy index under concurrent puts); many
    // mean the table is broken.
    if misses > per / 100 {
        3
    } else {
        0
    }
}
