//! `scsp`: create, inspect and verify segments; serve, bridge, demo, bench.

#[cfg(not(loom))]
mod cli;

use std::process::ExitCode;

#[cfg(not(loom))]
fn main() -> ExitCode {
    use clap::Parser;
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scsp: error: {e:#}");
            ExitCode::from(cli::exit_code(e.as_ref()))
        }
    }
}

/// Under `cfg(loom)` atomics are model-checker objects, not shared memory,
/// so there are no segment files to work on: the binary is a stub.
#[cfg(loom)]
fn main() -> ExitCode {
    eprintln!("scsp: built with --cfg loom for model checking; rebuild without it");
    ExitCode::from(2)
}
