//! `scsp stats PATH [--json]`

use super::size::human;
use crate::Result;
use scsp::Cache;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Segment file.
    path: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Print Prometheus text format (for node_exporter's textfile collector).
    #[arg(long)]
    prometheus: bool,
    #[command(flatten)]
    foreign: crate::access::Foreign,
}

/// A sets segment's slots, sets and notice rings, as `create` and `stats`
/// describe them.
pub fn sets_shape(g: &scsp::segment::Geometry) -> String {
    use scsp::segment::layout::{NOTICE_RINGS, SET_WAYS};
    format!(
        "{} slots of {} in {} sets of {SET_WAYS}, max value {}, {NOTICE_RINGS} notice rings of {} \
         records for a bridge",
        g.sets() * SET_WAYS as u64,
        human(g.slot_bytes()),
        g.sets(),
        human(g.max_value),
        g.notice_records()
    )
}

pub fn run(a: Args) -> Result<ExitCode> {
    let cache = Cache::open_with(&a.path, a.foreign.access()?)?;
    let s = cache.stats_as_observer();
    let mut out = String::new();
    let occ = cache.occupancy();
    let log_age = cache.log_age_secs();
    let bridge = scsp::replication::status::read(&cache);
    let pages = scsp::segment::pages::PagePolicy::of(&a.path);
    let c = &s.counters;
    let lookups = c.hits + c.misses;
    let hit_ratio = if lookups == 0 {
        0.0
    } else {
        c.hits as f64 / lookups as f64
    };
    if a.json {
        let v = serde_json::json!({
            // A path is bytes: shown as text, what is not UTF-8 replaced.
            "path": a.path.to_string_lossy(),
            "stats": s,
            "occupancy": occ,
            "hit_ratio": hit_ratio,
            "log_age_secs": log_age,
            "pages": { "huge": pages.huge_pages(), "fs_type": pages.fs_type, "huge_option": pages.huge },
            "bridge": bridge,
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).expect("plain JSON values serialise")
        )?;
        super::emit(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.prometheus {
        write!(
            out,
            "{}",
            scsp_bridge::metrics::render(&scsp_bridge::metrics::Snapshot {
                segment: &a.path,
                stats: &s,
                log_age_secs: log_age,
                occupancy: Some(&occ),
                bridge: bridge.as_ref(),
            })
        )?;
        super::emit(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "segment        {}", a.path.display())?;
    let sets = s.layout == scsp::Layout::Sets;
    if sets {
        let g = cache.segment().geometry();
        writeln!(out, "capacity       sets layout: {}", sets_shape(g))?;
    } else {
        writeln!(
            out,
            "capacity       {} log in {} shards, {} index slots, max value {}",
            human(s.capacity_bytes),
            s.shards,
            s.index_slots,
            human(s.max_value)
        )?;
    }
    writeln!(out, "host id        {}", s.host_id)?;
    writeln!(out, "pages          {}", describe_pages(&pages))?;
    if sets {
        writeln!(
            out,
            "live entries   ~{} ({} in slots), {} expired, {} ways being written or left mid-write",
            occ.live_entries,
            human(occ.live_bytes),
            occ.expired_entries,
            occ.stale_words
        )?;
    } else {
        writeln!(
            out,
            "live entries   ~{} ({} of log), {} expired, {} stale index words",
            occ.live_entries,
            human(occ.live_bytes),
            occ.expired_entries,
            occ.stale_words
        )?;
    }
    writeln!(
        out,
        "oldest entry   {}",
        occ.oldest_age_secs
            .map(|a| format!("{a} s ago"))
            .unwrap_or_else(|| "-".into())
    )?;
    if sets {
        writeln!(
            out,
            "ways in use    {:.1}% ({} written since creation)",
            s.log_fill * 100.0,
            human(s.appended_bytes),
        )?;
    } else {
        writeln!(
            out,
            "log fill       {:.1}% ({} appended since creation){}",
            s.log_fill * 100.0,
            human(s.appended_bytes),
            log_age
                .map(|a| format!(", reaches back {a} s"))
                .unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "lookups        {} hits, {} misses, hit ratio {:.1}%",
        c.hits,
        c.misses,
        hit_ratio * 100.0
    )?;
    if let Some(note) = if sets {
        sets_note(&s)
    } else {
        index_note(&s, &occ)
    } {
        writeln!(out, "note           {note}")?;
    }
    if let Some(note) = too_large_note(&s) {
        writeln!(out, "note           {note}")?;
    }
    writeln!(out, "counters       (all processes, since creation)")?;
    for i in scsp::stats::COUNTERS {
        writeln!(
            out,
            "  {:<14} {:>12}  {}",
            i.field,
            c.get(i.counter),
            i.help()
        )?;
    }
    writeln!(
        out,
        "processes      {} attached now (besides this command)",
        c.processes
    )?;
    if let Some(b) = &bridge {
        print_bridge(&mut out, b)?;
    }
    super::emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Share of puts that pushed a session still in the log out of a full
/// index bucket, above which `stats` looks for a better index. The count
/// includes the oldest sessions, which the log was about to overwrite, so
/// it runs above the sessions actually lost: on a full 64 MiB log, 0.08 %
/// for sessions of the typical size and 0.56 % for 100-byte ones (which
/// lose 0.06 %), against 3.7 % for an index of the earlier sizing rule
/// (two slots per entry at the default; `create --if-missing` keeps such a
/// segment) and 41 % for an index sized for 1 KiB values holding 176-byte
/// sessions.
const EVICTIONS_WORTH_A_NOTE: f64 = 0.01;

/// Puts before the eviction share means anything.
const PUTS_FOR_A_NOTE: u64 = 10_000;

/// What to do when index evictions cost sessions: a segment with these
/// flags but a typical value of its live entries' size would get a larger
/// index. `None` when evictions are few, or such a segment would get the
/// same index (then recreating it would change nothing).
fn index_note(s: &scsp::Stats, occ: &scsp::table::Occupancy) -> Option<String> {
    let (puts, evictions) = (s.counters.puts, s.counters.evictions);
    let share = evictions as f64 / puts.max(1) as f64;
    if puts < PUTS_FOR_A_NOTE || share <= EVICTIONS_WORTH_A_NOTE {
        return None;
    }
    // The index is sized for entries with a `TYPICAL_KEY`-byte key,
    // whatever the keys are.
    use scsp::segment::layout::{entry_bytes, TYPICAL_KEY};
    let entry = occ.live_bytes.checked_div(occ.live_entries)?;
    let value = entry
        .saturating_sub(entry_bytes(TYPICAL_KEY, 0))
        .clamp(64, s.max_value);
    let better = scsp::segment::Geometry::from_config(&scsp::Config {
        size: s.capacity_bytes,
        shards: u32::try_from(s.shards).ok()?,
        max_value: u32::try_from(s.max_value).ok()?,
        typical_value: u32::try_from(value).ok()?,
        ..scsp::Config::default()
    })
    .ok()?;
    let slots = better.buckets * 8;
    (slots > s.index_slots).then(|| {
        format!(
            "{:.1}% of puts pushed a session still in the log out of a full index \
             bucket, and some of those would have been resumed. For these \
             {entry}-byte entries a segment would get {slots} index slots \
             instead of {}: recreate it with --typical-value {value}B and its \
             other flags unchanged (docs/operations.md, \"Sizing a segment\")",
            share * 100.0,
            s.index_slots
        )
    })
}

/// What to do when a sets segment evicts sessions it could have resumed:
/// grow it. A put evicts only when the 16 ways of its two sets all hold a
/// session or one being written.
fn sets_note(s: &scsp::Stats) -> Option<String> {
    let (puts, evictions) = (s.counters.puts, s.counters.evictions);
    let share = evictions as f64 / puts.max(1) as f64;
    if puts < PUTS_FOR_A_NOTE || share <= EVICTIONS_WORTH_A_NOTE {
        return None;
    }
    Some(format!(
        "{:.1}% of puts evicted a session from a full set; if sessions are lost \
         before their lifetime (see \"oldest entry\"), recreate the segment with a \
         larger --size: two slots or more per session to keep (docs/operations.md, \
         \"Choosing a layout\")",
        share * 100.0
    ))
}

/// Sessions refused for their size never resume, silently for the client:
/// say so whenever there are any.
fn too_large_note(s: &scsp::Stats) -> Option<String> {
    let (refused, puts) = (s.counters.too_large, s.counters.puts);
    (refused > 0).then(|| {
        format!(
            "{refused} puts ({:.1}%) were refused as larger than this segment's \
             max value of {} B (sessions holding client certificates often are): those \
             sessions never resume; recreate the segment with a larger --max-value \
             (docs/operations.md, \"Sizing a segment\")",
            refused as f64 * 100.0 / (refused + puts) as f64,
            s.max_value
        )
    })
}

fn describe_pages(p: &scsp::segment::pages::PagePolicy) -> String {
    match (&p.huge, p.huge_pages()) {
        (Some(h), true) => format!("2 MiB ({} huge={h})", p.fs_type),
        _ if p.fs_type == "tmpfs" => "4 KiB (tmpfs without huge=; a mount with \
             huge=within_size cuts TLB misses, see docs/operations.md)"
            .to_string(),
        _ => format!("4 KiB ({} page cache)", p.fs_type),
    }
}

fn print_bridge(out: &mut String, b: &scsp::replication::status::BridgeStatus) -> std::fmt::Result {
    let silent_s = scsp::clock::now_millis().saturating_sub(b.alive_unix_ms) / 1000;
    writeln!(
        out,
        "bridge         {}",
        if b.running {
            format!("pid {}", b.pid)
        } else {
            format!("not running (last seen {silent_s} s ago)")
        }
    )?;
    for p in &b.peers {
        writeln!(
            out,
            "  peer {:<6}  {}, sent {}, received {} ({} already here), dropped {}, rejected {}, \
             over budget {} (holds {:.1}% of the log), lag {} entries / {:.2} ms, backlog {} \
             words, lost {} words behind the window, {} reconnects, {} refused, {} keys refused",
            p.id,
            if p.connected {
                "connected"
            } else {
                "disconnected"
            },
            p.sent_entries,
            p.received_entries,
            p.unchanged_entries,
            p.dropped_entries,
            p.rejected_entries,
            p.over_budget_entries,
            p.log_share_permille as f64 / 10.0,
            p.lag_entries,
            p.lag_micros as f64 / 1000.0,
            p.backlog_words,
            p.lost_words,
            p.reconnects,
            p.refused,
            p.refused_keys,
        )?;
    }
    Ok(())
}
