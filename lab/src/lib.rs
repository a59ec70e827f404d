//! # scsp-lab: what shows scsp at work and measures it
//!
//! Not an API for servers: the example prefork HTTPS server behind
//! `scsp serve`, the pool demo (`scsp demo`), the benchmarks (`scsp bench`),
//! and the baselines they compare scsp against.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod baselines;
pub mod bench;
pub mod demo;
pub mod server;

/// Errors of the lab tools: any error, printed with its chain.
pub type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A command line that parsed but asks for something impossible (a flag
/// value out of range): exits 2, like clap's own errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}
