//! TLS for the bridge: TLS 1.3 only, mutual authentication against the
//! cluster CA, and the check that a peer's certificate names the host id
//! it claims (`scsp-host-<id>`, see [`crate::pki`]).

use super::config::BridgeConfig;
use crate::pki::{cluster_name, host_name};
use crate::Error;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// Client and server configurations for one bridge.
#[derive(Clone)]
pub struct TlsConfigs {
    /// Accepting peers: requires a client certificate from the cluster CA.
    pub server: Arc<ServerConfig>,
    /// Dialling peers: presents our certificate, checks theirs.
    pub client: Arc<ClientConfig>,
}

fn bad(field: &'static str, problem: String) -> Error {
    Error::Field { field, problem }
}

fn certs(field: &'static str, p: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let v: Vec<_> = CertificateDer::pem_file_iter(p)
        .map_err(|e| bad(field, format!("{}: {e}", p.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(field, format!("{}: {e}", p.display())))?;
    if v.is_empty() {
        return Err(bad(
            field,
            format!("{}: no PEM certificate in it", p.display()),
        ));
    }
    Ok(v)
}

/// Load certificates and key named by the configuration and build the TLS
/// configurations. Errors name the configuration field.
pub fn load(cfg: &BridgeConfig) -> Result<TlsConfigs, Error> {
    let chain = certs("cert", &cfg.cert)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| bad("key", format!("{}: {e}", cfg.key.display())))?;
    let mut roots = RootCertStore::empty();
    for c in certs("ca", &cfg.ca)? {
        roots
            .add(c)
            .map_err(|e| bad("ca", format!("{}: {e}", cfg.ca.display())))?;
    }
    let roots = Arc::new(roots);
    // Our own certificate must name our host id, or every peer refuses us.
    if !names_host(&chain[0], cfg.host_id) {
        return Err(bad(
            "cert",
            format!(
                "{} does not name {} (this host_id); issue it with `scsp certs`",
                cfg.cert.display(),
                host_name(cfg.host_id)
            ),
        ));
    }
    if !names_cluster(&chain[0], &cfg.cluster) {
        return Err(bad(
            "cert",
            format!(
                "{} does not name cluster {:?}: peers would refuse it; issue it for this \
                 cluster with `scsp certs --cluster {}` (certificates made before clusters were \
                 named in them must be issued anew)",
                cfg.cert.display(),
                cfg.cluster,
                cfg.cluster
            ),
        ));
    }
    // It must also lead to the CA the peers trust, and be valid now: found
    // here, not as a failed handshake with every peer later.
    crate::pki::verify_host_chain(roots.clone(), &chain, cfg.host_id).map_err(|e| {
        bad(
            "cert",
            format!(
                "{} is not a valid certificate of {} under `ca` {}: {e}; issue both with \
                 `scsp certs`",
                cfg.cert.display(),
                host_name(cfg.host_id),
                cfg.ca.display()
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| bad("ca", e.to_string()))?;
    // The ring provider always offers TLS 1.3.
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| bad("key", format!("does not fit `cert`: {e}")))?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("key", format!("does not fit `cert`: {e}")))?;
    Ok(TlsConfigs {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The server name a bridge expects on peer `id`'s certificate.
pub fn peer_server_name(id: u32) -> ServerName<'static> {
    ServerName::try_from(host_name(id)).expect("scsp-host-<n> is a valid DNS name")
}

/// Does this (already chain-verified) certificate name host `id`?
pub fn names_host(cert: &CertificateDer<'_>, id: u32) -> bool {
    names(cert, &host_name(id))
}

/// Does this (already chain-verified) certificate belong to `cluster`
/// ([`crate::pki::cluster_name`])?
pub fn names_cluster(cert: &CertificateDer<'_>, cluster: &str) -> bool {
    names(cert, &cluster_name(cluster))
}

fn names(cert: &CertificateDer<'_>, dns: &str) -> bool {
    let (Ok(ee), Ok(name)) = (
        webpki::EndEntityCert::try_from(cert),
        ServerName::try_from(dns.to_string()),
    ) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_host_certificate_names_its_host_and_cluster() {
        let ca = crate::pki::ClusterCa::generate("test_1.a-b").unwrap();
        let host = ca.issue_host(3, &[]).unwrap();
        use rustls::pki_types::pem::PemObject;
        let der =
            rustls::pki_types::CertificateDer::from_pem_slice(host.cert_pem.as_bytes()).unwrap();
        assert!(super::names_host(&der, 3));
        assert!(!super::names_host(&der, 4));
        assert!(super::names_cluster(&der, "test_1.a-b"));
        assert!(!super::names_cluster(&der, "test_1.a-c"));
    }
}
