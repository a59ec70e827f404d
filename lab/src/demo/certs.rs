//! Throwaway certificates for the demo: a CA and the pool's server
//! certificate (ECDSA P-256 by rcgen, or RSA-2048 with a key made by the
//! `openssl` tool, since rcgen cannot generate RSA keys with ring).

use crate::Result;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

/// Server key algorithm.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// ECDSA P-256.
    Ecdsa,
    /// RSA 2048.
    Rsa,
}

/// Paths of the files written.
pub struct DemoCerts {
    pub ca_cert: PathBuf,
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn write_secret(path: &Path, pem: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(pem.as_bytes())
        .map_err(|e| crate::Error::system(path.display().to_string(), e))
}

fn rsa_key() -> Result<KeyPair> {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .map_err(|e| format!("RSA keys need the openssl tool: {e}"))?;
    if !out.status.success() {
        return Err("openssl genpkey failed".into());
    }
    let pem = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| crate::Error::Failed(format!("openssl's RSA key: {e}")))
}

/// Write a CA and a server certificate for [`super::load::SERVER_NAME`] into `dir`.
pub fn make(dir: &Path, key_type: KeyType) -> Result<DemoCerts> {
    let err = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name
        .push(DnType::CommonName, "scsp demo CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let key = match key_type {
        KeyType::Ecdsa => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?,
        KeyType::Rsa => rsa_key()?,
    };
    let mut params = CertificateParams::new(vec![
        super::load::SERVER_NAME.to_string(),
        "localhost".to_string(),
    ])
    .map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, super::load::SERVER_NAME);
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = params.signed_by(&key, &issuer).map_err(err)?;

    let paths = DemoCerts {
        ca_cert: dir.join("ca.pem"),
        ca_der: ca_cert.der().clone(),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    std::fs::write(&paths.ca_cert, ca_cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&paths.server_cert, cert.pem()).map_err(|e| e.to_string())?;
    write_secret(&paths.server_key, &key.serialize_pem())?;
    Ok(paths)
}
