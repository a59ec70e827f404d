//! `scsp verify PATH`: exit 0 when clean, 1 when corrupt.

use crate::Result;
use scsp::Cache;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Segment file.
    path: PathBuf,
    #[command(flatten)]
    foreign: crate::access::Foreign,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let cache = Cache::open_with(&a.path, a.foreign.access()?)?;
    let r = cache.verify();
    let mut out = String::new();
    writeln!(out, "header         ok")?;
    writeln!(
        out,
        "index          {} words, {} point at live entries (sets: ways holding a session)",
        r.index_words, r.good_entries
    )?;
    if cache.layout() == scsp::Layout::Sets {
        writeln!(
            out,
            "ways           {} left mid-write (by killed writers, or being written now; harmless, puts take them)",
            r.unfinished_ways
        )?;
    } else {
        writeln!(
            out,
            "logs           {} entries ({} tombstones), {} words skipped (holes from killed writers or wrap; harmless)",
            r.log_entries, r.tombstones, r.skipped_words
        )?;
    }
    if r.is_clean() {
        writeln!(out, "verdict        clean")?;
        super::emit(&out)?;
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &r.problems {
            writeln!(out, "problem        {p}")?;
        }
        writeln!(
            out,
            "verdict        CORRUPT ({} problems shown)",
            r.problems.len()
        )?;
        writeln!(
            out,
            "hint           a worker stalled in the middle of a put while its whole shard log \
             was appended damages an entry or two (lookups miss them and unlink them); \
             many problems, or problems that stay, mean something else writes into the \
             segment: remove it and create it anew"
        )?;
        super::emit(&out)?;
        Ok(ExitCode::from(1))
    }
}
