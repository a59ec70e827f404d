//! `get`, `put` and `take` make no system calls (docs/architecture.md,
//! invariant I2 NO-SYSCALL).
//!
//! The test re-runs this test binary under `strace -f`, asking it to run
//! only `probe_body` (ignored in normal runs). The probe opens a real segment
//! file and sets up, writes a BEGIN marker to stderr, runs 10^5 mixed
//! get/put/take operations, then writes an END marker. The trace of the
//! probing thread must hold nothing between the two markers. Skipped, with a
//! message, only when `strace` is not installed.

use crate::common;

use common::{encode_value, key, Rng};
use scsp::{Cache, Config, Layout, Lookup};
use std::path::Path;
use std::process::Command;

const SEGMENT_ENV: &str = "SCSP_SYSCALL_PROBE_SEGMENT";
/// Set: the probe forks after setup and the child runs the traced loop
/// (its first operation claims the child's counter slot).
const FORK_ENV: &str = "SCSP_SYSCALL_PROBE_FORK";
const BEGIN: &[u8] = b"SCSP-PROBE-BEGIN\n";
const END: &[u8] = b"SCSP-PROBE-END\n";
const OPS: u32 = 100_000;

fn marker(m: &[u8]) {
    // SAFETY: writes `m.len()` bytes from a valid slice to stderr; a raw
    // write, so the marker is exactly one syscall with no locking around it.
    unsafe { libc::write(2, m.as_ptr().cast(), m.len()) };
}

/// The traced workload. Run only by `get_put_take_make_no_syscalls`.
#[test]
#[ignore = "runs under strace, started by get_put_take_make_no_syscalls"]
fn probe_body() {
    let path = std::env::var(SEGMENT_ENV).expect("run by get_put_take_make_no_syscalls");
    // Setup, outside the markers: open, claim a counter slot, fill buffers,
    // touch every page of the segment once.
    let cache = Cache::open(&path).unwrap();
    let mut rng = Rng::new(42);
    let mut val = [0u8; 512];
    let mut buf = [0u8; 512];
    for k in 0..2048 {
        let n = encode_value(k, 0, 200, &mut val);
        let _ = cache.put(&key(k % 512), &val[..n], 3600);
        let _ = cache.get(&key(k % 512), &mut buf);
    }
    if std::env::var_os(FORK_ENV).is_some() {
        // SAFETY: the child only runs the loop on the inherited mapping and
        // `_exit`s; it never returns into the test harness.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let run = std::panic::AssertUnwindSafe(|| traced_loop(&cache, &mut rng));
                let ok = std::panic::catch_unwind(run).is_ok();
                // SAFETY: ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
                println!("probe ok: forked child");
                return;
            }
        }
    }
    traced_loop(&cache, &mut rng);
}

/// 10^5 mixed operations between the markers.
fn traced_loop(cache: &Cache, rng: &mut Rng) {
    let mut val = [0u8; 512];
    let mut buf = [0u8; 512];
    let (mut hits, mut puts) = (0u64, 0u64);

    marker(BEGIN);
    for i in 0..OPS {
        let k = rng.below(512) as u32;
        match rng.below(10) {
            0..=2 => {
                let n = encode_value(k, i as u64, 24 + rng.below(400) as usize, &mut val);
                let _ = cache.put(&key(k), &val[..n], 3600);
                puts += 1;
            }
            3 => {
                if let Lookup::Hit(_) = cache.take(&key(k), &mut buf) {
                    hits += 1;
                }
            }
            _ => {
                if let Lookup::Hit(_) = cache.get(&key(k), &mut buf) {
                    hits += 1;
                }
            }
        }
    }
    marker(END);

    println!("probe ok: {OPS} ops, {puts} puts, {hits} hits");
    assert!(hits > 0 && puts > 0);
}

/// Syscall lines of the thread that wrote BEGIN, between BEGIN and END.
fn syscalls_between_markers(trace: &str) -> Result<Vec<String>, String> {
    let begin = String::from_utf8_lossy(&BEGIN[..BEGIN.len() - 1]).into_owned();
    let end = String::from_utf8_lossy(&END[..END.len() - 1]).into_owned();
    let mut lines = trace.lines();
    let tid = loop {
        let l = lines.next().ok_or("no BEGIN marker in the trace")?;
        if l.contains(&begin) {
            break l.split_whitespace().next().unwrap_or("").to_string();
        }
    };
    let mut found = Vec::new();
    for l in lines {
        let mut parts = l.splitn(2, ' ');
        if parts.next() != Some(tid.as_str()) {
            continue;
        }
        let call = parts.next().unwrap_or("").trim_start();
        if call.contains(&end) {
            return Ok(found);
        }
        // The BEGIN write itself, split by another thread's line.
        if call.starts_with("<... write resumed>") && found.is_empty() {
            continue;
        }
        found.push(call.to_string());
    }
    Err("no END marker in the trace".into())
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn get_put_take_make_no_syscalls() {
    trace_probe(false, Layout::Log);
}

#[test]
fn nor_in_a_forked_child_whose_first_operation_claims_a_counter_slot() {
    trace_probe(true, Layout::Log);
}

#[test]
fn nor_on_a_segment_of_the_sets_layout() {
    trace_probe(false, Layout::Sets);
}

fn trace_probe(fork: bool, layout: Layout) {
    if !strace_available() {
        println!("SKIPPED: strace is not installed (CI installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg");
    let trace = dir.path().join("trace");
    let cfg = Config {
        layout,
        size: 256 << 10,
        // Shards are the log layout's.
        shards: if layout == Layout::Log {
            4
        } else {
            Config::default().shards
        },
        max_value: 512,
        ..Config::default()
    };
    drop(Cache::create(&seg, &cfg).unwrap());
    let mut probe = Command::new("strace");
    probe
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "no_syscalls::probe_body",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(SEGMENT_ENV, &seg);
    if fork {
        probe.env(FORK_ENV, "1");
    }
    let out = probe.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("probe ok"),
        "probe failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(Path::new(&trace)).unwrap();
    let calls = syscalls_between_markers(&text).unwrap();
    assert!(
        calls.is_empty(),
        "{} syscalls during {OPS} get/put/take ops, first ones:\n{}",
        calls.len(),
        calls[..calls.len().min(20)].join("\n")
    );
    println!("{OPS} ops traced, no syscalls between the markers");
}

#[test]
fn the_trace_parser_finds_syscalls_between_markers() {
    let trace = "\
100 openat(AT_FDCWD, \"x\", O_RDONLY) = 3
100 write(2, \"SCSP-PROBE-BEGIN\\n\", 17 <unfinished ...>
101 futex(0x1, FUTEX_WAIT, 0, NULL <unfinished ...>
100 <... write resumed>) = 17
101 <... futex resumed>) = 0
100 getpid() = 100
100 write(2, \"SCSP-PROBE-END\\n\", 15) = 15
100 exit_group(0) = ?
";
    assert_eq!(
        syscalls_between_markers(trace).unwrap(),
        vec!["getpid() = 100".to_string()]
    );
    let clean = trace.replace("100 getpid() = 100\n", "");
    assert!(syscalls_between_markers(&clean).unwrap().is_empty());
    assert!(syscalls_between_markers("100 read(0) = 0\n").is_err());
}
