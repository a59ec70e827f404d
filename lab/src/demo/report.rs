//! The demo's results: a text table, JSON, and a self-contained HTML page.

use super::{Args, Outcome};
use std::fmt::Write;

/// Parameters and outcomes of one demo run.
#[derive(serde::Serialize)]
pub struct Summary {
    server: super::ServerKind,
    hosts: u16,
    workers_per_host: u16,
    clients: u32,
    visits_per_client: u32,
    balance: super::Balance,
    tls: super::Tls,
    key_type: super::certs::KeyType,
    resumption: &'static str,
    /// 1 / (hosts x workers): what a pool without sharing can expect.
    expected_no_sharing_pct: f64,
    /// 1 / hosts: what per-host sharing can expect.
    expected_per_host_pct: f64,
    setups: Vec<Outcome>,
    /// Set-ups left out of this run, each with the reason.
    not_run: Vec<String>,
}

impl Summary {
    pub fn new(a: &Args, setups: Vec<Outcome>, not_run: Vec<String>) -> Summary {
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
            expected_no_sharing_pct: 100.0 / (a.hosts as f64 * a.workers as f64),
            expected_per_host_pct: 100.0 / a.hosts as f64,
            setups,
            not_run,
        }
    }

    /// The table printed on a terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scsp demo: {} hosts x {} {:?} workers, {} visitors x {} visits, {:?} balancing, TLS {}, {:?} key, {}",
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
            self.resumption
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<22} {:>9} {:>10} {:>13} {:>14} {:>12} {:>12}",
            "setup",
            "resumed",
            "full hs",
            "handshakes/s",
            "server CPU/conn",
            "connect p50",
            "connect p99"
        );
        for o in &self.setups {
            let _ = writeln!(
                s,
                "{:<22} {:>8.1}% {:>10} {:>13.0} {:>12.0} us {:>9.2} ms {:>9.2} ms",
                o.label,
                o.resumed_pct,
                o.full_handshakes,
                o.handshakes_per_sec,
                o.server_cpu_us_per_conn,
                o.latency_p50_ms,
                o.latency_p99_ms
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "resumed = share of returning visits that resumed. Without sharing a pool of {} workers can expect ~{:.0}%,",
            self.hosts as u32 * self.workers_per_host as u32,
            self.expected_no_sharing_pct
        );
        let _ = writeln!(
            s,
            "with one segment per host ~{:.0}%; with the bridge the pool resumes like one server.",
            self.expected_per_host_pct
        );
        if self
            .setups
            .iter()
            .any(|o| o.setup == super::Setup::RedisPool)
        {
            let _ = writeln!(
                s,
                "(d) is the network-cache alternative: one redis server on loopback for every worker of every host."
            );
        }
        for n in &self.not_run {
            let _ = writeln!(s, "{n}");
        }
        s
    }

    /// A self-contained HTML page: the table and a bar chart (inline SVG).
    pub fn html(&self) -> String {
        let mut rows = String::new();
        let mut bars = String::new();
        for (i, o) in self.setups.iter().enumerate() {
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{:.1}%</td><td>{}</td><td>{:.0}</td><td>{:.0} µs</td><td>{:.2} ms</td><td>{:.2} ms</td></tr>",
                o.label, o.resumed_pct, o.full_handshakes, o.handshakes_per_sec,
                o.server_cpu_us_per_conn, o.latency_p50_ms, o.latency_p99_ms
            );
            let y = 20 + i as u32 * 50;
            let w = (o.resumed_pct.clamp(0.0, 100.0) * 5.0) as u32;
            let _ = write!(
                bars,
                "<text x=\"0\" y=\"{}\">{}</text><rect x=\"190\" y=\"{}\" width=\"{w}\" height=\"30\" fill=\"#3a7\"/>\
                 <text x=\"{}\" y=\"{}\">{:.1}%</text>",
                y + 20, o.label, y, 196 + w, y + 20, o.resumed_pct
            );
        }
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>scsp demo</title>\
             <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
             td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}</style>\
             </head><body><h1>scsp demo</h1><p>{} hosts × {} workers, {} visitors × {} visits, {} resumption.</p>\
             <table><tr><th>setup</th><th>resumed</th><th>full handshakes</th><th>handshakes/s</th>\
             <th>server CPU / conn</th><th>connect p50</th><th>connect p99</th></tr>{rows}</table>\
             <h2>Returning visits resumed</h2><svg width=\"760\" height=\"{}\" font-size=\"14\">{bars}</svg>\
             <pre>{}</pre></body></html>\n",
            self.hosts,
            self.workers_per_host,
            self.clients,
            self.visits_per_client,
            self.resumption,
            20 + 50 * self.setups.len(),
            serde_json::to_string_pretty(self).unwrap_or_default()
        )
    }
}
