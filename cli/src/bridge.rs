//! `scsp bridge --config bridge.toml [--check-config]`

use crate::{Error, Result};
use scsp_bridge::{self as bridge, BridgeConfig};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bridge configuration file (TOML; see docs/PROTOCOL.md).
    #[arg(long)]
    config: PathBuf,
    /// Validate the configuration, segment and certificates, then exit.
    #[arg(long)]
    check_config: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let cfg = BridgeConfig::load(&a.config)?;
    // What `check` finds wrong (no segment, a host id or certificate that
    // does not fit) is a configuration error too: exit code 2.
    let checked = bridge::check(cfg).map_err(|e| match e.is_config() {
        true => Error::Usage(format!("{}: {e}", a.config.display())),
        false => e.into(),
    })?;
    if a.check_config {
        let c = checked.config();
        println!(
            "{}: ok: cluster {:?}, host {}, listen {}, {} peers",
            a.config.display(),
            c.cluster,
            c.host_id,
            c.listen,
            c.peers.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::system(format!("installing the handler of signal {sig}"), e))?;
    }
    // A peer closing its socket must not kill us with SIGPIPE: EPIPE instead.
    // SAFETY: ignoring a signal installs no handler of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    bridge::run(checked, stop, |addr| {
        // Scripts (and `scsp demo`) wait for this line on stdout.
        use std::io::Write;
        println!("listening on {addr}");
        println!("ready");
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
