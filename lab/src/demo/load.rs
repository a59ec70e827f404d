//! The client side of the demo: returning visitors behind a load balancer.
//!
//! `clients` visitors each connect `reconnects` times. Every connection is
//! sent to one of the pool's worker addresses by the balancer (round-robin
//! over all workers of all hosts, or random). A visitor keeps its own rustls
//! client session cache, like a browser, and offers its latest session on
//! every return visit. All connections use one server name, as behind a
//! real balancer.
//!
//! Connections run in rounds: round `r` is every visitor's `r`-th visit, in
//! a shuffled order (arrivals interleave as in real traffic), served by a few
//! client threads. A visitor's next visit starts only after its previous one
//! finished, so it can offer the session it just got.

use crate::Result;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the balancer picks a worker for each connection.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Next worker in turn, over all workers of all hosts.
    RoundRobin,
    /// A uniformly random worker.
    Random,
}

/// The name every connection asks for (the pool's public name).
pub const SERVER_NAME: &str = "pool.scsp.test";

/// What load to drive.
pub struct LoadSpec {
    pub clients: usize,
    pub reconnects: usize,
    pub balance: Balance,
    pub threads: usize,
    pub versions: &'static [&'static rustls::SupportedProtocolVersion],
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    pub seed: u64,
    /// Send an HTTP request before reading the answer (`scsp serve` waits
    /// for one; the C example server answers straight after the handshake).
    pub send_request: bool,
}

/// What the clients saw.
#[derive(Default, Debug)]
pub struct LoadResult {
    pub connections: u64,
    /// Connections of a visitor that had been here before.
    pub returning: u64,
    /// Returning connections that resumed (abbreviated handshake).
    pub resumed: u64,
    /// Returning connections the balancer sent to another host than the
    /// visitor's previous visit, and how many of them resumed: what only a
    /// cache shared between hosts can resume.
    pub other_host: u64,
    pub other_host_resumed: u64,
    /// Connections that paid a full handshake.
    pub full: u64,
    pub failed: u64,
    pub wall: Duration,
    /// Time from TCP connect to handshake complete, per connection.
    pub latencies: Vec<Duration>,
    /// First error seen, for the operator.
    pub first_error: Option<String>,
}

/// A small deterministic PRNG (xorshift64*), so runs are repeatable.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn client_config(spec: &LoadSpec) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(spec.ca_der.clone())
        .map_err(|e| format!("demo CA certificate rejected: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(spec.versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::in_memory_sessions(8);
    Ok(Arc::new(cfg))
}

/// One visit: connect, handshake, GET, read the answer.
/// Returns (resumed, time to handshake complete).
fn visit(
    cfg: &Arc<ClientConfig>,
    addr: SocketAddr,
    send_request: bool,
) -> Result<(bool, Duration)> {
    let start = Instant::now();
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|_| sock.set_nodelay(true))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(SERVER_NAME).map_err(|e| e.to_string())?;
    let mut conn = ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
    }
    let latency = start.elapsed();
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    if send_request {
        tls.write_all(b"GET / HTTP/1.1\r\nHost: pool.scsp.test\r\nConnection: close\r\n\r\n")
            .map_err(|e| format!("request to {addr}: {e}"))?;
    }
    let mut body = Vec::new();
    // The response is read to the end so the session tickets sent after
    // the handshake are stored before the next visit.
    match tls.read_to_end(&mut body) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(format!("response from {addr}: {e}").into()),
    }
    if !body.windows(6).any(|w| w == b"worker") {
        let start = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!("{addr} answered without a worker line: {start:?}").into());
    }
    Ok((resumed, latency))
}

/// One visit to `target` by a visitor of its own, outside the measured
/// load (e.g. so that a server makes its ticket key).
pub fn prime(spec: &LoadSpec, target: SocketAddr) -> Result<()> {
    visit(&client_config(spec)?, target, spec.send_request).map(|_| ())
}

/// Drive the load against `targets`. `tick` is called once per connection.
pub fn run(
    spec: &LoadSpec,
    targets: &[SocketAddr],
    stop: &AtomicBool,
    tick: &(dyn Fn() + Sync),
) -> Result<LoadResult> {
    if targets.is_empty() {
        return Err("no worker addresses to connect to".into());
    }
    let configs: Vec<Arc<ClientConfig>> = (0..spec.clients)
        .map(|_| client_config(spec))
        .collect::<Result<_, _>>()?;
    let rr = AtomicUsize::new(0);
    let (resumed, full, failed) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let returning = AtomicU64::new(0);
    let (other_host, other_host_resumed) = (AtomicU64::new(0), AtomicU64::new(0));
    // The host (address) of each visitor's last successful visit.
    let last_host: Vec<Mutex<Option<std::net::IpAddr>>> =
        (0..spec.clients).map(|_| Mutex::new(None)).collect();
    let latencies = Mutex::new(Vec::with_capacity(spec.clients * spec.reconnects));
    let first_error = Mutex::new(None);
    let mut rng = Rng::new(spec.seed);
    let started = Instant::now();
    for round in 0..spec.reconnects {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let mut order: Vec<usize> = (0..spec.clients).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let picks: Vec<SocketAddr> = order
            .iter()
            .map(|_| match spec.balance {
                Balance::RoundRobin => targets[rr.fetch_add(1, Ordering::Relaxed) % targets.len()],
                Balance::Random => targets[rng.below(targets.len())],
            })
            .collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..spec.threads.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= order.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match visit(&configs[order[i]], picks[i], spec.send_request) {
                        Ok((was_resumed, lat)) => {
                            if round > 0 {
                                returning.fetch_add(1, Ordering::Relaxed);
                            }
                            let host = picks[i].ip();
                            if let Ok(mut last) = last_host[order[i]].lock() {
                                if last.is_some_and(|h| h != host) {
                                    other_host.fetch_add(1, Ordering::Relaxed);
                                    if was_resumed {
                                        other_host_resumed.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                *last = Some(host);
                            }
                            if was_resumed {
                                resumed.fetch_add(1, Ordering::Relaxed);
                            } else {
                                full.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Ok(mut l) = latencies.lock() {
                                l.push(lat);
                            }
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert(e.to_string());
                            }
                        }
                    }
                    tick();
                });
            }
        });
    }
    Ok(LoadResult {
        connections: resumed.load(Ordering::Relaxed) + full.load(Ordering::Relaxed),
        returning: returning.load(Ordering::Relaxed),
        resumed: resumed.load(Ordering::Relaxed),
        other_host: other_host.load(Ordering::Relaxed),
        other_host_resumed: other_host_resumed.load(Ordering::Relaxed),
        full: full.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        wall: started.elapsed(),
        latencies: latencies.into_inner().unwrap_or_default(),
        first_error: first_error.into_inner().unwrap_or_default(),
    })
}
