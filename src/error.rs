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
    /// The file is writable by every user: anyone could read or forge sessions.
    WorldWritable(PathBuf),
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
                "{} is owned by uid {owner}, not by us (uid {ours}); run as its owner, or, if sharing across users is intended, open it with allow_foreign_owner (Config::allow_foreign_owner in Rust, SCSP_OPEN_ALLOW_FOREIGN_OWNER in C, allow_foreign_owner = true in a bridge config, --allow-foreign-owner for scsp serve, stats and verify)",
                path.display()
            ),
            Error::WorldWritable(p) => write!(
                f,
                "{} is writable by every user, so anyone could forge sessions; chmod o-w it or recreate it",
                p.display()
            ),
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
