//! The demo's results: a text table, JSON, and a self-contained HTML page
//! with the table and inline SVG charts (`chart`).

use super::chart::{self, esc};
use super::{Args, Outcome, ServerKind, Setup};
use std::fmt::Write;

/// Parameters and outcomes of one demo run.
#[derive(serde::Serialize)]
pub struct Summary {
    server: ServerKind,
    hosts: u16,
    workers_per_host: u16,
    clients: u32,
    visits_per_client: u32,
    balance: super::Balance,
    tls: super::Tls,
    key_type: super::certs::KeyType,
    resumption: &'static str,
    /// The segments' layout (`log` or `sets`).
    layout: &'static str,
    /// What set-up (a) can expect: 1 / (hosts x workers) with a cache per
    /// worker (rustls, openssl), 1 / hosts with a cache per instance
    /// (stock nginx and Apache).
    expected_no_sharing_pct: f64,
    /// 1 / hosts: what per-host sharing can expect.
    expected_per_host_pct: f64,
    setups: Vec<Outcome>,
    /// Set-ups left out of this run, each with the reason.
    not_run: Vec<String>,
}

/// Each set-up's colour in the charts (the same in every chart).
fn color(s: Setup) -> &'static str {
    match s {
        Setup::NoSharing => "#c0504d",
        Setup::SharedPerHost => "#d99a1e",
        Setup::SharedPool => "#2e8b57",
        Setup::RedisPool => "#4a6fb5",
    }
}

impl Summary {
    pub fn new(a: &Args, setups: Vec<Outcome>, not_run: Vec<String>) -> Summary {
        let per_instance = matches!(a.server, ServerKind::Nginx | ServerKind::Apache);
        Summary {
            server: a.server,
            hosts: a.hosts,
            workers_per_host: a.workers,
            clients: a.clients,
            visits_per_client: a.reconnects,
            balance: a.balance,
            tls: a.tls,
            key_type: a.key_type,
            resumption: if a.tickets {
                "stateless tickets"
            } else {
                "session cache"
            },
            layout: a.layout.name(),
            expected_no_sharing_pct: if per_instance {
                100.0 / a.hosts as f64
            } else {
                100.0 / (a.hosts as f64 * a.workers as f64)
            },
            expected_per_host_pct: 100.0 / a.hosts as f64,
            setups,
            not_run,
        }
    }

    fn tickets(&self) -> bool {
        self.resumption == "stateless tickets"
    }

    fn headline(&self) -> String {
        format!(
            "scsp demo: {} hosts x {} {:?} workers, {} visitors x {} visits, {:?} balancing, TLS {}, {:?} key, {}, {} segments",
            self.hosts,
            self.workers_per_host,
            self.server,
            self.clients,
            self.visits_per_client,
            self.balance,
            match self.tls {
                super::Tls::V12 => "1.2",
                super::Tls::V13 => "1.3",
            },
            self.key_type,
            self.resumption,
            self.layout
        )
    }

    /// The lines under the table: what the columns and rows mean.
    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            "resumed = share of returning visits that resumed; other host = the same, of the visits the balancer \
             sent to another host than the visitor's previous one."
                .to_string(),
        ];
        let hosts = self.hosts;
        match self.server {
            ServerKind::Nginx | ServerKind::Apache => {
                n.push(if self.server == ServerKind::Nginx {
                    format!(
                        "(a) is stock nginx: ssl_session_cache shared:SSL:10m in each instance, shared by its workers{}; \
                         (b) and (c) load ngx_http_scsp_module (scsp_session_cache{}).",
                        if self.tickets() { ", and nginx's own ticket keys" } else { "" },
                        if self.tickets() { ", scsp_ticket_keys on" } else { "" }
                    )
                } else {
                    format!(
                        "(a) is stock Apache: SSLSessionCache shmcb in each instance, shared by its worker processes{}; \
                         (b) and (c) load mod_socache_scsp (SSLSessionCache scsp:{}).",
                        if self.tickets() { ", and mod_ssl's own ticket keys" } else { "" },
                        if self.tickets() { ", SCSPTicketKeys" } else { "" }
                    )
                });
                n.push(format!(
                    "A cache per instance or per host resumes ~{:.0}% (1 in {hosts} hosts) and no visit sent to another \
                     host; with the bridge the pool resumes like one server.",
                    self.expected_per_host_pct
                ));
            }
            ServerKind::Rustls | ServerKind::Openssl => {
                n.push(format!(
                    "Without sharing a pool of {} workers can expect ~{:.0}%, with one segment per host ~{:.0}%; \
                     with the bridge the pool resumes like one server.",
                    hosts as u32 * self.workers_per_host as u32,
                    self.expected_no_sharing_pct,
                    self.expected_per_host_pct
                ));
            }
        }
        if self.setups.iter().any(|o| o.setup == Setup::RedisPool) {
            n.push(
                "(d) is the network-cache alternative: one redis server on loopback for every worker of every host."
                    .into(),
            );
        }
        for o in &self.setups {
            if let Some(r) = &o.replication {
                n.push(format!(
                    "{}: a session put on one host was readable on the next after p50 {:.0} µs, p99 {:.0} µs \
                     ({} probes after the load; scsp bench bridge measures more).",
                    o.label, r.p50_us, r.p99_us, r.probes
                ));
            }
        }
        n.extend(self.not_run.iter().cloned());
        n
    }

    /// The table printed on a terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.headline());
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<22} {:>8} {:>10} {:>8} {:>13} {:>15} {:>12} {:>12}",
            "setup",
            "resumed",
            "other host",
            "full hs",
            "handshakes/s",
            "server CPU/conn",
            "connect p50",
            "connect p99"
        );
        for o in &self.setups {
            let other = o
                .other_host_resumed_pct
                .map_or_else(|| "-".to_string(), |p| format!("{p:.1}%"));
            let _ = writeln!(
                s,
                "{:<22} {:>7.1}% {:>10} {:>8} {:>13.0} {:>12.0} us {:>9.2} ms {:>9.2} ms",
                o.label,
                o.resumed_pct,
                other,
                o.full_handshakes,
                o.handshakes_per_sec,
                o.server_cpu_us_per_conn,
                o.latency_p50_ms,
                o.latency_p99_ms
            );
        }
        let _ = writeln!(s);
        for n in self.notes() {
            for line in wrap(&n, 104) {
                let _ = writeln!(s, "{line}");
            }
        }
        s
    }

    /// A self-contained HTML page: the table, and per set-up its resumed
    /// share, handshakes per second, server CPU per connection and connect
    /// latency distribution as inline SVG charts (no script, nothing
    /// fetched), then the JSON.
    pub fn html(&self) -> String {
        let mut rows = String::new();
        for o in &self.setups {
            let _ = write!(
                rows,
                "<tr><td><span class=\"key\" style=\"background:{}\"></span>{}</td><td>{:.1}%</td><td>{}</td>\
                 <td>{}</td><td>{:.0}</td><td>{:.0} µs</td><td>{:.2} ms</td><td>{:.2} ms</td></tr>",
                color(o.setup),
                esc(o.label),
                o.resumed_pct,
                o.other_host_resumed_pct
                    .map_or_else(|| "–".to_string(), |p| format!("{p:.1}%")),
                o.full_handshakes,
                o.handshakes_per_sec,
                o.server_cpu_us_per_conn,
                o.latency_p50_ms,
                o.latency_p99_ms
            );
        }
        let groups = |f: &dyn Fn(&Outcome) -> Vec<Option<f64>>| -> Vec<chart::Group> {
            self.setups
                .iter()
                .map(|o| chart::Group {
                    label: o.label,
                    color: color(o.setup),
                    values: f(o),
                })
                .collect()
        };
        let resumed = chart::bars(
            "Returning visits resumed, %",
            &["all returning visits", "those sent to another host"],
            &groups(&|o| vec![Some(o.resumed_pct), o.other_host_resumed_pct]),
            Some(100.0),
            &|v| format!("{v:.1}%"),
        );
        let rate = chart::bars(
            "Handshakes per second",
            &["handshakes/s"],
            &groups(&|o| vec![Some(o.handshakes_per_sec)]),
            None,
            &|v| format!("{v:.0}/s"),
        );
        let cpu = chart::bars(
            "Server CPU per connection, µs",
            &["µs"],
            &groups(&|o| vec![Some(o.server_cpu_us_per_conn)]),
            None,
            &|v| format!("{v:.0} µs"),
        );
        let lines: Vec<chart::Line> = self
            .setups
            .iter()
            .map(|o| chart::Line {
                label: o.label,
                color: color(o.setup),
                percentiles_ms: &o.latency_percentiles_ms,
            })
            .collect();
        let latency = chart::cdf("Connect latency distribution", &lines);
        // Set-up (c)'s replication delay, on the same kind of chart (its
        // axis in ms: the delays are µs / 1000).
        let replication_ms: Vec<(String, &str, Vec<f64>)> = self
            .setups
            .iter()
            .filter_map(|o| {
                let r = o.replication.as_ref()?;
                let ms = r.percentiles_us.iter().map(|u| u / 1000.0).collect();
                Some((
                    format!(
                        "{} (p50 {:.0} µs, p99 {:.0} µs)",
                        o.label, r.p50_us, r.p99_us
                    ),
                    color(o.setup),
                    ms,
                ))
            })
            .collect();
        let replication = if replication_ms.is_empty() {
            String::new()
        } else {
            let lines: Vec<chart::Line> = replication_ms
                .iter()
                .map(|(label, color, ms)| chart::Line {
                    label,
                    color,
                    percentiles_ms: ms,
                })
                .collect();
            format!(
                "<h2>Replication delay</h2><p class=\"sub\">Share of sessions readable on another host at most \
                 the time on the x axis after their put: the bridge copying them while the pool \
                 runs.</p>{}",
                chart::cdf("Replication delay distribution", &lines)
            )
        };
        let notes: String = self
            .notes()
            .iter()
            .map(|n| format!("<li>{}</li>", esc(n)))
            .collect();
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>scsp demo</title>\
             <style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}\
             td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}\
             .key{{display:inline-block;width:.8em;height:.8em;margin-right:.5em}}\
             svg.chart{{display:block;margin:.5em 0 1.5em}}h2{{font-size:1.1em;margin-bottom:0}}\
             .sub{{color:#555;margin:.2em 0}}</style>\
             </head><body><h1>scsp demo</h1><p>{}</p>\
             <table><tr><th>setup</th><th>resumed</th><th>other host</th><th>full handshakes</th><th>handshakes/s</th>\
             <th>server CPU / conn</th><th>connect p50</th><th>connect p99</th></tr>{rows}</table>\
             <ul>{notes}</ul>\
             <h2>Returning visits resumed</h2>\
             <p class=\"sub\">Solid: every returning visit; light: those the balancer sent to another host than \
             the visit before, which only a cache shared by the hosts resumes.</p>{resumed}\
             <h2>Handshakes per second</h2><p class=\"sub\">Connections completed per second of the run, \
             by the demo's client threads.</p>{rate}\
             <h2>Server CPU per connection</h2><p class=\"sub\">CPU time of the hosts' workers (and bridges, \
             redis) over the run, divided by its connections.</p>{cpu}\
             <h2>Connect latency</h2><p class=\"sub\">Share of connections whose TCP connect and TLS handshake \
             took at most the time on the x axis: further left is faster.</p>{latency}{replication}\
             <details><summary>JSON</summary><pre>{}</pre></details></body></html>\n",
            esc(&self.headline()),
            esc(&serde_json::to_string_pretty(self).unwrap_or_default())
        )
    }
}

/// `text` in lines of at most `width` characters, broken at spaces (a
/// longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    #[test]
    fn notes_wrap_at_spaces() {
        assert_eq!(
            super::wrap("aa bb cc dddddd e", 5),
            ["aa bb", "cc", "dddddd", "e"]
        );
        assert!(super::wrap("", 5).is_empty());
    }
}
