//! Certificates for a cluster: one cluster CA, and per host a certificate
//! the bridge uses both as TLS server and TLS client (mutual authentication).
//!
//! Everything is ECDSA P-256 (made by `rcgen` with `ring`). A host's
//! certificate names it `scsp-host-<id>` ([`host_name`]) in its subject
//! alternative names: a bridge accepts a peer only if the peer's certificate
//! chains to the cluster CA *and* names the host id the peer claims.
//!
//! Private keys are written owner-only (0600) and never printed.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::fmt;
use std::path::{Path, PathBuf};

/// Something went wrong making or writing certificates.
#[derive(Debug)]
pub struct PkiError(String);

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PkiError {}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError(format!("certificate generation failed: {e}"))
    }
}

/// The DNS name a host's certificate carries: `scsp-host-<id>`.
pub fn host_name(id: u32) -> String {
    format!("scsp-host-{id}")
}

/// The DNS name that binds a host's certificate to its cluster: the
/// cluster name in hex (so any name the configuration allows is a valid DNS
/// name), in labels of at most 60 characters, under `cluster.scsp`. A
/// bridge accepts a peer only if the peer's certificate names its cluster,
/// so one CA can serve several clusters without their hosts mixing.
pub fn cluster_name(cluster: &str) -> String {
    let hex: String = cluster.bytes().map(|b| format!("{b:02x}")).collect();
    let labels: Vec<&str> = hex
        .as_bytes()
        .chunks(60)
        .map(|c| std::str::from_utf8(c).expect("hex is ASCII"))
        .collect();
    format!("{}.cluster.scsp", labels.join("."))
}

/// A cluster certificate authority held in memory.
pub struct ClusterCa {
    cluster: String,
    cert: rcgen::Certificate,
    params: CertificateParams,
    key: KeyPair,
}

/// A certificate and its private key, PEM-encoded. The key is a secret.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM. Secret.
    pub key_pem: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Make a new CA for the cluster `cluster` (its name goes in the CN).
    pub fn generate(cluster: &str) -> Result<ClusterCa, PkiError> {
        Self::with_key(
            cluster,
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        )
    }

    /// The CA `write_cluster` made for `cluster`, from its private key
    /// (`ca.key`, PEM): the same name and key, so what it issues chains to
    /// that `ca.pem`.
    pub fn from_key_pem(cluster: &str, key_pem: &str) -> Result<ClusterCa, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError(format!("CA key: {e}")))?;
        Self::with_key(cluster, key)
    }

    fn with_key(cluster: &str, key: KeyPair) -> Result<ClusterCa, PkiError> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name
            .push(DnType::CommonName, format!("scsp cluster CA {cluster}"));
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key)?;
        Ok(ClusterCa {
            cluster: cluster.to_string(),
            cert,
            params: p,
            key,
        })
    }

    /// The CA certificate, PEM (give it to every host).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA private key, PEM. Secret: keep it off the hosts if you can.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issue a certificate for host `id`, valid as TLS server and client,
    /// naming `scsp-host-<id>`, the cluster ([`cluster_name`]) and
    /// `extra_names` (e.g. `localhost`).
    pub fn issue_host(&self, id: u32, extra_names: &[String]) -> Result<Issued, PkiError> {
        self.issue_host_in(&self.cluster, id, extra_names)
    }

    /// [`ClusterCa::issue_host`] for a host of another cluster `cluster`:
    /// one CA can serve several clusters, whose bridges still refuse each
    /// other (a certificate names one cluster).
    pub fn issue_host_in(
        &self,
        cluster: &str,
        id: u32,
        extra_names: &[String],
    ) -> Result<Issued, PkiError> {
        let mut names = vec![host_name(id), cluster_name(cluster)];
        names.extend(extra_names.iter().cloned());
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut p = CertificateParams::new(names)?;
        p.distinguished_name.push(DnType::CommonName, host_name(id));
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = p.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Files written by [`write_cluster`].
#[derive(Debug, Clone)]
pub struct ClusterFiles {
    /// `ca.pem`.
    pub ca_cert: PathBuf,
    /// `ca.key` (0600).
    pub ca_key: PathBuf,
    /// `host-<id>.pem` and `host-<id>.key` for ids 1..=hosts.
    pub hosts: Vec<(PathBuf, PathBuf)>,
}

/// Write a new CA and certificates for hosts `1..=hosts` into `dir`
/// (created if missing). Refuses to overwrite existing files.
pub fn write_cluster(dir: &Path, cluster: &str, hosts: u32) -> Result<ClusterFiles, PkiError> {
    if hosts == 0 {
        return Err(PkiError("--hosts must be at least 1".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| PkiError(format!("{}: {e}", dir.display())))?;
    let ca = ClusterCa::generate(cluster)?;
    let files = ClusterFiles {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        hosts: (1..=hosts)
            .map(|i| {
                (
                    dir.join(format!("host-{i}.pem")),
                    dir.join(format!("host-{i}.key")),
                )
            })
            .collect(),
    };
    write_file(&files.ca_cert, &ca.cert_pem(), 0o644)?;
    write_file(&files.ca_key, &ca.key_pem(), 0o600)?;
    for (i, (cert, key)) in (1..=hosts).zip(&files.hosts) {
        let issued = ca.issue_host(i, &["localhost".to_string()])?;
        write_file(cert, &issued.cert_pem, 0o644)?;
        write_file(key, &issued.key_pem, 0o600)?;
    }
    Ok(files)
}

/// What [`add_hosts`] did, by host id.
#[derive(Debug, Clone, Default)]
pub struct AddedHosts {
    /// Hosts that had a certificate and key already (left as they were).
    pub kept: Vec<u32>,
    /// Hosts whose certificate and key were written now.
    pub written: Vec<u32>,
}

/// Issue certificates for those of hosts `1..=hosts` that have none in
/// `dir`, with the CA `write_cluster` wrote there (`ca.pem`, `ca.key`):
/// how a pool grows by a host, or a host gets a new key (delete its two
/// files first), without touching the other hosts. Every new certificate
/// is checked to chain to `ca.pem` before it is written.
pub fn add_hosts(dir: &Path, cluster: &str, hosts: u32) -> Result<AddedHosts, PkiError> {
    if hosts == 0 {
        return Err(PkiError("--hosts must be at least 1".into()));
    }
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| {
            PkiError(format!(
                "{}: {e} (--reuse-ca needs the ca.pem and ca.key that `scsp certs` wrote)",
                p.display()
            ))
        })
    };
    let ca_pem = read("ca.pem")?;
    if let Some(made_for) = ca_cluster(&ca_pem).filter(|c| c != cluster) {
        return Err(PkiError(format!(
            "the CA in {} was made for cluster {made_for:?}, not {cluster:?}: pass --cluster {made_for}",
            dir.display()
        )));
    }
    let key = KeyPair::from_pem(&read("ca.key")?)
        .map_err(|e| PkiError(format!("{}: {e}", dir.join("ca.key").display())))?;
    let ca = ClusterCa::with_key(cluster, key)?;
    let mut done = AddedHosts::default();
    for id in 1..=hosts {
        let cert = dir.join(format!("host-{id}.pem"));
        let key = dir.join(format!("host-{id}.key"));
        match (cert.exists(), key.exists()) {
            (true, true) => {
                done.kept.push(id);
                continue;
            }
            (false, false) => {}
            _ => {
                return Err(PkiError(format!(
                    "host {id} has only one of {} and {}: remove the other to issue both anew",
                    cert.display(),
                    key.display()
                )))
            }
        }
        let issued = ca.issue_host(id, &["localhost".to_string()])?;
        chains_to(&ca_pem, &issued.cert_pem, id).map_err(|e| {
            PkiError(format!(
                "a certificate issued with {} does not verify against {} ({e}): they do not \
                 belong together, or the CA was made for another cluster name than {cluster:?} \
                 (--cluster)",
                dir.join("ca.key").display(),
                dir.join("ca.pem").display()
            ))
        })?;
        write_file(&cert, &issued.cert_pem, 0o644)?;
        write_file(&key, &issued.key_pem, 0o600)?;
        done.written.push(id);
    }
    Ok(done)
}

/// The cluster name in the common name `write_cluster` gives its CA
/// (`scsp cluster CA <name>`), read from the first certificate of `ca_pem`:
/// the first common-name attribute (issuer and subject are the same in a
/// self-signed CA). `None` for anything else; only used to word an error.
fn ca_cluster(ca_pem: &str) -> Option<String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    const COMMON_NAME_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let der = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .next()?
        .ok()?;
    let at = der.windows(5).position(|w| w == COMMON_NAME_OID)? + 5;
    // A UTF8String or PrintableString with a short-form length.
    let (&tag, rest) = der.get(at..)?.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if !matches!(tag, 0x0c | 0x13) || len >= 0x80 {
        return None;
    }
    let name = std::str::from_utf8(rest.get(..len as usize)?).ok()?;
    name.strip_prefix("scsp cluster CA ").map(str::to_owned)
}

/// Does `cert_pem` verify, as host `id`'s certificate, against the CA
/// `ca_pem`, the way a bridge checks its peers?
fn chains_to(ca_pem: &str, cert_pem: &str, id: u32) -> Result<(), PkiError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let bad = |e: &dyn fmt::Display| PkiError(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| bad(&e))?;
    verify_host_chain(std::sync::Arc::new(roots), &[cert], id)
}

/// Does `chain` (host certificate first) lead to one of `roots`, valid now
/// and naming host `id`, as a peer's bridge will check it?
pub fn verify_host_chain(
    roots: std::sync::Arc<rustls::RootCertStore>,
    chain: &[rustls::pki_types::CertificateDer<'static>],
    id: u32,
) -> Result<(), PkiError> {
    use rustls::client::danger::ServerCertVerifier;
    let bad = |e: &dyn fmt::Display| PkiError(e.to_string());
    let (cert, intermediates) = chain
        .split_first()
        .ok_or_else(|| PkiError("no certificate".into()))?;
    let name = rustls::pki_types::ServerName::try_from(host_name(id)).map_err(|e| bad(&e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| bad(&e))?
        .verify_server_cert(
            cert,
            intermediates,
            &name,
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| bad(&e))
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| PkiError(format!("{}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| PkiError(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "rcgen signs with ring, whose C code Miri cannot run")]
    fn writes_ca_and_host_files_with_private_keys_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = write_cluster(dir.path(), "test", 2).unwrap();
        assert_eq!(f.hosts.len(), 2);
        for p in [&f.ca_key, &f.hosts[0].1, &f.hosts[1].1] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        assert!(std::fs::read_to_string(&f.hosts[1].0)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            write_cluster(dir.path(), "test", 1).is_err(),
            "no overwrite"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "rcgen signs with ring, whose C code Miri cannot run")]
    fn added_hosts_chain_to_the_existing_ca_and_others_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let f = write_cluster(dir.path(), "test", 2).unwrap();
        let host1 = std::fs::read(&f.hosts[0].0).unwrap();
        let added = add_hosts(dir.path(), "test", 3).unwrap();
        assert_eq!((added.kept, added.written), (vec![1, 2], vec![3]));
        assert_eq!(std::fs::read(&f.hosts[0].0).unwrap(), host1);
        let ca = std::fs::read_to_string(&f.ca_cert).unwrap();
        let host3 = std::fs::read_to_string(dir.path().join("host-3.pem")).unwrap();
        chains_to(&ca, &host3, 3).unwrap();
        assert!(chains_to(&ca, &host3, 2).is_err(), "names host 3 only");
        // Another cluster name makes another CA name: refused, naming the
        // CA's cluster, and nothing written.
        assert_eq!(
            ca_cluster(&std::fs::read_to_string(&f.ca_cert).unwrap()).as_deref(),
            Some("test")
        );
        let e = add_hosts(dir.path(), "other", 4).unwrap_err().to_string();
        assert!(
            e.contains("made for cluster \"test\", not \"other\": pass --cluster test"),
            "{e}"
        );
        assert!(!dir.path().join("host-4.pem").exists());
        // A CA from elsewhere does not verify what this key issues.
        let other = tempfile::tempdir().unwrap();
        write_cluster(other.path(), "test", 1).unwrap();
        std::fs::copy(other.path().join("ca.pem"), dir.path().join("ca.pem")).unwrap();
        assert!(add_hosts(dir.path(), "test", 4).is_err());
    }
}
