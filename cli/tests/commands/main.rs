//! The `scsp` command's segment tools: create, stats, verify, certs, and
//! page sizes on tmpfs.

#[path = "../../../tests/table/common/mod.rs"]
mod common;

mod cli;
mod crate_graph;
mod tmpfs;
