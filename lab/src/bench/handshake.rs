//! `scsp bench handshake`: full vs resumed handshakes per second against
//! `scsp serve`, for each TLS version and server key type.
//!
//! One `scsp serve --workers N --port-per-worker` per key type, on a fresh
//! segment. "Full" connections use a client with resumption disabled;
//! "resumed" connections come from a client that offers its latest session
//! and are sent round-robin to the workers, so every resumption crosses to
//! another worker process: the shared cache (or shared ticket keys) at work.
//! Client and server share this machine's cores, so the figures are for the
//! pair; compare them in one run, not across machines.

use crate::demo::certs::{self, KeyType};
use crate::demo::pool;
use crate::Result;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Debug)]
pub enum Bench {
    /// Full vs resumed TLS handshakes per second against `scsp serve`.
    Handshake(HandshakeArgs),
    /// Put on one host to readable on another through real bridges, and the bridges' CPU.
    Bridge(super::bridge::BridgeArgs),
    /// P processes on one store, scsp and the locked baseline: throughput,
    /// speed-up and latency, and what one stopped process costs the others.
    Scale(super::scale::ScaleArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Tls {
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
    All,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Keys {
    Ecdsa,
    Rsa,
    All,
}

#[derive(clap::Args, Debug)]
pub struct HandshakeArgs {
    /// TLS versions to measure.
    #[arg(long, value_enum, default_value = "all")]
    tls: Tls,
    /// Server key types to measure (RSA keys are made with the openssl tool).
    #[arg(long, value_enum, default_value = "all")]
    key_type: Keys,
    /// Connections per measurement.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    connections: u32,
    /// Worker processes of the server.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Resume with stateless tickets (shared keys) instead of the shared cache.
    #[arg(long)]
    tickets: bool,
    /// Baseline: each worker keeps a private cache and ticket key (no
    /// sharing), so resumptions that cross workers fail.
    #[arg(long)]
    private_cache: bool,
    /// Baseline: the workers keep sessions in a redis-server started on
    /// 127.0.0.1 for the run, the network-cache alternative (needs
    /// redis-server; session cache only).
    #[arg(long, conflicts_with_all = ["tickets", "private_cache"])]
    redis: bool,
}

/// Run a `bench` subcommand.
pub fn run(b: Bench) -> Result<ExitCode> {
    match b {
        Bench::Handshake(a) => handshake(a),
        Bench::Bridge(a) => super::bridge::run(a),
        Bench::Scale(a) => super::scale::run(a),
    }
}

struct Row {
    key: &'static str,
    tls: &'static str,
    full: f64,
    resumed: f64,
    resumed_share: f64,
}

fn handshake(a: HandshakeArgs) -> Result<ExitCode> {
    let keys: &[KeyType] = match a.key_type {
        Keys::Ecdsa => &[KeyType::Ecdsa],
        Keys::Rsa => &[KeyType::Rsa],
        Keys::All => &[KeyType::Ecdsa, KeyType::Rsa],
    };
    let versions: &[(&'static str, &'static rustls::SupportedProtocolVersion)] = match a.tls {
        Tls::V12 => &[("1.2", &rustls::version::TLS12)],
        Tls::V13 => &[("1.3", &rustls::version::TLS13)],
        Tls::All => &[
            ("1.2", &rustls::version::TLS12),
            ("1.3", &rustls::version::TLS13),
        ],
    };
    // One redis-server for the whole run, stopped (by pid) on return.
    let redis = if a.redis {
        if let Some(why) = crate::baselines::unavailable(crate::baselines::NETWORK_IMPL) {
            return Err(format!("--redis: {why}").into());
        }
        Some(crate::baselines::RedisServer::start().map_err(|e| format!("--redis: {e}"))?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for &kt in keys {
        let dir = tempfile::tempdir()?;
        let c = certs::make(dir.path(), kt)?;
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--cert")
            .arg(&c.server_cert)
            .arg("--key")
            .arg(&c.server_key)
            .args(["--addr", "127.0.0.1:0", "--port-per-worker"])
            .args(["--workers", &a.workers.to_string()])
            .arg("--segment")
            .arg(dir.path().join("bench.seg"))
            .args(["--size", "16MiB", "--tls", "both", "--context-id", "bench"])
            .args(["--tickets", if a.tickets { "on" } else { "off" }]);
        if a.private_cache {
            cmd.arg("--private-cache");
        }
        if let Some(r) = &redis {
            cmd.args(["--baseline-redis", &r.addr().to_string()]);
        }
        let (server, lines) =
            pool::start_until_ready("scsp serve", &mut cmd, Duration::from_secs(20))?;
        let targets: Vec<SocketAddr> = pool::parse_workers(&lines)
            .into_iter()
            .map(|w| w.1)
            .collect();
        if targets.is_empty() {
            return Err("scsp serve reported no workers".into());
        }
        let key = match kt {
            KeyType::Ecdsa => "ECDSA P-256",
            KeyType::Rsa => "RSA-2048",
        };
        for &(tls, v) in versions {
            let n = a.connections as usize;
            let full_cfg = client(&c.ca_der, v, false)?;
            let (full, _) = measure(&full_cfg, &targets, n)?;
            let res_cfg = client(&c.ca_der, v, true)?;
            let _ = visit(&res_cfg, targets[0])?; // the first visit is full
            let (resumed, k) = measure(&res_cfg, &targets, n)?;
            rows.push(Row {
                key,
                tls,
                full,
                resumed,
                resumed_share: k as f64 / n as f64,
            });
        }
        drop(server);
    }
    let via = match (a.private_cache, a.tickets, a.redis) {
        (_, _, true) => "one redis-server on loopback (baseline)",
        (true, true, _) => "private caches + per-worker tickets (baseline)",
        (true, false, _) => "private caches (baseline)",
        (false, true, _) => "shared tickets",
        (false, false, _) => "shared cache",
    };
    println!(
        "handshakes/s, one client thread, {} workers, resumption via {via}",
        a.workers
    );
    println!(
        "{:<12} {:>4} {:>10} {:>10} {:>7} {:>9}",
        "key", "TLS", "full/s", "resumed/s", "ratio", "resumed%"
    );
    for r in &rows {
        println!(
            "{:<12} {:>4} {:>10.0} {:>10.0} {:>6.2}x {:>8.1}%",
            r.key,
            r.tls,
            r.full,
            r.resumed,
            r.resumed / r.full.max(1e-9),
            r.resumed_share * 100.0
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn client(
    ca: &rustls::pki_types::CertificateDer<'static>,
    v: &'static rustls::SupportedProtocolVersion,
    resume: bool,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[v])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.resumption = if resume {
        rustls::client::Resumption::in_memory_sessions(8)
    } else {
        rustls::client::Resumption::disabled()
    };
    Ok(Arc::new(cfg))
}

/// `n` sequential connections round-robin over `targets`: (per second,
/// resumed). Each connection goes to the worker after the previous one's.
fn measure(cfg: &Arc<ClientConfig>, targets: &[SocketAddr], n: usize) -> Result<(f64, usize)> {
    let start = Instant::now();
    let mut resumed = 0;
    for i in 0..n {
        resumed += usize::from(visit(cfg, targets[(i + 1) % targets.len()])?);
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), resumed))
}

/// One connection: handshake, GET, read the answer. Returns whether it resumed.
fn visit(cfg: &Arc<ClientConfig>, addr: SocketAddr) -> Result<bool> {
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    sock.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").expect("a valid DNS name");
    let mut conn = ClientConnection::new(cfg.clone(), name)?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut body = Vec::new();
    // Read to the end so TLS 1.3 tickets are stored before the next visit.
    match tls.read_to_end(&mut body) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(format!("response from {addr}: {e}").into()),
    }
    Ok(conn.handshake_kind() == Some(HandshakeKind::Resumed))
}
