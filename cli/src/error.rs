//! Why a command failed, and the exit code that says so.

use std::fmt;

/// What went wrong in a command. Exit code 2 for what the operator must
/// fix in the command line or a file it names, 1 for failures at run time.
#[derive(Debug)]
pub enum Error {
    /// A flag value that parsed but asks for something impossible.
    Usage(String),
    /// A segment could not be made, opened or read.
    Segment(scsp::Error),
    /// The bridge (its configuration, certificates or run) failed.
    Bridge(scsp_bridge::Error),
    /// A lab tool (serve, demo, bench) failed.
    Lab(scsp_lab::Error),
    /// The command found something it will not change (a segment made
    /// with other flags, a file of another user); the text says what to do.
    Refused(String),
    /// A system call failed.
    System {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        let usage = match self {
            Error::Usage(_) => true,
            Error::Segment(e) => {
                matches!(e, scsp::Error::Config(_) | scsp::Error::InvalidField { .. })
            }
            Error::Bridge(e) => e.is_config(),
            Error::Lab(e) => e.is_usage(),
            Error::Refused(_) | Error::System { .. } => false,
        };
        if usage {
            2
        } else {
            1
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
            Error::Usage(s) | Error::Refused(s) => f.write_str(s),
            Error::Segment(e) => e.fmt(f),
            Error::Bridge(e) => e.fmt(f),
            Error::Lab(e) => e.fmt(f),
            Error::System { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Segment(e) => Some(e),
            Error::Bridge(e) => Some(e),
            Error::Lab(e) => Some(e),
            Error::System { source, .. } => Some(source),
            Error::Usage(_) | Error::Refused(_) => None,
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

impl From<scsp_bridge::ConfigError> for Error {
    fn from(e: scsp_bridge::ConfigError) -> Self {
        Error::Bridge(e.into())
    }
}

impl From<scsp_bridge::pki::PkiError> for Error {
    fn from(e: scsp_bridge::pki::PkiError) -> Self {
        Error::Bridge(e.into())
    }
}

impl From<scsp_lab::Error> for Error {
    fn from(e: scsp_lab::Error) -> Self {
        Error::Lab(e)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Refused(s)
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::System {
            what: "I/O".into(),
            source,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::from(std::io::Error::from(e))
    }
}

/// Writing into a `String` (the commands build their output in one before
/// printing it); it never fails in practice.
impl From<std::fmt::Error> for Error {
    fn from(e: std::fmt::Error) -> Self {
        Error::system("formatting the output", std::io::Error::other(e))
    }
}

/// Shorthand for a command's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
