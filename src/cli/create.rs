//! `scsp create PATH --size 64MiB …`

use super::size::{human, parse_size};
use super::{CliResult, Usage};
use scsp::{Cache, Config};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Segment file to create (e.g. /dev/shm/scsp).
    path: PathBuf,
    /// Session log capacity (rounded down to a power of two), e.g. 64MiB.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    size: u64,
    /// Shards (power of two, 1 to 1024).
    #[arg(long, default_value_t = scsp::config::DEFAULT_SHARDS)]
    shards: u32,
    /// Largest value (power of two, 256B to 64KiB).
    #[arg(long, default_value = "8KiB", value_parser = parse_size)]
    max_value: u64,
    /// This host's origin id for the bridge (non-zero).
    #[arg(long, default_value_t = 1)]
    host_id: u32,
    /// File mode in octal, e.g. 600 or 660.
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    mode: u32,
    /// Group (name or numeric id) for workers running as another user.
    #[arg(long)]
    group: Option<String>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("'{s}' is not an octal file mode; write e.g. 600 or 660"))
}

fn parse_group(g: &str) -> CliResult<u32> {
    if let Ok(id) = g.parse::<u32>() {
        return Ok(id);
    }
    match nix::unistd::Group::from_name(g)? {
        Some(grp) => Ok(grp.gid.as_raw()),
        None => Err(Usage(format!("--group: no group named '{g}'")).into()),
    }
}

/// Segment size from which 2 MiB pages measurably help (docs/perf.md,
/// journal item 10: a 64 MiB segment gained, a 16 MiB one did not).
const HUGE_PAGES_WORTH_IT: u64 = 64 << 20;

pub fn run(a: Args) -> CliResult<ExitCode> {
    let cfg = Config {
        size: a.size,
        shards: a.shards,
        max_value: u32::try_from(a.max_value)
            .map_err(|_| Usage("--max-value is too large".into()))?,
        host_id: a.host_id,
        mode: a.mode,
        group: a.group.as_deref().map(parse_group).transpose()?,
        allow_foreign_owner: false,
    };
    let cache = Cache::create(&a.path, &cfg)?;
    let s = cache.stats();
    println!(
        "created {}: {} of session log in {} shards, {} index slots, max value {}, file {}",
        a.path.display(),
        human(s.capacity_bytes),
        s.shards,
        s.index_slots,
        human(s.max_value),
        human(cache.segment().geometry().total_len),
    );
    if s.capacity_bytes != a.size {
        println!(
            "note: --size {} was rounded down to a power of two",
            human(a.size)
        );
    }
    let pages = scsp::segment::pages::PagePolicy::of(&a.path);
    if s.capacity_bytes >= HUGE_PAGES_WORTH_IT && !pages.huge_pages() {
        println!(
            "note: this segment gets 4 KiB pages ({}); a tmpfs mounted with huge=within_size \
             makes gets and puts faster (docs/operations.md, \"Huge pages\")",
            pages.fs_type
        );
    }
    Ok(ExitCode::SUCCESS)
}
