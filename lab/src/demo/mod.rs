//! `scsp demo`: the pool, shown. Starts simulated hosts on loopback, drives
//! returning visitors through a balancer, and compares set-ups on the same
//! load: (a) no sharing, (b) one shared segment per host, (c) shared
//! segments mirrored by the bridge, and, when `redis-server` is installed,
//! (d) the network-cache alternative: every worker of every host keeps its
//! sessions in one redis server. Each host's TLS front is `scsp serve`
//! (rustls), the C example server (OpenSSL), or a real nginx or Apache
//! httpd with scsp's module (`web`).

pub(super) mod certs;
mod chart;
mod load;
pub(super) mod pool;
mod report;
mod web;

use crate::Result;
use indicatif::{ProgressBar, ProgressStyle};
use load::{Balance, LoadSpec};
use pool::{Guarded, Host};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
enum Tls {
    #[value(name = "1.2")]
    #[serde(rename = "1.2")]
    V12,
    #[value(name = "1.3")]
    #[serde(rename = "1.3")]
    V13,
}

/// The flags of `scsp demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Simulated hosts, each on its own 127.0.0.x address.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=8))]
    hosts: u16,
    /// Worker processes per host.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    workers: u16,
    /// Returning visitors.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Visits per visitor (the first is always a full handshake).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=1000))]
    reconnects: u32,
    /// How the balancer spreads connections over all workers.
    #[arg(long, value_enum, default_value = "round-robin")]
    balance: Balance,
    /// TLS version.
    #[arg(long, value_enum, default_value = "1.3")]
    tls: Tls,
    /// Server key type.
    #[arg(long, value_enum, default_value = "ecdsa")]
    key_type: certs::KeyType,
    /// Resume with stateless tickets (shared ticket keys) instead of the
    /// shared session cache.
    #[arg(long)]
    tickets: bool,
    /// Which TLS server runs on each host: `scsp serve` (rustls), the C
    /// example server (OpenSSL + libscsp), or nginx / Apache httpd with
    /// scsp's module (built by nginx/build.sh, apache/build.sh).
    #[arg(long, value_enum, default_value = "rustls")]
    server: ServerKind,
    /// The nginx or Apache httpd program, for `--server nginx|apache`
    /// [default: nginx, apache2 or httpd in PATH or /usr/sbin].
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// The scsp module, for `--server nginx|apache` [default:
    /// ngx_http_scsp_module.so in target/nginx/, mod_socache_scsp.so in
    /// target/apache/, of $CARGO_TARGET_DIR or the target directory of
    /// this scsp].
    #[arg(long)]
    module: Option<std::path::PathBuf>,
    /// The built C example server, for `--server openssl`
    /// (scripts/build-openssl-example.sh makes it) [default:
    /// $CARGO_TARGET_DIR/openssl_server, else target/openssl_server].
    #[arg(long)]
    openssl_server: Option<std::path::PathBuf>,
    /// Client threads making connections at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    client_threads: u16,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page: the table, and SVG charts of
    /// each set-up's resumed share, handshakes/s, CPU per connection and
    /// connect latency distribution.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// Seed for the balancer and arrival order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Layout of every host's segment: log, or sets (every session in
    /// place; docs/operations.md, "Choosing a layout").
    #[arg(long, default_value = "log", value_parser = parse_layout)]
    layout: scsp::Layout,
}

fn parse_layout(s: &str) -> std::result::Result<scsp::Layout, String> {
    scsp::Layout::from_name(s).ok_or_else(|| format!("'{s}' is not a layout; use log or sets"))
}

/// The TLS server the hosts run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// `scsp serve`: rustls with the scsp adapter.
    Rustls,
    /// `examples/c/openssl_server.c`: OpenSSL with libscsp.
    Openssl,
    /// nginx with ngx_http_scsp_module (nginx/); set-up (a) is stock
    /// nginx, `ssl_session_cache shared:SSL:10m` per instance.
    Nginx,
    /// Apache httpd (event MPM) with mod_socache_scsp (apache/); set-up (a)
    /// is stock Apache, `SSLSessionCache shmcb` per instance.
    Apache,
}

/// The set-ups compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setup {
    /// Each worker its own in-process rustls cache.
    NoSharing,
    /// One shared segment per host, no bridge.
    SharedPerHost,
    /// Shared segments mirrored between hosts by the bridge.
    SharedPool,
    /// One redis server for the whole pool, on loopback: the network cache
    /// a pool would use without scsp.
    RedisPool,
}

impl Setup {
    /// The row's name in the table. For nginx and Apache, (a) is the stock
    /// server: one cache per instance, shared by its workers.
    fn label(self, server: ServerKind) -> &'static str {
        match self {
            Setup::NoSharing => match server {
                ServerKind::Nginx => "(a) shared:SSL:10m",
                ServerKind::Apache => "(a) stock shmcb",
                ServerKind::Rustls | ServerKind::Openssl => "(a) no sharing",
            },
            Setup::SharedPerHost => "(b) segment per host",
            Setup::SharedPool => "(c) segment + bridge",
            Setup::RedisPool => "(d) one redis server",
        }
    }
}

const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Raised by SIGINT, SIGTERM, SIGHUP (a closed terminal) or SIGQUIT: the
/// demo then stops through its cleanup.
fn interrupted() -> &'static Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(Arc::default)
}

fn install_interrupt_handler() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        let _ = signal_hook::flag::register(sig, interrupted().clone());
    }
}

fn scsp_exe() -> Result<std::path::PathBuf> {
    std::env::current_exe().map_err(|e| crate::Error::system("finding the scsp binary", e))
}

/// Start host `i` for `setup` (`redis`: the server of set-up (d)).
fn start_host(
    a: &Args,
    setup: Setup,
    dir: &Path,
    i: usize,
    c: &certs::DemoCerts,
    redis: Option<std::net::SocketAddr>,
    front: Option<&web::Front>,
) -> Result<Host> {
    let hdir = pool::host_dir(dir, i);
    std::fs::create_dir_all(&hdir).map_err(|e| e.to_string())?;
    let segment = hdir.join(format!("{setup:?}.seg"));
    // Made here, with this host's id, so that either server kind attaches it
    // and the bridge can tell local sessions from peers'.
    let cache = scsp::Cache::create(
        &segment,
        &scsp::Config {
            size: 16 << 20,
            host_id: i as u32 + 1,
            layout: a.layout,
            max_value: match a.layout {
                scsp::Layout::Log => scsp::config::DEFAULT_MAX_VALUE,
                scsp::Layout::Sets => scsp::config::DEFAULT_SETS_MAX_VALUE,
            },
            ..scsp::Config::default()
        },
    )
    .map_err(|e| e.to_string())?;
    // A bridge imports the ticket keys its peers send only once its own
    // host's ring is set up, which nginx and Apache do at their first
    // handshake; keys that come before are dropped, and a peer sends its
    // keys again only when they change (a rotation, hours later). So the
    // ring is set up here, with the rotation policy every server uses
    // (the default), before any bridge starts.
    if setup == Setup::SharedPool && a.tickets {
        scsp::keyring::KeyRing::new(
            std::sync::Arc::new(cache),
            scsp::keyring::RotationPolicy::default(),
        )
        .map_err(|e| format!("host {i}: ticket key ring: {e}"))?;
    }
    let name = format!("host {i} server");
    let (server, workers) = match a.server {
        ServerKind::Rustls => start_rustls_server(a, setup, i, c, &segment, &name, redis)?,
        ServerKind::Openssl => start_openssl_server(a, setup, i, c, &segment, &name)?,
        ServerKind::Nginx | ServerKind::Apache => front
            .ok_or("no nginx or Apache located")?
            .start(a, setup, i, c, &segment, &name, interrupted())?,
    };
    let mut processes = vec![server];
    if setup == Setup::SharedPool {
        processes.push(start_bridge(a, dir, i, &segment)?);
    }
    let segment = (setup == Setup::SharedPool).then_some(segment);
    Ok(Host {
        index: i,
        workers,
        processes,
        bridged_segment: segment,
    })
}

fn tls_arg(a: &Args) -> &'static str {
    match a.tls {
        Tls::V12 => "1.2",
        Tls::V13 => "1.3",
    }
}

/// `scsp serve` with one port per worker.
fn start_rustls_server(
    a: &Args,
    setup: Setup,
    i: usize,
    c: &certs::DemoCerts,
    segment: &Path,
    name: &str,
    redis: Option<std::net::SocketAddr>,
) -> Result<(Guarded, Vec<(u32, std::net::SocketAddr)>)> {
    let mut cmd = Command::new(scsp_exe()?);
    cmd.arg("serve")
        .arg("--cert")
        .arg(&c.server_cert)
        .arg("--key")
        .arg(&c.server_key)
        .arg("--addr")
        .arg(format!("{}:0", pool::host_ip(i)))
        .arg("--workers")
        .arg(a.workers.to_string())
        .arg("--port-per-worker")
        .arg("--segment")
        .arg(segment)
        .arg("--tickets")
        .arg(if a.tickets { "on" } else { "off" })
        .arg("--tls")
        .arg(tls_arg(a));
    match (setup, redis) {
        (Setup::NoSharing, _) => {
            cmd.arg("--private-cache");
        }
        (Setup::RedisPool, Some(addr)) => {
            cmd.arg("--baseline-redis").arg(addr.to_string());
        }
        _ => {}
    }
    let (server, lines) = pool::start_until_ready(name, &mut cmd, Duration::from_secs(20))?;
    let workers = pool::parse_workers(&lines);
    if workers.len() != a.workers as usize {
        return Err(format!(
            "{name} reported {} workers, expected {}",
            workers.len(),
            a.workers
        )
        .into());
    }
    Ok((server, workers))
}

/// The C example server (`examples/c/openssl_server.c`) on libscsp. Without
/// sharing it keeps OpenSSL's own per-process cache or ticket keys.
fn start_openssl_server(
    a: &Args,
    setup: Setup,
    i: usize,
    c: &certs::DemoCerts,
    segment: &Path,
    name: &str,
) -> Result<(Guarded, Vec<(u32, std::net::SocketAddr)>)> {
    // Where scripts/build-openssl-example.sh puts it.
    let exe = a.openssl_server.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| "target".into(), std::path::PathBuf::from)
            .join("openssl_server")
    });
    if !exe.is_file() {
        return Err(format!(
            "--server openssl needs the C example server at {}; build it with scripts/build-openssl-example.sh \
             (needs gcc and libssl-dev), or pass --openssl-server PATH",
            exe.display()
        ).into());
    }
    let shared = setup != Setup::NoSharing;
    let (cache, tickets) = match (a.tickets, shared) {
        (false, true) => ("on", "off"),
        (false, false) => ("off", "off"),
        (true, true) => ("off", "shared"),
        (true, false) => ("off", "local"),
    };
    let ip = pool::host_ip(i);
    let mut cmd = Command::new(&exe);
    cmd.arg("--cert")
        .arg(&c.server_cert)
        .arg("--key")
        .arg(&c.server_key)
        .arg("--addr")
        .arg(&ip)
        .arg("--port")
        .arg("0")
        .arg("--workers")
        .arg(a.workers.to_string())
        .arg("--segment")
        .arg(segment)
        .arg("--cache")
        .arg(cache)
        .arg("--tickets")
        .arg(tickets)
        .arg("--tls")
        .arg(tls_arg(a));
    let workers = a.workers as usize;
    let (server, lines) = pool::start_until(name, &mut cmd, Duration::from_secs(20), |l| {
        pool::parse_openssl_workers(l, &ip, workers).is_some()
    })?;
    let workers = pool::parse_openssl_workers(&lines, &ip, workers)
        .ok_or_else(|| format!("{name}: could not read its worker addresses"))?;
    Ok((server, workers))
}

/// Start host `i`'s bridge (host id `i + 1`) in a full mesh with the other
/// hosts. Certificates and listen ports for every host are made on first use.
fn start_bridge(a: &Args, dir: &Path, i: usize, segment: &Path) -> Result<Guarded> {
    let certs = dir.join("bridge-certs");
    if !certs.join("ca.pem").exists() {
        scsp_bridge::pki::write_cluster(&certs, "scsp-demo", a.hosts as u32)
            .map_err(|e| e.to_string())?;
    }
    let ports_file = dir.join("bridge-ports");
    if !ports_file.exists() {
        let mut ports = String::new();
        for j in 0..a.hosts as usize {
            let port = pool::free_port(&pool::host_ip(j))
                .map_err(|e| format!("bridge port for host {j}: {e}"))?;
            ports += &format!("{port}\n");
        }
        std::fs::write(&ports_file, ports).map_err(|e| e.to_string())?;
    }
    let ports: Vec<u16> = std::fs::read_to_string(&ports_file)
        .map_err(|e| e.to_string())?
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let addrs = (0..a.hosts as usize)
        .map(|j| {
            format!(
                "{}:{}",
                pool::host_ip(j),
                ports.get(j).copied().unwrap_or(0)
            )
            .parse()
            .map_err(|e| crate::Error::Failed(format!("bridge address of host {j}: {e}")))
        })
        .collect::<Result<Vec<std::net::SocketAddr>>>()?;
    let cfg = scsp_bridge::config::Mesh {
        cluster: "scsp-demo",
        addrs: &addrs,
        cert_dir: &certs,
        heartbeat_ms: Some(500),
        max_backoff_ms: Some(500),
    }
    .config(i as u32 + 1, segment);
    let path = pool::host_dir(dir, i).join("bridge.toml");
    std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(scsp_exe()?);
    cmd.arg("bridge").arg("--config").arg(&path);
    let (g, _) = pool::start_until_ready(
        &format!("host {i} bridge"),
        &mut cmd,
        Duration::from_secs(20),
    )?;
    Ok(g)
}

/// Everything measured for one set-up.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    setup: Setup,
    label: &'static str,
    connections: u64,
    returning: u64,
    resumed: u64,
    full_handshakes: u64,
    failed: u64,
    /// Resumed share of returning visits, in percent.
    resumed_pct: f64,
    /// Returning visits the balancer sent to another host than the
    /// visitor's previous visit.
    other_host_visits: u64,
    other_host_resumed: u64,
    /// Resumed share of those, in percent (`null` with one host): only a
    /// cache shared between hosts resumes them.
    other_host_resumed_pct: Option<f64>,
    handshakes_per_sec: f64,
    /// Server CPU (workers and bridge) per connection, microseconds.
    server_cpu_us_per_conn: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    /// The connect latency's distribution for the report's chart: the
    /// 0th, 1st, ..., 100th percentile, in ms.
    #[serde(skip)]
    latency_percentiles_ms: Vec<f64>,
    /// Set-up (c): how long a session takes from a put on one host to a
    /// verified get on another, through the bridges (after the load).
    replication: Option<Replication>,
}

/// Put-on-one-host to readable-on-another delays, microseconds.
#[derive(Debug, serde::Serialize)]
pub struct Replication {
    probes: usize,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    /// The 0th, 1st, ..., 100th percentile, for the report's chart.
    #[serde(skip)]
    percentiles_us: Vec<f64>,
}

/// Probes of set-up (c)'s replication delay: a fresh key put on host `i`'s
/// segment, then looked for on host `i + 1`'s every 10 µs, round the hosts.
fn replication_delay(hosts: &[Host], probes: usize) -> Result<Option<Replication>> {
    let caches: Vec<scsp::Cache> = hosts
        .iter()
        .filter_map(|h| h.bridged_segment.as_ref())
        .map(scsp::Cache::open)
        .collect::<std::result::Result<_, _>>()?;
    if caches.len() < 2 {
        return Ok(None);
    }
    // The 10 µs sleeps end when asked, not up to 50 µs later.
    // SAFETY: PR_SET_TIMERSLACK takes nanoseconds and affects this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    let mut us = Vec::with_capacity(probes);
    let mut buf = [0u8; 64];
    for n in 0..probes {
        let (a, b) = (&caches[n % caches.len()], &caches[(n + 1) % caches.len()]);
        let key = format!("demo-replication-probe-{n}");
        let t0 = std::time::Instant::now();
        let _ = a.put(key.as_bytes(), b"probe", 60);
        while !matches!(b.get(key.as_bytes(), &mut buf), scsp::Lookup::Hit(_)) {
            if t0.elapsed() > Duration::from_secs(5) {
                return Err("a probe put on one host never reached the next within 5 s".into());
            }
            std::thread::sleep(Duration::from_micros(10));
        }
        us.push(t0.elapsed().as_secs_f64() * 1e6);
        std::thread::sleep(Duration::from_millis(2));
    }
    us.sort_by(|x, y| x.total_cmp(y));
    let at = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize];
    Ok(Some(Replication {
        probes,
        p50_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
        max_us: at(1.0),
        percentiles_us: (0..=100).map(|p| at(p as f64 / 100.0)).collect(),
    }))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn run_setup(
    a: &Args,
    setup: Setup,
    dir: &Path,
    c: &certs::DemoCerts,
    front: Option<&web::Front>,
    bar: &ProgressBar,
) -> Result<Outcome> {
    bar.set_message(setup.label(a.server));
    // Set-up (d): one redis server for every host, on loopback; stopped
    // (by pid) when this function returns.
    let redis = match setup {
        Setup::RedisPool => Some(
            crate::baselines::RedisServer::start()
                .map_err(|e| format!("starting redis-server: {e}"))?,
        ),
        _ => None,
    };
    let mut hosts = Vec::new();
    for i in 0..a.hosts as usize {
        hosts.push(start_host(
            a,
            setup,
            dir,
            i,
            c,
            redis.as_ref().map(|r| r.addr()),
            front,
        )?);
    }
    // Traffic starts once the pool has formed, as in production: otherwise
    // the first visits' sessions wait for links still being dialled, and
    // the set-up measures start-up, not replication.
    pool::wait_bridges_connected(&hosts, Duration::from_secs(15))?;
    let spec = LoadSpec {
        clients: a.clients as usize,
        reconnects: a.reconnects as usize,
        balance: a.balance,
        threads: a.client_threads as usize,
        versions: match a.tls {
            Tls::V12 => TLS12_ONLY,
            Tls::V13 => TLS13_ONLY,
        },
        ca_der: c.ca_der.clone(),
        seed: a.seed,
        // The C example server answers straight after the handshake.
        send_request: a.server != ServerKind::Openssl,
    };
    // With tickets, likewise once the hosts' ticket keys agree: nginx and
    // Apache make a key at their first ticket, so each host gets one visit
    // of its own first.
    if setup == Setup::SharedPool && a.tickets {
        for h in &hosts {
            if let Some(w) = h.workers.first() {
                load::prime(&spec, w.1)
                    .map_err(|e| format!("host {}: a first visit: {e}", h.index))?;
            }
        }
        pool::wait_keys_replicated(&hosts, Duration::from_secs(15))?;
    }
    let targets: Vec<_> = hosts
        .iter()
        .flat_map(|h| h.workers.iter().map(|w| w.1))
        .collect();
    let pids: Vec<u32> = hosts
        .iter()
        .flat_map(|h| {
            h.workers
                .iter()
                .map(|w| w.0)
                .chain(h.processes.iter().skip(1).map(Guarded::pid))
        })
        .chain(redis.as_ref().map(|r| r.pid()))
        .collect();
    let cpu_before: f64 = pids.iter().map(|p| pool::cpu_seconds(*p)).sum();
    let mut r = load::run(&spec, &targets, interrupted(), &|| bar.inc(1))?;
    // Interrupted during the last round: the servers were stopped by the
    // same signal, which is no crash.
    if interrupted().load(Ordering::SeqCst) {
        return Err("interrupted".into());
    }
    let cpu: f64 = pids.iter().map(|p| pool::cpu_seconds(*p)).sum::<f64>() - cpu_before;
    for h in &mut hosts {
        for p in &mut h.processes {
            if let Some(status) = p.exited() {
                return Err(format!(
                    "{} (host {}) died during the run: {status}",
                    p.name, h.index
                )
                .into());
            }
        }
    }
    if r.failed > 0 {
        return Err(format!(
            "{}: {} of {} connections failed; first error: {}",
            setup.label(a.server),
            r.failed,
            r.failed + r.connections,
            r.first_error.unwrap_or_default()
        )
        .into());
    }
    r.latencies.sort();
    let replication = if setup == Setup::SharedPool {
        replication_delay(&hosts, 200)?
    } else {
        None
    };
    Ok(Outcome {
        replication,
        setup,
        label: setup.label(a.server),
        connections: r.connections,
        returning: r.returning,
        resumed: r.resumed,
        full_handshakes: r.full,
        failed: r.failed,
        resumed_pct: if r.returning == 0 {
            0.0
        } else {
            100.0 * r.resumed as f64 / r.returning as f64
        },
        handshakes_per_sec: r.connections as f64 / r.wall.as_secs_f64().max(1e-9),
        server_cpu_us_per_conn: cpu * 1e6 / r.connections.max(1) as f64,
        latency_p50_ms: percentile(&r.latencies, 0.50),
        latency_p99_ms: percentile(&r.latencies, 0.99),
        latency_percentiles_ms: (0..=100)
            .map(|p| percentile(&r.latencies, p as f64 / 100.0))
            .collect(),
        other_host_visits: r.other_host,
        other_host_resumed: r.other_host_resumed,
        other_host_resumed_pct: (r.other_host > 0)
            .then(|| 100.0 * r.other_host_resumed as f64 / r.other_host as f64),
    })
}

/// Why set-up (d) cannot run with these arguments, or `None` if it can.
fn redis_setup_unavailable(a: &Args) -> Option<String> {
    if a.tickets {
        Some("it compares session caches; with --tickets there is no cache to share".into())
    } else if a.server == ServerKind::Openssl {
        Some("the C example server has no redis client; run it with --server rustls".into())
    } else if a.server == ServerKind::Nginx {
        Some("does not apply: nginx has no redis session cache of its own; run it with --server rustls".into())
    } else if a.server == ServerKind::Apache {
        Some(
            "does not apply: the demo compares Apache's stock cache (shmcb) with scsp's; \
             for one redis server run it with --server rustls"
                .into(),
        )
    } else {
        crate::baselines::unavailable(crate::baselines::NETWORK_IMPL)
    }
}

/// Remove what earlier demos killed outright (SIGKILL: no cleanup ran)
/// left in `base`: directories `scsp-demo-<pid>-*` of ours whose process is
/// gone. They hold segments and throwaway keys.
fn remove_leftovers(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("scsp-demo-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let ours = e.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if ours && gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Run `scsp demo`.
pub fn run(a: Args) -> Result<ExitCode> {
    install_interrupt_handler();
    // A report that cannot be written is said before the run, not after.
    if let Some(path) = &a.report {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot write report {}: {e}", path.display()))?;
    }
    // Refuse before anything starts if the server or its module is missing.
    let mut front = web::Front::locate(&a)?;
    if a.server_bin.is_some() && front.is_none() {
        return Err(crate::Error::Usage(
            "--server-bin is for --server nginx or apache".into(),
        ));
    }
    if a.module.is_some() && front.is_none() {
        return Err(crate::Error::Usage(
            "--module is for --server nginx or apache".into(),
        ));
    }
    pool::check_loopback(a.hosts as usize)?;
    let base = if Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    remove_leftovers(Path::new(base));
    let dir = tempfile::Builder::new()
        .prefix(&format!("scsp-demo-{}-", std::process::id()))
        .tempdir_in(base)
        .map_err(|e| format!("cannot make a temporary directory in {base}: {e}"))?;
    let c = certs::make(dir.path(), a.key_type)?;
    if let Some(f) = &mut front {
        f.prepare(Path::new(base))?;
    }
    let mut setups = vec![Setup::NoSharing, Setup::SharedPerHost, Setup::SharedPool];
    let mut not_run = Vec::new();
    match redis_setup_unavailable(&a) {
        None => setups.push(Setup::RedisPool),
        Some(why) => not_run.push(format!(
            "{}: not run: {why}",
            Setup::RedisPool.label(a.server)
        )),
    }
    let total = (a.clients as u64) * (a.reconnects as u64) * setups.len() as u64;
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{msg:22} [{bar:40}] {pos}/{len} connections ({elapsed})")
                .map_err(|e| e.to_string())?
                .progress_chars("=> "),
        )
    };
    let mut outcomes = Vec::new();
    for setup in setups {
        match run_setup(&a, setup, dir.path(), &c, front.as_ref(), &bar) {
            Ok(o) => outcomes.push(o),
            // The baseline failing (say, redis-server will not start) is
            // reported with the results, not fatal to scsp's own set-ups.
            Err(e) if setup == Setup::RedisPool && !interrupted().load(Ordering::SeqCst) => {
                not_run.push(format!("{}: failed: {e}", setup.label(a.server)));
            }
            Err(e) => return Err(e),
        }
    }
    bar.finish_and_clear();
    let summary = report::Summary::new(&a, outcomes, not_run);
    if a.json {
        let json = serde_json::to_string_pretty(&summary).expect("the summary serialises");
        println!("{json}");
    } else {
        print!("{}", summary.table());
    }
    if let Some(path) = &a.report {
        std::fs::write(path, summary.html())
            .map_err(|e| format!("cannot write report {}: {e}", path.display()))?;
        if !a.json {
            println!("report written to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
