//! The rustls client configuration: system roots plus an optional extra CA, ring provider.
//!
//! We build the `ClientConfig` ourselves (instead of letting reqwest do it) so the extra CA
//! is added next to the system roots and the crypto provider is chosen explicitly, which
//! works even when a dependency tree enables a second provider.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::ServiceError;

/// Builds the TLS configuration. `extra_ca_pem` may hold one or more PEM certificates; it
/// must contain at least one, so a wrong file is reported instead of silently ignored.
pub(crate) fn client_config(extra_ca_pem: Option<&[u8]>) -> Result<ClientConfig, ServiceError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(error = %err, "could not load some system root certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system root certificates");

    if let Some(pem) = extra_ca_pem {
        for cert in parse_pem_certs(pem)? {
            roots
                .add(cert)
                .map_err(|e| ServiceError::InvalidCa(format!("certificate rejected: {e}")))?;
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Build(format!("TLS protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // With a preconfigured config reqwest does not set ALPN itself.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ServiceError> {
    let mut reader = pem;
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServiceError::InvalidCa(format!("unreadable PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ServiceError::InvalidCa(
            "no PEM \"CERTIFICATE\" block found".into(),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_pem_without_certificates() {
        let err = client_config(Some(b"not a certificate")).unwrap_err();
        assert!(err.to_string().contains("no PEM"), "{err}");
        let err = client_config(Some(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("no PEM"), "{err}");
    }

    #[test]
    fn rejects_certificate_garbage() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = client_config(Some(pem)).unwrap_err();
        assert!(matches!(err, ServiceError::InvalidCa(_)), "{err}");
    }

    #[test]
    fn builds_without_extra_ca() {
        let config = client_config(None).unwrap();
        assert_eq!(config.alpn_protocols.len(), 2);
    }
}
