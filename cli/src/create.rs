//! `scsp create PATH --size 64MiB …`

use super::size::{human, parse_size};
use crate::{Error, Result};
use scsp::{Cache, Config};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Segment file to create (e.g. /dev/shm/scsp).
    path: PathBuf,
    /// How sessions are kept: `log` (shard logs) or `sets` (every session
    /// in place in a slot of a fixed size; scales further with many
    /// processes). The bridge replicates both. See docs/operations.md,
    /// "Choosing a layout".
    #[arg(long, default_value = "log", value_parser = parse_layout)]
    layout: scsp::Layout,
    /// Session log capacity (with --layout sets: bytes of slots), rounded
    /// down to a power of two, e.g. 64MiB.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    size: u64,
    /// Shards (power of two, 1 to 1024; the log layout only) [default: 16].
    #[arg(long)]
    shards: Option<u32>,
    /// Largest value: a power of two from 256B to 64KiB (default 8KiB);
    /// with --layout sets, the largest session to keep, 64B to 8112B
    /// (default 432B: 512-byte slots), as every session takes a slot of
    /// its size rounded up to a power of two (with its 32-byte key and a
    /// 48-byte header).
    #[arg(long, value_parser = parse_size)]
    max_value: Option<u64>,
    /// About how large most values are (64B up to --max-value): the index
    /// gets three to six slots per entry of this size the log holds. Raise it
    /// when most sessions are larger (client certificates): a smaller index
    /// makes lookups faster. Too large, and full index buckets drop
    /// sessions (`scsp stats` says so). The log layout only [default: 176B].
    #[arg(long, value_parser = parse_size)]
    typical_value: Option<u64>,
    /// This host's origin id for the bridge (non-zero).
    #[arg(long, default_value_t = 1)]
    host_id: u32,
    /// File mode in octal: 600, or 660 with --group to share the segment
    /// with workers of that group (other users never get any permission).
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    mode: u32,
    /// Group (name or numeric id) for workers running as another user.
    #[arg(long)]
    group: Option<String>,
    /// If PATH is already a segment made with these flags (by this release
    /// or an earlier one), leave it as it is and succeed (for service units
    /// and provisioning that run every boot).
    #[arg(long)]
    if_missing: bool,
}

fn parse_layout(s: &str) -> Result<scsp::Layout, String> {
    scsp::Layout::from_name(s).ok_or_else(|| format!("'{s}' is not a layout; use log or sets"))
}

/// `--max-value` when not given: any session for the log layout, a
/// 512-byte slot for the sets layout.
fn default_max_value(layout: scsp::Layout) -> u64 {
    match layout {
        scsp::Layout::Log => scsp::config::DEFAULT_MAX_VALUE.into(),
        scsp::Layout::Sets => scsp::config::DEFAULT_SETS_MAX_VALUE.into(),
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("'{s}' is not an octal file mode; write e.g. 600 or 660"))
}

fn parse_group(g: &str) -> Result<u32> {
    scsp::config::group_id(g).map_err(|e| Error::Usage(format!("--group: {e}")))
}

/// Segment size from which 2 MiB pages measurably help (docs/operations.md,
/// "Huge pages": a 64 MiB segment gained, a 16 MiB one did not).
const HUGE_PAGES_WORTH_IT: u64 = 64 << 20;

pub fn run(a: Args) -> Result<ExitCode> {
    if a.layout == scsp::Layout::Sets {
        for (flag, given) in [
            ("--shards", a.shards.is_some()),
            ("--typical-value", a.typical_value.is_some()),
        ] {
            if given {
                return Err(Error::Usage(format!(
                    "{flag} applies to the log layout only: a sets segment has one slot size \
                     (from --max-value) and no shards; leave {flag} out"
                )));
            }
        }
    }
    let cfg = Config {
        layout: a.layout,
        size: a.size,
        shards: a.shards.unwrap_or(scsp::config::DEFAULT_SHARDS),
        max_value: u32::try_from(a.max_value.unwrap_or(default_max_value(a.layout)))
            .map_err(|_| Error::Usage("--max-value is too large".into()))?,
        typical_value: u32::try_from(
            a.typical_value
                .unwrap_or(scsp::config::DEFAULT_TYPICAL_VALUE.into()),
        )
        .map_err(|_| Error::Usage("--typical-value is too large".into()))?,
        host_id: a.host_id,
        mode: a.mode,
        group: a.group.as_deref().map(parse_group).transpose()?,
        owner: None,
        allow_foreign_owner: false,
    };
    let cache = match Cache::create(&a.path, &cfg) {
        Err(scsp::Error::AlreadyExists(_)) if a.if_missing => return keep_existing(&a.path, &cfg),
        Err(e @ scsp::Error::AlreadyExists(_)) => {
            return Err(format!("{e} (--if-missing accepts one made with the same flags)").into())
        }
        other => other?,
    };
    let s = cache.stats();
    let g = cache.segment().geometry();
    match s.layout {
        scsp::Layout::Log => println!(
            "created {}: {} of session log in {} shards, {} index slots, max value {}, file {}",
            a.path.display(),
            human(s.capacity_bytes),
            s.shards,
            s.index_slots,
            human(s.max_value),
            human(g.total_len),
        ),
        scsp::Layout::Sets => println!(
            "created {}: sets layout, {}, file {}",
            a.path.display(),
            super::stats::sets_shape(g),
            human(g.total_len),
        ),
    }
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

/// `--if-missing` found a file: succeed if it is the segment these flags
/// would make, else say what differs. A segment of another size is never
/// reused silently: the operator asked for that size. One whose index the
/// earlier sizing rule made from these flags
/// ([`scsp::segment::Geometry::earlier_index_slots`]) is kept, with a note:
/// refusing it would stop a service from starting after an upgrade.
fn keep_existing(path: &Path, cfg: &Config) -> Result<ExitCode> {
    let want = scsp::segment::Geometry::from_config(cfg)?;
    let cache = match Cache::open(path) {
        // The generic message names options `create` does not have.
        Err(scsp::Error::ForeignOwner { owner, ours, .. }) => {
            return Err(format!(
                "{} exists and is owned by uid {owner}, not by us (uid {ours}); \
                 --if-missing keeps only a segment of our own: run it as the user \
                 that creates the segment (uid {owner}, if that is this file's \
                 creator)",
                path.display()
            )
            .into())
        }
        other => other?,
    };
    let have = cache.segment().geometry();
    let mut diffs = Vec::new();
    let mut differs = |what: &str, have: String, want: String| {
        if have != want {
            diffs.push(format!("{what} {have} (asked for {want})"));
        }
    };
    differs(
        "layout",
        have.layout.name().to_string(),
        want.layout.name().to_string(),
    );
    differs(
        "size",
        human(have.log_bytes * have.shards),
        human(want.log_bytes * want.shards),
    );
    differs("shards", have.shards.to_string(), want.shards.to_string());
    differs("max value", human(have.max_value), human(want.max_value));
    let (have_slots, want_slots) = (have.buckets * 8, want.buckets * 8);
    // The earlier sizing rule is the log layout's index; sets have none.
    let earlier_index = want.layout == scsp::Layout::Log
        && have_slots != want_slots
        && have_slots == scsp::segment::Geometry::earlier_index_slots(cfg);
    if !earlier_index {
        differs(
            "index slots",
            have_slots.to_string(),
            want_slots.to_string(),
        );
    }
    differs(
        "host id",
        have.host_id.to_string(),
        want.host_id.to_string(),
    );
    let meta = std::fs::metadata(path)?;
    use std::os::unix::fs::MetadataExt;
    differs(
        "mode",
        format!("{:o}", meta.mode() & 0o777),
        format!("{:o}", cfg.mode),
    );
    if let Some(gid) = cfg.group {
        differs("group id", meta.gid().to_string(), gid.to_string());
    }
    if !diffs.is_empty() {
        return Err(format!(
            "{} exists with {}; remove it to create it anew (its sessions are lost, \
             clients fall back to a full handshake once)",
            path.display(),
            diffs.join(", ")
        )
        .into());
    }
    if earlier_index {
        println!(
            "note: {} has the index an earlier release made for these flags, \
             {have_slots} slots where this one makes {want_slots}; it works as \
             it is, and drops more sessions when the log is full \
             (docs/operations.md, \"Sizing a segment\"): remove it and create it \
             anew when convenient (its sessions are lost)",
            path.display()
        );
    }
    println!(
        "{} exists with these settings; left as it is",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
