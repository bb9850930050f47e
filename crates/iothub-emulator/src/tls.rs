//! The emulator's own certificate authority and server certificate.
//!
//! On first start rcgen makes a CA (`ca.pem` + `ca-key.pem`) and a server certificate signed by
//! it (`server.pem` + `server-key.pem`), all kept in the data directory and reused on restart, so
//! clients that trust `ca.pem` once keep working. The server certificate is re-issued (by the same
//! CA) when its SAN list changes, i.e. when `--hostname` changes. SANs: the hub host name,
//! `localhost`, `127.0.0.1` and `::1`. Both listeners speak TLS 1.2 and 1.3 on the ring provider.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server-key.pem";
const SERVER_SANS_FILE: &str = "server-sans.txt";

/// Certificate setup failures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading or writing a file in the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// rcgen could not generate or sign.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored PEM file is unreadable.
    #[error("{path}: not a valid PEM file")]
    BadPem {
        /// Which file.
        path: PathBuf,
    },
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The task that loads or creates the certificates failed (panicked or was cancelled).
    #[error("certificate set-up task failed")]
    SetupTask(#[source] tokio::task::JoinError),
}

/// The CA and the server identity, ready to build acceptors.
pub(crate) struct TlsMaterial {
    ca_file: PathBuf,
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The CA's parameters; deterministic, so a stored CA key re-creates the same issuer.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "iothub-emulator local CA");
    dn.push(DnType::OrganizationName, "iothub-twins");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn sans(hostname: &str) -> Vec<String> {
    let mut names = vec![hostname.to_string()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(extra)) {
            names.push(extra.to_string());
        }
    }
    names
}

/// Writes `contents` to `path` atomically (temp file + rename), private when `secret`.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(contents.as_bytes()).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn read_optional(path: &Path) -> Result<Option<String>, TlsError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

impl TlsMaterial {
    /// Loads the CA and server certificate from `dir`, creating what is missing.
    ///
    /// # Errors
    /// File access, generation, or unreadable stored files.
    pub fn load_or_create(dir: &Path, hostname: &str) -> Result<TlsMaterial, TlsError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ca_file = dir.join(CA_FILE);
        let ca_key_file = dir.join(CA_KEY_FILE);
        let (ca_pem, ca_key, ca_is_new) =
            match (read_optional(&ca_file)?, read_optional(&ca_key_file)?) {
                (Some(pem), Some(key_pem)) => {
                    let key = KeyPair::from_pem(&key_pem).map_err(|_| TlsError::BadPem {
                        path: ca_key_file.clone(),
                    })?;
                    (pem, key, false)
                }
                _ => {
                    let key = KeyPair::generate()?;
                    let mut params = ca_params();
                    let now = time::OffsetDateTime::now_utc();
                    params.not_before = now - time::Duration::days(1);
                    params.not_after = now + time::Duration::days(365 * 20);
                    let cert = params.self_signed(&key)?;
                    write_file(&ca_key_file, &key.serialize_pem(), true)?;
                    write_file(&ca_file, &cert.pem(), false)?;
                    (cert.pem(), key, true)
                }
            };
        let issuer = Issuer::new(ca_params(), ca_key);

        let server_file = dir.join(SERVER_FILE);
        let server_key_file = dir.join(SERVER_KEY_FILE);
        let sans_file = dir.join(SERVER_SANS_FILE);
        let wanted_sans = sans(hostname).join("\n");
        let stored = (
            read_optional(&server_file)?,
            read_optional(&server_key_file)?,
            read_optional(&sans_file)?,
        );
        let (server_pem, server_key_pem) = match stored {
            (Some(cert), Some(key), Some(stored_sans))
                if !ca_is_new && stored_sans == wanted_sans =>
            {
                (cert, key)
            }
            _ => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::new(sans(hostname))?;
                params
                    .distinguished_name
                    .push(DnType::CommonName, hostname.to_string());
                params.is_ca = IsCa::ExplicitNoCa;
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.use_authority_key_identifier_extension = true;
                let now = time::OffsetDateTime::now_utc();
                params.not_before = now - time::Duration::days(1);
                // Under 398 days, which some TLS clients require of server certificates.
                params.not_after = now + time::Duration::days(390);
                let cert = params.signed_by(&key, &issuer)?;
                write_file(&server_key_file, &key.serialize_pem(), true)?;
                write_file(&server_file, &cert.pem(), false)?;
                write_file(&sans_file, &wanted_sans, false)?;
                (cert.pem(), key.serialize_pem())
            }
        };
        let server_cert = CertificateDer::from_pem_slice(server_pem.as_bytes()).map_err(|_| {
            TlsError::BadPem {
                path: server_file.clone(),
            }
        })?;
        let ca_cert =
            CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|_| TlsError::BadPem {
                path: ca_file.clone(),
            })?;
        let server_key =
            PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes()).map_err(|_| {
                TlsError::BadPem {
                    path: server_key_file.clone(),
                }
            })?;
        Ok(TlsMaterial {
            ca_file,
            ca_pem,
            server_chain: vec![server_cert, ca_cert],
            server_key,
        })
    }

    /// Path of `ca.pem`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn acceptor(&self, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Acceptor for the HTTPS port (HTTP/2 and HTTP/1.1; WebSockets use HTTP/1.1).
    ///
    /// # Errors
    /// rustls rejects the key or certificate.
    pub fn https_acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        self.acceptor(&[b"h2", b"http/1.1"])
    }

    /// Acceptor for the MQTT port (no ALPN: device SDKs send none, or `mqtt`, which is accepted).
    ///
    /// # Errors
    /// rustls rejects the key or certificate.
    pub fn mqtt_acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        self.acceptor(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = TlsMaterial::load_or_create(dir.path(), "myhub.local").unwrap();
        let second = TlsMaterial::load_or_create(dir.path(), "myhub.local").unwrap();
        assert_eq!(first.ca_pem(), second.ca_pem());
        assert_eq!(first.server_chain[0], second.server_chain[0]);
        let renamed = TlsMaterial::load_or_create(dir.path(), "other.local").unwrap();
        assert_eq!(first.ca_pem(), renamed.ca_pem(), "the CA survives a rename");
        assert_ne!(first.server_chain[0], renamed.server_chain[0]);
        assert!(renamed.https_acceptor().is_ok());
        assert!(renamed.mqtt_acceptor().is_ok());
    }

    #[test]
    fn sans_cover_loopback_names_once() {
        assert_eq!(sans("localhost"), ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(sans("hub"), ["hub", "localhost", "127.0.0.1", "::1"]);
    }
}
