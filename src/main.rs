//! `scsp`: create, inspect and verify segments; serve, bridge, demo, bench.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scsp: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
