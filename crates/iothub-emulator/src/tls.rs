//! The emulator's own certificate authority and server certificate.
//!
//! On first start rcgen makes a CA (`ca.pem` + `ca-key.pem`) and a server certificate signed by
//! it (`server.pem` + `server-key.pem`), all kept in the data directory and reused on restart, so
//! clients that trust `ca.pem` once keep working. The server certificate is re-issued by the same
//! CA when its SAN list changes (`--hostname` changed), when it is not yet valid, expired, or
//! within [`RENEW_BEFORE`] of expiring, and when it cannot be read. SANs: the hub host name,
//! `localhost`, `127.0.0.1` and `::1`. Both listeners speak TLS 1.2 and 1.3 on the ring provider,
//! chosen explicitly, so nothing here depends on a process-wide default provider.

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
use time::{Duration, OffsetDateTime};
use tokio_rustls::TlsAcceptor;

const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server-key.pem";
const SERVER_SANS_FILE: &str = "server-sans.txt";

/// How long a new CA is valid.
const CA_VALIDITY: Duration = Duration::days(365 * 20);
/// How long a new server certificate is valid: under 398 days, which some TLS clients require of
/// server certificates.
const SERVER_VALIDITY: Duration = Duration::days(390);
/// A stored server certificate this close to its end is renewed at start.
const RENEW_BEFORE: Duration = Duration::days(30);
/// New certificates start a day in the past, so a client whose clock is a little behind
/// accepts them.
const BACKDATE: Duration = Duration::days(1);

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

/// The emulator's CA: its certificate (what clients trust) and the issuer that signs with its key.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// Made just now: anything it did not sign must be re-issued.
    is_new: bool,
}

impl Ca {
    /// The stored CA, or a new one (written to `dir`) if either of its files is missing.
    fn load_or_create(dir: &Path) -> Result<Ca, TlsError> {
        let ca_file = dir.join(CA_FILE);
        let key_file = dir.join(CA_KEY_FILE);
        match (read_optional(&ca_file)?, read_optional(&key_file)?) {
            (Some(pem), Some(key_pem)) => {
                let key =
                    KeyPair::from_pem(&key_pem).map_err(|_| TlsError::BadPem { path: key_file })?;
                Ok(Ca {
                    pem,
                    issuer: Issuer::new(ca_params(), key),
                    is_new: false,
                })
            }
            _ => Ca::create(&ca_file, &key_file),
        }
    }

    fn create(ca_file: &Path, key_file: &Path) -> Result<Ca, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        write_file(key_file, &key.serialize_pem(), true)?;
        write_file(ca_file, &cert.pem(), false)?;
        Ok(Ca {
            pem: cert.pem(),
            issuer: Issuer::new(ca_params(), key),
            is_new: true,
        })
    }
}

/// The server certificate and its key, PEM.
struct ServerIdentity {
    cert_pem: String,
    key_pem: String,
}

impl ServerIdentity {
    /// The stored server certificate if it is still good (see the module doc), otherwise a new
    /// one signed by `ca` and written to `dir`.
    fn load_or_issue(dir: &Path, hostname: &str, ca: &Ca) -> Result<ServerIdentity, TlsError> {
        let wanted_sans = sans(hostname).join("\n");
        let stored = (
            read_optional(&dir.join(SERVER_FILE))?,
            read_optional(&dir.join(SERVER_KEY_FILE))?,
            read_optional(&dir.join(SERVER_SANS_FILE))?,
        );
        let reason = match stored {
            _ if ca.is_new => "the CA is new",
            (Some(cert_pem), Some(key_pem), Some(stored_sans)) if stored_sans == wanted_sans => {
                match renewal_reason(&cert_pem, OffsetDateTime::now_utc()) {
                    None => return Ok(ServerIdentity { cert_pem, key_pem }),
                    Some(reason) => reason,
                }
            }
            (Some(_), Some(_), Some(_)) => "its host names changed",
            _ => "there is none",
        };
        tracing::info!(reason, "issuing a new server certificate");
        ServerIdentity::issue(dir, hostname, ca)
    }

    fn issue(dir: &Path, hostname: &str, ca: &Ca) -> Result<ServerIdentity, TlsError> {
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
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + SERVER_VALIDITY;
        let cert = params.signed_by(&key, &ca.issuer)?;
        let identity = ServerIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        write_file(&dir.join(SERVER_KEY_FILE), &identity.key_pem, true)?;
        write_file(&dir.join(SERVER_FILE), &identity.cert_pem, false)?;
        write_file(
            &dir.join(SERVER_SANS_FILE),
            &sans(hostname).join("\n"),
            false,
        )?;
        Ok(identity)
    }
}

/// Why a stored server certificate must be renewed at `now`, or `None` to keep it.
fn renewal_reason(cert_pem: &str, now: OffsetDateTime) -> Option<&'static str> {
    let Ok(der) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return Some("the stored one is not a PEM certificate");
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Some("the stored one cannot be parsed");
    };
    let validity = cert.validity();
    let now = now.unix_timestamp();
    if now < validity.not_before.timestamp() {
        Some("the stored one is not valid yet")
    } else if now >= validity.not_after.timestamp() {
        Some("the stored one has expired")
    } else if validity.not_after.timestamp() - now < RENEW_BEFORE.whole_seconds() {
        Some("the stored one expires within 30 days")
    } else {
        None
    }
}

impl TlsMaterial {
    /// Loads the CA and server certificate from `dir`, creating what is missing and renewing a
    /// server certificate that is out of date.
    ///
    /// # Errors
    /// File access, generation, or unreadable stored CA files.
    pub(crate) fn load_or_create(dir: &Path, hostname: &str) -> Result<TlsMaterial, TlsError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ca = Ca::load_or_create(dir)?;
        let server = ServerIdentity::load_or_issue(dir, hostname, &ca)?;
        let bad_pem = |file: &str| TlsError::BadPem {
            path: dir.join(file),
        };
        let server_cert = CertificateDer::from_pem_slice(server.cert_pem.as_bytes())
            .map_err(|_| bad_pem(SERVER_FILE))?;
        let ca_cert =
            CertificateDer::from_pem_slice(ca.pem.as_bytes()).map_err(|_| bad_pem(CA_FILE))?;
        let server_key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
            .map_err(|_| bad_pem(SERVER_KEY_FILE))?;
        Ok(TlsMaterial {
            ca_file: dir.join(CA_FILE),
            ca_pem: ca.pem,
            server_chain: vec![server_cert, ca_cert],
            server_key,
        })
    }

    /// Path of `ca.pem`.
    pub(crate) fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate, PEM.
    pub(crate) fn ca_pem(&self) -> &str {
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
    pub(crate) fn https_acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        self.acceptor(&[b"h2", b"http/1.1"])
    }

    /// Acceptor for the MQTT port (no ALPN: device SDKs send none, or `mqtt`, which is accepted).
    ///
    /// # Errors
    /// rustls rejects the key or certificate.
    pub(crate) fn mqtt_acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        self.acceptor(&[])
    }

    /// Acceptor for the AMQP port (no ALPN: the AMQP clients send none).
    ///
    /// # Errors
    /// rustls rejects the key or certificate.
    pub(crate) fn amqp_acceptor(&self) -> Result<TlsAcceptor, TlsError> {
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

    /// Writes a server certificate signed by the stored CA, valid from `from` to `until`
    /// (relative to now), as if an older emulator had left it there.
    fn store_server_cert(dir: &Path, from: Duration, until: Duration) {
        let ca = Ca::load_or_create(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans("myhub.local")).unwrap();
        let now = OffsetDateTime::now_utc();
        params.not_before = now + from;
        params.not_after = now + until;
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        write_file(&dir.join(SERVER_FILE), &cert.pem(), false).unwrap();
        write_file(&dir.join(SERVER_KEY_FILE), &key.serialize_pem(), true).unwrap();
    }

    fn not_after(material: &TlsMaterial) -> i64 {
        let (_, cert) = x509_parser::parse_x509_certificate(&material.server_chain[0]).unwrap();
        cert.validity().not_after.timestamp()
    }

    #[test]
    fn a_server_certificate_near_its_end_is_renewed_by_the_same_ca() {
        let days_left = |material: &TlsMaterial| {
            (not_after(material) - OffsetDateTime::now_utc().unix_timestamp()) / 86_400
        };
        for (from, until) in [
            (Duration::days(-300), Duration::days(2)),  // expires soon
            (Duration::days(-400), Duration::days(-1)), // expired
            (Duration::days(1), Duration::days(300)),   // not valid yet
        ] {
            let dir = tempfile::tempdir().unwrap();
            let first = TlsMaterial::load_or_create(dir.path(), "myhub.local").unwrap();
            store_server_cert(dir.path(), from, until);
            let stored = fs::read_to_string(dir.path().join(SERVER_FILE)).unwrap();
            assert!(renewal_reason(&stored, OffsetDateTime::now_utc()).is_some());

            let renewed = TlsMaterial::load_or_create(dir.path(), "myhub.local").unwrap();
            assert_eq!(first.ca_pem(), renewed.ca_pem(), "the CA is kept");
            assert!(days_left(&renewed) > 300, "{from} .. {until}");
            let on_disk = fs::read_to_string(dir.path().join(SERVER_FILE)).unwrap();
            assert_ne!(on_disk, stored, "the renewed certificate is stored");
            assert!(renewal_reason(&on_disk, OffsetDateTime::now_utc()).is_none());
        }
    }

    #[test]
    fn a_server_certificate_with_time_left_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        TlsMaterial::load_or_create(dir.path(), "myhub.local").unwrap();
        store_server_cert(dir.path(), Duration::days(-1), Duration::days(60));
        let stored = fs::read_to_string(dir.path().join(SERVER_FILE)).unwrap();
        let loaded = TlsMaterial::load_or_create(dir.path(), "myhub.local").unwrap();
        let kept = CertificateDer::from_pem_slice(stored.as_bytes()).unwrap();
        assert_eq!(loaded.server_chain[0], kept);
        assert!(renewal_reason("not a certificate", OffsetDateTime::now_utc()).is_some());
    }
}
