//! One HTTPS connection, after the shared listener's TLS handshake: hyper (HTTP/1.1 with
//! upgrades for MQTT over WebSockets, or HTTP/2) serving the axum router. At shutdown the
//! connection finishes its in-flight requests, then closes.

use std::net::SocketAddr;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::connections::Connections;

/// Serves `router` on `tls` until the peer closes or the emulator shuts down.
pub(crate) async fn serve_connection(
    tls: TlsStream<TcpStream>,
    peer: SocketAddr,
    router: Router,
    connections: Connections,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let service = TowerToHyperService::new(router);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "https connection ended with an error");
            }
        }
        () = connections.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
