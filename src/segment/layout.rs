//! The segment's memory layout: header words, geometry, region offsets.
//!
//! ```text
//!  byte 0        4 KiB           +S*64 (page-rounded)   +128 KiB        +32 KiB
//!  | header page | shard tails   | stats slots          | extension     | index        | shard logs   |
//!  |  (words)    | 1 AtomicU64   | 1024 slots x 16 words| ticket keys,  | buckets x    | shards x     |
//!  |             | per 64 B line | one per process      | bridge status | 8 words      | log_bytes    |
//! ```
//!
//! A sets segment ([`Layout::Sets`]) has one shard, whose log is the slots,
//! and after them [`NOTICE_RINGS`] notice rings, each a line holding its
//! count of records written and [`notice_records_for`] records of
//! [`NOTICE_WORDS`] words.
//!
//! Header words (all `AtomicU64`, little-endian, written once by the creator):
//!
//! | word | field        | notes                                        |
//! |------|--------------|----------------------------------------------|
//! | 0    | magic        | `b"SCSPSEG1"` (log layout), `b"SCSPSET1"` (sets) |
//! | 1    | version      | [`FORMAT_VERSION`]                           |
//! | 2    | fingerprint  | hash of every layout constant, see below     |
//! | 3    | shards       | power of two (sets: 1)                       |
//! | 4    | buckets      | power of two, >= shards (sets: sets)         |
//! | 5    | log_bytes    | per shard, power of two (sets: all slots)    |
//! | 6    | max_key      | 255                                          |
//! | 7    | max_value    | power of two (sets: 64 B up to the slot)     |
//! | 8,9  | seed         | random per segment; word 8 seeds the key hash|
//! | 10   | created      | unix seconds                                 |
//! | 11   | host_id      | origin stamped on local entries              |
//! | 12   | total_len    | file length in bytes                         |
//! | 13   | checksum     | xxh3-64 of words 0..=12                      |
//! | 14   | state        | [`STATE_READY`] once initialised (Release)   |

use crate::config::Config;
use crate::error::{Error, Result};
use std::path::Path;

/// `b"SCSPSEG1"` read as a little-endian word: a segment of the log layout.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SCSPSEG1");
/// `b"SCSPSET1"`: a segment of the sets layout ([`Layout::Sets`]).
pub const MAGIC_SETS: u64 = u64::from_le_bytes(*b"SCSPSET1");
/// Notice rings of a sets segment: the bridge's record of puts, takes and
/// removes (docs/architecture.md, "Notice rings"). A process writes to the
/// ring of its counter slot's number modulo this.
pub const NOTICE_RINGS: usize = 64;
/// Words of one notice record: one cache line.
pub const NOTICE_WORDS: usize = 8;

/// Records per notice ring for `slot_bytes_total` bytes of slots: one per
/// 512 slots of 256 bytes, 256 to 8192.
pub fn notice_records_for(slot_bytes_total: u64) -> u64 {
    (slot_bytes_total / MIN_SLOT_BYTES / 512).clamp(256, 8192)
}

/// Words of one notice ring: a line for its count of records written, then
/// the records.
pub(crate) fn notice_ring_words(records: u64) -> u64 {
    (records + 1) * NOTICE_WORDS as u64
}
/// Ways in a set of the sets layout: one cache line of tag words. A key
/// may live in either of two sets.
pub const SET_WAYS: usize = BUCKET_WORDS;
/// Smallest slot of the sets layout: a TLS session id and a 176-byte session.
pub const MIN_SLOT_BYTES: u64 = 256;
/// Largest slot of the sets layout.
pub const MAX_SLOT_BYTES: u64 = 8 << 10;

/// Fewest sets a segment of the sets layout has.
const MIN_SETS: u64 = 16;

/// The slot of the sets layout that holds an entry with a key of
/// [`TYPICAL_KEY`] bytes and a value of `max_value` bytes.
pub fn slot_bytes_for(max_value: u32) -> u64 {
    entry_bytes(TYPICAL_KEY, max_value as usize)
        .next_power_of_two()
        .max(MIN_SLOT_BYTES)
}

/// How a segment keeps its sessions (docs/architecture.md, "The sets
/// layout").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Layout {
    /// Entries appended to shard logs, found through an index of words
    /// that point into them. Keeps sessions of any size up to
    /// `max_value` in the order they were made; the bridge replicates it.
    #[default]
    Log,
    /// Every session in place, in a slot of a fixed size, in one of the 16
    /// ways of the two sets its hash picks; the tags of a set's 8 ways are
    /// packed into one line apart from the slots. No word every put
    /// writes, so processes on many cores share nothing but the sessions
    /// they read. Not replicated by the bridge.
    Sets,
}

impl Layout {
    /// The name used in configuration files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Log => "log",
            Layout::Sets => "sets",
        }
    }

    /// The layout named `name` (`log` or `sets`).
    pub fn from_name(name: &str) -> Option<Layout> {
        match name {
            "log" => Some(Layout::Log),
            "sets" => Some(Layout::Sets),
            _ => None,
        }
    }
}

/// Format version; bump on any change to the layout or entry encoding.
pub const FORMAT_VERSION: u64 = 6;
/// Value of the state word once the creator has finished.
pub const STATE_READY: u64 = u64::from_le_bytes(*b"READY\0\0\0");

/// Page size the regions are aligned to.
pub const PAGE: u64 = 4096;
/// Cache line size; tails and buckets are one line each.
pub const CACHE_LINE: u64 = 64;
/// Words in one index bucket: one cache line.
pub const BUCKET_WORDS: usize = 8;
/// Words in an entry header in a shard log.
pub const ENTRY_HEADER_WORDS: usize = 6;
/// Per-process counter slots; slot 0 collects retired and overflow counts.
pub const STATS_SLOTS: usize = 1024;
/// Words per counter slot (two cache lines).
pub const STATS_SLOT_WORDS: usize = 16;
/// Bytes of the extension area, which holds the named regions
/// ([`super::Region`]): the ticket key ring, the bridge status, and room
/// for more.
pub const EXT_BYTES: u64 = 32 << 10;
/// Words of the key ring region, from the start of the extension area.
pub const KEYRING_WORDS: usize = 1024;
/// Words of the bridge status region, right after the key ring.
pub const BRIDGE_STATUS_WORDS: usize = 3072;
/// Word of the bridge status region that says a bridge has run on the
/// segment ([`REPLICATED_MAGIC`] once it has; never cleared).
pub(crate) const BRIDGE_REPLICATED_WORD: usize = 5;
/// The value of [`BRIDGE_REPLICATED_WORD`] once a bridge has run.
pub(crate) const REPLICATED_MAGIC: u64 = u64::from_le_bytes(*b"SCSPREPL");
/// Word 0 of the bridge status region once a bridge has claimed it (by
/// any release; cleared only while another bridge claims it again).
pub(crate) const BRIDGE_STATUS_MAGIC: u64 = u64::from_le_bytes(*b"SCSPBRG1");
const _: () = assert!((KEYRING_WORDS + BRIDGE_STATUS_WORDS) as u64 * 8 <= EXT_BYTES);
/// Largest key, in bytes.
pub const MAX_KEY: usize = 255;
/// Largest `max_value` a segment may be configured with.
pub const MAX_VALUE_LIMIT: u32 = 64 << 10;
/// Smallest `max_value`.
pub const MIN_VALUE_LIMIT: u32 = 256;
/// A shard log holds at least this many largest entries.
pub const MIN_ENTRIES_PER_SHARD: u64 = 8;

pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 1;
pub(crate) const H_FINGERPRINT: usize = 2;
pub(crate) const H_SHARDS: usize = 3;
pub(crate) const H_BUCKETS: usize = 4;
pub(crate) const H_LOG_BYTES: usize = 5;
pub(crate) const H_MAX_KEY: usize = 6;
pub(crate) const H_MAX_VALUE: usize = 7;
pub(crate) const H_SEED0: usize = 8;
pub(crate) const H_SEED1: usize = 9;
pub(crate) const H_CREATED: usize = 10;
pub(crate) const H_HOST_ID: usize = 11;
pub(crate) const H_TOTAL_LEN: usize = 12;
pub(crate) const H_CHECKSUM: usize = 13;
pub(crate) const H_STATE: usize = 14;

/// Hash of every constant the layout depends on. Two builds that disagree on
/// any of them produce different fingerprints and refuse each other's segments.
pub fn layout_fingerprint() -> u64 {
    fingerprint_of(Layout::Log)
}

/// [`layout_fingerprint`] of a given layout.
pub(crate) fn fingerprint_of(layout: Layout) -> u64 {
    let sets = match layout {
        Layout::Log => String::new(),
        Layout::Sets => {
            format!(
                ";sets:ways={SET_WAYS};choices=2;tag_bits=24;age_bits=22;version_bits=18;slot=pow2;\
                 notices:rings={NOTICE_RINGS};record_words={NOTICE_WORDS};key_part=40;\
                 records=slots/512"
            )
        }
    };
    let text = format!(
        "scsp-layout;version={FORMAT_VERSION};word=8;endian={};bucket_words={BUCKET_WORDS};\
         tag_bits=16;lines_bits=8;pos_bits=40;pos_unit=8;entry_header_words={ENTRY_HEADER_WORDS};\
         tail_stride={CACHE_LINE};stats_slots={STATS_SLOTS};stats_slot_words={STATS_SLOT_WORDS};\
         ext_bytes={EXT_BYTES};max_key={MAX_KEY};hash=xxh3seed;checksum=lanes4fletcher32{sets}",
        if cfg!(target_endian = "little") {
            "le"
        } else {
            "be"
        }
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// Everything an opener needs, copied out of the header once and trusted
/// from then on. Offsets are in 8-byte words from the start of the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// How sessions are kept. With [`Layout::Sets`] the fields below keep
    /// their places with these meanings: one shard; `buckets` counts sets,
    /// each one line of tag words; the shard's log is the slots,
    /// `log_bytes` in all, [`SET_WAYS`] per set, each
    /// [`Geometry::slot_bytes`] long.
    pub layout: Layout,
    /// Number of shards (power of two).
    pub shards: u64,
    /// Number of index buckets (power of two, >= shards).
    pub buckets: u64,
    /// Bytes of log per shard (power of two).
    pub log_bytes: u64,
    /// Largest value accepted.
    pub max_value: u64,
    /// Random per segment; `seed[0]` seeds the xxh3 key hash.
    pub seed: [u64; 2],
    /// Creation time, unix seconds.
    pub created: u64,
    /// Origin id stamped on local entries.
    pub host_id: u64,
    /// Total bytes of the segment.
    pub total_len: u64,
    pub(crate) tails_off: usize,
    pub(crate) stats_off: usize,
    pub(crate) ext_off: usize,
    pub(crate) index_off: usize,
    pub(crate) logs_off: usize,
    /// Records per notice ring (sets layout; 0 for the log layout).
    pub(crate) notice_records: u64,
    pub(crate) notices_off: usize,
}

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

fn pow2_floor(v: u64) -> u64 {
    if v == 0 {
        0
    } else {
        1 << (63 - v.leading_zeros())
    }
}

/// Key length the index is sized for (`Config::typical_value`): a TLS
/// session id or ticket name.
pub const TYPICAL_KEY: usize = 32;

/// Bytes an entry with a key of `klen` and value of `vlen` occupies in a log.
pub const fn entry_bytes(klen: usize, vlen: usize) -> u64 {
    (ENTRY_HEADER_WORDS * 8 + klen.div_ceil(8) * 8 + vlen.div_ceil(8) * 8) as u64
}

/// The smallest [`Config::size`] a configuration's shards and
/// `max_value` allow: every shard's log holds a few of the largest entries.
pub fn min_size(cfg: &Config) -> u64 {
    let max_entry = entry_bytes(MAX_KEY, cfg.max_value as usize);
    (max_entry * MIN_ENTRIES_PER_SHARD)
        .next_power_of_two()
        .saturating_mul(cfg.shards.into())
}

/// An error naming the [`Config`] field at fault.
fn field(field: &'static str, problem: String) -> Error {
    Error::InvalidField { field, problem }
}

/// The checks every layout makes: `host_id` and `mode`.
fn check_owner_fields(cfg: &Config) -> Result<()> {
    if cfg.host_id == 0 {
        return Err(field("host_id", "host_id must be non-zero".into()));
    }
    // Sessions are secrets: other users get nothing, not even read.
    if cfg.mode & 0o007 != 0 {
        return Err(field("mode", format!(
            "mode {:o} gives every user (\"other\") access to session secrets; use 600, or 660 with a group (the workers' group) to share the segment with the workers of that group",
            cfg.mode
        )));
    }
    if cfg.mode & !0o666 != 0 || cfg.mode & 0o600 != 0o600 {
        return Err(field("mode", format!(
            "mode {:o}: a segment is read and written by its owner and never executed; use 600, or 660 to share it with a group (whose members open it read-write)",
            cfg.mode
        )));
    }
    // Every user of a segment writes to it: a group that may only read
    // could not open it at all.
    if !matches!(cfg.mode & 0o070, 0 | 0o060) {
        return Err(field("mode", format!(
            "mode {:o} gives the group only part of read+write, which lets it open nothing (every user of a segment writes to it): use 660 to share with the group, or 600",
            cfg.mode
        )));
    }
    Ok(())
}

impl Geometry {
    /// Geometry for a new segment from user configuration, with every value
    /// checked and the error naming the field to fix.
    pub fn from_config(cfg: &Config) -> Result<Geometry> {
        if cfg.layout == Layout::Sets {
            return Geometry::sets_from_config(cfg);
        }
        if !(MIN_VALUE_LIMIT..=MAX_VALUE_LIMIT).contains(&cfg.max_value)
            || !cfg.max_value.is_power_of_two()
        {
            return Err(field("max_value", format!(
                "max_value {} must be a power of two from {MIN_VALUE_LIMIT} to {MAX_VALUE_LIMIT} bytes",
                cfg.max_value
            )));
        }
        if cfg.shards == 0 || !cfg.shards.is_power_of_two() || cfg.shards > 1024 {
            return Err(field(
                "shards",
                format!(
                    "shards {} must be a power of two from 1 to 1024",
                    cfg.shards
                ),
            ));
        }
        check_owner_fields(cfg)?;
        let shards = cfg.shards as u64;
        let log_total = pow2_floor(cfg.size);
        if log_total < min_size(cfg) || cfg.size > (1 << 40) {
            return Err(field("size", format!(
                "size {} is out of range: with {} shards and max_value {} it must be from {} to 1 TiB \
                 (use a larger size, fewer shards or a smaller max_value)",
                cfg.size,
                shards,
                cfg.max_value,
                min_size(cfg)
            )));
        }
        if cfg.typical_value < 64 || cfg.typical_value > cfg.max_value {
            return Err(field(
                "typical_value",
                format!(
                    "typical value {} must be from 64 B to max_value ({} B)",
                    cfg.typical_value, cfg.max_value
                ),
            ));
        }
        // Three index slots per entry of the typical size the log holds,
        // rounded up to a power of two (3 to 6). Full 8-word buckets then
        // evict under 0.1 % of the live sessions before the log wraps; 1.5
        // to 3 slots would evict 0.5 % to 3 %, each a full handshake
        // (docs/perf.md, "The index keeps its sessions"). More slots make
        // lookups miss the cache and TLB a little more.
        let entries = log_total / entry_bytes(TYPICAL_KEY, cfg.typical_value as usize);
        let slots = (3 * entries).max(1).next_power_of_two();
        let buckets = (slots / BUCKET_WORDS as u64).max(shards);
        Ok(Geometry::with(
            shards,
            buckets,
            log_total / shards,
            cfg.max_value as u64,
            [0, 0],
            0,
            cfg.host_id as u64,
        ))
    }

    /// [`Geometry::from_config`] for [`Layout::Sets`]: the slot is the
    /// smallest power of two that holds an entry with a 32-byte key and a
    /// `max_value` value, and `size` (rounded down to a power of two) is
    /// cut into sets of [`SET_WAYS`] slots.
    fn sets_from_config(cfg: &Config) -> Result<Geometry> {
        // Fields of the log layout would be ignored here: say so rather than
        // let a caller believe they took effect.
        for (name, value, default) in [
            ("shards", cfg.shards, crate::config::DEFAULT_SHARDS),
            (
                "typical_value",
                cfg.typical_value,
                crate::config::DEFAULT_TYPICAL_VALUE,
            ),
        ] {
            if value != default {
                return Err(field(
                    name,
                    format!(
                        "{name} {value}: a segment of the sets layout has no {name} (every \
                         session takes a slot of max_value's size); leave it at its default"
                    ),
                ));
            }
        }
        let slot = slot_bytes_for(cfg.max_value);
        if !(64..=MAX_VALUE_LIMIT).contains(&cfg.max_value) || slot > MAX_SLOT_BYTES {
            return Err(field(
                "max_value",
                format!(
                    "max_value {} does not fit the sets layout, where every session takes a slot \
                 of its size: use the size of the largest session to keep, from 64 to {} bytes \
                 (176 keeps TLS 1.3 tickets and TLS 1.2 sessions without client certificates \
                 in 256-byte slots), or layout = \"log\" for larger ones",
                    cfg.max_value,
                    MAX_SLOT_BYTES - entry_bytes(TYPICAL_KEY, 0)
                ),
            ));
        }
        check_owner_fields(cfg)?;
        let slots_total = pow2_floor(cfg.size);
        let min = slot * SET_WAYS as u64 * MIN_SETS;
        if slots_total < min || cfg.size > (1 << 40) {
            return Err(field(
                "size",
                format!(
                    "size {} is out of range: with the sets layout and {slot}-byte slots \
                 (max_value {}) it must be from {min} to 1 TiB",
                    cfg.size, cfg.max_value
                ),
            ));
        }
        let sets = slots_total / (slot * SET_WAYS as u64);
        Ok(Geometry::with(
            1,
            sets,
            slots_total,
            cfg.max_value as u64,
            [0, 0],
            0,
            cfg.host_id as u64,
        )
        .into_sets(notice_records_for(slots_total)))
    }

    /// Sets of a [`Layout::Sets`] segment (0 for the log layout).
    pub fn sets(&self) -> u64 {
        match self.layout {
            Layout::Log => 0,
            Layout::Sets => self.buckets,
        }
    }

    /// Records of each of the [`NOTICE_RINGS`] notice rings of a
    /// [`Layout::Sets`] segment (0 for the log layout).
    pub fn notice_records(&self) -> u64 {
        self.notice_records
    }

    /// Bytes of one slot of a [`Layout::Sets`] segment (0 for the log layout).
    pub fn slot_bytes(&self) -> u64 {
        match self.layout {
            Layout::Log => 0,
            Layout::Sets => self.log_bytes / (self.sets() * SET_WAYS as u64),
        }
    }

    /// Lay out the regions for the given sizes. Callers guarantee powers of two.
    pub(crate) fn with(
        shards: u64,
        buckets: u64,
        log_bytes: u64,
        max_value: u64,
        seed: [u64; 2],
        created: u64,
        host_id: u64,
    ) -> Geometry {
        let tails = PAGE;
        let stats = tails + round_up(shards * CACHE_LINE, PAGE);
        let ext = stats + (STATS_SLOTS * STATS_SLOT_WORDS * 8) as u64;
        let index = ext + EXT_BYTES;
        let logs = index + buckets * CACHE_LINE;
        let total = logs + shards * log_bytes;
        Geometry {
            layout: Layout::Log,
            shards,
            buckets,
            log_bytes,
            max_value,
            seed,
            created,
            host_id,
            total_len: total,
            tails_off: (tails / 8) as usize,
            stats_off: (stats / 8) as usize,
            ext_off: (ext / 8) as usize,
            index_off: (index / 8) as usize,
            logs_off: (logs / 8) as usize,
            notice_records: 0,
            notices_off: 0,
        }
    }

    /// This geometry as a [`Layout::Sets`] one: the notice rings follow
    /// the slots, `records` each.
    fn into_sets(mut self, records: u64) -> Geometry {
        self.layout = Layout::Sets;
        self.notice_records = records;
        self.notices_off = (self.total_len / 8) as usize;
        self.total_len += NOTICE_RINGS as u64 * notice_ring_words(self.notice_records) * 8;
        self
    }

    /// The index slots the earlier sizing rule (1.5 to 3 per entry of the
    /// typical size, the same format version) gives a segment made with
    /// `cfg`: `scsp create --if-missing` keeps such a segment, so that an
    /// upgrade does not stop a service unit. `cfg` has passed
    /// [`Geometry::from_config`].
    pub fn earlier_index_slots(cfg: &Config) -> u64 {
        let log_total = pow2_floor(cfg.size);
        let want = 2 * log_total / entry_bytes(TYPICAL_KEY, cfg.typical_value as usize);
        let down = pow2_floor(want).max(1);
        let slots = if 4 * down >= 3 * want { down } else { 2 * down };
        (slots / BUCKET_WORDS as u64).max(cfg.shards as u64) * BUCKET_WORDS as u64
    }

    /// A tiny geometry for model checking and unit tests: no minimum sizes.
    #[doc(hidden)]
    pub fn tiny(shards: u64, buckets: u64, log_bytes: u64, max_value: u64) -> Geometry {
        assert!(shards.is_power_of_two() && buckets.is_power_of_two());
        assert!(log_bytes.is_power_of_two() && buckets >= shards);
        Geometry::with(shards, buckets, log_bytes, max_value, [7, 9], 0, 1)
    }

    /// A tiny geometry of the sets layout for unit tests: `sets` sets of
    /// slots for values up to `max_value` bytes, no minimum sizes.
    #[doc(hidden)]
    pub fn tiny_sets(sets: u64, max_value: u32) -> Geometry {
        // A few records per ring; none in loom's models, which would track
        // every word as an atomic (the notice model asks for its own).
        Geometry::tiny_sets_with_notices(sets, max_value, if cfg!(loom) { 0 } else { 64 })
    }

    /// [`Geometry::tiny_sets`] with `records` records per notice ring.
    #[doc(hidden)]
    pub fn tiny_sets_with_notices(sets: u64, max_value: u32, records: u64) -> Geometry {
        assert!(sets.is_power_of_two() && sets >= 2, "a key needs two sets");
        let slot = slot_bytes_for(max_value);
        Geometry::with(
            1,
            sets,
            sets * SET_WAYS as u64 * slot,
            max_value.into(),
            [7, 9],
            0,
            1,
        )
        .into_sets(records)
    }

    /// Words of the header as the creator writes them (state excluded).
    pub(crate) fn header_words(&self) -> [u64; H_CHECKSUM + 1] {
        let mut w = [0u64; H_CHECKSUM + 1];
        w[H_MAGIC] = match self.layout {
            Layout::Log => MAGIC,
            Layout::Sets => MAGIC_SETS,
        };
        w[H_VERSION] = FORMAT_VERSION;
        w[H_FINGERPRINT] = fingerprint_of(self.layout);
        w[H_SHARDS] = self.shards;
        w[H_BUCKETS] = self.buckets;
        w[H_LOG_BYTES] = self.log_bytes;
        w[H_MAX_KEY] = MAX_KEY as u64;
        w[H_MAX_VALUE] = self.max_value;
        w[H_SEED0] = self.seed[0];
        w[H_SEED1] = self.seed[1];
        w[H_CREATED] = self.created;
        w[H_HOST_ID] = self.host_id;
        w[H_TOTAL_LEN] = self.total_len;
        w[H_CHECKSUM] = header_checksum(&w[..H_CHECKSUM]);
        w
    }

    /// Validate header words read from a file of `file_len` bytes, field by
    /// field, and return the geometry they describe.
    #[cfg_attr(loom, allow(dead_code))] // only file segments have a header to read
    pub(crate) fn from_header(path: &Path, w: &[u64], file_len: u64) -> Result<Geometry> {
        let corrupt = |what: String| Error::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let layout = match w[H_MAGIC] {
            MAGIC => Layout::Log,
            MAGIC_SETS => Layout::Sets,
            _ => return Err(Error::NotASegment(path.to_path_buf())),
        };
        if w[H_VERSION] != FORMAT_VERSION {
            return Err(Error::Version {
                path: path.to_path_buf(),
                found: w[H_VERSION],
                expected: FORMAT_VERSION,
            });
        }
        if w[H_FINGERPRINT] != fingerprint_of(layout) {
            return Err(Error::Layout(path.to_path_buf()));
        }
        if w[H_STATE] != STATE_READY {
            return Err(Error::NotReady(path.to_path_buf()));
        }
        if w[H_CHECKSUM] != header_checksum(&w[..H_CHECKSUM]) {
            return Err(corrupt("header checksum mismatch".into()));
        }
        let (shards, buckets, log_bytes) = (w[H_SHARDS], w[H_BUCKETS], w[H_LOG_BYTES]);
        let max_value = w[H_MAX_VALUE];
        if !shards.is_power_of_two() || shards > 1024 {
            return Err(corrupt(format!(
                "shards {shards} is not a power of two <= 1024"
            )));
        }
        if !buckets.is_power_of_two() || buckets < shards || buckets > 1 << 32 {
            return Err(corrupt(format!("buckets {buckets} out of range")));
        }
        if w[H_MAX_KEY] != MAX_KEY as u64 {
            return Err(corrupt(format!(
                "max_key {} is not {MAX_KEY}",
                w[H_MAX_KEY]
            )));
        }
        match layout {
            Layout::Log => {
                if !max_value.is_power_of_two()
                    || !(MIN_VALUE_LIMIT as u64..=MAX_VALUE_LIMIT as u64).contains(&max_value)
                {
                    return Err(corrupt(format!("max_value {max_value} out of range")));
                }
                let min_log = entry_bytes(MAX_KEY, max_value as usize) * MIN_ENTRIES_PER_SHARD;
                if !log_bytes.is_power_of_two() || log_bytes < min_log || log_bytes > 1 << 40 {
                    return Err(corrupt(format!("log_bytes {log_bytes} out of range")));
                }
            }
            Layout::Sets => {
                let sets = buckets;
                if shards != 1 || sets < MIN_SETS {
                    return Err(corrupt(format!(
                        "{shards} shards and {buckets} tag lines do not make a sets layout"
                    )));
                }
                if !(64..=MAX_VALUE_LIMIT as u64).contains(&max_value) {
                    return Err(corrupt(format!("max_value {max_value} out of range")));
                }
                let slot = slot_bytes_for(max_value as u32);
                if slot > MAX_SLOT_BYTES || log_bytes != slot * sets * SET_WAYS as u64 {
                    return Err(corrupt(format!(
                        "{log_bytes} bytes of slots are not {sets} sets of {slot}-byte slots"
                    )));
                }
            }
        }
        if w[H_HOST_ID] == 0 || w[H_HOST_ID] > u32::MAX as u64 {
            return Err(corrupt(format!("host_id {} out of range", w[H_HOST_ID])));
        }
        let mut g = Geometry::with(
            shards,
            buckets,
            log_bytes,
            max_value,
            [w[H_SEED0], w[H_SEED1]],
            w[H_CREATED],
            w[H_HOST_ID],
        );
        if layout == Layout::Sets {
            g = g.into_sets(notice_records_for(log_bytes));
        }
        if g.total_len != w[H_TOTAL_LEN] || g.total_len != file_len {
            return Err(corrupt(format!(
                "length mismatch: geometry needs {} bytes, header says {}, file has {}",
                g.total_len, w[H_TOTAL_LEN], file_len
            )));
        }
        Ok(g)
    }

    /// Total words of the segment.
    pub(crate) fn total_words(&self) -> usize {
        (self.total_len / 8) as usize
    }
}

fn header_checksum(words: &[u64]) -> u64 {
    let mut bytes = Vec::with_capacity(words.len() * 8);
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_lays_out_regions_in_order_and_aligned() {
        let g = Geometry::from_config(&Config::default()).unwrap();
        assert_eq!(g.shards, 16);
        assert_eq!(g.log_bytes * g.shards, 64 << 20);
        assert_eq!(g.buckets * 64, 8 << 20);
        assert!(g.tails_off < g.stats_off && g.stats_off < g.ext_off);
        assert!(g.ext_off < g.index_off && g.index_off < g.logs_off);
        assert_eq!((g.index_off * 8) % 64, 0);
        assert_eq!(g.total_len, (g.logs_off * 8) as u64 + (64 << 20));
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = |c: Config| Geometry::from_config(&c).unwrap_err().to_string();
        assert!(bad(Config {
            shards: 3,
            ..Config::default()
        })
        .contains("shards"));
        assert!(bad(Config {
            max_value: 1000,
            ..Config::default()
        })
        .contains("max_value"));
        assert!(bad(Config {
            size: 4096,
            ..Config::default()
        })
        .contains("size"));
        assert!(bad(Config {
            mode: 0o606,
            ..Config::default()
        })
        .contains("mode"));
        assert!(bad(Config {
            host_id: 0,
            ..Config::default()
        })
        .contains("host_id"));
        for typical_value in [63, 8193] {
            assert!(bad(Config {
                typical_value,
                ..Config::default()
            })
            .contains("typical value"));
        }
    }

    #[test]
    fn the_index_is_sized_for_the_typical_value() {
        let slots = |typical_value| {
            let c = Config {
                typical_value,
                ..Config::default()
            };
            Geometry::from_config(&c).unwrap().buckets * BUCKET_WORDS as u64
        };
        let log = 64u64 << 20;
        // 256-byte entries: four slots each, one per 64 B of log.
        assert_eq!(slots(176), log / 64);
        // 150 B values (232-byte entries): 3.6 slots each.
        assert_eq!(slots(150), log / 64);
        // 250 B values (336-byte entries): 2.6 would be too few, so 5.2.
        assert_eq!(slots(250), log / 64);
        // 300 B values (384-byte entries): exactly 3.
        assert_eq!(slots(300), log / 128);
        // 1 KiB values (1104-byte entries): 4.3 slots each.
        assert_eq!(slots(1024), log / 256);
        assert_eq!(slots(8192), log / 2048);
        // The earlier sizing rule (1.5 to 3 per entry), which `scsp create
        // --if-missing` accepts.
        let earlier = |typical_value| {
            Geometry::earlier_index_slots(&Config {
                typical_value,
                ..Config::default()
            })
        };
        for (typical, slots_per_log_byte) in [
            (176, 128),
            (150, 128),
            (250, 128),
            (300, 256),
            (1024, 512),
            (8192, 4096),
        ] {
            assert_eq!(earlier(typical), log / slots_per_log_byte, "{typical}");
        }
    }

    #[test]
    fn the_largest_indexes_pass_the_header_checks() {
        // 1 TiB of log in 64-byte values is the most buckets a header may
        // claim (2^32); every shard count and largest value must open.
        for shards in [1, 1024] {
            for max_value in [256, 64 << 10] {
                let g = Geometry::from_config(&Config {
                    size: 1 << 40,
                    shards,
                    max_value,
                    typical_value: 64,
                    ..Config::default()
                })
                .unwrap();
                assert_eq!(g.buckets, 1 << 32);
                let mut w = [0u64; 16];
                w[..=H_CHECKSUM].copy_from_slice(&g.header_words());
                w[H_STATE] = STATE_READY;
                let read = Geometry::from_header(Path::new("x"), &w, g.total_len);
                assert_eq!(read.unwrap(), g, "{shards} shards, max_value {max_value}");
            }
        }
    }

    #[test]
    fn header_round_trips_and_detects_each_changed_field() {
        let mut g = Geometry::from_config(&Config::default()).unwrap();
        g.seed = [1, 2];
        let mut w = [0u64; 16];
        w[..=H_CHECKSUM].copy_from_slice(&g.header_words());
        w[H_STATE] = STATE_READY;
        let p = Path::new("x");
        assert_eq!(Geometry::from_header(p, &w, g.total_len).unwrap(), g);
        for i in 0..=H_STATE {
            let mut bad = w;
            bad[i] ^= 1 << 3;
            assert!(
                Geometry::from_header(p, &bad, g.total_len).is_err(),
                "field {i}"
            );
        }
        assert!(Geometry::from_header(p, &w, g.total_len + 8).is_err());
    }
}
