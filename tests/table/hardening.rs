//! Careless callers and other local users: TTLs beyond 7 days,
//! buffers that must hold only what they were given, segments that trust
//! only their owner (modes, POSIX ACLs, foreign owners and groups). Real
//! segment files; as root, real other users and ACLs.

use crate::common;

use scsp::replication::Replica;
use scsp::{Access, Cache, Config, Error, Lookup, Stored, MAX_TTL_SECS};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn small() -> Config {
    Config {
        size: 1 << 20,
        shards: 1,
        max_value: 1024,
        ..Config::default()
    }
}

/// The expiry (unix seconds) of `key`'s live entry holding `value`, if it
/// is in `window`.
fn expiry_in(
    cache: &Arc<Cache>,
    key: &[u8],
    value: &[u8],
    window: std::ops::RangeInclusive<u64>,
) -> Option<u64> {
    let replica = Replica::new(cache.clone());
    let mut scratch = Vec::new();
    let origin = cache.host_id();
    window
        .into_iter()
        .find(|&e| replica.holds(key, value, e, origin, &mut scratch))
}

#[test]
fn ttls_are_clamped_to_seven_days_and_zero_to_one_second() {
    assert_eq!(MAX_TTL_SECS, 7 * 24 * 3600);
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::create(dir.path().join("seg"), &small()).unwrap());
    let week = u64::from(MAX_TTL_SECS);
    // (TTL given, TTL kept)
    let cases: [(u32, u64); 6] = [
        (0, 1),
        (1, 1),
        (3600, 3600),
        (MAX_TTL_SECS, week),
        (MAX_TTL_SECS + 1, week),
        (u32::MAX, week),
    ];
    for (given, kept) in cases {
        let key = format!("ttl-{given}");
        let before = scsp::clock::now_secs();
        assert_eq!(cache.put(key.as_bytes(), b"v", given), Stored::Ok);
        let after = scsp::clock::now_secs();
        assert!(
            expiry_in(&cache, key.as_bytes(), b"v", before + kept..=after + kept).is_some(),
            "TTL {given}: expiry is not {kept} s after the put"
        );
    }
}

#[test]
fn session_store_ttls_are_clamped_too() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::create(dir.path().join("seg"), &small()).unwrap());
    let store = |ttl| scsp::rustls::SessionStore::new(cache.clone(), b"ctx").with_ttl(ttl);
    assert_eq!(store(0).ttl(), 1);
    assert_eq!(store(1).ttl(), 1);
    assert_eq!(store(MAX_TTL_SECS).ttl(), MAX_TTL_SECS);
    assert_eq!(store(MAX_TTL_SECS + 1).ttl(), MAX_TTL_SECS);
    assert_eq!(store(u32::MAX).ttl(), MAX_TTL_SECS);
    // And what it stores lives 7 days, not u32::MAX seconds.
    use rustls::server::StoresServerSessions;
    let s = store(u32::MAX);
    let before = scsp::clock::now_secs();
    assert!(s.put(b"session-id".to_vec(), b"state".to_vec()));
    let after = scsp::clock::now_secs();
    let week = u64::from(MAX_TTL_SECS);
    // The store's key is its context prefix ('r', length, context) + id.
    let key = [&b"r\x03ctx"[..], b"session-id"].concat();
    assert!(expiry_in(&cache, &key, b"state", before + week..=after + week).is_some());
}

const SECRET: u8 = 0x5A;
const PATTERN: u8 = 0xEE;

/// No byte of the secret value in `buf`.
fn clean(buf: &[u8]) -> bool {
    !buf.contains(&SECRET)
}

#[test]
fn an_expired_value_is_never_copied_into_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::create(dir.path().join("seg"), &small()).unwrap();
    assert_eq!(cache.put(b"k", &[SECRET; 100], 1), Stored::Ok);
    // Lives 1 to 2 s: wait (bounded) until a lookup misses.
    let mut buf = [PATTERN; 256];
    let mut expired = false;
    for _ in 0..60 {
        buf = [PATTERN; 256];
        if cache.get(b"k", &mut buf) == Lookup::Miss {
            expired = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(expired, "the value never expired");
    assert!(buf.iter().all(|&b| b == PATTERN), "get: {buf:x?}");
    let mut buf = [PATTERN; 256];
    assert_eq!(cache.take(b"k", &mut buf), Lookup::Miss);
    assert!(buf.iter().all(|&b| b == PATTERN), "take: {buf:x?}");
    assert!(cache.stats().counters.expired >= 2);
}

/// The byte offset of the first run of `value` in the segment file.
fn find_in_file(path: &Path, value: &[u8]) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .windows(value.len())
        .position(|w| w == value)
        .expect("the value is in the file") as u64
}

#[test]
fn a_damaged_value_leaves_nothing_in_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let cache = Cache::create(&path, &small()).unwrap();
    let value = [SECRET; 200];
    assert_eq!(cache.put(b"k", &value, 60), Stored::Ok);
    // A stray write over one byte of the value, in the file itself.
    let at = find_in_file(&path, &value) + 100;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_at(&[0x01], at).unwrap();
    let mut buf = [PATTERN; 512];
    assert_eq!(cache.get(b"k", &mut buf), Lookup::Miss);
    assert!(clean(&buf), "the damaged value stayed in the buffer");
    assert_eq!(cache.stats().counters.corrupt, 1);
    // Unlinked: a take misses before copying anything.
    let mut buf = [PATTERN; 512];
    assert_eq!(cache.take(b"k", &mut buf), Lookup::Miss);
    assert!(buf.iter().all(|&b| b == PATTERN));
}

#[test]
fn a_damaged_value_under_take_leaves_nothing_either() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let cache = Cache::create(&path, &small()).unwrap();
    let value = [SECRET; 64];
    assert_eq!(cache.put(b"k", &value, 60), Stored::Ok);
    let at = find_in_file(&path, &value) + 10;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_at(&[0x02], at).unwrap();
    let mut buf = [PATTERN; 128];
    assert_eq!(cache.take(b"k", &mut buf), Lookup::Miss);
    assert!(clean(&buf), "take: the damaged value stayed in the buffer");
}

#[test]
fn takers_racing_a_writer_never_keep_a_value_they_did_not_get() {
    // Real processes: one puts the key with a value that fits the takers'
    // buffer, then one that does not, over and over; two take it with a
    // buffer of 64 bytes. A taker that copies the small value and loses
    // the race (to the other taker, or to the put of the large one) must
    // not keep it: after a miss or "buffer too small", no byte of either
    // value may be in its buffer, and after a hit only the small value.
    const ROUNDS: u64 = 150_000;
    const SMALL: u8 = 0x53;
    const LARGE: u8 = 0x4C;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let _owner = Cache::create(&path, &small()).unwrap();
    let done = common::SharedWords::new(1);
    let mut children = common::Children::default();
    let writer = children.spawn(|| {
        let c = Cache::open(&path).unwrap();
        for _ in 0..ROUNDS {
            let _ = c.put(b"race", &[SMALL; 40], 60);
            let _ = c.put(b"race", &[LARGE; 200], 60);
            let _ = c.put(b"race", &[SMALL; 40], 60);
        }
        done.word(0).store(1, std::sync::atomic::Ordering::Relaxed);
        0
    });
    let mut takers = Vec::new();
    for _ in 0..2 {
        takers.push(children.spawn(|| {
            let c = Cache::open(&path).unwrap();
            let mut bad = 0;
            while done.word(0).load(std::sync::atomic::Ordering::Relaxed) == 0 {
                let mut buf = [PATTERN; 64];
                match c.take(b"race", &mut buf) {
                    Lookup::Hit(n) => {
                        if n != 40 || buf[..40] != [SMALL; 40] || buf[40..].contains(&LARGE) {
                            bad += 1;
                        }
                    }
                    Lookup::Miss | Lookup::BufferTooSmall(_) => {
                        if buf.contains(&SMALL) || buf.contains(&LARGE) {
                            bad += 1;
                        }
                    }
                }
            }
            i32::from(bad > 0)
        }));
    }
    assert_eq!(children.wait(writer), 0);
    for t in takers {
        assert_eq!(
            children.wait(t),
            0,
            "a taker found a value it did not get in its buffer"
        );
    }
}

#[test]
fn create_refuses_any_permission_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    for mode in [0o604, 0o644, 0o664, 0o606, 0o601, 0o666] {
        let err = Cache::create(&path, &Config { mode, ..small() })
            .err()
            .unwrap();
        assert!(
            matches!(err, Error::InvalidField { field: "mode", .. }),
            "{mode:o}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("\"other\"") && text.contains("use 600, or 660 with a group"),
            "{text}"
        );
        assert!(!path.exists());
    }
    // A segment is read and written, never executed: 600 or 660 exactly.
    for mode in [0o700, 0o670, 0o770, 0o640] {
        let err = Cache::create(&path, &Config { mode, ..small() })
            .err()
            .unwrap();
        assert!(
            matches!(err, Error::InvalidField { field: "mode", .. }),
            "{mode:o}: {err}"
        );
        assert!(err.to_string().contains("660"), "{err}");
        assert!(!path.exists());
    }
}

#[test]
fn a_sets_segment_refuses_the_log_layouts_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let sets = Config {
        layout: scsp::Layout::Sets,
        size: 1 << 20,
        max_value: 432,
        ..Config::default()
    };
    for (cfg, name) in [
        (
            Config {
                shards: 3,
                ..sets.clone()
            },
            "shards",
        ),
        (
            Config {
                typical_value: 100_000,
                ..sets.clone()
            },
            "typical_value",
        ),
    ] {
        let err = Cache::create(&path, &cfg).err().unwrap();
        assert!(
            matches!(&err, Error::InvalidField { field, .. } if *field == name),
            "{err}"
        );
        assert!(err.to_string().contains("no "), "{err}");
        assert!(!path.exists());
    }
    Cache::create(&path, &sets).unwrap();
}

#[test]
fn open_refuses_a_segment_readable_or_writable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    drop(Cache::create(&path, &small()).unwrap());
    for (mode, says) in [
        (0o604, "read it"),
        (0o602, "write it"),
        (0o606, "read and write it"),
        (0o601, "access it"),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Cache::open(&path).err().unwrap();
        assert!(matches!(err, Error::OpenToOthers { .. }), "{mode:o}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(says) && text.contains("chmod o-rwx"),
            "{mode:o}: {text}"
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Cache::open(&path).is_ok());
}

/// Whether `setfacl` can run here; prints why not. With
/// `SCSP_REQUIRE_C_TESTS=1` (CI installs the acl package) a missing tool is
/// a failure, not a skip.
fn have_setfacl() -> bool {
    if Command::new("setfacl").arg("--version").output().is_ok() {
        return true;
    }
    if std::env::var_os("SCSP_REQUIRE_C_TESTS").is_some_and(|v| v == "1") {
        panic!("setfacl is required (SCSP_REQUIRE_C_TESTS=1): install the acl package");
    }
    eprintln!("SKIPPED: setfacl not found (install the acl package)");
    false
}

fn setfacl(args: &[&str], path: &Path) {
    let out = Command::new("setfacl")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "setfacl {args:?}: {out:?}");
}

#[test]
fn open_refuses_a_segment_whose_acl_grants_more_than_its_mode() {
    if !have_setfacl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    drop(
        Cache::create(
            &path,
            &Config {
                mode: 0o660,
                ..small()
            },
        )
        .unwrap(),
    );
    for (acl, names) in [
        ("u:65534:rw", "user 65534 rw-"),
        ("u:65534:r", "user 65534 r--"),
        ("g:65534:rw", "group 65534 rw-"),
    ] {
        setfacl(&["-m", acl], &path);
        let err = Cache::open(&path).err().unwrap();
        assert!(matches!(err, Error::Acl { .. }), "{acl}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(names) && text.contains("setfacl -b"),
            "{acl}: {text}"
        );
        setfacl(&["-b"], &path);
        assert!(Cache::open(&path).is_ok(), "after setfacl -b");
    }
    // A named entry with no permission grants nothing.
    setfacl(&["-m", "u:65534:-"], &path);
    assert!(Cache::open(&path).is_ok());
}

#[test]
fn create_drops_an_acl_inherited_from_the_directory() {
    if !have_setfacl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Every new file in the directory would give user 65534 rw.
    setfacl(&["-d", "-m", "u:65534:rw"], dir.path());
    let path = dir.path().join("seg");
    let cache = Cache::create(
        &path,
        &Config {
            mode: 0o660,
            ..small()
        },
    );
    let cache = cache.unwrap();
    drop(cache);
    let out = Command::new("getfacl")
        .args(["-c", "-p", "-n"])
        .arg(&path)
        .output()
        .unwrap();
    let acl = String::from_utf8_lossy(&out.stdout);
    assert!(!acl.contains("user:65534"), "{acl}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    assert!(Cache::open(&path).is_ok());
}

/// A segment in a fresh directory, chowned to `uid`:`gid` (root only).
fn foreign_segment(uid: u32, gid: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("seg");
    drop(
        Cache::create(
            &path,
            &Config {
                mode: 0o660,
                ..small()
            },
        )
        .unwrap(),
    );
    nix::unistd::chown(
        &path,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap();
    (dir, path)
}

#[test]
fn allow_foreign_owner_trusts_only_root_or_the_configured_owner_in_the_configured_group() {
    // As root, a segment of uid 4321 is "another user's".
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to give the segment to another user");
        return;
    }
    let (_dir, path) = foreign_segment(4321, 4322);
    let open = |access: Access| Cache::open_with(&path, access).err();
    // Off: refused as before.
    assert!(matches!(
        open(Access::default()),
        Some(Error::ForeignOwner { owner: 4321, .. })
    ));
    // On, but nobody named: uid 4321 is neither root nor configured.
    let err = open(Access::foreign(None, 4322)).unwrap();
    assert!(
        matches!(
            err,
            Error::UntrustedOwner {
                owner: 4321,
                trusted: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("uid 4321"), "{err}");
    // Another user named: both uids in the message.
    let err = open(Access::foreign(Some(4000), 4322)).unwrap();
    let text = err.to_string();
    assert!(
        text.contains("uid 4321") && text.contains("uid 4000"),
        "{text}"
    );
    // The owner named, the group wrong or missing.
    let err = open(Access::foreign(Some(4321), 4000)).unwrap();
    assert!(
        matches!(
            err,
            Error::ForeignGroup {
                group: 4322,
                expected: Some(4000),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("gid 4322") && err.to_string().contains("gid 4000"));
    let no_group = Access {
        allow_foreign_owner: true,
        owner: Some(4321),
        group: None,
    };
    let err = open(no_group).unwrap();
    assert!(
        matches!(err, Error::ForeignGroup { expected: None, .. }),
        "{err}"
    );
    // Both right: opened.
    assert_eq!(
        open(Access::foreign(Some(4321), 4322)).map(|e| e.to_string()),
        None
    );
    // Through Config too (open_or_create uses the same rules).
    let cfg = Config {
        allow_foreign_owner: true,
        owner: Some(4321),
        group: Some(4322),
        ..small()
    };
    assert!(Cache::open_or_create(&path, &cfg).is_ok());
    let cfg = Config { owner: None, ..cfg };
    assert!(matches!(
        Cache::open_or_create(&path, &cfg).err(),
        Some(Error::UntrustedOwner { .. })
    ));
}

#[test]
fn a_worker_of_another_user_trusts_a_root_segment_of_its_group() {
    // The recipe of docs/operations.md, "Permissions", with root as the
    // creator: the worker (uid 65534) needs no --owner, only the group.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to run a worker as another user");
        return;
    }
    let (group, other_group, worker) = (65534, 4322, 65534);
    let (_dir, path) = foreign_segment(0, group);
    let (_dir2, planted) = foreign_segment(4321, group);
    let mut children = common::Children::default();
    let pid = children.spawn(|| {
        use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
        setgroups(&[Gid::from_raw(group)]).unwrap();
        setgid(Gid::from_raw(group)).unwrap();
        setuid(Uid::from_raw(worker)).unwrap();
        if Cache::open_with(&path, Access::foreign(None, group)).is_err() {
            return 1;
        }
        if !matches!(
            Cache::open_with(&path, Access::foreign(None, other_group)).err(),
            Some(Error::ForeignGroup { .. })
        ) {
            return 2;
        }
        // A file of another (non-root) user, in the right group: refused.
        if !matches!(
            Cache::open_with(&planted, Access::foreign(None, group)).err(),
            Some(Error::UntrustedOwner { owner: 4321, .. })
        ) {
            return 3;
        }
        0
    });
    assert_eq!(
        children.wait(pid),
        0,
        "1: root's segment refused; 2: wrong group accepted; 3: another user's accepted"
    );
}
