//! The bridge's configuration file (TOML), parsed and validated up front.
//!
//! ```toml
//! cluster = "pool-eu1"            # every bridge of the cluster uses the same name
//! host_id = 1                     # must equal the segment's host id
//! listen  = "10.0.0.1:7401"
//! segment = "/dev/shm/scsp"
//! cert = "host-1.pem"             # paths relative to this file's directory
//! key  = "host-1.key"
//! ca   = "ca.pem"
//! metrics = "127.0.0.1:9401"      # optional Prometheus endpoint, loopback only
//! allow_foreign_owner = false     # optional: open a segment of another user,
//! segment_owner = "scsp"          #   owned by root or this user (name or uid),
//! segment_group = "scsp"          #   that belongs to this group (name or gid)
//!
//! [[peers]]
//! id   = 2
//! addr = "10.0.0.2:7401"
//! ```
//!
//! Every error names the field to fix.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most peers one bridge accepts (bounded by the status area in the segment).
pub const MAX_PEERS: usize = 64;
/// Default `watch_interval_us`.
pub const DEFAULT_WATCH_US: u64 = 100;
/// Longest cluster name, bytes.
pub const MAX_CLUSTER_NAME: usize = 64;

/// A bad configuration: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field, e.g. `peers[1].addr`.
    pub field: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bridge config: `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn bad(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// One peer bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its host id (its certificate must name `scsp-host-<id>`).
    pub id: u32,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A validated bridge configuration.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Cluster name; peers with another name are refused.
    pub cluster: String,
    /// This host's id.
    pub host_id: u32,
    /// Address to accept peers on.
    pub listen: SocketAddr,
    /// The local segment.
    pub segment: PathBuf,
    /// Open the segment even if another user owns it (a group-shared
    /// segment; docs/operations.md, "Permissions"), provided that user is
    /// root or `segment_owner` and the file belongs to `segment_group`.
    pub allow_foreign_owner: bool,
    /// `segment_owner`: the uid, besides root, that may own the segment.
    pub segment_owner: Option<u32>,
    /// `segment_group`: the gid the segment must belong to when another
    /// user owns it.
    pub segment_group: Option<u32>,
    /// This host's certificate chain (PEM).
    pub cert: PathBuf,
    /// This host's private key (PEM).
    pub key: PathBuf,
    /// The cluster CA certificate(s) (PEM).
    pub ca: PathBuf,
    /// Optional Prometheus text endpoint (loopback).
    pub metrics: Option<SocketAddr>,
    /// The other bridges.
    pub peers: Vec<Peer>,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// What one peer may cost this host (its log space and rate).
    pub peer_budget: PeerBudget,
    /// How often a hot connection (entries within the last 2 s) looks at
    /// the shard tails for new puts: the most a put waits before the
    /// bridge notices it, traded against the CPU of a bridge between
    /// bursts. Connections quiet for longer are woken within 1 ms.
    pub watch_interval: Duration,
}

/// How much of this host's segment one peer's entries may take, so that a
/// runaway or compromised peer costs its own share, not this host's
/// sessions. Entries over the budget are dropped and counted
/// (`over_budget` in `scsp stats`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerBudget {
    /// Largest share of the session log one peer's entries may hold at a
    /// time (0 < share <= 1; default 0.5).
    pub log_share: f64,
    /// Most entries per second applied from one peer (a burst of one
    /// second's worth is allowed; default 50 000).
    pub entries_per_sec: u32,
}

impl Default for PeerBudget {
    fn default() -> Self {
        PeerBudget {
            log_share: 0.5,
            entries_per_sec: 50_000,
        }
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    id: i64,
    addr: String,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    cluster: String,
    host_id: i64,
    listen: String,
    segment: PathBuf,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    allow_foreign_owner: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment_owner: Option<NameOrId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment_group: Option<NameOrId>,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_backoff_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_log_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_max_entries_per_sec: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    watch_interval_us: Option<u64>,
    // Last: TOML writes arrays of tables after the plain keys.
    #[serde(default)]
    peers: Vec<RawPeer>,
}

/// A user or group: a name, or a numeric id.
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum NameOrId {
    Id(i64),
    Name(String),
}

impl NameOrId {
    /// The id, resolving a name with `lookup` (`user_id` or `group_id`).
    fn resolve(
        &self,
        field: &str,
        lookup: fn(&str) -> Result<u32, String>,
    ) -> Result<u32, ConfigError> {
        match self {
            NameOrId::Id(v) => u32::try_from(*v)
                .map_err(|_| bad(field, format!("{v} is not an id (0 to {})", u32::MAX))),
            NameOrId::Name(n) => lookup(n).map_err(|e| bad(field, e)),
        }
    }
}

/// The configuration files of a full mesh: host `i + 1` listens on
/// `addrs[i]` and dials every other. What `scsp certs --addrs` writes, and
/// what the demo and the tests run.
pub struct Mesh<'a> {
    /// Cluster name (A-Z a-z 0-9 . _ -).
    pub cluster: &'a str,
    /// Every host's bridge address, host id 1 first.
    pub addrs: &'a [SocketAddr],
    /// Where `ca.pem` and `host-<id>.pem`/`.key` are; relative to the
    /// configuration file's directory if relative (`""`: next to it).
    pub cert_dir: &'a Path,
    /// `heartbeat_ms`, if not the default.
    pub heartbeat_ms: Option<u64>,
    /// `max_backoff_ms`, if not the default.
    pub max_backoff_ms: Option<u64>,
}

impl Mesh<'_> {
    /// The TOML text of host `id`'s configuration, working on `segment`.
    pub fn config(&self, id: u32, segment: &Path) -> String {
        let listen = (id as usize).checked_sub(1).and_then(|i| self.addrs.get(i));
        let raw = Raw {
            cluster: self.cluster.to_string(),
            host_id: id.into(),
            listen: listen.map(|a| a.to_string()).unwrap_or_default(),
            segment: segment.to_path_buf(),
            allow_foreign_owner: false,
            segment_owner: None,
            segment_group: None,
            cert: self.cert_dir.join(format!("host-{id}.pem")),
            key: self.cert_dir.join(format!("host-{id}.key")),
            ca: self.cert_dir.join("ca.pem"),
            metrics: None,
            heartbeat_ms: self.heartbeat_ms,
            max_backoff_ms: self.max_backoff_ms,
            peer_log_share: None,
            peer_max_entries_per_sec: None,
            watch_interval_us: None,
            peers: (1..=self.addrs.len() as u32)
                .zip(self.addrs)
                .filter(|(peer, _)| *peer != id)
                .map(|(peer, a)| RawPeer {
                    id: peer.into(),
                    addr: a.to_string(),
                })
                .collect(),
        };
        // Plain strings, paths and integers: serialising cannot fail.
        toml::to_string(&raw).unwrap_or_default()
    }
}

/// A cluster name is 1 to 64 of A-Z a-z 0-9 . _ -
pub fn check_cluster(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLUSTER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(()).ok_or_else(|| {
        bad(
            "cluster",
            format!("must be 1 to {MAX_CLUSTER_NAME} characters of A-Z a-z 0-9 . _ -"),
        )
    })
}

fn host_id(field: &str, v: i64) -> Result<u32, ConfigError> {
    u32::try_from(v)
        .ok()
        .filter(|&id| id != 0)
        .ok_or_else(|| bad(field, format!("{v} is not a host id (1 to {})", u32::MAX)))
}

fn addr(field: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        bad(
            field,
            format!("'{v}' is not an address; write IP:PORT, e.g. 10.0.0.2:7401"),
        )
    })
}

fn existing_file(field: &str, base: &Path, p: &Path) -> Result<PathBuf, ConfigError> {
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    match std::fs::metadata(&full) {
        Ok(m) if m.is_file() => Ok(full),
        Ok(_) => Err(bad(field, format!("{} is not a file", full.display()))),
        Err(e) => Err(bad(field, format!("{}: {e}", full.display()))),
    }
}

/// A TOML error as a `ConfigError`: the field is the one the message names
/// (`unknown field `lisen``), else the key on the line where the error is
/// (a value of the wrong type), and the message says which line.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim_end().to_string();
    let is_field =
        |t: &&str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let named = msg.split('`').nth(1).filter(is_field).map(str::to_string);
    let at = e.span().map(|r| r.start.min(text.len()));
    let line = at.map(|i| text[..i].matches('\n').count() + 1);
    let key_on_line = at.and_then(|i| {
        let start = text[..i].rfind('\n').map_or(0, |n| n + 1);
        let this = text[start..].lines().next().unwrap_or("");
        let key = this
            .split('=')
            .next()
            .filter(|_| this.contains('='))?
            .trim();
        is_field(&key).then(|| key.to_string())
    });
    let field = named.or(key_on_line).unwrap_or_else(|| "(syntax)".into());
    match line {
        Some(n) => bad(field, format!("line {n}: {msg}")),
        None => bad(field, msg),
    }
}

impl BridgeConfig {
    /// Read and validate the file at `path`. Relative paths in it are taken
    /// from the file's directory. Does not open the segment or parse the
    /// certificates (see `bridge::check`).
    pub fn load(path: &Path) -> Result<BridgeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        BridgeConfig::parse(&text, base)
    }

    /// Validate TOML text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<BridgeConfig, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let cluster = raw.cluster;
        check_cluster(&cluster)?;
        let host = host_id("host_id", raw.host_id)?;
        let listen = addr("listen", &raw.listen)?;
        let metrics = match raw.metrics {
            Some(m) => {
                let a = addr("metrics", &m)?;
                if !a.ip().is_loopback() {
                    return Err(bad(
                        "metrics",
                        "must be a loopback address (127.0.0.0/8 or ::1): metrics are not authenticated",
                    ));
                }
                Some(a)
            }
            None => None,
        };
        if raw.peers.len() > MAX_PEERS {
            return Err(bad("peers", format!("at most {MAX_PEERS} peers")));
        }
        let mut peers: Vec<Peer> = Vec::new();
        for (i, p) in raw.peers.iter().enumerate() {
            let id = host_id(&format!("peers[{i}].id"), p.id)?;
            if id == host {
                return Err(bad(
                    format!("peers[{i}].id"),
                    format!("{id} is this host's own id"),
                ));
            }
            if peers.iter().any(|q| q.id == id) {
                return Err(bad(
                    format!("peers[{i}].id"),
                    format!("{id} is listed twice"),
                ));
            }
            let a = addr(&format!("peers[{i}].addr"), &p.addr)?;
            if a == listen {
                return Err(bad(
                    format!("peers[{i}].addr"),
                    format!("{a} is this host's own listen address; give the peer's"),
                ));
            }
            if let Some(q) = peers.iter().find(|q| q.addr == a) {
                return Err(bad(
                    format!("peers[{i}].addr"),
                    format!(
                        "{a} is also the address of peer {}; each peer has its own",
                        q.id
                    ),
                ));
            }
            peers.push(Peer { id, addr: a });
        }
        let segment_owner = raw
            .segment_owner
            .as_ref()
            .map(|o| o.resolve("segment_owner", scsp::config::user_id))
            .transpose()?;
        let segment_group = raw
            .segment_group
            .as_ref()
            .map(|g| g.resolve("segment_group", scsp::config::group_id))
            .transpose()?;
        for (field, given) in [
            ("segment_owner", segment_owner.is_some()),
            ("segment_group", segment_group.is_some()),
        ] {
            if given && !raw.allow_foreign_owner {
                return Err(bad(
                    field,
                    "only applies to a segment of another user: add allow_foreign_owner = true, \
                     or remove it",
                ));
            }
        }
        let ms = |field: &str, v: Option<u64>, default: u64, lo: u64, hi: u64| {
            let v = v.unwrap_or(default);
            if (lo..=hi).contains(&v) {
                Ok(Duration::from_millis(v))
            } else {
                Err(bad(field, format!("{v} is out of range {lo} to {hi}")))
            }
        };
        let defaults = PeerBudget::default();
        let log_share = raw.peer_log_share.unwrap_or(defaults.log_share);
        if !(log_share > 0.0 && log_share <= 1.0) {
            return Err(bad(
                "peer_log_share",
                format!("{log_share} must be above 0 and at most 1 (a share of the log)"),
            ));
        }
        let entries_per_sec = raw
            .peer_max_entries_per_sec
            .unwrap_or(defaults.entries_per_sec);
        if entries_per_sec == 0 {
            return Err(bad("peer_max_entries_per_sec", "must be at least 1"));
        }
        Ok(BridgeConfig {
            cluster,
            host_id: host,
            listen,
            segment: if raw.segment.is_absolute() {
                raw.segment
            } else {
                base.join(raw.segment)
            },
            allow_foreign_owner: raw.allow_foreign_owner,
            segment_owner,
            segment_group,
            cert: existing_file("cert", base, &raw.cert)?,
            key: existing_file("key", base, &raw.key)?,
            ca: existing_file("ca", base, &raw.ca)?,
            metrics,
            peers,
            heartbeat: ms("heartbeat_ms", raw.heartbeat_ms, 1000, 10, 60_000)?,
            max_backoff: ms("max_backoff_ms", raw.max_backoff_ms, 2000, 10, 600_000)?,
            peer_budget: PeerBudget {
                log_share,
                entries_per_sec,
            },
            watch_interval: {
                let us = raw.watch_interval_us.unwrap_or(DEFAULT_WATCH_US);
                if !(20..=100_000).contains(&us) {
                    return Err(bad(
                        "watch_interval_us",
                        format!("{us} is out of range 20 to 100000"),
                    ));
                }
                Duration::from_micros(us)
            },
        })
    }

    /// The configured peer with this id.
    pub fn peer(&self, id: u32) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in ["c.pem", "k.pem", "ca.pem"] {
            std::fs::write(d.path().join(f), "x").unwrap();
        }
        d
    }

    const GOOD: &str = r#"
cluster = "t"
host_id = 1
listen = "127.0.0.1:7000"
segment = "seg"
cert = "c.pem"
key = "k.pem"
ca = "ca.pem"
[[peers]]
id = 2
addr = "127.0.0.2:7000"
"#;

    fn field_of(text: &str) -> String {
        let d = base();
        BridgeConfig::parse(text, d.path()).unwrap_err().field
    }

    #[test]
    fn good_config_parses_with_paths_relative_to_the_file() {
        let d = base();
        let c = BridgeConfig::parse(GOOD, d.path()).unwrap();
        assert_eq!(
            c.peers,
            vec![Peer {
                id: 2,
                addr: "127.0.0.2:7000".parse().unwrap()
            }]
        );
        assert_eq!(c.segment, d.path().join("seg"));
    }

    #[test]
    fn errors_name_the_bad_field() {
        assert_eq!(
            field_of(&GOOD.replace("host_id = 1", "host_id = 0")),
            "host_id"
        );
        assert_eq!(field_of(&GOOD.replace("id = 2", "id = 1")), "peers[0].id");
        assert_eq!(
            field_of(&GOOD.replace("127.0.0.2:7000", "nowhere")),
            "peers[0].addr"
        );
        assert_eq!(field_of(&GOOD.replace("\"t\"", "\"a b\"")), "cluster");
        assert_eq!(field_of(&GOOD.replace("ca.pem", "missing.pem")), "ca");
        assert_eq!(
            field_of(
                &format!("{GOOD}\nmetrics = \"10.1.1.1:9\"")
                    .replace("[[peers]]", "metrics2 = 1\n[[peers]]")
            ),
            "metrics2"
        );
        assert_eq!(field_of(&GOOD.replace("listen =", "lisen =")), "lisen");
        // Values of the wrong type name the key on their line, and the line.
        let d = base();
        let e = BridgeConfig::parse(&GOOD.replace("host_id = 1", "host_id = \"1\""), d.path())
            .unwrap_err();
        assert_eq!(e.field, "host_id");
        assert!(e.message.starts_with("line "), "{}", e.message);
        let negative = GOOD.replace("host_id = 1", "host_id = 1\nheartbeat_ms = -5");
        assert_eq!(field_of(&negative), "heartbeat_ms");
        // A peer at this host's own listen address, or two at one address.
        let listen = GOOD.lines().find(|l| l.starts_with("listen")).unwrap();
        let own = listen.split('"').nth(1).unwrap();
        assert_eq!(
            field_of(&GOOD.replace("127.0.0.2:7000", own)),
            "peers[0].addr"
        );
        let twice = format!("{GOOD}[[peers]]\nid = 3\naddr = \"127.0.0.2:7000\"\n");
        assert_eq!(field_of(&twice), "peers[1].addr");
    }

    #[test]
    fn mesh_configs_parse_and_list_every_other_host() {
        let d = base();
        let certs = d.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        for f in ["ca.pem", "host-2.pem", "host-2.key"] {
            std::fs::write(certs.join(f), "x").unwrap();
        }
        let addrs: Vec<SocketAddr> = ["10.0.0.1:7401", "10.0.0.2:7401", "[::1]:7401"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mesh = Mesh {
            cluster: "pool-eu1",
            addrs: &addrs,
            cert_dir: Path::new("certs"),
            heartbeat_ms: Some(500),
            max_backoff_ms: None,
        };
        let text = mesh.config(2, Path::new("/dev/shm/a \"quoted\" name"));
        let c = BridgeConfig::parse(&text, d.path()).unwrap();
        assert_eq!((c.cluster.as_str(), c.host_id), ("pool-eu1", 2));
        assert_eq!(c.listen, addrs[1]);
        assert_eq!(c.segment, Path::new("/dev/shm/a \"quoted\" name"));
        assert_eq!(c.cert, d.path().join("certs/host-2.pem"));
        assert_eq!(c.heartbeat, Duration::from_millis(500));
        let peers: Vec<_> = c.peers.iter().map(|p| (p.id, p.addr)).collect();
        assert_eq!(peers, [(1, addrs[0]), (3, addrs[2])]);
    }

    #[test]
    fn segment_owner_and_group_take_names_or_ids_and_need_allow_foreign_owner() {
        let d = base();
        let with =
            |extra: &str| GOOD.replace("ca = \"ca.pem\"", &format!("ca = \"ca.pem\"\n{extra}"));
        let c = BridgeConfig::parse(
            &with("allow_foreign_owner = true\nsegment_owner = \"root\"\nsegment_group = 65534"),
            d.path(),
        )
        .unwrap();
        assert_eq!((c.segment_owner, c.segment_group), (Some(0), Some(65534)));
        let c = BridgeConfig::parse(
            &with("allow_foreign_owner = true\nsegment_owner = \"1001\"\nsegment_group = \"root\""),
            d.path(),
        )
        .unwrap();
        assert_eq!((c.segment_owner, c.segment_group), (Some(1001), Some(0)));
        assert_eq!(field_of(&with("segment_group = 5")), "segment_group");
        assert_eq!(field_of(&with("segment_owner = 5")), "segment_owner");
        let e = BridgeConfig::parse(
            &with("allow_foreign_owner = true\nsegment_owner = \"no-such-user-here\""),
            d.path(),
        )
        .unwrap_err();
        assert_eq!(e.field, "segment_owner");
        assert!(e.message.contains("no user named"), "{}", e.message);
        assert_eq!(
            field_of(&with("allow_foreign_owner = true\nsegment_group = -1")),
            "segment_group"
        );
    }

    #[test]
    fn metrics_must_be_loopback() {
        let d = base();
        let t = GOOD.replace(
            "ca = \"ca.pem\"",
            "ca = \"ca.pem\"\nmetrics = \"10.1.1.1:9\"",
        );
        assert_eq!(
            BridgeConfig::parse(&t, d.path()).unwrap_err().field,
            "metrics"
        );
    }
}
