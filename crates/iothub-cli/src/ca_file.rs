//! `--ca-file PEM` (or `IOTHUB_CA_FILE`): an extra CA to trust besides the system roots, e.g.
//! the emulator's `ca.pem`. Checked when the arguments are read, so a wrong file is a usage
//! error (exit 2) naming the file, before any connection is attempted.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::input_file::{read_input_file, InputFileError};

/// Every binary names the flag the same way (README "CLI reference").
const FLAG: &str = "--ca-file";

/// A CA file that holds at least one certificate rustls accepts as a trust anchor.
#[derive(Clone)]
pub struct CaFile {
    path: PathBuf,
    pem: Vec<u8>,
    certificates: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for CaFile {
    // Certificates are public but long: name the file and count them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile")
            .field("path", &self.path)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

impl CaFile {
    /// The file as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's PEM text, for client builders that take PEM.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The file's PEM text, owned.
    pub fn into_pem(self) -> Vec<u8> {
        self.pem
    }

    /// The certificates, in file order (at least one).
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }
}

/// Why a CA file cannot be used. Every message starts with `--ca-file: `.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file could not be read, or is too large.
    #[error("{FLAG}: {0}")]
    File(#[source] InputFileError),
    /// The file has no `-----BEGIN CERTIFICATE-----` block (a key, a DER file, the wrong file).
    #[error("{FLAG}: invalid CA certificate file '{}': no PEM CERTIFICATE block found", path.display())]
    NoCertificate {
        /// The file as given.
        path: PathBuf,
    },
    /// A block is not valid PEM (bad base64, missing end line).
    #[error("{FLAG}: invalid CA certificate file '{}': not valid PEM: {detail}", path.display())]
    Pem {
        /// The file as given.
        path: PathBuf,
        /// The PEM parser's reason.
        detail: String,
    },
    /// A certificate decodes but is not one rustls can trust (not X.509, unsupported key).
    #[error("{FLAG}: invalid CA certificate file '{}': certificate {number} cannot be trusted: {detail}", path.display())]
    Rejected {
        /// The file as given.
        path: PathBuf,
        /// Which certificate, counting from 1 in file order.
        number: usize,
        /// rustls' reason.
        detail: String,
    },
}

/// Reads and checks a CA file: bounded in size, at least one certificate, each usable as a
/// trust anchor.
///
/// # Errors
/// See [`CaFileError`].
pub fn load_ca_file(path: &Path) -> Result<CaFile, CaFileError> {
    let pem = read_input_file(path).map_err(CaFileError::File)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaFileError::Pem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(CaFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    let mut roots = RootCertStore::empty();
    for (index, certificate) in certificates.iter().enumerate() {
        roots
            .add(certificate.clone())
            .map_err(|e| CaFileError::Rejected {
                path: path.to_path_buf(),
                number: index + 1,
                detail: e.to_string(),
            })?;
    }
    Ok(CaFile {
        path: path.to_path_buf(),
        pem,
        certificates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn self_signed_ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(vec!["test-ca".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn loads_every_certificate_of_a_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = format!("{}{}", self_signed_ca_pem(), self_signed_ca_pem());
        let path = write(&dir, "bundle.pem", bundle.as_bytes());
        let ca = load_ca_file(&path).unwrap();
        assert_eq!(ca.certificates().len(), 2);
        assert_eq!(ca.path(), path);
        assert_eq!(ca.pem(), bundle.as_bytes());
        assert!(format!("{ca:?}").contains("certificates: 2"));
    }

    #[test]
    fn a_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "ca.pem", b"hello");
        let err = load_ca_file(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--ca-file: invalid CA certificate file '{}': no PEM CERTIFICATE block found",
                path.display()
            )
        );
        let key_only = write(
            &dir,
            "key.pem",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert!(matches!(
            load_ca_file(&key_only),
            Err(CaFileError::NoCertificate { .. })
        ));
    }

    #[test]
    fn broken_pem_and_garbage_certificates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let unterminated = write(&dir, "cut.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n");
        let err = load_ca_file(&unterminated).unwrap_err();
        assert!(matches!(err, CaFileError::Pem { .. }), "{err}");
        assert!(err.to_string().contains("not valid PEM"), "{err}");

        let garbage = write(
            &dir,
            "garbage.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let err = load_ca_file(&garbage).unwrap_err();
        assert!(
            matches!(err, CaFileError::Rejected { number: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("--ca-file: invalid CA certificate file '"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let err = load_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--ca-file: cannot read '/nonexistent/ca.pem': "),
            "{err}"
        );
    }
}
