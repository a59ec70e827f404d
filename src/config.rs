//! What a segment is made with, and how it may be opened.

pub use crate::segment::layout::Layout;

/// Settings for creating (and opening) a segment. Start from `Config::default()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How sessions are kept: [`Layout::Log`] (the default) or
    /// [`Layout::Sets`] (docs/operations.md, "Choosing a layout").
    pub layout: Layout,
    /// Bytes of session log (rounded down to a power of two). The file is
    /// larger by the index (1/8 of the log with the default
    /// `typical_value`) plus a few pages of header and counters.
    pub size: u64,
    /// Number of shards (power of two). More shards spread writers over more
    /// log tails; 16 suits up to a few dozen busy processes. The log layout
    /// only: leave it at its default for the sets layout.
    pub shards: u32,
    /// Largest value accepted: for the log layout a power of two, 256 B to
    /// 64 KiB; for the sets layout 64 to 8112 bytes, which sizes its slots
    /// ([`DEFAULT_SETS_MAX_VALUE`] is `scsp create --layout sets`'s default).
    pub max_value: u32,
    /// About how large most values are (64 B up to `max_value`). The index
    /// gets at least three slots (a power of two: 3 to 6) for every entry of
    /// this size the log holds, so that full buckets lose almost no live
    /// sessions; larger values need fewer slots, and a smaller index means
    /// fewer cache and TLB misses per lookup. The default, 176 B, suits TLS
    /// sessions (a 256-byte entry with a 32-byte session id). The log
    /// layout only: leave it at its default for the sets layout.
    pub typical_value: u32,
    /// Origin id stamped on entries written on this host (non-zero); the bridge
    /// uses it to ship only local entries.
    pub host_id: u32,
    /// Permission bits of a new segment file. Default `0o600`: owner only.
    pub mode: u32,
    /// The group the segment is shared through: a new segment file gets it
    /// (use with `mode = 0o660`), and with `allow_foreign_owner` a segment
    /// of another user must belong to it. Workers that run as another user
    /// of that group open the segment with `allow_foreign_owner` and this
    /// group.
    pub group: Option<u32>,
    /// With `allow_foreign_owner`: the user, besides root, that a segment of
    /// another user may be owned by. `None`: only root.
    pub owner: Option<u32>,
    /// Accept a segment owned by another user (workers sharing one through
    /// a group), if that user is root or [`Config::owner`] and the file
    /// belongs to [`Config::group`]. Off by default, so that a file planted
    /// by another user is never trusted with sessions.
    pub allow_foreign_owner: bool,
}

/// Default session-log capacity: 64 MiB, a few hundred thousand sessions.
pub const DEFAULT_SIZE: u64 = 64 << 20;
/// Default number of shards.
pub const DEFAULT_SHARDS: u32 = 16;
/// Default largest value: 8 KiB, room for any rustls or OpenSSL session.
pub const DEFAULT_MAX_VALUE: u32 = 8 << 10;
/// Default largest value of a segment of the sets layout: 432 B, a 512-byte
/// slot with a 32-byte key (every session takes a whole slot).
pub const DEFAULT_SETS_MAX_VALUE: u32 = 432;
/// Default typical value: 176 B, so an entry with a 32-byte key is 256 B
/// and the index has one slot per 64 B of log.
pub const DEFAULT_TYPICAL_VALUE: u32 = 176;

impl Default for Config {
    fn default() -> Self {
        Config {
            layout: Layout::Log,
            size: DEFAULT_SIZE,
            shards: DEFAULT_SHARDS,
            max_value: DEFAULT_MAX_VALUE,
            typical_value: DEFAULT_TYPICAL_VALUE,
            host_id: 1,
            mode: 0o600,
            group: None,
            owner: None,
            allow_foreign_owner: false,
        }
    }
}

/// A user id from a user name or a number (`--owner`, `segment_owner`).
pub fn user_id(name: &str) -> Result<u32, String> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!(
            "no user named '{name}' (give a user name or a numeric uid)"
        )),
        Err(e) => Err(format!("cannot look up user '{name}': {e}")),
    }
}

/// A group id from a group name or a number (`--group`, `segment_group`).
pub fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!(
            "no group named '{name}' (give a group name or a numeric gid)"
        )),
        Err(e) => Err(format!("cannot look up group '{name}': {e}")),
    }
}
