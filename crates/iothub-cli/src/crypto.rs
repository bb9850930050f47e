//! The process-wide rustls crypto provider. The workspace builds rustls with ring only; when a
//! dependency tree enables a second provider, rustls refuses to choose at run time, so every
//! binary installs ring explicitly, once, before any TLS configuration is built.

/// Installs ring as the process's default rustls provider. Calling it again, or after
/// something else installed a provider, changes nothing.
pub fn install_crypto_provider() {
    // The only error is "a provider is already installed", which is the state we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_a_default_and_is_idempotent() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        // A TLS client config can now be built without naming a provider.
        let roots = rustls::RootCertStore::empty();
        let _ = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
    }
}
