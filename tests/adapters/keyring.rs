//! The shared ticket-key ring: rotation, agreement between processes, crash
//! recovery and corruption, on real segment files.

use scsp::keyring::{KeyRing, RotationPolicy, TicketKey, RING_WORDS, SLOTS, SLOT_WORDS};
use scsp::segment::Region;
use scsp::{Cache, Config};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PERIOD: u64 = 100;
const LIFETIME: u64 = 150;
const T0: u64 = 1_700_000_000; // a multiple of PERIOD

fn policy() -> RotationPolicy {
    RotationPolicy {
        period: Duration::from_secs(PERIOD),
        lifetime: Duration::from_secs(LIFETIME),
    }
}

fn segment(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("seg");
    let cfg = Config {
        size: 1 << 20,
        shards: 2,
        max_value: 1024,
        ..Config::default()
    };
    drop(Cache::create(&path, &cfg).unwrap());
    path
}

/// A ring on its own mapping of the segment, with a clock the test turns.
fn ring(path: &std::path::Path, clock: &Arc<AtomicU64>) -> KeyRing {
    let cache = Arc::new(Cache::open(path).unwrap());
    let c = clock.clone();
    KeyRing::with_clock(cache, policy(), Arc::new(move || c.load(Ordering::SeqCst))).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_opener_encrypts_with_the_same_key_and_the_next_is_made_early() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 5));
    let (a, b) = (ring(&path, &clock), ring(&path, &clock));
    let ka = a.current().unwrap();
    assert_eq!(ka.created, T0);
    assert_eq!(b.current().unwrap(), ka);
    let exported = b.export();
    assert_eq!(exported.len(), 2, "current and next: {exported:?}");
    let next = exported.iter().find(|k| k.created == T0 + PERIOD).unwrap();
    assert_ne!(next.name, ka.name);
    assert_ne!(next.aes_key, ka.aes_key);
    assert_eq!(a.find(&next.name).as_ref(), Some(next));
}

#[test]
fn rotation_keeps_the_previous_key_and_wipes_retired_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let r = ring(&path, &clock);
    let k0 = r.current().unwrap();
    clock.store(T0 + PERIOD + 1, Ordering::SeqCst);
    let k1 = r.current().unwrap();
    assert_ne!(k1.name, k0.name);
    assert_eq!(k1.created, T0 + PERIOD);
    assert_eq!(
        r.find(&k0.name),
        Some(k0.clone()),
        "previous still decrypts"
    );
    // k0 retires at created + period + lifetime.
    clock.store(T0 + PERIOD + LIFETIME - 1, Ordering::SeqCst);
    assert!(r.find(&k0.name).is_some());
    clock.store(T0 + PERIOD + LIFETIME, Ordering::SeqCst);
    assert!(r.find(&k0.name).is_none(), "retired key must not decrypt");
    let k2 = r.current().unwrap();
    assert_eq!(k2.created, T0 + 2 * PERIOD);
    assert!(r.find(&k1.name).is_some());
    // The retired key's bytes are gone from the segment.
    let words: Vec<u64> = (0..RING_WORDS).map(|i| ring_word(&path, i)).collect();
    let first = u64::from_le_bytes(k0.aes_key[..8].try_into().unwrap());
    assert!(
        !words.contains(&first),
        "retired key material still present"
    );
}

#[test]
fn racing_openers_create_exactly_one_key_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 7));
    let names: Vec<[u8; 16]> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let r = ring(&path, &clock);
                s.spawn(move || r.current().unwrap().name)
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(names.iter().all(|n| *n == names[0]));
    assert_eq!(ring(&path, &clock).export().len(), 2);
}

/// Child process body: print the current key's name (public) at a fixed time.
#[test]
fn child_prints_current_key_name() {
    let (Ok(path), Ok(t)) = (
        std::env::var("SCSP_KEYRING_CHILD"),
        std::env::var("SCSP_KEYRING_TIME"),
    ) else {
        return;
    };
    let clock = Arc::new(AtomicU64::new(t.parse().unwrap()));
    let r = ring(std::path::Path::new(&path), &clock);
    println!("NAME={}", hex(&r.current().unwrap().name));
}

#[test]
fn separate_processes_agree_on_the_key_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let run = |t: u64| -> Vec<String> {
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "keyring::child_prints_current_key_name",
                        "--nocapture",
                    ])
                    .env("SCSP_KEYRING_CHILD", &path)
                    .env("SCSP_KEYRING_TIME", t.to_string())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                assert!(out.status.success());
                let text = String::from_utf8(out.stdout).unwrap();
                text.lines()
                    .find_map(|l| l.strip_prefix("NAME="))
                    .expect("child printed no key name")
                    .to_string()
            })
            .collect()
    };
    let first = run(T0 + 3);
    assert!(first.iter().all(|n| *n == first[0]), "{first:?}");
    let clock = Arc::new(AtomicU64::new(T0 + 3));
    assert_eq!(hex(&ring(&path, &clock).current().unwrap().name), first[0]);
    let second = run(T0 + PERIOD + 3);
    assert!(second.iter().all(|n| *n == second[0]), "{second:?}");
    assert_ne!(second[0], first[0]);
}

#[test]
fn duplicate_keys_for_one_period_converge_on_the_smallest_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let r = ring(&path, &clock);
    let mine = r.current().unwrap();
    // A peer host rotated at the same moment; the bridge brings its key.
    let mut peer = mine.clone();
    peer.name = [0u8; 16];
    peer.name[15] = 1;
    peer.aes_key = [9; 32];
    peer.origin = 2;
    assert_eq!(r.import(2, std::slice::from_ref(&peer)).added, 1);
    assert_eq!(
        r.import(2, std::slice::from_ref(&peer)).added,
        0,
        "already present"
    );
    assert_eq!(r.current().unwrap().name, peer.name);
    assert_eq!(ring(&path, &clock).current().unwrap().name, peer.name);
    assert!(
        r.find(&mine.name).is_some(),
        "tickets under the loser still decrypt"
    );
}

#[test]
fn import_refuses_retired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let r = ring(&path, &clock);
    let old = TicketKey {
        name: [3; 16],
        aes_key: [4; 32],
        hmac_key: [5; 32],
        created: T0 - PERIOD - LIFETIME,
        origin: 2,
    };
    assert_eq!(r.import(2, &[old]).refused, 1);
    assert!(r.find(&[3; 16]).is_none());
}

/// Word `i` of the key ring region, read from the segment file (as an
/// inspecting tool or an attacker with the file would).
fn ring_word(path: &std::path::Path, i: usize) -> u64 {
    use std::os::unix::fs::FileExt;
    let at = Cache::open(path)
        .unwrap()
        .segment()
        .region_bytes(Region::KeyRing)
        .start;
    let mut b = [0u8; 8];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, at + 8 * i as u64)
        .unwrap();
    u64::from_ne_bytes(b)
}

/// Overwrite word `i` of the key ring region in the segment file.
fn set_ring_word(path: &std::path::Path, i: usize, v: u64) {
    use std::os::unix::fs::FileExt;
    let at = Cache::open(path)
        .unwrap()
        .segment()
        .region_bytes(Region::KeyRing)
        .start;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_ne_bytes(), at + 8 * i as u64).unwrap();
}

fn slot_word(path: &std::path::Path, slot: usize, word: usize) -> u64 {
    ring_word(path, 8 + slot * SLOT_WORDS + word)
}

#[test]
fn a_maker_killed_mid_rotation_is_recovered_after_the_stuck_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    // The state a process leaves when killed after claiming the period
    // (claim word) and a slot (WRITING, stamped T0) but before publishing.
    set_ring_word(&path, 0, u64::from_le_bytes(*b"SCSPKEY1"));
    set_ring_word(&path, 1, T0 + PERIOD);
    for i in 0..SLOTS {
        let st = ((b'W' as u64) << 56) | (1 << 32) | (T0 & 0xffff_ffff);
        set_ring_word(&path, 8 + i * SLOT_WORDS, st);
        set_ring_word(&path, 8 + i * SLOT_WORDS + 1, T0);
    }
    let clock = Arc::new(AtomicU64::new(T0 + 2));
    let r = ring(&path, &clock);
    assert!(r.current().is_none(), "every slot is still being written");
    clock.store(T0 + 11, Ordering::SeqCst);
    let k = r
        .current()
        .expect("stuck slots are reclaimed after the timeout");
    assert_eq!(k.created, T0);
    assert_eq!(ring(&path, &clock).current().unwrap(), k);
    assert!(
        slot_word(&path, 0, 0) >> 56 == b'V' as u64 || slot_word(&path, 1, 0) >> 56 == b'V' as u64
    );
}

#[test]
fn garbage_in_the_ring_never_panics_and_the_ring_heals() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..40 {
        {
            let cache = Cache::open(&path).unwrap();
            let at = cache.segment().region_bytes(Region::KeyRing).start;
            let mut bytes = Vec::with_capacity(RING_WORDS * 8);
            for i in 0..RING_WORDS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Keep the magic in even rounds so slots themselves are parsed.
                let v = if i == 0 && round % 2 == 0 {
                    u64::from_le_bytes(*b"SCSPKEY1")
                } else if i % SLOT_WORDS == 8 && round % 4 == 0 {
                    ((b'V' as u64) << 56) | (x & 0xffff_ffff)
                } else {
                    x
                };
                bytes.extend_from_slice(&v.to_ne_bytes());
            }
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(&bytes, at).unwrap();
        }
        let r = ring(&path, &clock);
        let _ = r.find(&[0; 16]);
        let _ = r.export();
        let k = r.current().expect("a damaged ring is reclaimed, not fatal");
        assert_eq!(k.created, T0);
        assert_eq!(r.find(&k.name), Some(k));
    }
}

#[test]
fn policies_that_outlive_the_ring_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let cache = Arc::new(Cache::open(&path).unwrap());
    let bad = RotationPolicy {
        period: Duration::from_secs(10),
        lifetime: Duration::from_secs(21),
    };
    let err = KeyRing::new(cache.clone(), bad).unwrap_err().to_string();
    assert!(err.contains("at most twice the period"), "{err}");
    // Past both bounds, the message names the tighter one: 7 days here.
    let week = RotationPolicy {
        period: Duration::from_secs(604_800),
        lifetime: Duration::from_secs(u32::MAX.into()),
    };
    let err = KeyRing::new(cache.clone(), week).unwrap_err().to_string();
    assert!(err.contains("at most 7 days"), "{err}");
    let zero = RotationPolicy {
        period: Duration::ZERO,
        lifetime: Duration::from_secs(1),
    };
    assert!(KeyRing::new(cache.clone(), zero).is_err());
    assert!(KeyRing::new(cache, RotationPolicy::default()).is_ok());
}

#[test]
fn debug_output_never_shows_key_bytes() {
    let k = TicketKey {
        name: [1; 16],
        aes_key: [0xAB; 32],
        hmac_key: [0xCD; 32],
        created: 1,
        origin: 1,
    };
    let s = format!("{k:?}");
    assert!(!s.contains("171") && !s.contains("205"), "{s}");
}

/// Child process body: rotate through periods as fast as possible until
/// killed. Every rotator runs the same fast clock: 4 simulated seconds per
/// real millisecond since a base the parent chose, so a period lasts 25 ms.
#[test]
fn child_rotates_until_killed() {
    let (Ok(path), Ok(base)) = (
        std::env::var("SCSP_KEYRING_ROTATOR"),
        std::env::var("SCSP_KEYRING_BASE_MS"),
    ) else {
        return;
    };
    let base: u64 = base.parse().unwrap();
    let fast = move || T0 + (unix_ms() - base) * 4;
    let r = KeyRing::with_clock(
        Arc::new(Cache::open(&path).unwrap()),
        policy(),
        Arc::new(fast),
    )
    .unwrap();
    // No check here: under a compressed clock another rotator descheduled
    // for a few milliseconds is "stuck" and legitimately loses its slot. The
    // parent checks the ring once every rotator is dead.
    loop {
        let _ = r.current_at(fast());
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn processes_killed_mid_rotation_never_break_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let base = unix_ms();
    for round in 0..6u64 {
        // Killed and reaped on drop, so a failed test leaves none.
        let mut kids: Vec<childguard::Guard> = (0..3)
            .map(|_| {
                childguard::Guard::spawned(
                    Command::new(std::env::current_exe().unwrap())
                        .args([
                            "--exact",
                            "keyring::child_rotates_until_killed",
                            "--nocapture",
                        ])
                        .env("SCSP_KEYRING_ROTATOR", &path)
                        .env("SCSP_KEYRING_BASE_MS", base.to_string())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        std::thread::sleep(Duration::from_millis(60 + 37 * round));
        for k in &mut kids {
            let code = k.kill();
            assert_eq!(
                code,
                128 + libc::SIGKILL,
                "a rotator died by itself: {code}"
            );
        }
        // Every rotator is dead, some mid-write. Past the stuck timeout (by
        // the rotators' clock) the ring serves, and every opener agrees.
        let now = T0 + (unix_ms() - base) * 4 + 20;
        let clock = Arc::new(AtomicU64::new(now));
        let (a, b) = (ring(&path, &clock), ring(&path, &clock));
        let k = a.current().expect("ring usable after killed rotators");
        assert_eq!(k.created, now - now % PERIOD);
        assert_eq!(b.current(), Some(k.clone()));
        assert_eq!(b.find(&k.name), Some(k));
        // At most four periods alive. A period may hold two keys: its
        // claimer was killed and two rotators stepped in (the module docs'
        // protocol); everyone still encrypts with one of them (above).
        let live = a.export();
        let mut periods: Vec<u64> = live.iter().map(|x| x.created).collect();
        periods.sort();
        periods.dedup();
        assert!(periods.len() <= 4, "{live:?}");
        assert!(live.iter().all(|x| x.created + PERIOD + LIFETIME > now));
    }
}

/// `n` bridged hosts whose processes all rotate at the same moment: each
/// host makes its own next key before the peers' arrive, then the keys are
/// replicated all to all, as the bridge does. Every host must find the key
/// every other host encrypts with, period after period. (With 8 slots and
/// every duplicate imported, three hosts overflowed the ring and never
/// agreed again.)
fn hosts_rotating_together(n: u32) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let longest = RotationPolicy {
        period: Duration::from_secs(PERIOD),
        lifetime: Duration::from_secs(2 * PERIOD),
    };
    let rings: Vec<KeyRing> = (1..=n)
        .map(|host| {
            let path = dir.path().join(format!("seg-{host}"));
            let cfg = Config {
                size: 1 << 20,
                shards: 2,
                max_value: 1024,
                host_id: host,
                ..Config::default()
            };
            let cache = Arc::new(Cache::create(&path, &cfg).unwrap());
            let c = clock.clone();
            KeyRing::with_clock(cache, longest, Arc::new(move || c.load(Ordering::SeqCst))).unwrap()
        })
        .collect();
    for period in 0..10u64 {
        clock.store(T0 + period * PERIOD + 1, Ordering::SeqCst);
        // Each host seals tickets before the others' keys arrive: in a new
        // pool's first period with a key of its own.
        let early: Vec<TicketKey> = rings
            .iter()
            .map(|r| r.current().expect("a key is made"))
            .collect();
        // Full mesh: every host sends its own keys to every other, as the
        // bridge does (no host speaks for a third).
        for (i, a) in rings.iter().enumerate() {
            for (j, b) in rings.iter().enumerate() {
                if i != j {
                    let got = b.import(i as u32 + 1, &a.export_own());
                    assert_eq!(
                        got.refused,
                        0,
                        "host {} refused host {}'s keys",
                        j + 1,
                        i + 1
                    );
                }
            }
        }
        if period == 0 {
            for (i, k) in early.iter().enumerate() {
                for (j, r) in rings.iter().enumerate() {
                    assert!(
                        r.find(&k.name).is_some(),
                        "host {} cannot decrypt a ticket host {} sealed before the keys met",
                        j + 1,
                        i + 1
                    );
                }
            }
        }
        let used: Vec<TicketKey> = rings.iter().map(|r| r.current().unwrap()).collect();
        for (i, k) in used.iter().enumerate() {
            assert_eq!(
                k.name,
                used[0].name,
                "period {period}: hosts 1 and {} disagree",
                i + 1
            );
            for (j, r) in rings.iter().enumerate() {
                assert!(
                    r.find(&k.name).is_some(),
                    "period {period}: host {} cannot decrypt host {}'s tickets ({} keys held)",
                    j + 1,
                    i + 1,
                    r.export().len()
                );
            }
        }
    }
}

#[test]
fn pools_of_two_three_and_eight_hosts_rotating_together_agree() {
    for n in [2, 3, 8] {
        hosts_rotating_together(n);
    }
}

#[test]
fn a_ticket_lifetime_over_seven_days_is_refused() {
    let week = 7 * 24 * 3600;
    let too_long = RotationPolicy {
        period: Duration::from_secs(week),
        lifetime: Duration::from_secs(week + 1),
    };
    let err = too_long.validate().unwrap_err().to_string();
    assert!(err.contains("RFC 8446"), "{err}");
    let longest = RotationPolicy {
        period: Duration::from_secs(week),
        lifetime: Duration::from_secs(week),
    };
    longest.validate().unwrap();
}

fn key_of(origin: u32, created: u64, tag: u8) -> TicketKey {
    TicketKey {
        name: [tag; 16],
        aes_key: [tag ^ 0x55; 32],
        hmac_key: [tag ^ 0xaa; 32],
        created,
        origin,
    }
}

#[test]
fn a_peer_can_only_bring_its_own_keys_made_on_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let r = ring(&path, &clock);
    let mine = r.current().unwrap();
    // Host 2 sends a key claiming to be host 3's, one claiming to be ours
    // (host 1), one made off the period boundary and one far in the future.
    let forged = [
        key_of(3, T0, 1),
        key_of(1, T0, 2),
        key_of(2, T0 + 7, 3),
        key_of(2, T0 + 10 * PERIOD, 4),
    ];
    let got = r.import(2, &forged);
    assert_eq!((got.added, got.refused), (0, 4));
    for k in &forged {
        assert!(r.find(&k.name).is_none());
    }
    // Host 2's own key on the schedule is taken.
    assert_eq!(r.import(2, &[key_of(2, T0, 5)]).added, 1);
    assert!(r.find(&[5; 16]).is_some());
    assert!(r.find(&mine.name).is_some());
}

#[test]
fn a_flood_of_peer_keys_never_evicts_the_keys_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let r = ring(&path, &clock);
    let current = r.current().unwrap();
    let next = r
        .export_own()
        .into_iter()
        .find(|k| k.created == T0 + PERIOD)
        .expect("the next key is made one period ahead");
    // Every other host floods its own keys of every live period, with names
    // smaller than ours (so ours look beaten), far more than the ring holds.
    let mut tag = 0u8;
    let mut added = 0;
    for origin in 2..=40u32 {
        let keys: Vec<TicketKey> = (0..4)
            .flat_map(|p| (0..3).map(move |_| T0 - PERIOD + p * PERIOD))
            .map(|created| {
                tag = tag.wrapping_add(1);
                let mut k = key_of(origin, created, tag);
                k.name[0] = 0;
                k
            })
            .collect();
        let got = r.import(origin, &keys);
        assert!(got.added <= scsp::keyring::MAX_KEYS_PER_ORIGIN);
        added += got.added;
    }
    assert!(added > 0);
    assert!(
        r.find(&current.name).is_some(),
        "the current key was evicted"
    );
    assert!(r.find(&next.name).is_some(), "the next key was evicted");
    let held = r.export();
    for origin in 2..=40u32 {
        let n = held.iter().filter(|k| k.origin == origin).count();
        assert!(
            n <= scsp::keyring::MAX_KEYS_PER_ORIGIN,
            "origin {origin} holds {n}"
        );
    }
    assert!(held.len() <= SLOTS);
}

#[test]
fn every_server_and_the_bridge_rotate_on_the_policy_stored_in_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let cache = Arc::new(Cache::open(&path).unwrap());
    assert!(
        KeyRing::attach(cache.clone()).unwrap().is_none(),
        "no policy before a server uses tickets"
    );
    let _first = KeyRing::new(cache.clone(), policy()).unwrap();
    let other = RotationPolicy {
        period: Duration::from_secs(3600),
        lifetime: Duration::from_secs(7200),
    };
    let err = KeyRing::new(cache.clone(), other).unwrap_err().to_string();
    assert!(err.contains("same rotation policy"), "{err}");
    let bridge = KeyRing::attach(cache).unwrap().expect("the stored policy");
    assert_eq!(bridge.policy(), policy());
}

#[test]
fn sweep_wipes_keys_when_they_retire() {
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let r = ring(&path, &clock);
    let k0 = r.current().unwrap();
    clock.store(T0 + PERIOD + LIFETIME, Ordering::SeqCst);
    r.sweep();
    let first = u64::from_le_bytes(k0.aes_key[..8].try_into().unwrap());
    let words: Vec<u64> = (0..RING_WORDS).map(|i| ring_word(&path, i)).collect();
    assert!(
        !words.contains(&first),
        "a retired key's bytes stay after the sweep"
    );
}

#[test]
fn keys_imported_at_the_same_moment_by_many_threads_all_land() {
    // A bridge imports each peer's keys on that peer's connection thread,
    // all at once when the pool rotates: a claim lost to another thread
    // must be tried again, since a peer sends its keys only once.
    for round in 0..50u8 {
        let dir = tempfile::tempdir().unwrap();
        let path = segment(&dir);
        let clock = Arc::new(AtomicU64::new(T0 + 1));
        let rings: Vec<KeyRing> = (0..8).map(|_| ring(&path, &clock)).collect();
        let start = std::sync::Barrier::new(rings.len());
        std::thread::scope(|s| {
            for (i, r) in rings.iter().enumerate() {
                let start = &start;
                s.spawn(move || {
                    let origin = 2 + i as u32;
                    let keys = [
                        key_of(origin, T0, 16 * i as u8 + 1),
                        key_of(origin, T0 + PERIOD, 16 * i as u8 + 2),
                    ];
                    start.wait();
                    assert_eq!(r.import(origin, &keys).refused, 0);
                });
            }
        });
        for i in 0..8u8 {
            for tag in [16 * i + 1, 16 * i + 2] {
                assert!(
                    rings[0].find(&[tag; 16]).is_some(),
                    "round {round}: key {tag} of origin {} was lost",
                    2 + i
                );
            }
        }
    }
}

/// Host `id`'s segment at `path`, created anew (as `scsp create` does after
/// the old file was removed, or at boot), with a ring on `clock`.
fn host_ring(path: &std::path::Path, id: u32, clock: &Arc<AtomicU64>) -> KeyRing {
    let cfg = Config {
        size: 1 << 20,
        shards: 2,
        max_value: 1024,
        host_id: id,
        ..Config::default()
    };
    let cache = Arc::new(Cache::create(path, &cfg).unwrap());
    let c = clock.clone();
    KeyRing::with_clock(cache, policy(), Arc::new(move || c.load(Ordering::SeqCst))).unwrap()
}

/// Whether the ring region of the segment at `path` holds the first word of
/// `k`'s AES key anywhere (a key wiped from the ring leaves no such word).
fn ring_holds_bytes_of(path: &std::path::Path, k: &TicketKey) -> bool {
    let first = u64::from_le_bytes(k.aes_key[..8].try_into().unwrap());
    (0..RING_WORDS).any(|i| ring_word(path, i) == first)
}

/// A host whose segment is replaced (or emptied by a reboot) starts again
/// with new keys under the same host id. Its peer, which held the old ones,
/// must drop them at the next exchange: else it may encrypt with one the
/// host no longer has (its tickets never resume there), and after a few
/// replacements the old keys fill the origin's quota, so the new ones are
/// refused and no ticket resumes across the hosts in either direction.
#[test]
fn a_peer_drops_the_keys_of_a_replaced_segment_at_the_next_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let (p1, p2) = (dir.path().join("seg-1"), dir.path().join("seg-2"));
    let mut one = host_ring(&p1, 1, &clock);
    let two = host_ring(&p2, 2, &clock);
    let mut gone: Vec<TicketKey> = Vec::new();
    for round in 0..6u64 {
        clock.store(T0 + 1 + round * PERIOD / 3, Ordering::SeqCst);
        if round > 0 {
            // Host 1's segment is removed and created again.
            gone.extend(one.export_own());
            drop(one);
            std::fs::remove_file(&p1).unwrap();
            one = host_ring(&p1, 1, &clock);
        }
        // Servers on both hosts seal tickets (host 2 still with what it
        // held), then the bridges connect and each sends its own keys.
        one.current().unwrap();
        two.current().unwrap();
        let to_two = two.import(1, &one.export_own());
        let to_one = one.import(2, &two.export_own());
        assert_eq!(
            (to_two.refused, to_one.refused),
            (0, 0),
            "round {round}: keys refused"
        );
        let (k1, k2) = (one.current().unwrap(), two.current().unwrap());
        assert_eq!(
            two.find(&k1.name).as_ref(),
            Some(&k1),
            "round {round}: host 2 cannot decrypt host 1's tickets"
        );
        assert_eq!(
            one.find(&k2.name).as_ref(),
            Some(&k2),
            "round {round}: host 1 cannot decrypt host 2's tickets"
        );
        // Host 2 holds no key of host 1 that host 1 does not hold, and the
        // old ones are wiped from its segment.
        let own1 = one.export_own();
        for k in two.export().iter().filter(|k| k.origin == 1) {
            assert!(own1.contains(k), "round {round}: host 2 kept a stale key");
        }
        for k in &gone {
            assert!(two.find(&k.name).is_none());
            assert!(
                !ring_holds_bytes_of(&p2, k),
                "round {round}: a dropped key's bytes stay in host 2's ring"
            );
        }
    }
}
/// A peer's key set speaks for its own origin only: whatever it sends (an
/// empty set, another origin's keys, this host's keys), only keys of its
/// origin that it left out are dropped. A set of the most keys a frame
/// carries may have left out the sender's oldest ones, so keys not newer
/// than its oldest are kept.
#[test]
fn a_peers_key_set_drops_only_its_own_keys_that_it_left_out() {
    use scsp::keyring::MAX_KEYS_PER_ORIGIN;
    let dir = tempfile::tempdir().unwrap();
    let path = segment(&dir);
    let clock = Arc::new(AtomicU64::new(T0 + 1));
    let r = ring(&path, &clock);
    let mine = r.current().unwrap();
    assert_eq!(mine.origin, 1);
    let (two_a, two_b, three) = (
        key_of(2, T0, 1),
        key_of(2, T0 + PERIOD, 2),
        key_of(3, T0, 3),
    );
    assert_eq!(r.import(2, &[two_a.clone(), two_b.clone()]).added, 2);
    assert_eq!(r.import(3, std::slice::from_ref(&three)).added, 1);
    // Host 2 sends a set naming host 3's and host 1's keys but not its own
    // `two_a`: only `two_a` goes.
    let got = r.import(2, &[two_b.clone(), three.clone(), mine.clone()]);
    assert_eq!((got.removed, got.refused), (1, 2));
    assert!(r.find(&two_a.name).is_none());
    assert!(!ring_holds_bytes_of(&path, &two_a), "dropped key not wiped");
    for k in [&two_b, &three, &mine] {
        assert!(r.find(&k.name).is_some());
    }
    // An empty set from host 3 drops host 3's keys, nothing else.
    assert_eq!(r.import(3, &[]).removed, 1);
    assert!(r.find(&three.name).is_none());
    assert!(r.find(&mine.name).is_some() && r.find(&two_b.name).is_some());
    // Host 1's own keys: never touched by a set "from" host 1.
    assert_eq!(r.import(1, &[]).removed, 0);
    assert!(r.find(&mine.name).is_some());
    // A full set whose oldest key is of T0 keeps host 2's keys of T0 and
    // before that it does not name, and drops the newer ones it does not.
    let older = key_of(2, T0 - PERIOD, 4);
    let same = key_of(2, T0, 5);
    let got = r.import(2, &[older.clone(), same.clone(), two_b.clone()]);
    assert_eq!((got.added, got.removed), (2, 0));
    let full: Vec<TicketKey> = (0..MAX_KEYS_PER_ORIGIN as u8)
        .map(|i| key_of(2, T0, 10 + i))
        .collect();
    let got = r.import(2, &full);
    assert_eq!(got.removed, 1, "only the newer key left out");
    assert!(r.find(&two_b.name).is_none());
    assert!(r.find(&older.name).is_some() && r.find(&same.name).is_some());
}
