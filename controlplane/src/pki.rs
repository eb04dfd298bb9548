//! The node API's private CA (`weft pki`, `docs/node-api.md`): one CA, one certificate per node
//! (its name in the subject common name), one for the controller; and the TLS settings both
//! sides use (TLS 1.3 only, ECDSA P-256 keys, the CA as the only trust root).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// The CA certificate's file name.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name.
pub const CA_KEY: &str = "ca.key";
/// The controller's certificate (as issued by `weft pki issue --server`).
pub const SERVER_CERT: &str = "server.pem";
/// The controller's key.
pub const SERVER_KEY: &str = "server.key";

/// How long the CA is valid.
const CA_DAYS: i64 = 3650;
/// How long node and server certificates are valid.
const LEAF_DAYS: i64 = 825;

/// Errors of the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file exists that would be overwritten.
    #[error("{0} exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// A file is not what it should be.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A name is not acceptable.
    #[error("invalid name '{0}': 1-255 of letters, digits, '.', '_', '-', ':'")]
    Name(String),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// The TLS settings could not be built.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Whether `name` is a valid node name (as `docs/node-config.md` defines it).
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `text` to a new file (never overwriting), readable by its owner only when `secret`.
fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                PkiError::Exists(path.to_owned())
            } else {
                io(e)
            }
        })?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// Creates the CA in `dir` (created if missing): `ca.pem` and `ca.key`. Refuses to overwrite.
pub fn init_ca(dir: &Path) -> Result<PathBuf, PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(PkiError::Exists(p.clone()));
        }
    }
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "weft node CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_new(&key_path, &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)?;
    Ok(cert_path)
}

/// What to issue.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A node's client certificate: its name in the common name.
    Node(String),
    /// The controller's server certificate, valid for these DNS names and IP addresses.
    Server(Vec<String>),
}

/// Issues a certificate signed by the CA in `dir`: `NAME.pem` and `NAME.key` for a node,
/// `server.pem` and `server.key` for the controller, written to `out` (default `dir`). Returns
/// the certificate's path.
pub fn issue(dir: &Path, subject: &Subject, out: Option<&Path>) -> Result<PathBuf, PkiError> {
    let ca_key_pem = read(&dir.join(CA_KEY))?;
    let ca_cert_pem = read(&dir.join(CA_CERT))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| PkiError::Invalid {
        path: dir.join(CA_KEY),
        what: e.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).map_err(|e| PkiError::Invalid {
        path: dir.join(CA_CERT),
        what: e.to_string(),
    })?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let base = match subject {
        Subject::Node(name) => {
            if !valid_node_name(name) {
                return Err(PkiError::Name(name.clone()));
            }
            dn.push(DnType::CommonName, name.as_str());
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            name.clone()
        }
        Subject::Server(sans) => {
            if sans.is_empty() {
                return Err(PkiError::Name(
                    "a server certificate needs at least one --san".into(),
                ));
            }
            dn.push(DnType::CommonName, "weft controller");
            for s in sans {
                params
                    .subject_alt_names
                    .push(match s.parse::<std::net::IpAddr>() {
                        Ok(ip) => SanType::IpAddress(ip),
                        Err(_) => SanType::DnsName(
                            s.as_str()
                                .try_into()
                                .map_err(|_| PkiError::Name(s.clone()))?,
                        ),
                    });
            }
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            "server".to_owned()
        }
    };
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let out = out.unwrap_or(dir);
    std::fs::create_dir_all(out).map_err(|source| PkiError::Io {
        path: out.to_owned(),
        source,
    })?;
    let cert_path = out.join(format!("{base}.pem"));
    write_new(&out.join(format!("{base}.key")), &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)?;
    Ok(cert_path)
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let v: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| PkiError::Invalid {
            path: path.to_owned(),
            what: e.to_string(),
        })?;
    if v.is_empty() {
        return Err(PkiError::Invalid {
            path: path.to_owned(),
            what: "no certificate in it".into(),
        });
    }
    Ok(v)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| PkiError::Invalid {
        path: path.to_owned(),
        what: e.to_string(),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The controller's TLS settings for the node API: its certificate from `dir`, TLS 1.3 only,
/// and a client certificate signed by the CA required.
pub fn server_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&dir.join(CA_CERT))? {
        roots
            .add(c)
            .map_err(|e| PkiError::Tls(format!("CA certificate: {e}")))?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| PkiError::Tls(e.to_string()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&dir.join(SERVER_CERT))?, key(&dir.join(SERVER_KEY))?)
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// A node's TLS settings towards the controller: the CA as the only root, TLS 1.3 only, its
/// certificate and key as the client identity.
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key_path: &Path,
) -> Result<rustls::ClientConfig, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots
            .add(c)
            .map_err(|e| PkiError::Tls(format!("CA certificate: {e}")))?;
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs(cert)?, key(key_path)?)
        .map_err(|e| PkiError::Tls(e.to_string()))
}

/// The node name in a (verified) client certificate: its subject's common name, if it is a
/// valid node name.
pub fn node_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = x509.subject().iter_common_name().next()?.as_str().ok()?;
    valid_node_name(cn).then(|| cn.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_node_and_server_certificates_that_verify() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        assert!(matches!(init_ca(dir.path()), Err(PkiError::Exists(_))));
        let node = issue(dir.path(), &Subject::Node("hv1".into()), None).unwrap();
        issue(
            dir.path(),
            &Subject::Server(vec!["127.0.0.1".into(), "localhost".into()]),
            None,
        )
        .unwrap();
        assert!(matches!(
            issue(dir.path(), &Subject::Node("hv1".into()), None),
            Err(PkiError::Exists(_))
        ));
        assert!(matches!(
            issue(dir.path(), &Subject::Node("bad name".into()), None),
            Err(PkiError::Name(_))
        ));
        let c = certs(&node).unwrap();
        assert_eq!(node_name(&c[0]).as_deref(), Some("hv1"));
        server_config(dir.path()).unwrap();
        client_config(
            &dir.path().join(CA_CERT),
            &node,
            &dir.path().join("hv1.key"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("hv1.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keys are private");
    }
}
