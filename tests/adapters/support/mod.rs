//! Test harness for real TLS handshakes between separate worker processes.
//!
//! A "worker" is this same test binary re-executed with the `worker_entry`
//! test selected and its job in environment variables: it builds its own
//! rustls `ServerConfig` on the shared segment, listens on 127.0.0.1, and
//! answers every connection with its pid. [`Worker`] kills and reaps it on
//! drop, even when the test fails.
#![allow(dead_code)]

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, ServerConfig};
use scsp::rustls::{RotationPolicy, SessionStore, TicketKeys};
use scsp::{Cache, Config};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Rotation period and lifetime the ticket workers use with a file clock.
pub const PERIOD: u64 = 100;
pub const LIFETIME: u64 = 150;

/// A temp dir holding a segment, a certificate and its key.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub seg: PathBuf,
    pub cert_der: CertificateDer<'static>,
}

impl Setup {
    pub fn new(cfg: &Config) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("seg");
        drop(Cache::create(&seg, cfg).unwrap());
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        Setup {
            cert_der: ck.cert.der().clone(),
            seg,
            dir,
        }
    }

    /// A segment of the sets layout, with the default slot of
    /// `scsp create --layout sets` (512 bytes).
    pub fn sets() -> Setup {
        Setup::new(&Config {
            layout: scsp::Layout::Sets,
            size: 1 << 20,
            max_value: 432,
            ..Config::default()
        })
    }

    pub fn small() -> Setup {
        Setup::new(&Config {
            size: 1 << 20,
            shards: 2,
            max_value: 8192,
            ..Config::default()
        })
    }

    /// Path of the file the workers read their clock from (unix seconds).
    pub fn clock_file(&self) -> PathBuf {
        self.dir.path().join("clock")
    }

    pub fn set_clock(&self, secs: u64) {
        let tmp = self.dir.path().join("clock.tmp");
        std::fs::write(&tmp, secs.to_string()).unwrap();
        std::fs::rename(&tmp, self.clock_file()).unwrap();
    }

    /// Start a worker: `mode` is "cache" or "tickets", `versions` "12", "13".
    pub fn worker(&self, mode: &str, versions: &str, ctx: &str) -> Worker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "support::worker_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SCSP_WORKER_SEG", &self.seg)
            .env("SCSP_WORKER_DIR", self.dir.path())
            .env("SCSP_WORKER_MODE", mode)
            .env("SCSP_WORKER_VERSIONS", versions)
            .env("SCSP_WORKER_CTX", ctx)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            // The test harness may print "test worker_entry ... " first.
            if let Some((_, p)) = line.trim().split_once("PORT=") {
                port = p.parse().ok();
                break;
            }
            line.clear();
        }
        let mut w = Worker {
            child: childguard::Guard::spawned(child),
            port: 0,
        };
        w.port = port.expect("worker did not report a port");
        w
    }
}

/// A worker process; killed and reaped on drop.
pub struct Worker {
    pub child: childguard::Guard,
    pub port: u16,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Still running (a crash would show here).
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().is_none()
    }
}

fn versions(v: &str) -> Vec<&'static rustls::SupportedProtocolVersion> {
    match v {
        "12" => vec![&rustls::version::TLS12],
        "13" => vec![&rustls::version::TLS13],
        _ => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Body of the worker process; returns at once in a normal test run.
/// The worker process body; a no-op in a normal run.
#[test]
fn worker_entry() {
    worker_main();
}

fn worker_main() {
    let Ok(seg) = std::env::var("SCSP_WORKER_SEG") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let dir = PathBuf::from(env("SCSP_WORKER_DIR"));
    let cache = Arc::new(Cache::open(&seg).unwrap());
    let certs = vec![CertificateDer::from_pem_file(dir.join("cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(&env("SCSP_WORKER_VERSIONS")))
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.send_tls13_tickets = 1;
    let ctx = env("SCSP_WORKER_CTX");
    if env("SCSP_WORKER_MODE") == "tickets" {
        let clock_file = dir.join("clock");
        let clock = Arc::new(move || {
            std::fs::read_to_string(&clock_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or_else(scsp::clock::now_secs)
        });
        let policy = RotationPolicy {
            period: Duration::from_secs(PERIOD),
            lifetime: Duration::from_secs(LIFETIME),
        };
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.ticketer = TicketKeys::with_clock(cache, policy, ctx.as_bytes(), clock).unwrap();
    } else {
        cfg.session_storage = Arc::new(SessionStore::new(cache, ctx.as_bytes()));
    }
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("PORT={}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    for stream in listener.incoming().flatten() {
        let _ = serve_one(&cfg, stream);
    }
}

fn serve_one(cfg: &Arc<ServerConfig>, sock: TcpStream) -> std::io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let conn = rustls::ServerConnection::new(cfg.clone()).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let body = format!("pid={}\n", std::process::id());
    tls.write_all(
        format!(
            "HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )?;
    tls.conn.send_close_notify();
    tls.flush()?;
    // Drain until the client closes, so our close never races its data.
    tls.sock.shutdown(std::net::Shutdown::Write)?;
    let mut sink = [0u8; 512];
    while matches!(tls.sock.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

/// A rustls client that remembers sessions between its connections.
pub struct Client {
    cfg: Arc<ClientConfig>,
}

/// What one connection saw.
#[derive(Debug)]
pub struct Seen {
    pub pid: u32,
    pub kind: HandshakeKind,
    pub version: ProtocolVersion,
    /// The worker served without its shared segment (`cache=off`).
    pub without_cache: bool,
}

impl Client {
    pub fn new(setup: &Setup, v: &str) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(setup.cert_der.clone()).unwrap();
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions(v))
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.resumption = rustls::client::Resumption::in_memory_sessions(64);
        Client { cfg: Arc::new(cfg) }
    }

    pub fn connect(&self, port: u16) -> Seen {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(self.cfg.clone(), name).unwrap();
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"GET / HTTP/1.0\r\n\r\n")
            .expect("handshake and request");
        let mut text = String::new();
        tls.read_to_string(&mut text)
            .expect("handshake and response");
        let pid = answering_pid(&text).expect("response names the worker pid");
        Seen {
            pid,
            kind: tls.conn.handshake_kind().unwrap(),
            version: tls.conn.protocol_version().unwrap(),
            without_cache: text.contains("cache=off"),
        }
    }
}

/// `openssl s_client` against `port` sending one HTTP request: returns
/// (reused, pid of the answering worker). `sess_in` / `sess_out` are
/// session files.
pub fn s_client(
    port: u16,
    v: &str,
    sess_in: Option<&Path>,
    sess_out: Option<&Path>,
) -> (bool, u32) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-ign_eof"])
        .arg(if v == "12" { "-tls1_2" } else { "-tls1_3" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(p) = sess_in {
        cmd.arg("-sess_in").arg(p);
    }
    if let Some(p) = sess_out {
        cmd.arg("-sess_out").arg(p);
    }
    let mut child = cmd.spawn().expect("openssl s_client runs");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
    }
    let out = child.wait_with_output().expect("openssl s_client finishes");
    let text = String::from_utf8_lossy(&out.stdout);
    let reused = text.lines().any(|l| l.starts_with("Reused,"));
    let new = text.lines().any(|l| l.starts_with("New,"));
    assert!(
        reused || new,
        "s_client did not finish a handshake:\n{text}"
    );
    let pid = answering_pid(&text).unwrap_or_else(|| panic!("no pid in s_client output:\n{text}"));
    (reused, pid)
}

/// The pid in a response body: `pid=N` (test workers) or `worker=N` (`scsp serve`).
pub fn answering_pid(text: &str) -> Option<u32> {
    text.split_whitespace().find_map(|w| {
        w.strip_prefix("pid=")
            .or_else(|| w.strip_prefix("worker="))
            .and_then(|p| p.parse().ok())
    })
}
