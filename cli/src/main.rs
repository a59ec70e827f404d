//! `scsp`: create, inspect and verify segments; serve, bridge, demo, bench.
//! Each subcommand lives in its own module.

mod access;
mod bridge;
mod certs;
mod create;
mod error;
mod serve;
mod size;
mod stats;
mod verify;

use clap::{Parser, Subcommand};
use error::{Error, Result};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Cli::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scsp: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// scsp: a shared TLS session cache for pools of servers.
#[derive(Parser, Debug)]
#[command(name = "scsp", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compare scsp with in-process caches (median ns/op, multi-process Mops/s).
    Bench(scsp_lab::bench::Args),
    /// Create a segment file.
    Create(create::Args),
    /// Show a segment's capacity, counters and fill.
    Stats(stats::Args),
    /// Validate a segment's header, index and logs; exit 1 if corrupt.
    Verify(verify::Args),
    /// Run a prefork HTTPS server whose workers share one session cache.
    Serve(serve::Args),
    /// Mirror this host's segment with its peers' (TLS, full mesh).
    Bridge(bridge::Args),
    /// Make a cluster CA and host certificates for the bridge.
    Certs(certs::Args),
    /// Show the pool at work: no sharing vs a segment per host vs segments + bridge.
    Demo(scsp_lab::demo::Args),
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Create(_) | Command::Stats(_) | Command::Verify(_) | Command::Certs(_)
    ) {
        quiet_on_closed_pipe();
    }
    match cli.command {
        Command::Bench(a) => Ok(scsp_lab::bench::run(a)?),
        Command::Create(a) => create::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Demo(a) => Ok(scsp_lab::demo::run(a)?),
        Command::Bridge(a) => bridge::run(a),
        Command::Certs(a) => certs::run(a),
    }
}

/// Write a command's whole output to stdout; a failure (a full disk, a
/// closed file) is an error that says so, not a panic.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::system("writing the output to stdout", e))
}

/// Let a command that only prints die of SIGPIPE when its reader goes away
/// (`scsp stats PATH | head`), as Unix tools do. Rust ignores SIGPIPE, which
/// turns a closed pipe into a panic in `println!`. Not for commands that use
/// sockets: there a peer's reset must be an error, not a fatal signal.
fn quiet_on_closed_pipe() {
    // SAFETY: sets the default disposition of one signal; no handler of ours
    // is installed or replaced, and no other thread runs yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
