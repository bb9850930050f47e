//! The rustls client configuration: system roots plus an optional extra CA, ring provider.
//!
//! Built here rather than through rumqttc's `TlsConfiguration::Simple`, which trusts only the
//! given CA and drops the system roots (ARCHITECTURE.md#device-mqtt).

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::Error;

/// Trusts the platform's roots and, when given, every certificate in `extra_ca_pem`.
pub(crate) fn client_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("system root store: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system roots loaded");

    if let Some(pem) = extra_ca_pem {
        for cert in parse_pem_certificates(pem)? {
            roots
                .add(cert)
                .map_err(|e| Error::Tls(format!("CA certificate rejected: {e}")))?;
        }
    }
    if roots.is_empty() {
        return Err(Error::Tls(
            "no trusted roots: the system store is empty and no CA file was given".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn parse_pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("CA file is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("the CA file holds no PEM certificate".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_rejected() {
        let err = client_config(Some(b"not a certificate")).unwrap_err();
        assert!(matches!(err, Error::Tls(m) if m.contains("no PEM certificate")));
    }

    #[test]
    fn a_corrupt_certificate_is_rejected() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(client_config(Some(pem)), Err(Error::Tls(_))));
    }
}
