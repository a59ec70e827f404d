//! `scsp serve`: a prefork HTTPS server on the shared session cache.

use super::size::parse_size;
use crate::{Error, Result};
use scsp_lab::server::{ServeOptions, SessionCache, Versions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Tls {
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
    Both,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OnOff {
    On,
    Off,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// PEM certificate chain.
    #[arg(long)]
    cert: PathBuf,
    /// PEM private key.
    #[arg(long)]
    key: PathBuf,
    /// Listen address (port 0: pick free ports).
    #[arg(long, default_value = "127.0.0.1:8443")]
    addr: SocketAddr,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Give each worker its own port (addr's port + worker index) instead of
    /// one shared socket, so a balancer (or test) can pick the worker.
    #[arg(long)]
    port_per_worker: bool,
    /// Shared segment; created if absent. Omit with --private-cache.
    #[arg(long, default_value = "/dev/shm/scsp")]
    segment: PathBuf,
    /// Size of the segment's session log if it has to be created.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    size: u64,
    #[command(flatten)]
    foreign: crate::access::Foreign,
    /// Host id stamped on sessions made here, if the segment has to be
    /// created (distinct per host of a bridged pool).
    #[arg(long, default_value_t = 1)]
    host_id: u32,
    /// Each worker keeps a private in-process cache (the no-sharing baseline).
    #[arg(long, conflicts_with = "baseline_redis")]
    private_cache: bool,
    /// Keep sessions in the redis server at ADDR instead of a segment: the
    /// network-cache baseline, for comparisons (plain TCP: loopback only).
    /// Needs --tickets off.
    #[arg(long, value_name = "ADDR")]
    baseline_redis: Option<SocketAddr>,
    /// Stateless session tickets (keys shared through the segment).
    #[arg(long, value_enum, default_value = "on")]
    tickets: OnOff,
    /// TLS versions to offer.
    #[arg(long, value_enum, default_value = "both")]
    tls: Tls,
    /// Keeps this server's sessions apart from other configurations sharing
    /// the segment (e.g. the virtual host name).
    #[arg(long, default_value = "scsp-serve")]
    context_id: String,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let (owner, group) = a.foreign.ids()?;
    if a.baseline_redis.is_some() && matches!(a.tickets, OnOff::On) {
        return Err(Error::Usage(
            "--baseline-redis holds the session cache, not ticket keys: add --tickets off".into(),
        ));
    }
    let opts = ServeOptions {
        cert: a.cert,
        key: a.key,
        addr: a.addr,
        workers: a.workers,
        port_per_worker: a.port_per_worker,
        cache: if a.private_cache {
            SessionCache::Private
        } else if let Some(addr) = a.baseline_redis {
            SessionCache::Redis(addr)
        } else {
            SessionCache::Shared {
                segment: a.segment,
                config: scsp::Config {
                    size: a.size,
                    host_id: a.host_id,
                    allow_foreign_owner: a.foreign.allow_foreign_owner,
                    owner,
                    group,
                    ..scsp::Config::default()
                },
            }
        },
        tickets: matches!(a.tickets, OnOff::On),
        versions: match a.tls {
            Tls::V12 => Versions::Tls12,
            Tls::V13 => Versions::Tls13,
            Tls::Both => Versions::Both,
        },
        context_id: a.context_id.into_bytes(),
    };
    scsp_lab::server::run(&opts)?;
    Ok(ExitCode::SUCCESS)
}
