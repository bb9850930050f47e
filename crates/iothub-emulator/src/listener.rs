//! The accept-and-handshake loop both TLS listeners share: the HTTPS port (REST API and MQTT over
//! WebSockets) and the MQTT port.
//!
//! Every accepted socket gets its own connection task at once and is handshaken there, so a slow
//! or silent client never stalls the accept loop. The task belongs to [`Connections`]: shutdown
//! stops the loop, abandons handshakes still running, and waits for the connections being served.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::connections::Connections;

/// A TLS handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (usually out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts on `listener` until shutdown; each connection that completes the TLS handshake is
/// handed to `serve_connection` inside its connection task. `name` labels the logs.
pub(crate) async fn serve<S, F>(
    name: &'static str,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: Connections,
    serve_connection: S,
) where
    S: Fn(TlsStream<TcpStream>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, peer) = tokio::select! {
            () = connections.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(listener = name, %error, "accept failed");
                    tokio::select! {
                        () = connections.cancelled() => return,
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                    }
                }
            },
        };
        // Small requests and packets, answered at once: don't wait to coalesce them.
        let _ = tcp.set_nodelay(true);
        let (acceptor, lifetime, serve_connection) = (
            acceptor.clone(),
            connections.clone(),
            serve_connection.clone(),
        );
        connections.spawn(async move {
            let handshake = tokio::select! {
                () = lifetime.cancelled() => return,
                handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => handshake,
            };
            match handshake {
                Ok(Ok(tls)) => serve_connection(tls, peer).await,
                Ok(Err(error)) => debug!(listener = name, %peer, %error, "TLS handshake failed"),
                Err(_) => debug!(listener = name, %peer, "TLS handshake timed out"),
            }
        });
    }
}
