//! Shared ticket keys: a small key ring in the segment's extension area.
//!
//! Stateless session tickets are encrypted by one process and decrypted by
//! any other, so every process of a pool must hold the same keys. They live
//! here, in the segment's key ring region ([`Region::KeyRing`]), and
//! nowhere else: never in a file, never in a log. The ring is language
//! neutral: the rustls adapter ([`crate::rustls::TicketKeys`]), the C ABI for
//! OpenSSL (AES-256-CBC + HMAC-SHA256, selected by the 16-byte key name) and
//! the bridge (which replicates keys between hosts with [`KeyRing::export`] /
//! [`KeyRing::import`]) all read the same slots.
//!
//! # Schedule
//! Time is cut into periods of [`RotationPolicy::period`]. The key whose
//! `created` is the start of the current period encrypts; it is made one
//! period ahead (as the "next" key) so that a replicated pool knows it before
//! anyone uses it. A key decrypts until `created + period + lifetime`, then it
//! is wiped (its words zeroed). With `lifetime <= 2 * period` (and at most
//! 7 days, the TLS 1.3 limit) at most four periods' keys of one host are
//! alive at once: previous-but-one, previous, current, next. (A period can
//! hold two keys when its maker died mid-way and two processes stepped in,
//! or several hosts of a pool made one each; see Protocol.)
//!
//! # Layout (words from the start of the region)
//!
//! | word        | field  | notes                                                  |
//! |-------------|--------|--------------------------------------------------------|
//! | 0           | magic  | `b"SCSPKEY1"`; anything else resets the ring           |
//! | 1           | claim  | `created` of the newest key some process set out to make |
//! | 2           | policy | `period:32 \| lifetime:32` in seconds, set by the first process |
//! | 8 + 16*i .. | slot i | [`SLOTS`] slots of [`SLOT_WORDS`] words, below         |
//!
//! Slot words: 0 state, 1 created (unix secs), 2 origin host, 3..=4 name,
//! 5..=8 AES key, 9..=12 HMAC key, 13 checksum (xxh3 of words 1..=12).
//!
//! State word: `kind:8 | generation:24 | stamp:32`, kind `0` free, `'W'`
//! being written (stamp = low 32 bits of the claim time), `'V'` valid. Any
//! other kind is corruption and the slot may be reclaimed.
//!
//! # Protocol
//! A writer claims a slot by one CAS of its state word to WRITING (new
//! generation), fills it while readers ignore it, and publishes it by one CAS
//! to VALID. Readers copy a VALID slot, `fence(Acquire)`, re-read the state and
//! verify the checksum (a seqlock): a slot changed or damaged meanwhile is
//! skipped, never trusted. A writer killed mid-way leaves a WRITING slot that
//! anyone may reclaim after [`STUCK_SECS`] (a writer merely stalled that long
//! may still store into the slot afterwards; the checksum turns such a mix
//! into a skipped slot, never a wrong key). Exactly one process makes the key
//! of a period: it claims a slot, then wins the CAS of the claim word; losers
//! release their slot and wait for the winner's key. If a claimed key never
//! appears (its maker died), any process makes it; should two do so, or two
//! hosts rotate at once and replicate, every process encrypts with the key of
//! smallest name, so the pool converges. The others are "beaten": imported
//! only into free slots, and the first slots reused when the ring is full.
//!
//! # Keys from other hosts
//! The bridge sends each peer this host's own keys only ([`KeyRing::export_own`])
//! and imports a peer's keys only if they are that peer's own
//! ([`KeyRing::import`]): a key's origin must be the host that sent it, its
//! creation a period boundary of this ring's policy, and it must still be
//! usable. At most [`MAX_KEYS_PER_ORIGIN`] keys of one origin are held, and an
//! imported key never takes the slot of a key of this host: a peer, rogue or
//! not, can neither forge another host's keys nor push out the keys in use.
//!
//! A host is the authority on the keys of its own origin: what it sends is
//! every key it has, so a key of its origin held here that it no longer sends
//! is one it lost (its segment was replaced, or emptied by a reboot) and is
//! wiped here too, as a retired key is. Otherwise this host could go on
//! encrypting with a key the peer cannot decrypt, and the lost keys would
//! fill the origin's quota until they retire. Tickets sealed with such a key
//! give a full handshake, as they already did on the peer.
//!
//! # Policy
//! The rotation policy is part of the ring: the first process to attach
//! stores it, and a process asking for another is refused, so every server
//! of a segment, and the bridge ([`KeyRing::attach`]), rotate alike.
//!

mod key;

pub use key::TicketKey;
use key::{checksum, key_from_words, key_to_words, new_key, wipe_words};

use crate::error::{Error, Result};
use crate::segment::Region;
use crate::sync::{fence, AtomicU64, Ordering};
use crate::Cache;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Words of the ring: its region of the segment ([`Region::KeyRing`]).
pub const RING_WORDS: usize = crate::segment::layout::KEYRING_WORDS;
/// Number of key slots: every slot [`RING_WORDS`] has room for. A pool of
/// hosts that rotate at the same moment makes one key per host and period
/// before the bridge brings them together, and each lives `period +
/// lifetime`: up to four periods of them, from every host (8 slots would be
/// too few for three hosts). When the ring is full, the keys that lost
/// their period to a smaller name are reused, see `pick_slot`.
pub const SLOTS: usize = (RING_WORDS - SLOTS_OFF) / SLOT_WORDS;
/// Words per slot.
pub const SLOT_WORDS: usize = 16;
/// Seconds after which a slot stuck in WRITING (its writer died) is reclaimed.
pub const STUCK_SECS: u32 = 10;

/// Most keys of one origin host a ring holds, and a KEYS frame carries: a
/// key is usable from one period before its own until `period + lifetime`
/// (at most three periods) after, so a host has at most five of its own
/// alive, one more if two of its processes made one period's key.
pub const MAX_KEYS_PER_ORIGIN: usize = 6;

const MAGIC: u64 = u64::from_le_bytes(*b"SCSPKEY1");
const W_MAGIC: usize = 0;
const W_CLAIM: usize = 1;
const W_POLICY: usize = 2;
const SLOTS_OFF: usize = 8;
const KIND_FREE: u64 = 0;
const KIND_WRITING: u64 = b'W' as u64;
const KIND_VALID: u64 = b'V' as u64;
/// How many times `current` re-scans (yielding) while another process makes
/// the key: making one takes microseconds; this bounds the wait to about a
/// millisecond even when the maker is stuck.
const WAIT_ROUNDS: usize = 200;

const _: () = assert!(SLOTS_OFF + SLOTS * SLOT_WORDS <= RING_WORDS);
// A pool of 8 hosts keeps every host's usable keys.
const _: () = assert!(8 * MAX_KEYS_PER_ORIGIN <= SLOTS);

/// `pick_slot`'s last resort: the slot of a live key beaten in its period.
const RANK_BEATEN: u8 = 4;

/// Longest ticket lifetime a server may announce (RFC 8446 4.6.1).
pub const MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// When keys rotate and how long tickets live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// A new encryption key every `period` (default 6 h, at least 1 s).
    pub period: Duration,
    /// Ticket lifetime told to clients (default 12 h). Must be at most
    /// `2 * period`, so the ring never needs more than four keys per host.
    pub lifetime: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            period: Duration::from_secs(6 * 3600),
            lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

impl RotationPolicy {
    /// Check the policy; the error says which bound is broken.
    pub fn validate(&self) -> Result<()> {
        let (p, l) = (self.period.as_secs(), self.lifetime.as_secs());
        if p == 0 || p > u32::MAX as u64 {
            return Err(Error::InvalidField {
                field: "period",
                problem: format!(
                    "ticket key period {p} s: must be between 1 s and {} s",
                    u32::MAX
                ),
            });
        }
        // The tighter of the two bounds is the one to name.
        if l == 0 || (l > 2 * p && 2 * p <= MAX_LIFETIME_SECS) {
            return Err(Error::InvalidField {
                field: "lifetime",
                problem: format!(
                    "ticket lifetime {l} s: must be at least 1 s and at most twice the period ({} s)",
                    2 * p
                ),
            });
        }
        if l > MAX_LIFETIME_SECS {
            return Err(Error::InvalidField {
                field: "lifetime",
                problem: format!(
                    "ticket lifetime {l} s: TLS 1.3 allows at most 7 days ({MAX_LIFETIME_SECS} s, \
                     RFC 8446 4.6.1)"
                ),
            });
        }
        Ok(())
    }

    fn secs(&self) -> (u64, u64) {
        (self.period.as_secs(), self.lifetime.as_secs())
    }

    /// The policy word of the ring (a valid policy's parts fit 32 bits).
    fn packed(&self) -> u64 {
        let (p, l) = self.secs();
        (p << 32) | l
    }

    fn unpacked(w: u64) -> RotationPolicy {
        RotationPolicy {
            period: Duration::from_secs(w >> 32),
            lifetime: Duration::from_secs(w & 0xffff_ffff),
        }
    }
}

/// How one try at importing a key ended.
enum Attempt {
    /// Placed (true), or nothing to do: already held, or beaten by a key
    /// held for the same period with no free slot (false).
    Done(bool),
    /// Refused: its origin holds its quota, or the ring has no slot for it.
    Refused,
    /// Another writer claimed the chosen slot first.
    Lost,
}

/// What [`KeyRing::import`] did with a peer's keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Keys added to the ring.
    pub added: usize,
    /// Keys refused: not the sender's own, not fitting the rotation policy,
    /// no longer usable, over the origin's quota, or no slot a peer's key
    /// may take.
    pub refused: usize,
    /// Keys of the sender's origin held here that it no longer has, wiped.
    pub removed: usize,
}

/// What one read of a slot saw.
enum View {
    Free(u64),
    Writing {
        state: u64,
        created: u64,
    },
    Valid(u64, TicketKey),
    /// Unknown kind or bad checksum: reclaimable.
    Corrupt(u64),
    /// Changed while being read: try again later.
    Busy,
}

/// The shared key ring of one segment.
pub struct KeyRing {
    cache: Arc<Cache>,
    period: u64,
    lifetime: u64,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("period", &self.period)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Attach to the ring of `cache`'s segment (initialising it if blank).
    pub fn new(cache: Arc<Cache>, policy: RotationPolicy) -> Result<KeyRing> {
        Self::with_clock(cache, policy, Arc::new(crate::clock::now_secs))
    }

    /// As [`KeyRing::new`] with another clock (unix seconds), for tests and
    /// for tools that replay a schedule.
    pub fn with_clock(
        cache: Arc<Cache>,
        policy: RotationPolicy,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<KeyRing> {
        policy.validate()?;
        let (period, lifetime) = policy.secs();
        let ring = KeyRing {
            cache,
            period,
            lifetime,
            clock,
        };
        ring.init();
        // The first process stores its policy; the others must ask for it.
        // A word that is no valid policy is damage: replaced like a blank.
        let w = &ring.words()[W_POLICY];
        let seen = w.load(Ordering::Acquire);
        if seen == 0 || RotationPolicy::unpacked(seen).validate().is_err() {
            let _ = w.compare_exchange(seen, policy.packed(), Ordering::AcqRel, Ordering::Acquire);
        }
        let stored = w.load(Ordering::Acquire);
        if stored != policy.packed() {
            let theirs = RotationPolicy::unpacked(stored);
            return Err(Error::Config(format!(
                "ticket keys: this segment's keys rotate every {} s and live {} s, this process \
                 asks for {period} s and {lifetime} s; give every server of the segment the same \
                 rotation policy (if no server was configured with the segment's, it is damaged: \
                 recreate it)",
                theirs.period.as_secs(),
                theirs.lifetime.as_secs()
            )));
        }
        Ok(ring)
    }

    /// Attach with the policy the servers stored in the ring (the bridge's
    /// way in), or `None` while no server has used it yet.
    pub fn attach(cache: Arc<Cache>) -> Result<Option<KeyRing>> {
        Self::attach_with_clock(cache, Arc::new(crate::clock::now_secs))
    }

    /// [`KeyRing::attach`] with another clock.
    pub fn attach_with_clock(
        cache: Arc<Cache>,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<Option<KeyRing>> {
        let w = cache.segment().region(Region::KeyRing);
        if w[W_MAGIC].load(Ordering::Acquire) != MAGIC {
            return Ok(None);
        }
        let stored = RotationPolicy::unpacked(w[W_POLICY].load(Ordering::Acquire));
        match stored.validate() {
            Ok(()) => Self::with_clock(cache, stored, clock).map(Some),
            // Blank (no server used tickets yet) or damaged (the next
            // server to attach repairs it).
            Err(_) => Ok(None),
        }
    }

    /// The rotation policy in force.
    pub fn policy(&self) -> RotationPolicy {
        RotationPolicy {
            period: Duration::from_secs(self.period),
            lifetime: Duration::from_secs(self.lifetime),
        }
    }

    /// Now, by the ring's clock.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    fn words(&self) -> &[AtomicU64] {
        self.cache.segment().region(Region::KeyRing)
    }

    fn slot(&self, i: usize) -> &[AtomicU64] {
        let start = SLOTS_OFF + (i % SLOTS) * SLOT_WORDS;
        &self.words()[start..start + SLOT_WORDS]
    }

    /// Blank ring: stamp the magic. Foreign or damaged magic: reset, wiping
    /// every slot (tickets under the lost keys fall back to full handshakes).
    fn init(&self) {
        let w = self.words();
        let seen = w[W_MAGIC].load(Ordering::Acquire);
        if seen == MAGIC {
            return;
        }
        if w[W_MAGIC]
            .compare_exchange(seen, MAGIC, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && seen != 0
        {
            w[W_CLAIM].store(0, Ordering::Relaxed);
            w[W_POLICY].store(0, Ordering::Relaxed);
            for i in 0..SLOTS {
                let s = self.slot(i);
                for word in &s[1..] {
                    word.store(0, Ordering::Relaxed);
                }
                // Release: the zeroes are visible before the slot is free.
                s[0].store(0, Ordering::Release);
            }
        }
    }

    /// The key to encrypt with now, making it (and the next one) if due and
    /// wiping retired keys. `None` only if no key can be made (no free slot,
    /// no randomness, or another process is stuck making it).
    pub fn current(&self) -> Option<TicketKey> {
        self.current_at(self.now())
    }

    /// [`KeyRing::current`] at an explicit time.
    pub fn current_at(&self, now: u64) -> Option<TicketKey> {
        let start = now - now % self.period;
        let mut views = self.snapshot();
        self.retire_due(&views, now);
        let mut cur = self.best_with(&views, start, now);
        let mut rounds = 0;
        while cur.is_none() && rounds < WAIT_ROUNDS {
            self.ensure(start, now);
            views = self.snapshot();
            cur = self.best_with(&views, start, now);
            if cur.is_none() {
                std::thread::yield_now();
            }
            rounds += 1;
        }
        if self.best_with(&views, start + self.period, now).is_none() {
            self.ensure(start + self.period, now);
        }
        // The maker of this period's key is stuck: keep the previous one.
        cur.or_else(|| self.newest_before(&views, start, now))
    }

    /// Any key named `name` that still decrypts (previous, current or next).
    pub fn find(&self, name: &[u8; 16]) -> Option<TicketKey> {
        self.find_at(name, self.now())
    }

    /// [`KeyRing::find`] at an explicit time.
    pub fn find_at(&self, name: &[u8; 16], now: u64) -> Option<TicketKey> {
        self.snapshot().into_iter().find_map(|v| match v {
            View::Valid(_, k) if &k.name == name && self.usable(&k, now) => Some(k),
            _ => None,
        })
    }

    /// Every key that still decrypts.
    pub fn export(&self) -> Vec<TicketKey> {
        let now = self.now();
        self.snapshot()
            .into_iter()
            .filter_map(|v| match v {
                View::Valid(_, k) if self.usable(&k, now) => Some(k),
                _ => None,
            })
            .collect()
    }

    /// This host's own usable keys, newest first, at most
    /// [`MAX_KEYS_PER_ORIGIN`]: what the bridge sends its peers, who drop
    /// the keys of this origin it leaves out (see [`KeyRing::import`]). A
    /// host holds at most four periods' keys of its own, one each unless a
    /// maker died mid-way, so only a host with more than the limit leaves
    /// out its oldest.
    pub fn export_own(&self) -> Vec<TicketKey> {
        let own = self.cache.host_id();
        let mut keys: Vec<TicketKey> = self
            .export()
            .into_iter()
            .filter(|k| k.origin == own)
            .collect();
        keys.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
        keys.truncate(MAX_KEYS_PER_ORIGIN);
        keys
    }

    /// Take the keys host `sender` (its authenticated id) sent, its whole
    /// set as [`KeyRing::export_own`] makes it. First, every key of origin
    /// `sender` held here that the set lacks is wiped (the sender no longer
    /// has it: its segment was replaced or emptied); a set of
    /// [`MAX_KEYS_PER_ORIGIN`] keys may have left out the sender's oldest, so
    /// then only keys newer than its oldest go. Keys of any other origin,
    /// this host's above all, are never touched, whatever the set holds.
    ///
    /// Then add the keys that are its own
    /// (origin `sender`, never this host's id), made on a period boundary of
    /// this ring's policy and still usable; keys already here are skipped.
    /// An origin holds at most [`MAX_KEYS_PER_ORIGIN`] slots, and an
    /// imported key only takes a slot that is free, damaged, stuck, retired,
    /// or held by another origin's key beaten in its period — never one of
    /// this host's keys. A key beaten here by one of the same period with a
    /// smaller name (nobody will encrypt with it any more) is added only if a
    /// slot is free: it still decrypts the tickets its host sealed before
    /// the keys met (a pool's first seconds).
    pub fn import(&self, sender: u32, keys: &[TicketKey]) -> Imported {
        let now = self.now();
        let own = self.cache.host_id();
        let mut done = Imported::default();
        if sender != own {
            done.removed = self.drop_left_out(sender, keys, now);
        }
        for k in keys {
            let fits = k.origin == sender
                && sender != own
                && k.created % self.period == 0
                && self.usable(k, now);
            if !fits {
                done.refused += 1;
                continue;
            }
            // Other processes claim slots too (servers making keys, the
            // bridge's threads importing other peers' keys): a claim lost
            // to one of them is tried again on a fresh look at the ring,
            // since a peer sends its keys only when they change.
            for _ in 0..SLOTS {
                match self.import_one(sender, k, now) {
                    Attempt::Done(added) => {
                        done.added += usize::from(added);
                        break;
                    }
                    Attempt::Refused => {
                        done.refused += 1;
                        break;
                    }
                    Attempt::Lost => {}
                }
            }
        }
        done
    }

    /// Wipe the keys of origin `sender` that `keys`, its whole set, lacks
    /// (see [`KeyRing::import`]); how many. Each goes as a retired key does:
    /// claimed from the exact state it was read in, zeroed, freed. A slot
    /// changed since it was read (retired, reused) is looked at again.
    fn drop_left_out(&self, sender: u32, keys: &[TicketKey], now: u64) -> usize {
        let floor = if keys.len() >= MAX_KEYS_PER_ORIGIN {
            keys.iter().map(|k| k.created).min()
        } else {
            None
        };
        let left_out = |k: &TicketKey| {
            k.origin == sender && floor.is_none_or(|f| k.created > f) && !keys.contains(k)
        };
        let mut removed = 0;
        for _ in 0..SLOTS {
            let mut lost = false;
            for (i, v) in self.snapshot().iter().enumerate() {
                let View::Valid(st, k) = v else { continue };
                if !left_out(k) {
                    continue;
                }
                match self.claim(i, *st, now, 0) {
                    Some(w) => {
                        self.release(i, w);
                        removed += 1;
                    }
                    None => lost = true,
                }
            }
            if !lost {
                break;
            }
        }
        removed
    }

    /// One try at placing `k`, a key of `sender` that fits the policy.
    fn import_one(&self, sender: u32, k: &TicketKey, now: u64) -> Attempt {
        if self.find_at(&k.name, now).is_some() {
            return Attempt::Done(false);
        }
        let views = self.snapshot();
        self.retire_due(&views, now);
        let views = self.snapshot();
        let held = views
            .iter()
            .filter(|v| matches!(v, View::Valid(_, o) if o.origin == sender && self.usable(o, now)))
            .count();
        if held >= MAX_KEYS_PER_ORIGIN {
            return Attempt::Refused;
        }
        let beaten = self.beaten(&views, k, now);
        match self.pick_slot_for_import(&views, now) {
            Some((rank, _, _)) if beaten && rank == RANK_BEATEN => Attempt::Done(false),
            Some((_, i, state)) => match self.claim(i, state, now, k.created) {
                Some(st) => Attempt::Done(self.publish(i, st, k)),
                None => Attempt::Lost,
            },
            None => Attempt::Refused,
        }
    }

    /// Wipe every key past its retirement time now (the bridge calls this
    /// continuously; servers also do it whenever they use a key).
    pub fn sweep(&self) {
        let now = self.now();
        self.retire_due(&self.snapshot(), now);
    }

    /// A key decrypts from one period before its own until it retires.
    fn usable(&self, k: &TicketKey, now: u64) -> bool {
        now < k.created.saturating_add(self.period + self.lifetime)
            && k.created <= now.saturating_add(self.period)
    }

    fn snapshot(&self) -> Vec<View> {
        (0..SLOTS).map(|i| self.read_slot(i)).collect()
    }

    /// Seqlock read of one slot; see the module docs.
    fn read_slot(&self, i: usize) -> View {
        let s = self.slot(i);
        // Acquire: pairs with the Release CAS in `publish`.
        let st = s[0].load(Ordering::Acquire);
        match st >> 56 {
            KIND_FREE => return View::Free(st),
            KIND_WRITING => {
                return View::Writing {
                    state: st,
                    created: s[1].load(Ordering::Relaxed),
                }
            }
            KIND_VALID => {}
            _ => return View::Corrupt(st),
        }
        let mut d = [0u64; 13];
        for (j, v) in d.iter_mut().enumerate() {
            *v = s[j + 1].load(Ordering::Relaxed);
        }
        // Acquire: if any word above came from a later writer, the state
        // re-read below sees that writer's claim (pairs with the Release
        // fence in `claim`).
        fence(Ordering::Acquire);
        if s[0].load(Ordering::Relaxed) != st {
            wipe_words(&mut d);
            return View::Busy;
        }
        let view = if checksum(&d[..12]) != d[12] || d[1] > u32::MAX as u64 {
            View::Corrupt(st)
        } else {
            View::Valid(st, key_from_words(&d))
        };
        wipe_words(&mut d);
        view
    }

    /// Smallest-named usable key for the period starting at `start`.
    fn best_with(&self, views: &[View], start: u64, now: u64) -> Option<TicketKey> {
        views
            .iter()
            .filter_map(|v| match v {
                View::Valid(_, k) if k.created == start && self.usable(k, now) => Some(k),
                _ => None,
            })
            .min_by(|a, b| a.name.cmp(&b.name))
            .cloned()
    }

    /// Newest usable key older than `start` (ties: smallest name).
    fn newest_before(&self, views: &[View], start: u64, now: u64) -> Option<TicketKey> {
        views
            .iter()
            .filter_map(|v| match v {
                View::Valid(_, k) if k.created < start && self.usable(k, now) => Some(k),
                _ => None,
            })
            .min_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)))
            .cloned()
    }

    /// Wipe every valid key past its retirement time.
    fn retire_due(&self, views: &[View], now: u64) {
        for (i, v) in views.iter().enumerate() {
            if let View::Valid(st, k) = v {
                if now >= k.created.saturating_add(self.period + self.lifetime) {
                    if let Some(w) = self.claim(i, *st, now, 0) {
                        self.release(i, w);
                    }
                }
            }
        }
    }

    /// Make sure a key for the period starting at `created` exists or is
    /// being made by someone.
    fn ensure(&self, created: u64, now: u64) {
        // Read the claim first: if it shows a claim, the claimer's WRITING
        // slot (claimed before its Release CAS of this word) is visible to
        // the scan below. Pairs with the AcqRel CAS further down.
        let claim = self.words()[W_CLAIM].load(Ordering::Acquire);
        let views = self.snapshot();
        if self.best_with(&views, created, now).is_some() {
            return;
        }
        let now32 = now as u32;
        let in_progress = views.iter().any(|v| match v {
            View::Writing { state, created: c } => {
                *c == created && now32.wrapping_sub(*state as u32) < STUCK_SECS
            }
            _ => false,
        });
        if in_progress {
            return;
        }
        // A claim at or past `created` with no key and no writer means the
        // claimer died: make the key without a new claim (recovery). A claim
        // beyond the next period is garbage and is overwritten.
        let sane = claim <= now.saturating_add(self.period);
        let recovering = sane && claim >= created;
        let Some((i, state)) = self.pick_slot(&views, now) else {
            return;
        };
        let Some(st) = self.claim(i, state, now, created) else {
            return;
        };
        if !recovering
            && self.words()[W_CLAIM]
                .compare_exchange(claim, created, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            self.release(i, st);
            return;
        }
        if let Some(k) = new_key(created, self.cache.host_id()) {
            self.publish(i, st, &k);
        } else {
            self.release(i, st);
        }
    }

    /// Does a usable key of `k`'s period with a smaller name exist? Then
    /// nobody encrypts with `k` (see `best_with`).
    fn beaten(&self, views: &[View], k: &TicketKey, now: u64) -> bool {
        views.iter().any(|v| {
            matches!(v, View::Valid(_, o)
                if o.created == k.created && o.name < k.name && self.usable(o, now))
        })
    }

    /// A slot to write into: free, then corrupt, then stuck, then retired
    /// or absurdly far in the future; if the ring is full of live keys, one
    /// that lost its period to a key of smaller name (every process
    /// encrypts with that one, so the loser only decrypts tickets a host
    /// made before the keys met: at worst those fall back to a full
    /// handshake, instead of the pool's hosts disagreeing for good).
    fn pick_slot(&self, views: &[View], now: u64) -> Option<(usize, u64)> {
        self.pick_slot_ranked(views, now, None)
            .map(|(_, i, s)| (i, s))
    }

    /// [`KeyRing::pick_slot`] for a peer's key, with the kind of slot it
    /// found ([`RANK_BEATEN`]: a beaten key's): never a slot holding one of
    /// this host's usable keys, beaten or not.
    fn pick_slot_for_import(&self, views: &[View], now: u64) -> Option<(u8, usize, u64)> {
        self.pick_slot_ranked(views, now, Some(self.cache.host_id()))
    }

    /// `pick_slot`, with the kind of slot it found; never one holding a
    /// usable key of origin `protect`.
    fn pick_slot_ranked(
        &self,
        views: &[View],
        now: u64,
        protect: Option<u32>,
    ) -> Option<(u8, usize, u64)> {
        let now32 = now as u32;
        let rank = |v: &View| match v {
            View::Free(s) => Some((0, *s)),
            View::Corrupt(s) => Some((1, *s)),
            View::Writing { state, .. } if now32.wrapping_sub(*state as u32) >= STUCK_SECS => {
                Some((2, *state))
            }
            View::Valid(s, k) if !self.usable(k, now) => Some((3, *s)),
            View::Valid(_, k) if protect == Some(k.origin) => None,
            View::Valid(s, k) if self.beaten(views, k, now) => Some((RANK_BEATEN, *s)),
            _ => None,
        };
        views
            .iter()
            .enumerate()
            .filter_map(|(i, v)| rank(v).map(|(r, s)| (r, i, s)))
            .min()
    }

    /// CAS slot `i` from `seen` to WRITING (next generation) and note which
    /// period it is being written for. Returns the new state word.
    fn claim(&self, i: usize, seen: u64, now: u64, created: u64) -> Option<u64> {
        let gen = ((seen >> 32) + 1) & 0xff_ffff;
        let st = (KIND_WRITING << 56) | (gen << 32) | (now & 0xffff_ffff);
        let s = self.slot(i);
        s[0].compare_exchange(seen, st, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        // Release: readers that see any data word written after this point
        // also see the WRITING state (pairs with the fence in `read_slot`).
        fence(Ordering::Release);
        s[1].store(created, Ordering::Relaxed);
        Some(st)
    }

    /// Fill a claimed slot with `k` and make it VALID. False if someone
    /// reclaimed the slot meanwhile (we were stuck too long).
    fn publish(&self, i: usize, st: u64, k: &TicketKey) -> bool {
        let mut d = key_to_words(k);
        let s = self.slot(i);
        for (j, v) in d.iter().enumerate() {
            s[j + 1].store(*v, Ordering::Relaxed);
        }
        wipe_words(&mut d);
        let valid = (KIND_VALID << 56) | (st & 0x00ff_ffff_ffff_ffff);
        // Release: the data words are visible to any reader that sees VALID.
        s[0].compare_exchange(st, valid, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Zero a claimed slot and free it.
    fn release(&self, i: usize, st: u64) {
        let s = self.slot(i);
        for w in &s[1..] {
            w.store(0, Ordering::Relaxed);
        }
        let free = st & 0x00ff_ffff_0000_0000;
        let _ = s[0].compare_exchange(st, free, Ordering::Release, Ordering::Relaxed);
    }
}
