//! What a segment is made with, and how it may be opened.

/// Settings for creating (and opening) a segment. Start from `Config::default()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bytes of session log (rounded down to a power of two). The file is
    /// larger by the index (1/8 of the log with the default
    /// `typical_value`) plus a few pages of header and counters.
    pub size: u64,
    /// Number of shards (power of two). More shards spread writers over more
    /// log tails; 16 suits up to a few dozen busy processes.
    pub shards: u32,
    /// Largest value accepted (power of two, 256 B to 64 KiB).
    pub max_value: u32,
    /// About how large most values are (64 B up to `max_value`). The index
    /// gets at least three slots (a power of two: 3 to 6) for every entry of
    /// this size the log holds, so that full buckets lose almost no live
    /// sessions; larger values need fewer slots, and a smaller index means
    /// fewer cache and TLB misses per lookup. The default, 176 B, suits TLS
    /// sessions (a 256-byte entry with a 32-byte session id).
    pub typical_value: u32,
    /// Origin id stamped on entries written on this host (non-zero); the bridge
    /// uses it to ship only local entries.
    pub host_id: u32,
    /// Permission bits of a new segment file. Default `0o600`: owner only.
    pub mode: u32,
    /// Group id given to a new segment file, for workers that run as another
    /// user of that group (use with `mode = 0o660`; those workers open it
    /// with `allow_foreign_owner`).
    pub group: Option<u32>,
    /// Accept a segment owned by another user (workers sharing one through
    /// a group). Off by default, so that a file planted by another user is
    /// never trusted with sessions.
    pub allow_foreign_owner: bool,
}

/// Default session-log capacity: 64 MiB, a few hundred thousand sessions.
pub const DEFAULT_SIZE: u64 = 64 << 20;
/// Default number of shards.
pub const DEFAULT_SHARDS: u32 = 16;
/// Default largest value: 8 KiB, room for any rustls or OpenSSL session.
pub const DEFAULT_MAX_VALUE: u32 = 8 << 10;
/// Default typical value: 176 B, so an entry with a 32-byte key is 256 B
/// and the index has one slot per 64 B of log.
pub const DEFAULT_TYPICAL_VALUE: u32 = 176;

impl Config {
    /// The smallest `size` these shards and `max_value` allow: every shard's
    /// log holds a few of the largest entries.
    pub fn min_size(&self) -> u64 {
        use crate::segment::layout::{entry_bytes, MAX_KEY, MIN_ENTRIES_PER_SHARD};
        let max_entry = entry_bytes(MAX_KEY, self.max_value as usize);
        (max_entry * MIN_ENTRIES_PER_SHARD)
            .next_power_of_two()
            .saturating_mul(self.shards.into())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            size: DEFAULT_SIZE,
            shards: DEFAULT_SHARDS,
            max_value: DEFAULT_MAX_VALUE,
            typical_value: DEFAULT_TYPICAL_VALUE,
            host_id: 1,
            mode: 0o600,
            group: None,
            allow_foreign_owner: false,
        }
    }
}
