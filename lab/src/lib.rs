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
mod error;
pub mod server;

pub use error::{Error, Result};
