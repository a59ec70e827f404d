//! Why a lab tool (serve, demo, bench) could not run.

use std::fmt;

/// What went wrong. [`Error::is_usage`] tells a bad flag (exit code 2) from
/// a failure at run time (exit code 1).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A flag asks for something impossible; the text names the flag.
    Usage(String),
    /// A segment could not be made or opened.
    Segment(scsp::Error),
    /// The bridge, or its certificates, failed.
    Bridge(scsp_bridge::Error),
    /// A system call failed (fork, waitpid, accept, bind, a pipe, ...).
    System {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A run could not go on: a host failed, a measurement broke, a
    /// handshake failed. The text says what happened.
    Failed(String),
}

impl Error {
    /// Whether the command line (or a file it names) must be fixed.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Usage(_)
            | Error::Segment(scsp::Error::Config(_) | scsp::Error::InvalidField { .. }) => true,
            Error::Bridge(e) => e.is_config(),
            _ => false,
        }
    }

    /// A failed system call, with what was being done.
    pub fn system(what: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::System {
            what: what.into(),
            source: source.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(s) | Error::Failed(s) => f.write_str(s),
            Error::Segment(e) => e.fmt(f),
            Error::Bridge(e) => e.fmt(f),
            Error::System { what, source } if what.is_empty() => source.fmt(f),
            Error::System { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Segment(e) => Some(e),
            Error::Bridge(e) => Some(e),
            Error::System { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<scsp::Error> for Error {
    fn from(e: scsp::Error) -> Self {
        Error::Segment(e)
    }
}

impl From<scsp_bridge::Error> for Error {
    fn from(e: scsp_bridge::Error) -> Self {
        Error::Bridge(e)
    }
}

impl From<scsp_bridge::pki::PkiError> for Error {
    fn from(e: scsp_bridge::pki::PkiError) -> Self {
        Error::Bridge(e.into())
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::System {
            what: String::new(),
            source,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::from(std::io::Error::from(e))
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Failed(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error::Failed(s.to_owned())
    }
}

impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Error::Failed(format!("TLS: {e}"))
    }
}

/// Shorthand for the lab's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
