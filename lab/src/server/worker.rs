//! One worker process: a rustls `ServerConfig` on the shared cache, and a
//! sequential accept loop answering a tiny HTTP response.

use super::{ServeOptions, SessionCache, Versions};
use crate::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, ServerConnection};
use rustls::HandshakeKind;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The whole of one connection (handshake, request, response): a client
/// that trickles bytes cannot hold a worker longer, however slowly they come.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// How often, at most, a worker checks that its segment is still the file
/// at its path, and still whole.
const SEGMENT_CHECK: Duration = Duration::from_secs(1);
/// How often a worker serving without its segment says so again.
const DEGRADED_REMINDER: Duration = Duration::from_secs(60);
const MAX_REQUEST: usize = 8 << 10;

fn load_certs(
    opts: &ServeOptions,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(&opts.cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Usage(format!(
                "--cert {}: cannot read a PEM certificate chain: {e}",
                opts.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "--cert {}: no CERTIFICATE block found",
            opts.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&opts.key).map_err(|e| {
        Error::Usage(format!(
            "--key {}: cannot read a PEM private key: {e}",
            opts.key.display()
        ))
    })?;
    Ok((certs, key))
}

/// Build the TLS configuration a worker serves with, and the shared segment
/// it uses, if any.
pub(super) fn server_config(
    opts: &ServeOptions,
) -> Result<(ServerConfig, Option<Arc<scsp::Cache>>)> {
    let (certs, key) = load_certs(opts)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match opts.versions {
        Versions::Tls12 => &[&rustls::version::TLS12],
        Versions::Tls13 => &[&rustls::version::TLS13],
        Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Usage(format!("--cert/--key do not form a usable pair: {e}")))?;
    let mut shared = None;
    match &opts.cache {
        SessionCache::Private => {
            cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
            if opts.tickets {
                cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
            }
        }
        SessionCache::Redis(addr) => {
            if opts.tickets {
                return Err(Error::Usage(
                    "the redis baseline holds sessions, not ticket keys: turn tickets off".into(),
                ));
            }
            cfg.session_storage = Arc::new(
                crate::baselines::RedisSessionStore::connect(
                    *addr,
                    &opts.context_id,
                    scsp::rustls::DEFAULT_TTL_SECS,
                )
                .map_err(|e| {
                    Error::system(format!("connecting to the redis baseline at {addr}"), e)
                })?,
            );
        }
        SessionCache::Shared { segment, config } => {
            let cache = Arc::new(scsp::Cache::open_or_create(segment, config)?);
            // A truncated file must not kill the worker at its next lookup:
            // the mapping then reads as empty, and the loop below notices.
            cache
                .segment()
                .guard_against_truncation()
                .map_err(|e| Error::system("guarding the segment mapping", e))?;
            // Every page mapped now, not by page faults on the first
            // requests (docs/operations.md, "Page faults after opening").
            // Older kernels cannot; pages then fault in as they are touched.
            let _ = cache.prefault();
            shared = Some(cache.clone());
            cfg.session_storage = Arc::new(scsp::rustls::SessionStore::new(
                cache.clone(),
                &opts.context_id,
            ));
            if opts.tickets {
                cfg.ticketer = scsp::rustls::TicketKeys::for_context(
                    cache,
                    scsp::rustls::RotationPolicy::default(),
                    &opts.context_id,
                )?;
            }
        }
    }
    cfg.send_tls13_tickets = 1;
    Ok((cfg, shared))
}

/// Check certificate, key and cache settings before any worker starts.
pub(super) fn check_config(opts: &ServeOptions) -> Result<()> {
    server_config(opts).map(|_| ())
}

/// Restore default signal actions the supervisor changed, unblock the
/// signals it blocked around `fork`, and die with it.
fn become_worker(supervisor: nix::unistd::Pid) {
    let default = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::SigDfl,
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        // SAFETY: restoring the default action is always sound.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &default) };
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    // The supervisor may have died before the line above: then no signal
    // will come, and this worker must not serve on as an orphan.
    if nix::unistd::getppid() != supervisor {
        // SAFETY: ends this child at once; it holds nothing to clean up yet.
        unsafe { libc::_exit(0) };
    }
    // A SIGTERM sent meanwhile (the supervisor stopping) was held pending:
    // with the default action restored, it now ends the worker.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// The worker's main loop. Returns an error when it cannot go on, and
/// `Ok` when it should be started anew: its segment was removed, replaced
/// or truncated (the supervisor then starts a worker that opens the new one,
/// docs/operations.md, "Upgrades"), or it served without its segment and
/// the segment is usable again.
///
/// A worker whose segment cannot be opened does not stop serving: it says
/// so loudly, serves with a cache of its own (sessions then resume only on
/// this worker), counts the connections it served so, and looks again
/// every second.
pub(super) fn run(
    opts: &ServeOptions,
    listener: &TcpListener,
    supervisor: nix::unistd::Pid,
) -> Result<()> {
    become_worker(supervisor);
    let pid = std::process::id();
    let (config, cache, degraded) = match server_config(opts) {
        Ok((config, cache)) => (config, cache, None),
        Err(Error::Segment(e)) if matches!(opts.cache, SessionCache::Shared { .. }) => {
            eprintln!(
                "scsp serve: worker pid {pid}: WARNING: the shared segment is unusable ({e}); \
                 serving WITHOUT the shared cache (sessions resume only on this worker) until \
                 it is usable again"
            );
            let private = ServeOptions {
                cache: SessionCache::Private,
                ..opts.clone()
            };
            (server_config(&private)?.0, None, Some(e.to_string()))
        }
        Err(e) => return Err(e),
    };
    let config = Arc::new(config);
    let mut checked = Instant::now();
    let mut reminded = Instant::now();
    let mut without_cache = 0u64;
    loop {
        let (sock, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::system("accept", e)),
        };
        // A failed connection only ends that connection.
        let _ = serve_one(sock, &config, pid, degraded.is_some());
        if degraded.is_some() {
            without_cache += 1;
        }
        // Between connections, at most once a second: one stat call.
        if checked.elapsed() < SEGMENT_CHECK {
            continue;
        }
        checked = Instant::now();
        if let Some(c) = &cache {
            if c.segment().replaced() || c.segment().truncated() {
                return Ok(());
            }
        }
        if let (Some(why), SessionCache::Shared { segment, config }) = (&degraded, &opts.cache) {
            if scsp::Cache::open_with(segment, scsp::Access::from(config)).is_ok() {
                eprintln!(
                    "scsp serve: worker pid {pid}: the shared segment is usable again after \
                     {without_cache} connections served without it; restarting on it"
                );
                return Ok(());
            }
            if reminded.elapsed() >= DEGRADED_REMINDER {
                reminded = Instant::now();
                eprintln!(
                    "scsp serve: worker pid {pid}: WARNING: still WITHOUT the shared cache \
                     ({why}): {without_cache} connections served without it so far"
                );
            }
        }
    }
}

/// A socket whose reads and writes all end by one deadline.
struct Deadline {
    sock: TcpStream,
    until: Instant,
}

impl Deadline {
    /// Time left, or a TimedOut error once there is none.
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection deadline passed",
            ));
        }
        Ok(left)
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sock.set_read_timeout(Some(self.left()?))?;
        self.sock.read(buf)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.set_write_timeout(Some(self.left()?))?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

fn serve_one(
    sock: TcpStream,
    config: &Arc<ServerConfig>,
    pid: u32,
    without_cache: bool,
) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let conn = ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
    let sock = Deadline {
        sock,
        until: Instant::now() + CONNECTION_DEADLINE,
    };
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < MAX_REQUEST {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e),
        }
    }
    let resumed = tls.conn.handshake_kind() == Some(HandshakeKind::Resumed);
    let version = match tls.conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    let cache = if without_cache { " cache=off" } else { "" };
    let body = format!("worker={pid} resumed={resumed} version={version}{cache}\n");
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(resp.as_bytes())?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}
