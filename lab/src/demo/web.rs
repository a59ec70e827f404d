//! nginx and Apache httpd as each host's TLS front (`scsp demo --server
//! nginx|apache`): per host one instance on the host's address, with
//! `--workers` worker processes, its own segment and, in set-up (c), its own
//! `scsp bridge`. What each set-up configures:
//!
//! | set-up | nginx | Apache httpd (event MPM) |
//! |---|---|---|
//! | (a) stock | `ssl_session_cache shared:SSL:10m` | `SSLSessionCache shmcb:…(512000)` |
//! | (b), (c) | `scsp_session_cache SEG context=…` | `SSLSessionCache scsp:SEG,context=…` |
//!
//! Without `--tickets` tickets are off (`ssl_session_tickets off`,
//! `SSLSessionTickets off`): every session is in the cache. With it, (a)
//! keeps the server's own ticket keys (one set per instance) and (b), (c)
//! take the segment's shared keys (`scsp_ticket_keys on`, `SCSPTicketKeys`).

use super::{certs::DemoCerts, pool, pool::Guarded, Args, ServerKind, Setup, Tls};
use crate::Result;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The scsp context every host's server names: one service, one pool.
const CONTEXT: &str = "scsp-demo";

/// A located nginx or Apache httpd and the scsp module it loads.
pub struct Front {
    kind: ServerKind,
    bin: PathBuf,
    module: PathBuf,
    /// Apache's own modules (mod_ssl, the event MPM, shmcb).
    apache_modules: PathBuf,
    /// Apache's DocumentRoot, a directory of its own that every user can
    /// read: started by root, Apache's workers run as another user, who
    /// cannot enter the demo's private directory. Removed on drop.
    htdocs: Option<tempfile::TempDir>,
}

fn usage(msg: String) -> crate::Error {
    crate::Error::Usage(msg)
}

/// `name` in `PATH`, then in the usual sbin directories (which a user's
/// `PATH` often lacks).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    names.iter().find_map(|n| {
        dirs.iter()
            .map(|d| d.join(n))
            .find(|p| p.is_file() && is_executable(p))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Where the build scripts put the modules: `$CARGO_TARGET_DIR/<sub>`, the
/// target directory this scsp binary was built in, `./target/<sub>`.
fn module_candidates(sub: &str, file: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(t));
    }
    // <target>/release/scsp or <target>/debug/scsp
    if let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(2).map(Path::to_path_buf))
    {
        dirs.push(target);
    }
    dirs.push(PathBuf::from("target"));
    let mut out: Vec<PathBuf> = dirs.into_iter().map(|d| d.join(sub).join(file)).collect();
    out.dedup();
    out
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Front {
    /// Find the server and the built module for `--server nginx|apache`,
    /// or say exactly what is missing and how to get it (a usage error:
    /// exit code 2). `None` for the other servers.
    pub fn locate(a: &Args) -> Result<Option<Front>> {
        let (names, install, sub, file, build) = match a.server {
            ServerKind::Nginx => (
                &["nginx"][..],
                "apt-get install nginx nginx-dev",
                "nginx",
                "ngx_http_scsp_module.so",
                "bash nginx/build.sh (needs nginx-dev of the same version, gcc, make, libssl-dev)",
            ),
            ServerKind::Apache => (
                &["apache2", "httpd"][..],
                "apt-get install apache2 apache2-dev",
                "apache",
                "mod_socache_scsp.so",
                "bash apache/build.sh (needs apache2-dev, gcc, libssl-dev)",
            ),
            ServerKind::Rustls | ServerKind::Openssl => return Ok(None),
        };
        let server = match a.server {
            ServerKind::Nginx => "nginx",
            _ => "Apache httpd",
        };
        let bin = match &a.server_bin {
            Some(p) if p.is_file() && is_executable(p) => p.clone(),
            Some(p) => {
                return Err(usage(format!(
                    "--server-bin {}: no such program ({server} is not installed there)",
                    p.display()
                )))
            }
            None => find_program(names).ok_or_else(|| {
                usage(format!(
                    "--server {sub} needs {server}, which is not installed ({} not found in PATH or /usr/sbin); \
                     install it ({install}) or name it with --server-bin PATH",
                    names.join(" or ")
                ))
            })?,
        };
        let module = match &a.module {
            Some(p) if p.is_file() => p.clone(),
            Some(p) => return Err(usage(format!("--module {}: no such file", p.display()))),
            None => {
                let tried = module_candidates(sub, file);
                tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
                    usage(format!(
                        "--server {sub} needs the scsp module {file}, which is not built (looked in {}); \
                         build it with: {build}; or name it with --module PATH",
                        list(&tried)
                    ))
                })?
            }
        };
        let mut front = Front {
            kind: a.server,
            bin,
            module,
            apache_modules: PathBuf::new(),
            htdocs: None,
        };
        if a.server == ServerKind::Apache {
            front.apache_modules = apache_modules_dir()?;
        }
        Ok(Some(front))
    }

    /// Make what the servers serve (Apache's DocumentRoot) in `base`, next
    /// to the demo's directory and with its prefix, so that a demo killed
    /// outright leaves nothing the next one does not remove.
    pub fn prepare(&mut self, base: &Path) -> Result<()> {
        if self.kind != ServerKind::Apache {
            return Ok(());
        }
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::Builder::new()
            .prefix(&format!("scsp-demo-{}-htdocs-", std::process::id()))
            .tempdir_in(base)
            .map_err(|e| format!("cannot make a directory in {}: {e}", base.display()))?;
        let index = d.path().join("index.html");
        std::fs::write(&index, "worker\n").map_err(|e| e.to_string())?;
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755))
            .and_then(|_| std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o644)))
            .map_err(|e| e.to_string())?;
        self.htdocs = Some(d);
        Ok(())
    }

    /// Start host `i`'s server for `setup` on a free port of the host's
    /// address, and wait until all its workers run. Returns the server
    /// (nginx's master, Apache's parent) and (pid, address) per worker:
    /// the workers of one instance share its address, and the kernel
    /// (`reuseport` for nginx) spreads the host's connections over them.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        a: &Args,
        setup: Setup,
        i: usize,
        c: &DemoCerts,
        segment: &Path,
        name: &str,
        stop: &AtomicBool,
    ) -> Result<(Guarded, Vec<(u32, SocketAddr)>)> {
        let hdir = segment
            .parent()
            .ok_or("the segment has no directory")?
            .to_path_buf();
        let ip = pool::host_ip(i);
        let port = pool::free_port(&ip).map_err(|e| format!("{name}: a port: {e}"))?;
        let addr: SocketAddr = format!("{ip}:{port}")
            .parse()
            .map_err(|e| format!("{name}: address: {e}"))?;
        let workers = a.workers as usize;
        let tag = format!("{setup:?}");
        let log = hdir.join(format!("{}-{tag}.log", self.kind_name()));
        let conf = hdir.join(format!("{}-{tag}.conf", self.kind_name()));
        let timeout = Duration::from_secs(20);
        let (server, pids) = match self.kind {
            ServerKind::Nginx => {
                // nginx makes its temporary directories, not their parent.
                std::fs::create_dir_all(hdir.join("nginx-temp")).map_err(|e| e.to_string())?;
                let text = self.nginx_conf(a, setup, addr, c, segment, &hdir, &log);
                std::fs::write(&conf, text).map_err(|e| e.to_string())?;
                let mut cmd = Command::new(&self.bin);
                // In the foreground, so the master is the demo's child; it
                // stops its workers on SIGTERM.
                cmd.arg("-p")
                    .arg(&hdir)
                    .arg("-c")
                    .arg(&conf)
                    .arg("-e")
                    .arg(&log)
                    .arg("-g")
                    .arg("daemon off;");
                pool::start_polling(name, &mut cmd, &log, timeout, stop, |g| {
                    let kids = pool::children_of(g.pid());
                    Ok((kids.len() == workers).then_some(kids))
                })?
            }
            _ => {
                let text = self.apache_conf(a, setup, addr, c, segment, &hdir, &log)?;
                std::fs::write(&conf, text).map_err(|e| e.to_string())?;
                let mut cmd = Command::new(&self.bin);
                cmd.arg("-f").arg(&conf).arg("-DFOREGROUND");
                // A session of its own: Apache signals its whole process
                // group when it stops, which must not reach the demo.
                // SAFETY: setsid is async-signal-safe.
                unsafe {
                    use std::os::unix::process::CommandExt;
                    cmd.pre_exec(|| {
                        libc::setsid();
                        Ok(())
                    });
                }
                pool::start_polling(name, &mut cmd, &log, timeout, stop, |g| {
                    let started = std::fs::read_to_string(&log)
                        .is_ok_and(|t| t.contains("resuming normal operations"));
                    let kids = pool::children_of(g.pid());
                    Ok((started && kids.len() == workers).then_some(kids))
                })?
            }
        };
        Ok((server, pids.into_iter().map(|p| (p, addr)).collect()))
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            ServerKind::Nginx => "nginx",
            _ => "apache",
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn nginx_conf(
        &self,
        a: &Args,
        setup: Setup,
        addr: SocketAddr,
        c: &DemoCerts,
        segment: &Path,
        hdir: &Path,
        log: &Path,
    ) -> String {
        let scsp = setup != Setup::NoSharing;
        let load = if scsp {
            format!("load_module {};\n", self.module.display())
        } else {
            String::new()
        };
        let cache = match (scsp, a.tickets) {
            (false, false) => {
                "ssl_session_cache shared:SSL:10m;\n        ssl_session_tickets off;".to_string()
            }
            (false, true) => {
                "ssl_session_cache shared:SSL:10m;\n        ssl_session_tickets on;".to_string()
            }
            (true, false) => format!(
                "scsp_session_cache {} context={CONTEXT};\n        ssl_session_tickets off;",
                segment.display()
            ),
            (true, true) => format!(
                "scsp_session_cache {} context={CONTEXT};\n        scsp_ticket_keys on;",
                segment.display()
            ),
        };
        let protocols = match a.tls {
            Tls::V12 => "TLSv1.2",
            Tls::V13 => "TLSv1.3",
        };
        let t = hdir.join("nginx-temp");
        let t = t.display();
        format!(
            "# scsp demo: host {addr}, set-up {setup:?}\n\
             {load}worker_processes {workers};\n\
             pid {hdir}/nginx-{setup:?}.pid;\n\
             error_log {log} notice;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n    \
                 access_log off;\n    \
                 client_body_temp_path {t}/body;\n    \
                 proxy_temp_path {t}/proxy;\n    \
                 fastcgi_temp_path {t}/fastcgi;\n    \
                 uwsgi_temp_path {t}/uwsgi;\n    \
                 scgi_temp_path {t}/scgi;\n    \
                 server {{\n        \
                     listen {addr} ssl reuseport;\n        \
                     server_name {name};\n        \
                     ssl_certificate {cert};\n        \
                     ssl_certificate_key {key};\n        \
                     ssl_protocols {protocols};\n        \
                     {cache}\n        \
                     location / {{ return 200 \"worker $pid\\n\"; }}\n    \
                 }}\n\
             }}\n",
            workers = a.workers,
            hdir = hdir.display(),
            log = log.display(),
            name = super::load::SERVER_NAME,
            cert = c.server_cert.display(),
            key = c.server_key.display(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn apache_conf(
        &self,
        a: &Args,
        setup: Setup,
        addr: SocketAddr,
        c: &DemoCerts,
        segment: &Path,
        hdir: &Path,
        log: &Path,
    ) -> Result<String> {
        let m = self.apache_modules.display();
        let scsp = setup != Setup::NoSharing;
        let (modules, cache) = if scsp {
            let keys = if a.tickets {
                format!("SCSPTicketKeys {}\n", segment.display())
            } else {
                String::new()
            };
            (
                format!("LoadModule socache_scsp_module {}\n", self.module.display()),
                format!(
                    "SSLSessionCache scsp:{},context={CONTEXT}\n{keys}",
                    segment.display()
                ),
            )
        } else {
            (
                format!("LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so\n"),
                format!(
                    "SSLSessionCache shmcb:{}/ssl_scache-{setup:?}(512000)\n",
                    hdir.display()
                ),
            )
        };
        let protocol = match a.tls {
            Tls::V12 => "TLSv1.2",
            Tls::V13 => "TLSv1.3",
        };
        let htdocs = self
            .htdocs
            .as_ref()
            .ok_or("Apache's DocumentRoot was not made")?
            .path()
            .display()
            .to_string();
        // Started by root, Apache runs its workers as another user.
        let user = if nix::unistd::geteuid().is_root() {
            let u = ["www-data", "apache", "daemon", "nobody"]
                .iter()
                .find_map(|n| nix::unistd::User::from_name(n).ok().flatten())
                .ok_or("running as root, Apache needs a user for its workers (www-data, apache, daemon or nobody)")?;
            format!("User #{}\nGroup #{}\n", u.uid, u.gid)
        } else {
            String::new()
        };
        let n = a.workers as u32;
        // Threads per worker process: enough for every client thread.
        let threads = (a.client_threads as u32).clamp(4, 25);
        Ok(format!(
            "# scsp demo: host {addr}, set-up {setup:?}\n\
             ServerRoot {hdir}\n\
             ServerName {name}\n\
             PidFile {hdir}/apache-{setup:?}.pid\n\
             DefaultRuntimeDir {hdir}\n\
             ErrorLog {log}\n\
             LogLevel notice\n\
             {user}\
             LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
             LoadModule authz_core_module {m}/mod_authz_core.so\n\
             LoadModule dir_module {m}/mod_dir.so\n\
             {modules}\
             LoadModule ssl_module {m}/mod_ssl.so\n\
             # exactly {n} worker processes, kept for the whole run\n\
             StartServers {n}\n\
             ServerLimit {n}\n\
             ThreadLimit {threads}\n\
             ThreadsPerChild {threads}\n\
             MaxRequestWorkers {max}\n\
             MinSpareThreads 1\n\
             MaxSpareThreads {max}\n\
             MaxConnectionsPerChild 0\n\
             {cache}\
             SSLSessionCacheTimeout 600\n\
             Listen {addr}\n\
             <VirtualHost {addr}>\n  \
                 ServerName {name}\n  \
                 DocumentRoot {htdocs}\n  \
                 DirectoryIndex index.html\n  \
                 <Directory {htdocs}>\n    \
                     Require all granted\n  \
                 </Directory>\n  \
                 SSLEngine on\n  \
                 SSLProtocol -all +{protocol}\n  \
                 SSLCertificateFile {cert}\n  \
                 SSLCertificateKeyFile {key}\n  \
                 SSLSessionTickets {tickets}\n\
             </VirtualHost>\n",
            hdir = hdir.display(),
            log = log.display(),
            name = super::load::SERVER_NAME,
            max = n * threads,
            cert = c.server_cert.display(),
            key = c.server_key.display(),
            tickets = if a.tickets { "on" } else { "off" },
        ))
    }
}

/// Apache's module directory: `APACHE_MODULES`, or where Debian, Fedora
/// and others keep mod_ssl.so.
fn apache_modules_dir() -> Result<PathBuf> {
    let tried: Vec<PathBuf> = match std::env::var_os("APACHE_MODULES") {
        Some(d) => vec![PathBuf::from(d)],
        None => [
            "/usr/lib/apache2/modules",
            "/usr/lib64/httpd/modules",
            "/usr/lib/httpd/modules",
            "/usr/libexec/apache2",
        ]
        .map(PathBuf::from)
        .to_vec(),
    };
    let need = [
        "mod_ssl.so",
        "mod_mpm_event.so",
        "mod_authz_core.so",
        "mod_dir.so",
        "mod_socache_shmcb.so",
    ];
    tried
        .iter()
        .find(|d| need.iter().all(|m| d.join(m).is_file()))
        .cloned()
        .ok_or_else(|| {
            usage(format!(
                "--server apache needs Apache's modules {} (looked in {}); install apache2, \
                 or set APACHE_MODULES to their directory",
                need.join(", "),
                list(&tried)
            ))
        })
}
