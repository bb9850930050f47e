//! Settings many clients of one process share: one TLS configuration, and a bound on how
//! many of them dial at once.
//!
//! A fleet of simulated devices would otherwise load the system roots once per client and, after
//! a hub-wide drop, let every client's first reconnect race the others. The jittered
//! [`crate::Backoff`] spreads the attempts over time; the gate bounds how many are in flight.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::tls;

/// One rustls client configuration (system roots plus an optional CA) for many clients.
/// Cheap to clone; set it as [`crate::ClientOptions::shared_tls`].
#[derive(Clone)]
pub struct SharedTls(pub(crate) Arc<rustls::ClientConfig>);

impl SharedTls {
    /// Loads the system roots once and adds every certificate in `extra_ca_pem`.
    ///
    /// # Errors
    /// [`Error::Tls`] for a CA that is not PEM or holds no certificate, or when no root is
    /// trusted at all.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> Result<SharedTls, Error> {
        tls::client_config(extra_ca_pem).map(SharedTls)
    }
}

impl std::fmt::Debug for SharedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedTls")
    }
}

/// At most `n` connection attempts (TCP, TLS, CONNECT until CONNACK or failure) at once across
/// every client holding a clone. Set it as [`crate::ClientOptions::connect_gate`].
#[derive(Clone, Debug)]
pub struct ConnectGate(Arc<Semaphore>);

impl ConnectGate {
    /// A gate letting `n` attempts through at once (at least one).
    pub fn new(n: usize) -> ConnectGate {
        ConnectGate(Arc::new(Semaphore::new(n.max(1))))
    }

    /// Waits for a turn; the attempt holds the permit until it ends. `None` only if the
    /// semaphore were closed, which this type never does: the attempt then goes ungated.
    pub(crate) async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.0).acquire_owned().await.ok()
    }
}
