//! Command-line interface. Each subcommand lives in its own module.

mod bench;
mod bridge;
mod certs;
mod create;
mod demo;
mod serve;
mod size;
mod stats;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Errors of the CLI: any error, printed with its chain.
pub type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

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
    Bench(bench::Args),
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
    Demo(demo::Args),
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> CliResult<ExitCode> {
    match cli.command {
        Command::Bench(a) => bench::run(a),
        Command::Create(a) => create::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Bridge(a) => bridge::run(a),
        Command::Certs(a) => certs::run(a),
    }
}
