//! `scsp serve`: a small prefork HTTPS server on rustls, to prove and
//! measure resumption across worker processes.
//!
//! The parent binds the listening socket(s), forks `workers` processes and
//! then only supervises: it restarts a worker that dies, and on SIGTERM or
//! SIGINT stops every worker and waits for them, so no process is left behind.
//! Each worker attaches the shared segment itself (after `fork`) and serves
//! connections one at a time, answering a tiny HTTP response that names its
//! pid and whether the handshake was resumed.

mod supervisor;
mod worker;

pub use supervisor::run;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where sessions are cached.
#[derive(Clone, Debug)]
pub enum SessionCache {
    /// Each worker keeps its own in-process rustls cache and ticket key: the
    /// "no sharing" baseline.
    Private,
    /// Every worker attaches this segment (created with `config` if absent).
    Shared {
        /// Segment file.
        segment: PathBuf,
        /// Used if the segment has to be created.
        config: scsp::Config,
    },
    /// Every worker keeps sessions in the redis server at this address: the
    /// network-cache baseline ([`crate::baselines::RedisSessionStore`]).
    /// The session cache only: it holds no ticket keys, so `tickets` must be
    /// off.
    Redis(SocketAddr),
}

/// TLS protocol versions to offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
    /// Both (the client chooses; normally 1.3).
    Both,
}

/// Everything `scsp serve` needs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Address to listen on. Port 0 picks free ports.
    pub addr: SocketAddr,
    /// Number of worker processes.
    pub workers: usize,
    /// If set, worker `i` listens on its own port (`addr.port() + i`, or a
    /// free port each when the port is 0), so a client or a load balancer
    /// can choose the worker. Otherwise all workers share one socket.
    pub port_per_worker: bool,
    /// Where sessions are cached.
    pub cache: SessionCache,
    /// Issue stateless tickets (shared ticket keys when the cache is shared).
    pub tickets: bool,
    /// Protocol versions.
    pub versions: Versions,
    /// Separates sessions of different server configurations in one segment.
    pub context_id: Vec<u8>,
}
