//! `scsp certs --out DIR --hosts N [--cluster NAME] [--addrs A,B,…
//! [--segment PATH|TEMPLATE]] [--reuse-ca]`: a cluster CA and one certificate per host for the bridge
//! (and for `scsp serve`), and with `--addrs` each host's bridge
//! configuration. With `--reuse-ca`, the CA in DIR issues certificates for
//! the hosts that lack one.

use crate::{Error, Result};
use scsp_bridge::config::{BridgeConfig, Mesh};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write ca.pem, ca.key, host-<i>.pem and host-<i>.key into.
    #[arg(long)]
    out: PathBuf,
    /// Number of hosts (ids 1..=N).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    hosts: u32,
    /// Cluster name (A-Z a-z 0-9 . _ -), written into the CA's common name
    /// and the bridge configurations.
    #[arg(long, default_value = "scsp")]
    cluster: String,
    /// Every host's bridge address, host 1 first (e.g.
    /// 10.0.0.1:7401,10.0.0.2:7401): also write bridge-<i>.toml for each host.
    #[arg(long, value_delimiter = ',')]
    addrs: Vec<SocketAddr>,
    /// The segment the bridge configurations name; `{id}` in it is
    /// replaced by each host's id, e.g. '/dev/shm/scsp-{id}' for a pool
    /// whose hosts share one machine (each bridge then works on its own
    /// segment, with no hand edits).
    #[arg(
        long,
        default_value = "/dev/shm/scsp",
        requires = "addrs",
        value_name = "PATH|TEMPLATE"
    )]
    segment: PathBuf,
    /// Keep the CA (ca.pem, ca.key) and host certificates already in --out,
    /// and issue certificates only for hosts that have none: to add hosts
    /// to a pool (give the same --cluster), or re-key one (delete its two
    /// files first).
    #[arg(long)]
    reuse_ca: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    scsp_bridge::config::check_cluster(&a.cluster)
        .map_err(|e| Error::Usage(format!("--cluster: {}", e.message)))?;
    if !a.addrs.is_empty() && a.addrs.len() != a.hosts as usize {
        return Err(Error::Usage(format!(
            "--addrs lists {} addresses for --hosts {}: give one per host, host 1 first",
            a.addrs.len(),
            a.hosts
        )));
    }
    if let Some((i, addr)) = a
        .addrs
        .iter()
        .enumerate()
        .find(|(i, x)| a.addrs[..*i].contains(x))
    {
        return Err(Error::Usage(format!(
            "--addrs lists {addr} twice (for host {}); every host needs its own address",
            i + 1
        )));
    }
    if a.reuse_ca {
        let done = scsp_bridge::pki::add_hosts(&a.out, &a.cluster, a.hosts)?;
        println!(
            "{}: kept the CA and {} host certificates; wrote {} ({})",
            a.out.display(),
            done.kept.len(),
            done.written.len(),
            ids(&done.written)
        );
    } else {
        if a.out.join("ca.pem").exists() {
            return Err(Error::Usage(format!(
                "{} already holds a cluster CA: pass --reuse-ca to add hosts with it, or \
                 choose another --out",
                a.out.display()
            )));
        }
        let f = scsp_bridge::pki::write_cluster(&a.out, &a.cluster, a.hosts)?;
        println!(
            "wrote {} (CA) and {} host certificates (names scsp-host-1..scsp-host-{}) into {}",
            f.ca_cert.display(),
            f.hosts.len(),
            a.hosts,
            a.out.display()
        );
    }
    if !a.addrs.is_empty() {
        write_configs(&a)?;
        println!(
            "wrote bridge-1.toml..bridge-{}.toml: on host <i>, install ca.pem, host-<i>.pem, \
             host-<i>.key and bridge-<i>.toml (as bridge.toml) into one directory",
            a.hosts
        );
    }
    println!("private keys (*.key) are owner-only; keep ca.key off the hosts");
    Ok(ExitCode::SUCCESS)
}

/// `scsp-host-1, scsp-host-4`, or `none`.
fn ids(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    let names: Vec<String> = ids
        .iter()
        .map(|&i| scsp_bridge::pki::host_name(i))
        .collect();
    names.join(", ")
}

/// Host `id`'s segment: `{id}` in the template replaced by the id.
fn segment_of(template: &Path, id: u32) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let t = template.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(t.len());
    let mut rest = t;
    while let Some(at) = rest.windows(4).position(|w| w == b"{id}") {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(id.to_string().as_bytes());
        rest = &rest[at + 4..];
    }
    out.extend_from_slice(rest);
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// One configuration per host, certificate paths relative to it, each
/// validated by the bridge's own parser before it is written.
fn write_configs(a: &Args) -> Result<()> {
    let mesh = Mesh {
        cluster: &a.cluster,
        addrs: &a.addrs,
        cert_dir: Path::new(""),
        heartbeat_ms: None,
        max_backoff_ms: None,
    };
    for id in 1..=a.hosts {
        let text = mesh.config(id, &segment_of(&a.segment, id));
        BridgeConfig::parse(&text, &a.out).map_err(|e| Error::Usage(e.to_string()))?;
        let path = a.out.join(format!("bridge-{id}.toml"));
        std::fs::write(&path, text)
            .map_err(|e| Error::system(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}
