//! Prometheus text exposition (format 0.0.4) of one segment: the table's
//! counters, optionally its occupancy, and its bridge's per-peer status.
//!
//! `scsp stats --prometheus` prints it, for node_exporter's textfile collector
//! on hosts without a bridge; the bridge's `metrics` endpoint serves it. Every
//! series carries the labels `segment` (the file) and `host` (its host id).
//! Table counters only grow (see [`scsp::stats`]); bridge counters restart
//! from 0 when the bridge restarts.

use scsp::replication::status::{BridgeStatus, Kind, FIELDS};
use scsp::table::Occupancy;
use scsp::Stats;
use std::fmt::{Display, Write};
use std::path::Path;

/// Everything one exposition shows, read by the caller (occupancy walks the
/// whole index, so a caller that answers frequent scrapes may leave it out).
pub struct Snapshot<'a> {
    /// The segment file, for the `segment` label.
    pub segment: &'a Path,
    /// Counters and geometry ([`scsp::Cache::stats`]).
    pub stats: &'a Stats,
    /// How far back the log reaches ([`scsp::Cache::log_age_secs`]).
    pub log_age_secs: Option<u64>,
    /// Live entries and the oldest entry's age ([`scsp::Cache::occupancy`]).
    pub occupancy: Option<&'a Occupancy>,
    /// The bridge's status area, if a bridge ever ran on this segment.
    pub bridge: Option<&'a BridgeStatus>,
}

/// The exposition text.
pub fn render(s: &Snapshot) -> String {
    let mut out = Exposition {
        text: String::new(),
        labels: format!(
            "segment=\"{}\",host=\"{}\"",
            escape(&s.segment.to_string_lossy()),
            s.stats.host_id
        ),
    };
    let (st, c) = (s.stats, &s.stats.counters);
    use Kind::{Counter, Gauge};
    // Prometheus values are float64 whatever their type.
    // The table's counters, from the one list of them.
    let mut series: Vec<(&str, Kind, &str, f64)> = scsp::stats::COUNTERS
        .iter()
        .map(|i| (i.metric, Counter, i.help(), c.get(i.counter) as f64))
        .collect();
    series.extend([
        (
            "appended_bytes",
            Counter,
            "Bytes ever appended to the logs (puts, tombstones, peers' entries).",
            st.appended_bytes as f64,
        ),
        (
            "processes",
            Gauge,
            "Processes attached to the segment.",
            c.processes as f64,
        ),
        (
            "log_capacity_bytes",
            Gauge,
            "Bytes of session log, all shards.",
            st.capacity_bytes as f64,
        ),
        (
            "max_value_bytes",
            Gauge,
            "Largest value a put accepts.",
            st.max_value as f64,
        ),
        (
            "log_fill_ratio",
            Gauge,
            "Share of the log holding data (1 once every shard wrapped).",
            st.log_fill,
        ),
    ]);
    if let Some(age) = s.log_age_secs {
        series.push(("log_age_seconds", Gauge, "Age of the oldest entry in the log: how long sessions survive before the log wraps over them.", age as f64));
    }
    if let Some(o) = s.occupancy {
        series.extend([
            (
                "live_entries",
                Gauge,
                "Index words pointing at live entries.",
                o.live_entries as f64,
            ),
            (
                "live_bytes",
                Gauge,
                "Log bytes those entries take.",
                o.live_bytes as f64,
            ),
            (
                "expired_entries",
                Gauge,
                "Index words pointing at expired entries.",
                o.expired_entries as f64,
            ),
            (
                "stale_index_words",
                Gauge,
                "Index words whose entry the log overwrote.",
                o.stale_words as f64,
            ),
        ]);
        if let Some(age) = o.oldest_age_secs {
            series.push((
                "oldest_entry_age_seconds",
                Gauge,
                "Age of the oldest live entry.",
                age as f64,
            ));
        }
    }
    for (name, kind, help, v) in series {
        out.family(name, kind, help);
        out.sample(name, kind, "", v);
    }
    if let Some(b) = s.bridge {
        out.family("bridge_up", Kind::Gauge, "1 while the bridge process runs.");
        out.sample("bridge_up", Kind::Gauge, "", u8::from(b.running));
        for f in FIELDS {
            let name = format!("bridge_peer_{}", f.name);
            out.family(&name, f.kind, &format!("Bridge, per peer: {}", f.help()));
            for p in &b.peers {
                out.sample(
                    &name,
                    f.kind,
                    &format!(",peer=\"{}\"", p.id),
                    p.get(f.field),
                );
            }
        }
    }
    out.text
}

/// The text being built and the labels every sample carries.
struct Exposition {
    text: String,
    labels: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` lines; counters get the `_total` suffix.
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let (full, ty) = full_name(name, kind);
        let _ = writeln!(self.text, "# HELP {full} {help}");
        let _ = writeln!(self.text, "# TYPE {full} {ty}");
    }

    fn sample(&mut self, name: &str, kind: Kind, extra_labels: &str, v: impl Display) {
        let (full, _) = full_name(name, kind);
        let _ = writeln!(self.text, "{full}{{{}{extra_labels}}} {v}", self.labels);
    }
}

fn full_name(name: &str, kind: Kind) -> (String, &'static str) {
    match kind {
        Kind::Counter => (format!("scsp_{name}_total"), "counter"),
        Kind::Gauge => (format!("scsp_{name}"), "gauge"),
    }
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use scsp::replication::status::PeerStatus;

    fn stats() -> Stats {
        let mut s = Stats::default();
        s.counters.hits = 7;
        s.counters.corrupt = 1;
        s.host_id = 3;
        s.log_fill = 0.25;
        s
    }

    #[test]
    fn counters_end_in_total_and_carry_the_labels() {
        let st = stats();
        let text = render(&Snapshot {
            segment: Path::new("/dev/shm/a\"b"),
            stats: &st,
            log_age_secs: Some(120),
            occupancy: None,
            bridge: None,
        });
        assert!(text.contains("# TYPE scsp_hits_total counter\n"), "{text}");
        assert!(
            text.contains("scsp_hits_total{segment=\"/dev/shm/a\\\"b\",host=\"3\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("scsp_corrupt_total{segment=\"/dev/shm/a\\\"b\",host=\"3\"} 1\n"));
        assert!(text.contains("scsp_log_fill_ratio{segment=\"/dev/shm/a\\\"b\",host=\"3\"} 0.25\n"));
        assert!(
            !text.contains("live_entries") && !text.contains("bridge"),
            "{text}"
        );
        // Every sample line belongs to a family declared just before it.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }

    #[test]
    fn a_dead_bridge_is_down_and_its_peers_disconnected() {
        let st = stats();
        let bridge = |running: bool| BridgeStatus {
            pid: 42,
            running,
            peers: vec![PeerStatus {
                id: 2,
                connected: running,
                sent_entries: 5,
                ..PeerStatus::default()
            }],
            ..BridgeStatus::default()
        };
        let render_with = |b: &BridgeStatus| {
            render(&Snapshot {
                segment: Path::new("s"),
                stats: &st,
                log_age_secs: None,
                occupancy: Some(&Occupancy {
                    oldest_age_secs: Some(90),
                    ..Occupancy::default()
                }),
                bridge: Some(b),
            })
        };
        let live = render_with(&bridge(true));
        assert!(
            live.contains("scsp_bridge_up{segment=\"s\",host=\"3\"} 1\n"),
            "{live}"
        );
        assert!(
            live.contains("scsp_bridge_peer_connected{segment=\"s\",host=\"3\",peer=\"2\"} 1\n")
        );
        assert!(live.contains(
            "scsp_bridge_peer_sent_entries_total{segment=\"s\",host=\"3\",peer=\"2\"} 5\n"
        ));
        assert!(live.contains("scsp_oldest_entry_age_seconds{segment=\"s\",host=\"3\"} 90\n"));
        let dead = render_with(&bridge(false));
        assert!(
            dead.contains("scsp_bridge_up{segment=\"s\",host=\"3\"} 0\n"),
            "{dead}"
        );
        assert!(
            dead.contains("scsp_bridge_peer_connected{segment=\"s\",host=\"3\",peer=\"2\"} 0\n")
        );
    }
}
