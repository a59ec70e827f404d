//! Segments on tmpfs mounts made for the test:
//! - on a tmpfs mounted with `huge=advise` a segment is backed by 2 MiB pages
//!   (scsp asks with `MADV_HUGEPAGE`), and on a plain tmpfs it is not; both
//!   are checked in the mapping's own `/proc/self/smaps`, and `scsp stats`
//!   reports the policy;
//! - on a tmpfs too small for it, creating a segment fails with ENOSPC and
//!   leaves no file (its memory is allocated at creation, so a full /dev/shm
//!   is never a SIGBUS in a worker later).
//!
//! The mounts are made in a forked child's private mount namespace, so
//! nothing outside the test sees them. That needs CAP_SYS_ADMIN (CI runs as
//! root); without it the test says so and checks nothing.

use crate::common;

use common::Children;
use scsp::{Cache, Config};
use std::ffi::CString;
use std::path::Path;

const SKIP: i32 = 77;

/// Bytes of the mappings of files in `dir` that sit in huge pages, from
/// smaps. (By directory: a segment is built in an unnamed file and linked
/// into place, and smaps names the mapping by the name it was opened with.)
fn huge_mapped_bytes(dir: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read smaps");
    let dir = format!("{}/", dir.display());
    let mut in_mapping = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            in_mapping = line.contains(&dir);
        } else if in_mapping
            && (line.starts_with("ShmemPmdMapped:") || line.starts_with("FilePmdMapped:"))
        {
            kib += line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kib * 1024
}

fn mount_tmpfs(dir: &Path, options: &str) -> bool {
    let (src, fs) = (
        CString::new("tmpfs").unwrap(),
        CString::new("tmpfs").unwrap(),
    );
    let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let data = CString::new(options).unwrap();
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fs.as_ptr(),
            0,
            data.as_ptr().cast(),
        ) == 0
    }
}

/// Create a segment in `dir`, touch every page of it, and report how much
/// of it is mapped with huge pages.
fn fill_and_measure(dir: &Path) -> u64 {
    let path = dir.join("segment");
    let cfg = Config {
        size: 16 << 20,
        ..Config::default()
    };
    let cache = Cache::create(&path, &cfg).expect("create segment");
    let value = [7u8; 1000];
    for i in 0..40_000u32 {
        let _ = cache.put(&i.to_le_bytes(), &value, 60);
    }
    let _ = cache.verify();
    huge_mapped_bytes(dir)
}

/// Enter a private mount namespace, so mounts made here are this process's
/// alone. False where that is not permitted.
fn private_mounts() -> bool {
    // SAFETY: unshare and mount take no pointers we do not own; the
    // namespace is this child's alone and dies with it.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return false;
        }
        // Keep our mounts from propagating back to the parent's namespace.
        let root = CString::new("/").unwrap();
        let none = CString::new("none").unwrap();
        if libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return false;
        }
    }
    true
}

/// In a new mount namespace: mount two tmpfs, fill a segment on each.
fn child(huge_dir: &Path, plain_dir: &Path) -> i32 {
    if !private_mounts() {
        return SKIP;
    }
    if !mount_tmpfs(huge_dir, "huge=advise,size=64m,mode=700")
        || !mount_tmpfs(plain_dir, "size=64m,mode=700")
    {
        return SKIP;
    }
    let huge = fill_and_measure(huge_dir);
    let plain = fill_and_measure(plain_dir);
    eprintln!("huge-page-mapped bytes: huge=advise {huge}, plain tmpfs {plain}");
    // Stats must name the policy of each.
    let exe = env!("CARGO_BIN_EXE_scsp");
    for (dir, want) in [
        (huge_dir, "2 MiB (tmpfs huge=advise)"),
        (plain_dir, "4 KiB"),
    ] {
        let out = std::process::Command::new(exe)
            .arg("stats")
            .arg(dir.join("segment"))
            .output()
            .expect("run scsp stats");
        let text = String::from_utf8_lossy(&out.stdout);
        if !text
            .lines()
            .any(|l| l.starts_with("pages") && l.contains(want))
        {
            eprintln!(
                "scsp stats for {}: expected pages {want}:\n{text}",
                dir.display()
            );
            return 3;
        }
    }
    match (huge > 0, plain == 0) {
        (true, true) => 0,
        (false, _) => 1,
        (_, false) => 2,
    }
}

#[test]
fn huge_advise_tmpfs_backs_the_segment_with_2mib_pages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (huge_dir, plain_dir) = (tmp.path().join("huge"), tmp.path().join("plain"));
    std::fs::create_dir(&huge_dir).unwrap();
    std::fs::create_dir(&plain_dir).unwrap();
    let mut children = Children::default();
    let pid = children.spawn(|| child(&huge_dir, &plain_dir));
    match children.wait(pid) {
        SKIP => eprintln!(
            "SKIPPED: cannot create a mount namespace and mount tmpfs here (needs CAP_SYS_ADMIN)"
        ),
        0 => {}
        1 => panic!("the segment on a huge=advise tmpfs has no huge pages"),
        2 => panic!("the segment on a plain tmpfs has huge pages: the check cannot tell"),
        rc => panic!("child failed with {rc} (see its output above)"),
    }
}

/// In a new mount namespace: a 1 MiB tmpfs, and a 32 MiB segment on it.
fn create_on_a_full_tmpfs(dir: &Path) -> i32 {
    if !private_mounts() || !mount_tmpfs(dir, "size=1m,mode=700") {
        return SKIP;
    }
    let path = dir.join("segment");
    let cfg = Config {
        size: 32 << 20,
        ..Config::default()
    };
    let err = match Cache::create(&path, &cfg) {
        Ok(_) => {
            eprintln!("a 32 MiB segment was created on a 1 MiB tmpfs");
            return 1;
        }
        Err(e) => e,
    };
    let text = err.to_string();
    eprintln!("create on a full tmpfs: {text}");
    if err.raw_os_error() != Some(libc::ENOSPC) || !text.contains("make the segment smaller") {
        return 2;
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    if !left.is_empty() {
        eprintln!("files left behind: {left:?}");
        return 3;
    }
    // The space is all given back: a segment that fits can be made.
    let small = Config {
        size: 256 << 10,
        shards: 1,
        max_value: 4096,
        ..Config::default()
    };
    match Cache::create(&path, &small) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("a 256 KiB segment after the failure: {e}");
            4
        }
    }
}

#[test]
fn a_segment_larger_than_its_tmpfs_is_refused_at_creation_and_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("small");
    std::fs::create_dir(&dir).unwrap();
    let mut children = Children::default();
    let pid = children.spawn(|| create_on_a_full_tmpfs(&dir));
    match children.wait(pid) {
        SKIP => eprintln!(
            "SKIPPED: cannot create a mount namespace and mount tmpfs here (needs CAP_SYS_ADMIN)"
        ),
        0 => {}
        rc => panic!("child failed with {rc} (see its output above)"),
    }
}
