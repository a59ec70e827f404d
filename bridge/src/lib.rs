//! The bridge: mirrors a host's segment with its peers' over mutually
//! authenticated TLS (docs/architecture.md, "Replication"; wire format in
//! docs/PROTOCOL.md).
//!
//! ```text
//!  local shard logs or notice rings --LocalFeed (one per peer)--> ENTRIES --TLS--> peer applies
//!  peer's ENTRIES --validate--> Cache::put_entry / unlink_key (origin kept)
//! ```
//!
//! Full mesh with exactly one connection per pair: a bridge dials the peers
//! whose id is higher than its own and accepts those whose id is lower.
//! Threads, no async runtime: one acceptor, one thread per connection
//! (dialled or accepted), one that wakes idle connections when the local
//! logs grow (`wake`), one optional metrics thread.

mod admission;
mod budget;
pub mod config;
mod error;
pub mod journal;
pub mod metrics;
pub mod notice_feed;
mod peer;
pub mod pki;

pub mod tls;
mod wake;
pub mod wire;

pub use config::{BridgeConfig, ConfigError};
pub use error::Error;
pub use wake::HOT;

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
/// How often retired ticket keys are looked for and wiped.
const KEYS_SWEEP: Duration = Duration::from_millis(100);

/// State shared by the bridge's threads.
pub(crate) struct Shared {
    replica: Replica,
    /// The shared ticket-key ring, replicated like sessions, once a server
    /// has used it (and so stored its rotation policy in the segment).
    keyring: std::sync::OnceLock<scsp::keyring::KeyRing>,
    /// Per peer: the keys it sent before this host's ring existed (no
    /// server here had used ticket keys yet), imported once it does. Its
    /// lock is held through every import of that peer's keys: each set
    /// replaces the one before (keys it leaves out are dropped), so two must
    /// never be applied out of order.
    early_keys: Vec<Mutex<Vec<scsp::keyring::TicketKey>>>,
    /// Per peer: what it may cost this host (log share, rate).
    budgets: Vec<Mutex<budget::Budget>>,
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
    /// Connections that failed before their handshake completed, logged within a limit.
    unproven_failures: Mutex<UnprovenFailures>,
}

impl Shared {
    /// The key ring, attached with the servers' rotation policy; `None`
    /// while no server has used ticket keys on this segment.
    fn keyring(&self) -> Option<&scsp::keyring::KeyRing> {
        if let Some(r) = self.keyring.get() {
            return Some(r);
        }
        match scsp::keyring::KeyRing::attach(self.replica.cache().clone()) {
            Ok(Some(r)) => Some(self.keyring.get_or_init(|| r)),
            Ok(None) => None,
            Err(e) => {
                self.log(&format!("ticket keys: {e}"));
                None
            }
        }
    }

    /// The whole key set peer `idx` sent on its connection `generation`:
    /// imported now, or kept until this host's ring exists (a peer sends its
    /// keys only when they change). A set from a connection already replaced
    /// by a newer one is older than what the newer one brings, and ignored.
    fn import_keys(&self, idx: usize, generation: u64, keys: Vec<scsp::keyring::TicketKey>) {
        let mut early = self.early_keys[idx]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.generation[idx].load(Ordering::Acquire) != generation {
            return;
        }
        match self.keyring() {
            Some(ring) => {
                early.clear();
                self.apply_keys(ring, idx, &keys);
            }
            None => *early = keys,
        }
    }

    fn import_early_keys(&self, ring: &scsp::keyring::KeyRing) {
        for (idx, early) in self.early_keys.iter().enumerate() {
            let mut early = early.lock().unwrap_or_else(|e| e.into_inner());
            if !early.is_empty() {
                self.apply_keys(ring, idx, &early);
                early.clear();
            }
        }
    }

    /// Import peer `idx`'s key set; count what was refused, and say when
    /// keys of its origin were dropped (it lost them: its segment was
    /// replaced or emptied), a change of keys worth a line.
    fn apply_keys(
        &self,
        ring: &scsp::keyring::KeyRing,
        idx: usize,
        keys: &[scsp::keyring::TicketKey],
    ) {
        let id = self.cfg.peers[idx].id;
        let got = ring.import(id, keys);
        self.status
            .add(idx, status::Field::KeysRefused, got.refused as u64);
        if got.removed > 0 {
            self.log(&format!(
                "peer {id} no longer has {} of its ticket keys held here (its segment was \
                 replaced or emptied): wiped them; tickets sealed with them give a full handshake",
                got.removed
            ));
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Log one line. Callers never pass keys, values or key material.
    fn log(&self, msg: &str) {
        eprintln!("scsp bridge[host {}]: {msg}", self.cfg.host_id);
    }

    /// Log why a connection failed before its TLS handshake completed (from
    /// any address, a configured peer's too: something else on its host can
    /// use it): the first [`UNPROVEN_LINES`] of each [`QUIET_WINDOW`] in
    /// full, the rest counted and summed up when the window ends. Anyone
    /// who reaches the port can make such failures, thousands a second.
    fn log_unproven(&self, msg: String) {
        let mut f = self
            .unproven_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.end_quiet_window(&mut f);
        f.since.get_or_insert_with(std::time::Instant::now);
        if f.logged < UNPROVEN_LINES {
            f.logged += 1;
            self.log(&msg);
        } else {
            f.unlogged += 1;
            f.last = msg;
        }
    }

    /// Sum up the unproven failures left unlogged once their window is
    /// over (the accept loop asks, so the summary comes even if the flood
    /// has stopped).
    fn sum_up_unproven_failures(&self) {
        let mut f = self
            .unproven_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.end_quiet_window(&mut f);
    }

    fn end_quiet_window(&self, f: &mut UnprovenFailures) {
        let Some(since) = f.since else { return };
        if since.elapsed() < QUIET_WINDOW {
            return;
        }
        if f.unlogged > 0 {
            self.log(&format!(
                "{} more connection(s) failed before their handshake completed in the last {}s (only the first \
                 {UNPROVEN_LINES} are logged one by one); the last: {}",
                f.unlogged,
                since.elapsed().as_secs(),
                f.last
            ));
        }
        *f = UnprovenFailures::default();
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
    replica: Replica,
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
    let cache = Cache::open_with(&cfg.segment, access).map_err(|source| match &source {
        // The bridge never creates the segment: say how to.
        scsp::Error::Io { source: e, .. } if e.kind() == std::io::ErrorKind::NotFound => {
            Error::Field {
                field: "segment",
                problem: format!(
                    "{} does not exist; the bridge mirrors a segment, never makes one: create \
                     it first with `scsp create {} --size 256MiB --host-id {}` (before the \
                     servers), or fix the path",
                    cfg.segment.display(),
                    cfg.segment.display(),
                    cfg.host_id
                ),
            }
        }
        _ => Error::Segment {
            path: cfg.segment.clone(),
            source,
        },
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
    let replica = Replica::new(Arc::new(cache));
    let tls = tls::load(&cfg)?;
    Ok(Checked { cfg, replica, tls })
}

/// Run the bridge until `stop` becomes true. `ready` is called once the
/// listener is bound (with its address), before any peer is contacted.
pub fn run(
    c: Checked,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), Error> {
    let ids: Vec<u32> = c.cfg.peers.iter().map(|p| p.id).collect();
    let heartbeat_ms = c.cfg.heartbeat.as_millis() as u64;
    let status = Status::claim(c.replica.cache().clone(), &ids, heartbeat_ms)
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
    let sh = Arc::new(Shared {
        keyring: std::sync::OnceLock::new(),
        early_keys: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        budgets: (0..n)
            .map(|_| Mutex::new(budget::Budget::new(c.cfg.peer_budget)))
            .collect(),
        replica: c.replica,
        tls: c.tls,
        status,
        stop,
        generation: (0..n).map(|_| AtomicU64::new(0)).collect(),
        connected_once: (0..n).map(|_| AtomicBool::new(false)).collect(),
        saved: (0..n).map(|_| Mutex::new(None)).collect(),
        wakers: (0..n)
            .map(|_| wake::Waker::new())
            .collect::<Result<_, _>>()?,
        handshakes: Arc::new(admission::Handshakes::new(
            c.cfg.peers.iter().map(|p| p.addr.ip()),
        )),
        unproven_failures: Mutex::default(),
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
    let mut swept = std::time::Instant::now();
    let mut replaced = false;
    let mut accepted = Vec::new();
    let mut dropped = Dropped::default();
    while !sh.stopping() {
        sh.status.alive(scsp::clock::now_millis());
        // Retired ticket keys are wiped as they retire, not at the next
        // ticket a server handles.
        if swept.elapsed() >= KEYS_SWEEP {
            swept = std::time::Instant::now();
            if let Some(r) = sh.keyring() {
                r.sweep();
                sh.import_early_keys(r);
            }
        }
        sh.sum_up_unproven_failures();
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
                let Some(place) = sh.handshakes.enter(from.ip(), &sock) else {
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

/// Unproven failures logged one by one in each
/// [`QUIET_WINDOW`].
const UNPROVEN_LINES: u32 = 5;
/// The period over which unproven failures are limited and summed up.
const QUIET_WINDOW: Duration = Duration::from_secs(10);

/// Connections that failed before their handshake completed, in the current [`QUIET_WINDOW`].
#[derive(Default)]
struct UnprovenFailures {
    /// When the window began: at its first failure.
    since: Option<std::time::Instant>,
    logged: u32,
    unlogged: u64,
    /// The last line left unlogged, for the summary.
    last: String,
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
                 progress (strangers: at most {} at once, {} per address; a configured peer's \
                 address: {})",
                self.count,
                admission::STRANGER_PLACES,
                admission::PER_STRANGER,
                admission::PEER_PLACES
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
