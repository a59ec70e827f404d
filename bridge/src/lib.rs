//! The bridge: mirrors a host's segment with its peers' over mutually
//! authenticated TLS (DESIGN §5; wire format in docs/PROTOCOL.md).
//!
//! ```text
//!  local shard logs --LocalFeed (one per peer)--> ENTRIES --TLS--> peer applies
//!  peer's ENTRIES --validate--> Cache::put_entry / unlink_key (origin kept)
//! ```
//!
//! Full mesh with exactly one connection per pair: a bridge dials the peers
//! whose id is higher than its own and accepts those whose id is lower.
//! Threads, no async runtime: one acceptor, one thread per connection
//! (dialled or accepted), one that wakes idle connections when the local
//! logs grow (`wake`), one optional metrics thread.

mod admission;
pub mod config;
mod error;
pub mod journal;
pub mod metrics;
mod peer;
pub mod pki;

pub mod tls;
mod wake;
pub mod wire;

pub use config::{BridgeConfig, ConfigError};
pub use error::Error;

use scsp::replication::status::{self, Status};
use scsp::replication::Replica;
use scsp::Cache;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the bridge checks that its segment file is still the one it
/// mapped (an operator may remove it and create a new one).
const SEGMENT_CHECK: Duration = Duration::from_secs(1);

/// State shared by the bridge's threads.
pub(crate) struct Shared {
    replica: Replica,
    /// The shared ticket-key ring, replicated like sessions.
    keyring: Option<scsp::keyring::KeyRing>,
    cfg: BridgeConfig,
    tls: tls::TlsConfigs,
    status: Status,
    stop: Arc<AtomicBool>,
    /// Per peer: bumped by each new verified connection; an older one sees
    /// the change and ends.
    generation: Vec<AtomicU64>,
    connected_once: Vec<AtomicBool>,
    /// Per peer: where its last connection's feed stopped reading.
    saved: Vec<Mutex<Option<Vec<u64>>>>,
    /// Per peer: how the watcher wakes its idle connection.
    wakers: Vec<wake::Waker>,
    handshakes: Arc<admission::Handshakes>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Log one line. Callers never pass keys, values or key material.
    fn log(&self, msg: &str) {
        eprintln!("scsp bridge[host {}]: {msg}", self.cfg.host_id);
    }

    fn saved_positions(&self, idx: usize) -> Option<Vec<u64>> {
        self.saved[idx].lock().ok().and_then(|g| g.clone())
    }

    fn save_positions(&self, idx: usize, pos: Vec<u64>) {
        if let Ok(mut g) = self.saved[idx].lock() {
            // Keep the furthest reader: two connections may overlap briefly.
            let keep = g
                .as_ref()
                .is_some_and(|old| old.iter().sum::<u64>() > pos.iter().sum::<u64>());
            if !keep {
                *g = Some(pos);
            }
        }
    }

    fn sleep(&self, d: Duration) {
        let end = std::time::Instant::now() + d;
        while !self.stopping() && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10).min(d));
        }
    }
}

/// Everything `run` needs, checked: the configuration, the open segment
/// (whose host id matches) and the TLS configurations.
pub struct Checked {
    cfg: BridgeConfig,
    cache: Arc<Cache>,
    tls: tls::TlsConfigs,
}

impl Checked {
    /// The validated configuration.
    pub fn config(&self) -> &BridgeConfig {
        &self.cfg
    }
}

/// Open the segment and load certificates; errors name the field to fix.
pub fn check(cfg: BridgeConfig) -> Result<Checked, Error> {
    let access = scsp::segment::Access {
        allow_foreign_owner: cfg.allow_foreign_owner,
        owner: cfg.segment_owner,
        group: cfg.segment_group,
    };
    let cache = Cache::open_with(&cfg.segment, access).map_err(|source| Error::Segment {
        path: cfg.segment.clone(),
        source,
    })?;
    if cache.host_id() != cfg.host_id {
        return Err(Error::Field {
            field: "host_id",
            problem: format!(
                "{} does not match the segment's host id {} ({}); create the segment with \
                 --host-id {} or fix host_id",
                cfg.host_id,
                cache.host_id(),
                cfg.segment.display(),
                cfg.host_id
            ),
        });
    }
    let tls = tls::load(&cfg)?;
    Ok(Checked {
        cfg,
        cache: Arc::new(cache),
        tls,
    })
}

/// Run the bridge until `stop` becomes true. `ready` is called once the
/// listener is bound (with its address), before any peer is contacted.
pub fn run(
    c: Checked,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), Error> {
    let ids: Vec<u32> = c.cfg.peers.iter().map(|p| p.id).collect();
    let status = Status::claim(c.cache.clone(), &ids)
        .map_err(|other| Error::AlreadyRunning { pid: other.pid })?;
    let bind = |field, addr| {
        let l = TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l));
        l.map_err(|source| Error::Bind {
            field,
            addr,
            source,
        })
    };
    let listener = bind("listen", c.cfg.listen)?;
    let metrics = match c.cfg.metrics {
        Some(a) => Some(bind("metrics", a)?),
        None => None,
    };
    let n = c.cfg.peers.len();
    let keyring =
        scsp::keyring::KeyRing::new(c.cache.clone(), Default::default()).map_err(|source| {
            Error::Segment {
                path: c.cfg.segment.clone(),
                source,
            }
        })?;
    let sh = Arc::new(Shared {
        keyring: Some(keyring),
        replica: Replica::new(c.cache),
        tls: c.tls,
        status,
        stop,
        generation: (0..n).map(|_| AtomicU64::new(0)).collect(),
        connected_once: (0..n).map(|_| AtomicBool::new(false)).collect(),
        saved: (0..n).map(|_| Mutex::new(None)).collect(),
        wakers: (0..n)
            .map(|_| wake::Waker::new())
            .collect::<Result<_, _>>()?,
        handshakes: Arc::default(),
        cfg: c.cfg,
    });
    if let Ok(a) = listener.local_addr() {
        ready(a);
    }
    sh.log(&format!(
        "listening on {}, cluster {:?}, {} peers",
        sh.cfg.listen, sh.cfg.cluster, n
    ));
    let mut threads = Vec::new();
    {
        let s = sh.clone();
        threads.push(std::thread::spawn(move || {
            wake::watch(&s.replica, &s.wakers, &s.stop)
        }));
    }
    for (i, p) in sh.cfg.peers.iter().enumerate() {
        if p.id > sh.cfg.host_id {
            let s = sh.clone();
            threads.push(std::thread::spawn(move || peer::dial_loop(s, i)));
        }
    }
    if let Some(l) = metrics {
        let s = sh.clone();
        std::thread::spawn(move || serve_metrics(s, l));
    }
    let mut checked = std::time::Instant::now();
    let mut replaced = false;
    let mut accepted = Vec::new();
    let mut dropped = Dropped::default();
    while !sh.stopping() {
        sh.status.alive(scsp::clock::now_millis());
        if checked.elapsed() >= SEGMENT_CHECK {
            checked = std::time::Instant::now();
            if sh.replica.cache().segment().replaced() {
                replaced = true;
                sh.log(&format!(
                    "segment {} was removed or replaced; stopping",
                    sh.cfg.segment.display()
                ));
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        match listener.accept() {
            Ok((sock, from)) => {
                let Some(place) = sh.handshakes.enter(from.ip()) else {
                    dropped.note(&sh, from);
                    continue;
                };
                let s = sh.clone();
                accepted.retain(|t: &std::thread::JoinHandle<()>| !t.is_finished());
                accepted.push(std::thread::spawn(move || peer::accepted(s, sock, place)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                sh.log(&format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // Accepted connections too: each says CLOSE Shutdown to its peer.
    for t in threads.into_iter().chain(accepted) {
        let _ = t.join();
    }
    sh.status.stopped();
    sh.log("stopped");
    if replaced {
        // An error, so a supervisor (systemd's Restart=on-failure) starts a
        // bridge on the new segment; mirroring the old one would be silent.
        return Err(Error::SegmentReplaced(sh.cfg.segment.clone()));
    }
    Ok(())
}

/// Connections turned away for want of a handshake place, logged at most
/// every 10 s (a flood must not flood the log too).
#[derive(Default)]
struct Dropped {
    count: u64,
    logged: Option<std::time::Instant>,
}

impl Dropped {
    fn note(&mut self, sh: &Shared, from: std::net::SocketAddr) {
        self.count += 1;
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            sh.log(&format!(
                "turned away {} connection(s), the last from {from}: too many TLS handshakes in \
                 progress (at most {} at once, {} per source address)",
                self.count,
                admission::MAX_HANDSHAKES,
                admission::MAX_PER_SOURCE
            ));
            self.count = 0;
            self.logged = Some(std::time::Instant::now());
        }
    }
}

/// A minimal HTTP/1.0 responder: any request gets the metrics text.
fn serve_metrics(sh: Arc<Shared>, l: TcpListener) {
    use std::io::{Read, Write};
    let _ = l.set_nonblocking(true);
    while !sh.stopping() {
        match l.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req);
                // No occupancy: it walks the whole index (about 2 s of CPU for
                // a full 1 GiB segment), too much to repeat for every scrape.
                let body = crate::metrics::render(&crate::metrics::Snapshot {
                    segment: &sh.cfg.segment,
                    stats: &sh.replica.cache().stats(),
                    log_age_secs: sh.replica.cache().log_age_secs(),
                    occupancy: None,
                    bridge: status::read(sh.replica.cache()).as_ref(),
                    now_unix_ms: scsp::clock::now_millis(),
                });
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
