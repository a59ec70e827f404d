//! `scsp bridge --config bridge.toml [--check-config]`

use crate::{Error, Result};
use scsp_bridge::{self as bridge, BridgeConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bridge configuration file (TOML; see docs/PROTOCOL.md).
    #[arg(long)]
    config: PathBuf,
    /// Validate the configuration, segment and certificates, then exit.
    #[arg(long)]
    check_config: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
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
    use nix::sys::signal::{signal, SigHandler, Signal};
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to a static atomic, which is
        // async-signal-safe; no other handler for these signals is relied on.
        unsafe { signal(s, SigHandler::Handler(on_signal)) }
            .map_err(|e| Error::system(format!("installing the {s} handler"), e))?;
    }
    // A peer closing its socket must not kill us with SIGPIPE.
    // SAFETY: ignoring SIGPIPE is process-wide and turns it into EPIPE errors.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map_err(|e| Error::system("ignoring SIGPIPE", e))?;
    bridge::run(checked, &STOP, |addr| {
        // Scripts (and `scsp demo`) wait for this line on stdout.
        use std::io::Write;
        println!("listening on {addr}");
        println!("ready");
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
