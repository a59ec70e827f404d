//! Errors from creating, opening and validating a segment.
//!
//! Every variant says what is wrong and, where there is one, what to do about it.
//! Data-path operations (`get`/`put`/`take`) never return these: a damaged
//! entry is a miss, a refused value is a [`crate::Stored`] outcome.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong while creating or opening a segment.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call on the segment file failed.
    Io {
        /// The file involved.
        path: PathBuf,
        /// What we were doing, e.g. "open" or "mmap".
        op: &'static str,
        /// The OS error (errno is kept).
        source: io::Error,
    },
    /// `create` found a file already at the path.
    AlreadyExists(PathBuf),
    /// The path is a symbolic link; segments are opened with `O_NOFOLLOW`.
    Symlink(PathBuf),
    /// The file belongs to another user and `allow_foreign_owner` is off.
    ForeignOwner {
        /// The file involved.
        path: PathBuf,
        /// Owner of the file.
        owner: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// The file gives other users (neither its owner nor its group) some
    /// permission, read or write: anyone could steal or forge sessions.
    OpenToOthers {
        /// The file involved.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file carries a POSIX ACL (`system.posix_acl_access`) that grants
    /// more than its mode shows: named users or groups, or a mask wider than
    /// the group bits.
    Acl {
        /// The file involved.
        path: PathBuf,
        /// What the ACL grants, e.g. "gives user 1001 rw-".
        grants: String,
    },
    /// `allow_foreign_owner` is on, and the file's owner is neither root nor
    /// the configured owner ([`crate::Config::owner`]).
    UntrustedOwner {
        /// The file involved.
        path: PathBuf,
        /// Owner of the file.
        owner: u32,
        /// The configured owner, if any.
        trusted: Option<u32>,
    },
    /// `allow_foreign_owner` is on, and the file of another user does not
    /// belong to the configured group ([`crate::Config::group`]).
    ForeignGroup {
        /// The file involved.
        path: PathBuf,
        /// Group of the file.
        group: u32,
        /// The configured group, if any.
        expected: Option<u32>,
    },
    /// The file is not an scsp segment (wrong magic or too short).
    NotASegment(PathBuf),
    /// The segment was made by an incompatible format version.
    Version {
        /// The file involved.
        path: PathBuf,
        /// Version in the file.
        found: u64,
        /// Version this build speaks.
        expected: u64,
    },
    /// The segment was made by a build with a different memory layout.
    Layout(PathBuf),
    /// The header is damaged or inconsistent; the text says which field.
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// Which check failed.
        what: String,
    },
    /// The creator has not finished initialising the segment.
    NotReady(PathBuf),
    /// A configuration value is out of range; the text says which and why.
    Config(String),
    /// A field of [`crate::Config`] is out of range.
    InvalidField {
        /// The field, as named in [`crate::Config`] (`size`, `max_value`,
        /// `shards`, `host_id`, `mode`, `typical_value`).
        field: &'static str,
        /// What is wrong and what to use instead (names the field too).
        problem: String,
    },
}

impl Error {
    #[cfg_attr(loom, allow(dead_code))] // only file segments do I/O
    pub(crate) fn io(path: &std::path::Path, op: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    /// The OS error number, for errors that carry one (the C ABI keeps it).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, op, source } => {
                write!(f, "{op} {}: {source}", path.display())?;
                // A segment gets all its memory when it is created.
                match source.raw_os_error() {
                    Some(libc::ENOSPC) => write!(
                        f,
                        "; make the segment smaller, or free space on (or enlarge) the filesystem \
                         holding it, e.g. a tmpfs's size= option"
                    )?,
                    Some(libc::ENOMEM) if *op == "reserve memory for" => write!(
                        f,
                        "; the segment is larger than the memory this machine has available \
                         (MemAvailable plus free swap): make it smaller"
                    )?,
                    _ => {}
                }
                Ok(())
            }
            Error::AlreadyExists(p) => write!(
                f,
                "{} already exists; open it, or remove it first to make a new segment",
                p.display()
            ),
            Error::Symlink(p) => write!(
                f,
                "{} is a symbolic link; segments are never opened through links, give the real path",
                p.display()
            ),
            Error::ForeignOwner { path, owner, ours } => write!(
                f,
                "{} is owned by uid {owner}, not by us (uid {ours}); run as its owner, or, if sharing across users is intended, open it with allow_foreign_owner and the group it is shared through, naming its owner too unless that is root (Config::allow_foreign_owner with Config::group and Config::owner in Rust; SCSP_OPEN_ALLOW_FOREIGN_OWNER with SCSP_OPEN_SET_GROUP, opts->group and opts->owner in C; allow_foreign_owner = true with segment_group and segment_owner in a bridge config; --allow-foreign-owner with --group and --owner for scsp serve, stats and verify)",
                path.display()
            ),
            Error::OpenToOthers { path, mode } => write!(
                f,
                "{} has mode {:03o}, which lets every user (\"other\") {}, so anyone could steal or forge sessions; \
                 run chmod o-rwx on it (or recreate it with mode 600, or 660 and a group to share it with workers of that group)",
                path.display(),
                mode & 0o777,
                match (mode & 0o004 != 0, mode & 0o002 != 0) {
                    (true, true) => "read and write it",
                    (true, false) => "read it",
                    (false, true) => "write it",
                    (false, false) => "access it",
                }
            ),
            Error::Acl { path, grants } => write!(
                f,
                "{} carries a POSIX ACL that {grants}, more than its mode shows; remove the ACL \
                 with setfacl -b {} (share a segment through its group instead: mode 660 and a group)",
                path.display(),
                path.display()
            ),
            Error::UntrustedOwner {
                path,
                owner,
                trusted,
            } => {
                write!(
                    f,
                    "{} is owned by uid {owner}, which is neither root (uid 0) nor ",
                    path.display()
                )?;
                match trusted {
                    Some(t) => write!(f, "the configured owner (uid {t})")?,
                    None => write!(f, "a configured owner (none is configured)")?,
                }
                write!(
                    f,
                    "; a segment of another user is trusted only from root or from the user named as its owner: \
                     if uid {owner} is meant to own it, name it (Config::owner in Rust, opts->owner in C, \
                     --owner for scsp serve, stats and verify, segment_owner in a bridge config); otherwise \
                     remove the file and recreate it as root or as that owner"
                )
            }
            Error::ForeignGroup {
                path,
                group,
                expected,
            } => {
                write!(f, "{} belongs to gid {group}, ", path.display())?;
                match expected {
                    Some(g) => write!(f, "not to the configured group (gid {g})")?,
                    None => write!(f, "and no group is configured")?,
                }
                write!(
                    f,
                    "; a segment of another user is opened only through the group it is shared with: \
                     name that group (Config::group in Rust, SCSP_OPEN_SET_GROUP and opts->group in C, \
                     --group for scsp serve, stats and verify, segment_group in a bridge config), \
                     or give the file that group (chgrp)"
                )
            }
            Error::NotASegment(p) => write!(
                f,
                "{} is not an scsp segment (bad magic or too short); check the path",
                p.display()
            ),
            Error::Version {
                path,
                found,
                expected,
            } => write!(
                f,
                "{} has format version {found}, this build speaks version {expected}; stop its users and recreate it",
                path.display()
            ),
            Error::Layout(p) => write!(
                f,
                "{} was created by a build with a different memory layout (layout fingerprint differs); recreate it with this build",
                p.display()
            ),
            Error::Corrupt { path, what } => write!(
                f,
                "{} is corrupt: {what}; remove it and recreate it",
                path.display()
            ),
            Error::NotReady(p) => write!(
                f,
                "{} is not initialised (its creator may have died); remove it and recreate it",
                p.display()
            ),
            Error::Config(what) => write!(f, "invalid configuration: {what}"),
            Error::InvalidField { problem, .. } => write!(f, "invalid configuration: {problem}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
