//! Test harness: hosts on 127.N.0.x, each with its own segment and a real
//! `scsp bridge` process. Processes are killed and reaped on drop. Every
//! cluster gets its own N, so tests running at once never share an address:
//! a port one test found free cannot be taken by another before its bridge
//! binds it (nor by a bridge another test restarts).
#![allow(dead_code)]

use scsp::replication::status::{self, PeerStatus};
use scsp::Cache;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_scsp");
/// Generous: the machine is shared and debug builds are slow.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn scsp(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN).args(args).output().expect("run scsp");
    assert!(
        out.status.success(),
        "scsp {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Poll `f` until it holds or the deadline passes.
pub fn eventually(what: &str, f: impl FnMut() -> bool) {
    eventually_or(what, f, String::new)
}

/// `eventually`, printing `context()` (say, the bridges' logs) on timeout.
pub fn eventually_or(what: &str, mut f: impl FnMut() -> bool, context: impl Fn() -> String) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}\n{}", context());
}

pub fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Host {
    pub id: u32,
    pub addr: SocketAddr,
    pub segment: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// The bridge process, SIGKILLed and reaped on drop.
    pub child: Option<childguard::Guard>,
    pub cache: std::sync::Arc<Cache>,
}

impl Host {
    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(childguard::Guard::spawned(
            Command::new(BIN)
                .args(["bridge", "--config"])
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn bridge"),
        ));
    }

    /// SIGKILL the bridge and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// SIGTERM the bridge and wait for it to exit: how long that took.
    /// Panics if it exits with an error or is still running after DEADLINE.
    pub fn terminate(&mut self) -> Duration {
        let mut c = self.child.take().expect("bridge running");
        let start = Instant::now();
        c.signal(libc::SIGTERM);
        while start.elapsed() < DEADLINE {
            if let Some(code) = c.try_wait() {
                assert_eq!(code, 0, "bridge {} exited with code {code}", self.id);
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        c.kill();
        panic!(
            "bridge {} still running {DEADLINE:?} after SIGTERM",
            self.id
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get_vec(key)
    }

    /// Words appended to this host's logs since its segment was created.
    pub fn log_words_written(&self) -> u64 {
        (0..self.cache.shards())
            .map(|s| scsp::replication::Replica::new(self.cache.clone()).log_tail(s))
            .sum()
    }

    pub fn peer_status(&self, peer: u32) -> PeerStatus {
        status::read(&self.cache)
            .and_then(|s| s.peers.into_iter().find(|p| p.id == peer))
            .unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().is_none())
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub hosts: Vec<Host>,
}

pub struct Options {
    pub hosts: u32,
    pub cluster: String,
    pub size: &'static str,
    /// Per host id: a cluster-name override.
    pub cluster_of: Vec<(u32, String)>,
    /// Per host id: a segment-size override.
    pub size_of: Vec<(u32, &'static str)>,
    /// Host ids whose segment uses the sets layout (the others: the log).
    pub sets: Vec<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hosts: 3,
            cluster: "test".into(),
            size: "1MiB",
            cluster_of: vec![],
            size_of: vec![],
            sets: vec![],
        }
    }
}

/// A loopback /24 of our own: `127.N.0.0`, N unique in this process (and
/// likely across processes: it starts from the pid).
pub fn new_net() -> u8 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 250, "more clusters than loopback nets");
    1 + ((std::process::id() + n) % 250) as u8
}

/// Host `id`'s address in loopback net `net`.
pub fn ip(net: u8, id: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, net, 0, id as u8)
}

pub fn write_config(
    dir: &Path,
    id: u32,
    cluster: &str,
    addrs: &[SocketAddr],
    certs: &Path,
) -> PathBuf {
    let t = scsp_bridge::config::Mesh {
        cluster,
        addrs,
        cert_dir: certs,
        heartbeat_ms: Some(200),
        max_backoff_ms: Some(300),
    }
    .config(id, Path::new(&format!("seg-{id}")));
    let p = dir.join(format!("bridge-{id}.toml"));
    std::fs::write(&p, t).unwrap();
    p
}

impl Cluster {
    /// Make certificates, segments and configs; start every bridge.
    pub fn start(o: Options) -> Cluster {
        let c = Cluster::prepare(o);
        let mut c = c;
        for h in &mut c.hosts {
            h.start();
        }
        c
    }

    pub fn prepare(o: Options) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        scsp(&[
            "certs",
            "--out",
            certs.to_str().unwrap(),
            "--hosts",
            &o.hosts.to_string(),
            "--cluster",
            &o.cluster,
        ]);
        // A host of another cluster gets a certificate for it from the same
        // CA (one CA serving two clusters).
        let ca_key = std::fs::read_to_string(certs.join("ca.key")).unwrap();
        let ca = scsp_bridge::pki::ClusterCa::from_key_pem(&o.cluster, &ca_key).unwrap();
        for (id, other) in &o.cluster_of {
            let issued = ca.issue_host_in(other, *id, &[]).unwrap();
            std::fs::write(certs.join(format!("host-{id}.pem")), issued.cert_pem).unwrap();
            std::fs::write(certs.join(format!("host-{id}.key")), issued.key_pem).unwrap();
        }
        let net = new_net();
        let addrs: Vec<SocketAddr> = (1..=o.hosts)
            .map(|i| SocketAddr::new(ip(net, i).into(), free_port(ip(net, i))))
            .collect();
        let mut hosts = Vec::new();
        for id in 1..=o.hosts {
            let seg = dir.path().join(format!("seg-{id}"));
            let size = o
                .size_of
                .iter()
                .find(|(i, _)| *i == id)
                .map_or(o.size, |(_, s)| *s);
            let id_text = id.to_string();
            let mut create = vec!["create", seg.to_str().unwrap(), "--size", size];
            create.extend(["--host-id", &id_text]);
            if o.sets.contains(&id) {
                create.extend(["--layout", "sets"]);
            } else {
                create.extend(["--shards", "2"]);
            }
            scsp(&create);
            let cluster = o
                .cluster_of
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, c)| c.clone())
                .unwrap_or_else(|| o.cluster.clone());
            let config = write_config(dir.path(), id, &cluster, &addrs, &certs);
            hosts.push(Host {
                id,
                addr: addrs[id as usize - 1],
                cache: std::sync::Arc::new(Cache::open(&seg).unwrap()),
                segment: seg,
                config,
                log: dir.path().join(format!("bridge-{id}.log")),
                child: None,
            });
        }
        Cluster { dir, hosts }
    }

    pub fn host(&mut self, id: u32) -> &mut Host {
        &mut self.hosts[id as usize - 1]
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Wait until every pair is connected.
    pub fn wait_connected(&self) {
        for h in &self.hosts {
            for p in &self.hosts {
                if p.id != h.id {
                    eventually_or(
                        &format!("host {} connected to {}", h.id, p.id),
                        || h.peer_status(p.id).connected,
                        || self.logs(),
                    );
                }
            }
        }
    }

    pub fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|h| format!("--- host {}\n{}", h.id, h.log_text()))
            .collect()
    }
}

/// A raw TLS client speaking as host `as_id` with certificates from `certs`.
pub fn raw_client(
    certs: &Path,
    as_id: u32,
    to_id: u32,
    addr: SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(certs.join(format!("host-{as_id}.pem")))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(certs.join(format!("host-{as_id}.key"))).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let conn = rustls::ClientConnection::new(
        std::sync::Arc::new(cfg),
        ServerName::try_from(format!("scsp-host-{to_id}")).unwrap(),
    )
    .unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}
