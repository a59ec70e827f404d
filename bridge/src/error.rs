//! Why the bridge could not start, or stopped.

use crate::config::ConfigError;
use crate::pki::PkiError;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong starting or running a bridge. Each variant says what to
/// fix; [`Error::is_config`] tells a configuration mistake (exit code 2)
/// from a failure at run time (exit code 1).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is unreadable or a field is invalid.
    Config(ConfigError),
    /// The segment named by `segment` could not be opened.
    Segment {
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: scsp::Error,
    },
    /// A configured value does not fit the segment or the certificates.
    Field {
        /// The configuration field to fix, e.g. `cert`.
        field: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
    /// Another bridge process runs on this segment.
    AlreadyRunning {
        /// Its pid.
        pid: u64,
    },
    /// A listening socket could not be set up.
    Bind {
        /// `listen` or `metrics`.
        field: &'static str,
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A system resource the bridge needs could not be had.
    System {
        /// What it was, e.g. "eventfd".
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The segment was removed or replaced while the bridge ran.
    SegmentReplaced(PathBuf),
    /// Making or writing certificates failed.
    Pki(PkiError),
}

impl Error {
    /// Whether the configuration (file, segment, certificates) needs fixing,
    /// as opposed to a failure at run time.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::Config(_) | Error::Segment { .. } | Error::Field { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Segment { source, .. } => write!(f, "`segment`: {source}"),
            Error::Field { field, problem } => write!(f, "`{field}`: {problem}"),
            Error::AlreadyRunning { pid } => write!(
                f,
                "another bridge (pid {pid}) is running on this segment; stop it first"
            ),
            Error::Bind {
                field,
                addr,
                source,
            } => write!(
                f,
                "`{field}`: cannot listen on {addr}: {source}; pick a free address or stop \
                 what holds it"
            ),
            Error::System { what, source } => write!(f, "{what}: {source}"),
            Error::SegmentReplaced(p) => write!(
                f,
                "segment {} was removed or replaced while the bridge ran; restart the bridge \
                 to mirror the new one",
                p.display()
            ),
            Error::Pki(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Segment { source, .. } => Some(source),
            Error::Bind { source, .. } | Error::System { source, .. } => Some(source),
            Error::Pki(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl From<PkiError> for Error {
    fn from(e: PkiError) -> Self {
        Error::Pki(e)
    }
}
