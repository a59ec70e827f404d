//! Single-process behaviour of the table on a real segment file.
use crate::common;

use scsp::{Cache, Config, Lookup, Stored};
use std::os::unix::fs::PermissionsExt;

fn small() -> Config {
    Config {
        size: 1 << 20,
        shards: 2,
        max_value: 1024,
        ..Config::default()
    }
}

#[test]
fn put_then_get_returns_the_value_and_take_returns_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::create(dir.path().join("seg"), &small()).unwrap();
    assert_eq!(c.put(b"k1", b"hello", 60), Stored::Ok);
    assert_eq!(c.get_vec(b"k1").as_deref(), Some(&b"hello"[..]));
    assert_eq!(c.put(b"k1", b"world!", 60), Stored::Ok);
    assert_eq!(c.get_vec(b"k1").as_deref(), Some(&b"world!"[..]));
    assert_eq!(c.take_vec(b"k1").as_deref(), Some(&b"world!"[..]));
    assert_eq!(c.take_vec(b"k1"), None);
    assert_eq!(c.get_vec(b"k1"), None);
}

#[test]
fn small_buffer_reports_the_needed_size_without_taking() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::create(dir.path().join("seg"), &small()).unwrap();
    let _ = c.put(b"k", &[7u8; 100], 60);
    let mut buf = [0u8; 10];
    assert_eq!(c.get(b"k", &mut buf), Lookup::BufferTooSmall(100));
    assert_eq!(c.take(b"k", &mut buf), Lookup::BufferTooSmall(100));
    let mut big = [0u8; 100];
    assert_eq!(c.take(b"k", &mut big), Lookup::Hit(100));
}

#[test]
fn oversized_values_and_bad_keys_are_refused_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::create(dir.path().join("seg"), &small()).unwrap();
    assert_eq!(c.put(b"k", &[0u8; 1025], 60), Stored::TooLarge);
    assert_eq!(c.put(b"", b"v", 60), Stored::BadKey);
    assert_eq!(c.put(&[1u8; 256], b"v", 60), Stored::BadKey);
    assert_eq!(c.put(&[1u8; 255], &[2u8; 1024], 60), Stored::Ok);
    assert_eq!(c.stats().counters.too_large, 3);
}

#[test]
fn remove_hides_the_value_from_every_opener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let a = Cache::create(&path, &small()).unwrap();
    let b = Cache::open(&path).unwrap();
    let _ = a.put(b"k", b"v", 60);
    assert_eq!(b.get_vec(b"k").as_deref(), Some(&b"v"[..]));
    assert!(b.remove(b"k"));
    assert_eq!(a.get_vec(b"k"), None);
}

#[test]
fn expired_entries_are_misses() {
    let dir = tempfile::tempdir().unwrap();
    let c = std::sync::Arc::new(Cache::create(dir.path().join("seg"), &small()).unwrap());
    let replica = scsp::replication::Replica::new(c.clone());
    let _ = replica.put_entry(b"old", b"v", scsp::clock::now_secs() - 1, 1, 0);
    assert_eq!(c.get_vec(b"old"), None);
    assert_eq!(c.stats().counters.expired, 1);
    // Nor a size to ask for again, nor a live entry to remove.
    assert_eq!(c.get(b"old", &mut []), Lookup::Miss);
    assert_eq!(c.take(b"old", &mut []), Lookup::Miss);
    assert!(!c.remove(b"old"));
}

#[test]
fn segment_is_created_owner_only_and_create_refuses_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let _c = Cache::create(&path, &small()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let err = Cache::create(&path, &small()).err().unwrap();
    assert!(matches!(err, scsp::Error::AlreadyExists(_)), "{err}");
}

#[test]
fn symlinks_and_foreign_files_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let _c = Cache::create(&path, &small()).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = Cache::open(&link).err().unwrap();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![0u8; 8192]).unwrap();
    // (Owner-only, or it is refused as readable by others first.)
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = Cache::open(&junk).err().unwrap();
    assert!(err.to_string().contains("not an scsp segment"), "{err}");
    // Readable by others too (a mistyped path, /etc/passwd say): still
    // "not a segment", never advice to chmod someone else's file.
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Cache::open(&junk).err().unwrap();
    assert!(err.to_string().contains("not an scsp segment"), "{err}");
}

#[test]
fn a_full_log_wraps_and_keeps_serving_recent_values() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::create(dir.path().join("seg"), &small()).unwrap();
    for i in 0..20_000u32 {
        let _ = c.put(&i.to_le_bytes(), &[i as u8; 200], 60);
    }
    assert_eq!(
        c.get_vec(&19_999u32.to_le_bytes()),
        Some(vec![19_999u32 as u8; 200])
    );
    assert_eq!(c.get_vec(&0u32.to_le_bytes()), None);
    assert!(c.stats().log_fill > 0.99);
    let report = c.verify();
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn a_full_log_keeps_nearly_every_live_session_indexed() {
    // Three logs' worth of sessions of the typical size, as on a busy
    // server. The newest 90 % of a log's worth are all still in the log;
    // full 8-word index buckets may have dropped a few of them. With two
    // index slots per entry 0.5-0.8 % are lost; with three or more (the
    // sizing `Geometry::from_config` uses) under 0.1 %.
    let dir = tempfile::tempdir().unwrap();
    // One shard, so that every one of the newest sessions is in the log
    // (with 16, one shard's share of them can exceed its log).
    let cfg = Config {
        size: 4 << 20,
        shards: 1,
        ..Config::default()
    };
    let c = Cache::create(dir.path().join("seg"), &cfg).unwrap();
    let value = [7u8; scsp::config::DEFAULT_TYPICAL_VALUE as usize];
    use scsp::segment::layout::{entry_bytes, TYPICAL_KEY};
    let key = |i: u64| {
        let mut k = [0u8; TYPICAL_KEY];
        k[..8].copy_from_slice(&i.to_le_bytes());
        k
    };
    let per_log = (4 << 20) / entry_bytes(TYPICAL_KEY, value.len());
    for i in 0..3 * per_log {
        assert_eq!(c.put(&key(i), &value, 600), Stored::Ok);
    }
    let newest = per_log * 9 / 10;
    let mut buf = [0u8; 256];
    let lost = (3 * per_log - newest..3 * per_log)
        .filter(|&i| c.get(&key(i), &mut buf) != Lookup::Hit(value.len()))
        .count() as u64;
    assert!(
        lost * 1000 <= newest * 2,
        "{lost} of the newest {newest} sessions were dropped from the index"
    );
}

#[test]
fn a_segment_opened_by_a_relative_path_is_not_replaced_by_a_chdir() {
    let dir = tempfile::tempdir().unwrap();
    let mut children = common::Children::default();
    // In a child: the working directory is the whole process's.
    let pid = children.spawn(|| {
        std::env::set_current_dir(dir.path()).unwrap();
        let cache = Cache::create(std::path::Path::new("segment"), &small()).unwrap();
        assert!(!cache.segment().replaced());
        std::env::set_current_dir("/").unwrap();
        // A server that daemonises (chdir "/") must not reopen for nothing.
        if cache.segment().replaced() {
            return 1;
        }
        std::fs::remove_file(dir.path().join("segment")).unwrap();
        if !cache.segment().replaced() {
            return 2;
        }
        0
    });
    assert_eq!(
        children.wait(pid),
        0,
        "1: replaced after chdir; 2: removal not seen"
    );
}

#[test]
fn a_worker_of_another_user_shares_a_group_segment_with_allow_foreign_owner() {
    // The recipe of docs/operations.md, "Permissions". Needs root, to run
    // the worker as another user.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to run a worker as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("seg");
    let (worker_uid, group) = (65534, 65534);
    let cfg = Config {
        mode: 0o660,
        group: Some(group),
        ..small()
    };
    let owner = Cache::create(&path, &cfg).unwrap();
    assert_eq!(owner.put(b"from-owner", b"o", 60), Stored::Ok);
    let mut children = common::Children::default();
    let pid = children.spawn(|| {
        use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
        setgroups(&[Gid::from_raw(group)]).unwrap();
        setgid(Gid::from_raw(group)).unwrap();
        setuid(Uid::from_raw(worker_uid)).unwrap();
        match Cache::open(&path) {
            Err(scsp::Error::ForeignOwner { .. }) => {}
            other => {
                eprintln!("default open as another user: {:?}", other.err());
                return 1;
            }
        }
        let shared = Config {
            allow_foreign_owner: true,
            group: Some(group),
            ..Config::default()
        };
        let Ok(worker) = Cache::open_or_create(&path, &shared) else {
            return 2;
        };
        let seen = worker.get_vec(b"from-owner");
        let stored = worker.put(b"from-worker", b"w", 60);
        i32::from(seen.as_deref() != Some(&b"o"[..]) || stored != Stored::Ok) * 3
    });
    assert_eq!(
        children.wait(pid),
        0,
        "1: not refused by default; 2: not opened; 3: not shared"
    );
    assert_eq!(owner.get_vec(b"from-worker").as_deref(), Some(&b"w"[..]));
}

#[test]
fn a_guarded_segment_truncated_under_its_users_reads_empty_instead_of_killing_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let c = Cache::create(&path, &small()).unwrap();
    c.segment().guard_against_truncation().unwrap();
    assert_eq!(c.put(b"k", b"v", 60), Stored::Ok);
    assert!(!c.segment().truncated());
    // Someone with write access truncates the file in place.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    // Without the guard this lookup dies of SIGBUS.
    assert_eq!(c.get_vec(b"k"), None);
    assert!(c.segment().truncated());
    // Stores go nowhere and are not found; nothing panics.
    let _ = c.put(b"k2", b"v2", 60);
    let _ = c.stats();
    // Opening it again is refused with a reason.
    let err = Cache::open(&path).err().expect("a truncated segment");
    assert!(!err.to_string().is_empty());
}

/// Resident size of this process's one mapping of `path`, in KiB, from
/// /proc/self/smaps.
fn mapped_rss_kib(path: &std::path::Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.to_str().unwrap();
    let mut lines = smaps.lines().skip_while(|l| !l.ends_with(name));
    assert!(lines.next().is_some(), "{name} is not mapped");
    let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
    rss.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn prefault_maps_every_page_of_an_opened_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let cfg = Config {
        size: 32 << 20,
        ..small()
    };
    drop(Cache::create(&path, &cfg).unwrap());
    let len_kib = std::fs::metadata(&path).unwrap().len() / 1024;
    let c = Cache::open(&path).unwrap();
    let before = mapped_rss_kib(&path);
    assert!(
        before < len_kib / 4,
        "{before} KiB of {len_kib} mapped before any get or put"
    );
    if let Err(e) = c.prefault() {
        // A kernel before 5.14 has no MADV_POPULATE_READ: said, and harmless.
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        assert_eq!(c.put(b"k", b"v", 60), Stored::Ok);
        return;
    }
    let after = mapped_rss_kib(&path);
    assert_eq!(after, len_kib, "every page mapped after prefault");
    assert_eq!(c.put(b"k", b"v", 60), Stored::Ok);
    assert_eq!(c.get_vec(b"k").as_deref(), Some(&b"v"[..]));
}
