//! The lab tools end to end: `scsp serve`, `scsp demo` and the baselines.

#[path = "../../../tests/adapters/support/mod.rs"]
mod support;

mod baselines;
mod demo;
mod serve;
