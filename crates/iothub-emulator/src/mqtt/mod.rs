//! The device MQTT endpoint: MQTT 3.1.1 over TLS (`--mqtt-port`) and over WebSockets
//! (`wss://{host}:{https-port}/$iothub/websocket`).
//!
//! Work in progress (issue 5): this first version fixes the two entry points that `lib.rs` wires
//! up, so both halves of the crate can be connected while the session layer is written. Until
//! then TLS connections are accepted and closed, and WebSocket upgrades are refused with 503.

use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// Accepts MQTT-over-TLS connections on `listener` until `shutdown` is cancelled.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    hub: Hub,
    shutdown: CancellationToken,
) {
    let _ = (&acceptor, &hub);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => {
                if let Err(error) = accepted {
                    tracing::warn!(%error, "mqtt accept failed");
                }
            }
        }
    }
}

/// Upgrades `GET /$iothub/websocket` to MQTT over WebSockets.
pub async fn websocket_upgrade(hub: Hub, ws: WebSocketUpgrade, headers: HeaderMap) -> Response {
    let _ = (hub, ws, headers);
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}
