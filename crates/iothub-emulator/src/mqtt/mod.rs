//! The device MQTT endpoint: MQTT 3.1.1 over TLS (`--mqtt-port`) and over WebSockets
//! (`wss://{host}:{https-port}/$iothub/websocket`), speaking to devices the way IoT Hub does
//! (reference `iothub-mqtt-and-sas.md` §8).
//!
//! Layers, each in its own file:
//! - `transport`: TLS stream or WebSocket, as one byte-channel trait;
//! - `codec`: bytes ↔ packets through rumqttc's v4 codec (256 KiB + headers);
//! - `connect`: CONNECT checks (client id, username, SAS against device or policy keys);
//! - `session`: the per-connection state machine (no I/O), with `topic` and `twin` rules;
//! - `registry`: sessions by client id (one connection each, clean-session-0 persistence);
//! - `driver`: the async loop tying a transport, a session, the registry and the hub together.
//!
//! What devices get: CONNACK 5 for any credential problem; `session_present` and kept
//! subscriptions (plus desired notifications that arrived while offline) for clean session 0;
//! the older connection closed when a client id connects again; a close at 1.5 × keep-alive
//! and when the SAS token's `se` passes; twin GET / reported PATCH / desired notifications with
//! `$rid` and `$version`; QoS 2 and undocumented topics close the connection; telemetry is
//! acknowledged (and not routed anywhere).
//!
//! Not emulated: module identities (a `device/module` client id is refused: the registry has
//! no modules), cloud-to-device messages and direct methods (their subscriptions are accepted,
//! nothing is ever sent on them), the optional `$version` precondition on reported PATCH, X.509
//! authentication, and sessions surviving an emulator restart.

mod codec;
mod connect;
mod driver;
mod session_table;
mod session;
mod topic;
mod transport;
mod twin;

use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::hub::{DesiredPatch, Hub};
use session_table::SessionTable;
use session::DesiredNotification;
use transport::{StreamTransport, WebSocketTransport};

pub use codec::MAX_PACKET_SIZE;

/// A TLS handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// WebSocket messages larger than this are refused; a message may carry several packets, so it
/// is a little above [`MAX_PACKET_SIZE`].
const MAX_WEBSOCKET_MESSAGE: usize = 2 * MAX_PACKET_SIZE;

/// The device MQTT endpoint of one hub: what all its MQTT connections share, whichever port
/// they came in on (sessions by client id, the notification dispatcher, shutdown).
#[derive(Clone)]
pub struct Endpoint {
    hub: Hub,
    sessions: SessionTable,
    /// Cancelled when the emulator shuts down; WebSocket connections (which outlive the HTTP
    /// request that upgraded them) stop on it too.
    shutdown: CancellationToken,
}

impl Endpoint {
    /// Creates the endpoint of `hub` and starts routing the hub's desired-property changes and
    /// fault-injected drops to its sessions, until `shutdown` is cancelled.
    pub fn start(hub: Hub, shutdown: CancellationToken) -> Endpoint {
        let endpoint = Endpoint {
            hub,
            sessions: SessionTable::default(),
            shutdown,
        };
        spawn_dispatcher(&endpoint);
        endpoint
    }

    /// Accepts MQTT-over-TLS connections on `listener` until shutdown, then returns once every
    /// TLS connection has ended (WebSocket connections end on the same signal).
    pub async fn serve_tls(self, listener: TcpListener, acceptor: TlsAcceptor) {
        // Every connection task holds a clone; `recv` returns `None` once all have ended.
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        loop {
            let (tcp, peer) = tokio::select! {
                () = self.shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "MQTT accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                        continue;
                    }
                },
            };
            // Small packets, answered at once: don't wait to coalesce them.
            let _ = tcp.set_nodelay(true);
            let (acceptor, endpoint, alive) = (acceptor.clone(), self.clone(), alive_tx.clone());
            // The handshake runs in the connection's own task so a slow client never stalls
            // accepts.
            tokio::spawn(async move {
                let _alive = alive;
                let handshake = tokio::select! {
                    () = endpoint.shutdown.cancelled() => return,
                    handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => handshake,
                };
                match handshake {
                    Ok(Ok(tls)) => {
                        driver::run(StreamTransport(tls), endpoint, peer.to_string()).await
                    }
                    Ok(Err(error)) => debug!(%peer, %error, "MQTT TLS handshake failed"),
                    Err(_) => debug!(%peer, "MQTT TLS handshake timed out"),
                }
            });
        }
        drop(alive_tx);
        let _ = alive_rx.recv().await;
    }

    /// Upgrades `GET /$iothub/websocket` to MQTT over WebSockets, echoing the `mqtt`
    /// subprotocol the client offered, in the client's own spelling (`mqtt` from most SDKs,
    /// `MQTT` from the C SDK; rumqttc fails the connection without the echo).
    pub fn websocket_upgrade(&self, mut ws: WebSocketUpgrade, headers: &HeaderMap) -> Response {
        let offered = ws
            .requested_protocols()
            .find(|protocol| protocol.as_bytes().eq_ignore_ascii_case(b"mqtt"))
            .cloned();
        let Some(protocol) = offered else {
            return (
                StatusCode::BAD_REQUEST,
                "MQTT over WebSockets needs the 'mqtt' subprotocol (Sec-WebSocket-Protocol: mqtt)",
            )
                .into_response();
        };
        ws.set_selected_protocol(protocol);
        let peer = headers
            .get(header::USER_AGENT)
            .and_then(|agent| agent.to_str().ok())
            .map_or_else(
                || "websocket".to_string(),
                |agent| format!("websocket ({agent})"),
            );
        let endpoint = self.clone();
        ws.read_buffer_size(8 * 1024)
            .max_message_size(MAX_WEBSOCKET_MESSAGE)
            .max_frame_size(MAX_WEBSOCKET_MESSAGE)
            .on_upgrade(move |socket| driver::run(WebSocketTransport(socket), endpoint, peer))
    }
}

/// Routes the hub's desired-property changes and fault-injected drops to sessions, from one
/// task per hub (so 10,000 idle connections do not each wake up for every change).
fn spawn_dispatcher(endpoint: &Endpoint) {
    let mut desired = endpoint.hub.subscribe_desired();
    let mut drops = endpoint.hub.faults().subscribe_drops();
    let sessions = endpoint.sessions.clone();
    let shutdown = endpoint.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                change = desired.recv() => match change {
                    Ok(change) => deliver(&sessions, change),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "MQTT endpoint fell behind on desired-property changes; devices re-read the twin on reconnect");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                dropped = drops.recv() => match dropped {
                    Ok(device_id) => sessions.kick(&device_id),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
}

fn deliver(sessions: &SessionTable, change: DesiredPatch) {
    let notification = DesiredNotification {
        version: change.version,
        body: Bytes::from(change.patch.to_string()),
    };
    sessions.deliver_desired(&change.device_id, notification);
}
