//! Starting and stopping the demo's simulated hosts: one `scsp serve` (and,
//! when sharing across hosts, one `scsp bridge`) per host, each on its own
//! loopback address. Every process is owned by a guard that stops it on drop,
//! so an error, a panic or Ctrl-C leaves nothing running.

use crate::Result;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A named child process, stopped (SIGTERM, then SIGKILL after 5 s) when
/// dropped.
pub struct Guarded {
    pub name: String,
    guard: childguard::Guard,
}

impl Guarded {
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Did the process exit already, and how? (A host that dies fails the
    /// demo.)
    pub fn exited(&mut self) -> Option<childguard::ExitCode> {
        self.guard.try_wait()
    }
}

/// A running simulated host.
pub struct Host {
    pub index: usize,
    pub workers: Vec<(u32, SocketAddr)>,
    /// Kept for their Drop: the server, then the bridge if any.
    pub processes: Vec<Guarded>,
    /// The segment a bridge mirrors, if this host runs one.
    pub bridged_segment: Option<PathBuf>,
}

/// Wait until every bridge reports every peer connected (the status each
/// bridge keeps in its segment, as `scsp stats` shows it). Hosts without a
/// bridge are skipped.
pub fn wait_bridges_connected(hosts: &[Host], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    for h in hosts {
        let Some(path) = &h.bridged_segment else {
            continue;
        };
        let cache = scsp::Cache::open(path).map_err(|e| e.to_string())?;
        loop {
            let status = scsp::replication::status::read(&cache);
            let waiting: Vec<u32> = match &status {
                // A single host's bridge has no peers: nothing to wait for.
                Some(s) => s
                    .peers
                    .iter()
                    .filter(|p| !p.connected)
                    .map(|p| p.id)
                    .collect(),
                // Its status block is not written yet.
                None => vec![0],
            };
            if waiting.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let what = match status {
                    Some(_) => format!("did not connect to peer host(s) {waiting:?}"),
                    None => "wrote no status".to_string(),
                };
                return Err(format!(
                    "host {}: its bridge {what} within {} s",
                    h.index,
                    timeout.as_secs()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// Wait until the bridged hosts' ticket key rings hold the same keys for
/// the current period, at least one: every host then encrypts with the
/// same key (the one of smallest name) and decrypts what any other sealed.
/// Servers make a key at their first ticket unless one from a peer is
/// already there; the bridges copy keys within milliseconds. A pool that
/// has been running for a while is in that state.
pub fn wait_keys_replicated(hosts: &[Host], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let rings: Vec<(usize, scsp::keyring::KeyRing)> = hosts
        .iter()
        .filter_map(|h| Some((h.index, h.bridged_segment.as_ref()?)))
        .map(|(i, path)| {
            let cache = std::sync::Arc::new(scsp::Cache::open(path).map_err(|e| e.to_string())?);
            let ring = scsp::keyring::KeyRing::attach(cache)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("host {i}: its ticket key ring is not set up"))?;
            Ok((i, ring))
        })
        .collect::<Result<_>>()?;
    // Per host, the names of the usable keys of the current period.
    let current = |r: &scsp::keyring::KeyRing| -> Vec<[u8; 16]> {
        let period = r.policy().period.as_secs().max(1);
        let start = r.now() - r.now() % period;
        let mut names: Vec<[u8; 16]> = r
            .export()
            .iter()
            .filter(|k| k.created == start)
            .map(|k| k.name)
            .collect();
        names.sort_unstable();
        names
    };
    loop {
        let sets: Vec<(usize, Vec<[u8; 16]>)> =
            rings.iter().map(|(i, r)| (*i, current(r))).collect();
        let agreed = sets
            .first()
            .is_none_or(|(_, first)| !first.is_empty() && sets.iter().all(|(_, s)| s == first));
        if agreed {
            return Ok(());
        }
        if Instant::now() > deadline {
            let held: Vec<String> = sets
                .iter()
                .map(|(i, s)| format!("host {i}: {} key(s)", s.len()))
                .collect();
            return Err(format!(
                "the hosts' ticket keys did not agree within {} s ({})",
                timeout.as_secs(),
                held.join(", ")
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Start a process and wait until it prints `ready`, collecting the lines
/// before it. Errors carry what the process printed.
pub fn start_until_ready(
    name: &str,
    cmd: &mut Command,
    timeout: Duration,
) -> Result<(Guarded, Vec<String>)> {
    start_until(name, cmd, timeout, |lines| {
        lines.last().is_some_and(|l| l.trim() == "ready")
    })
}

/// Start a process and wait until the lines it printed satisfy `ready`.
pub fn start_until(
    name: &str,
    cmd: &mut Command,
    timeout: Duration,
    ready: impl Fn(&[String]) -> bool,
) -> Result<(Guarded, Vec<String>)> {
    // Die with the demo even if it is killed outright (SIGKILL, a hang-up):
    // no server or bridge outlives it. The demo spawns from its main
    // thread, which lives as long as the demo does.
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let guard = Guarded {
        name: name.to_string(),
        guard: childguard::Guard::spawned(child).grace(Duration::from_secs(5)),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = etx.send(all.clone());
        }
    });
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                lines.push(l);
                if ready(&lines) {
                    return Ok((guard, lines));
                }
            }
            Err(e) => {
                let exited = e == mpsc::RecvTimeoutError::Disconnected;
                if exited {
                    // Give the stderr reader a moment to collect the reason.
                    std::thread::sleep(Duration::from_millis(200));
                }
                let err = erx.try_iter().last().unwrap_or_default();
                return Err(crate::Error::Failed(if exited {
                    format!("{name} exited before it was ready: {}", err.trim())
                } else {
                    format!(
                        "{name} did not become ready within {timeout:?}: {}",
                        err.trim()
                    )
                }));
            }
        }
    }
}

/// Start a server that says nothing when it is ready (nginx, Apache httpd):
/// its output goes to `log` (where its own error log goes too), and
/// `ready` is asked every 20 ms until it returns a value. Stops early, with
/// the end of `log`, when the server exits or `stop` is raised. Like every
/// process of the demo, the server gets SIGTERM if the demo dies.
pub fn start_polling<T>(
    name: &str,
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    stop: &std::sync::atomic::AtomicBool,
    mut ready: impl FnMut(&Guarded) -> Result<Option<T>>,
) -> Result<(Guarded, T)> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    // SAFETY: as in `start_until`: only prctl, async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let mut guard = Guarded {
        name: name.to_string(),
        guard: childguard::Guard::spawned(child).grace(Duration::from_secs(5)),
    };
    let deadline = Instant::now() + timeout;
    loop {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        if let Some(code) = guard.exited() {
            return Err(format!(
                "{name} exited (status {code}) before it was ready; the end of {}:\n{}",
                log.display(),
                log_tail(log, 15)
            )
            .into());
        }
        if let Some(v) = ready(&guard)? {
            return Ok((guard, v));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name} was not ready within {} s; the end of {}:\n{}",
                timeout.as_secs(),
                log.display(),
                log_tail(log, 15)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `n` lines of a log file (empty if it cannot be read).
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The pids of the processes whose parent is `pid`, sorted (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut kids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    // The field after the command name, which is in
                    // parentheses and may hold spaces: state, then ppid.
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect();
    kids.sort_unstable();
    kids
}

/// Parse `worker I pid P listening on ADDR` lines of `scsp serve`.
pub fn parse_workers(lines: &[String]) -> Vec<(u32, SocketAddr)> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["worker", _, "pid", pid, "listening", "on", addr] => {
                    Some((pid.parse().ok()?, addr.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

/// Parse the C example server's `worker I port P` and `worker I pid P ready`
/// lines into (pid, address) per worker, once every worker is ready.
pub fn parse_openssl_workers(
    lines: &[String],
    ip: &str,
    workers: usize,
) -> Option<Vec<(u32, SocketAddr)>> {
    let mut ports = vec![None; workers];
    let mut pids = vec![None; workers];
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["worker", i, "port", p] => {
                let i: usize = i.parse().ok()?;
                *ports.get_mut(i)? = p.parse::<u16>().ok();
            }
            ["worker", i, "pid", pid, "ready"] => {
                let i: usize = i.parse().ok()?;
                *pids.get_mut(i)? = pid.parse::<u32>().ok();
            }
            _ => {}
        }
    }
    ports
        .into_iter()
        .zip(pids)
        .map(|(port, pid)| Some((pid?, format!("{ip}:{}", port?).parse().ok()?)))
        .collect()
}

/// CPU seconds (user + system) a process has used, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    // The process's CPU-time clock, in nanoseconds: the clock ticks of
    // /proc/PID/stat (10 ms) round a short run's few milliseconds to 0.
    let mut clock: libc::clockid_t = 0;
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both calls only write the values passed by reference, which
    // live across the calls.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } == 0
        && unsafe { libc::clock_gettime(clock, &mut t) } == 0
    {
        return t.tv_sec as f64 + t.tv_nsec as f64 / 1e9;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

/// The loopback address of simulated host `i`.
pub fn host_ip(i: usize) -> String {
    format!("127.0.0.{}", 11 + i)
}

/// A port nothing listens on at `ip`, below the kernel's ephemeral range,
/// for a process that must be told its port: a bridge, nginx, Apache. The
/// `scsp serve` hosts listen on port 0 and every client and bridge
/// connection takes its local port from that range: a port picked from it
/// (by binding port 0) could be handed to one of them before its process
/// binds it ("Address already in use").
pub fn free_port(ip: &str) -> Result<u16> {
    const LOWEST: u32 = 10_000;
    let ephemeral = u32::from(ephemeral_start());
    if ephemeral <= LOWEST + 100 {
        // An unusual range: fall back to what the kernel hands out.
        let l = std::net::TcpListener::bind((ip, 0)).map_err(|e| e.to_string())?;
        return Ok(l.local_addr().map_err(|e| e.to_string())?.port());
    }
    let span = ephemeral - LOWEST;
    // Start somewhere else in each run, so two demos rarely try one port.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = nanos ^ std::process::id().wrapping_mul(2_654_435_761);
    for k in 0..span.min(1000) {
        let port = (LOWEST + (start.wrapping_add(k.wrapping_mul(7919))) % span) as u16;
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!("no free port on {ip} between {LOWEST} and {ephemeral} after 1000 tries").into())
}

/// The first port of the kernel's ephemeral range (Linux's default if the
/// range cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Check that we can bind every host address before starting anything.
pub fn check_loopback(hosts: usize) -> Result<()> {
    for i in 0..hosts {
        let ip = host_ip(i);
        std::net::TcpListener::bind((ip.as_str(), 0)).map_err(|e| {
            format!("cannot bind loopback address {ip}: {e} (the demo needs 127.0.0.11.. on the lo interface)")
        })?;
    }
    Ok(())
}

/// Files of one simulated host inside the demo's directory.
pub fn host_dir(base: &Path, i: usize) -> PathBuf {
    base.join(format!("host{i}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_free_and_below_the_ephemeral_range() {
        let ephemeral = super::ephemeral_start();
        for _ in 0..20 {
            let port = super::free_port("127.0.0.1").unwrap();
            assert!((10_000..ephemeral).contains(&port), "{port}");
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
