//! The device MQTT endpoint: MQTT 3.1.1 over TLS (`--mqtt-port`) and over WebSockets
//! (`wss://{host}:{https-port}/$iothub/websocket`), speaking to devices the way IoT Hub does
//! (ARCHITECTURE.md#device-mqtt; Microsoft's description:
//! <https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>).
//!
//! Layers, each in its own file:
//! - `transport`: TLS stream or WebSocket, as one byte-channel trait;
//! - `codec`: bytes ↔ packets through rumqttc's v4 codec (256 KiB + headers);
//! - `connect`: CONNECT checks (client id, username, SAS against device or policy keys);
//! - `session`: the per-connection state machine (no I/O), with `topic` and `twin` rules;
//! - `session_table`: sessions by client id (one connection each, clean-session-0 persistence,
//!   desired notifications, closing a session on the hub's behalf);
//! - `driver`: the async loop tying a transport, a session, the session table and the hub
//!   together;
//! - `c2d`: a connection's side of cloud-to-device delivery (fetch, complete, release);
//! - `methods`: direct-method calls in flight (wait for a subscribed connection, deliver,
//!   match the answer by `$rid`, fail on disconnect or timeout).
//!
//! Connections come in through the shared TLS listener (`crate::listener`) or the HTTPS router's
//! WebSocket upgrade, and every one of them runs as a task of the emulator's
//! [`Connections`], so shutdown waits for them.
//!
//! What devices get: CONNACK 5 for any credential problem; `session_present` and kept
//! subscriptions (plus desired notifications that arrived while offline) for clean session 0;
//! the older connection closed when a client id connects again (after its CONNACK); a close at
//! 1.5 × keep-alive, when the SAS token's `se` passes, and at the latest 24 h after CONNECT; twin
//! GET / reported PATCH / desired notifications with `$rid` and `$version`, every desired version
//! in order (a connection that leaves 1000 notifications unread, or an offline session whose
//! queue passes 1000 patches or 256 KiB, loses its session instead: the next CONNECT gets
//! `session_present = 0` and the device re-reads its twin); a `$rid` that cannot be echoed into
//! a valid topic, QoS 2 and undocumented topics close the connection; deleting the device closes
//! its connection and drops its session, and new keys or a disable close its connection; stored
//! sessions expire an hour after their connection ended; telemetry is acknowledged and kept in the
//! hub's telemetry buffer; cloud-to-device messages arrive at QoS 1 on
//! `devices/{id}/messages/devicebound/{property bag}`, complete on their PUBACK, are sent again
//! (DUP) when their one-minute lock runs out, and go to the next connection when not
//! acknowledged; direct-method requests (`methods`: the calls in flight) reach a connection
//! subscribed to `$iothub/methods/POST/#` at QoS 0 and its `$iothub/methods/res/…` answers end
//! them.
//!
//! Not emulated: the optional `$version` precondition on
//! reported PATCH, X.509 authentication, and sessions surviving an emulator restart.

mod ack_gate;
mod c2d;
mod codec;
mod connect;
mod driver;
mod methods;
mod session;
mod session_table;
mod topic;
mod transport;
mod twin;

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::connections::Connections;
use crate::hub::Hub;
use transport::{StreamTransport, WebSocketTransport};

pub(crate) use codec::MAX_PACKET_SIZE;
pub(crate) use methods::{DeviceAnswer, DirectMethods, MethodCall, MethodError};
pub(crate) use session_table::SessionTable;
#[cfg(feature = "fuzzing")]
pub(crate) use {
    codec::{decode, encode},
    session::{Action, DesiredNotification, Session},
    topic::Identity,
    twin::{TwinFailure, TwinOutcome, TwinRequest},
};

/// WebSocket messages larger than this are refused; a message may carry several packets, so it
/// is a little above [`MAX_PACKET_SIZE`].
const MAX_WEBSOCKET_MESSAGE: usize = 2 * MAX_PACKET_SIZE;

/// The device MQTT endpoint of one hub: what all its MQTT connections share, whichever port
/// they came in on (the hub, the session table, the emulator's connection lifetime).
#[derive(Clone)]
pub(crate) struct Endpoint {
    hub: Hub,
    sessions: SessionTable,
    connections: Connections,
    /// Direct-method calls in flight to this endpoint's sessions.
    methods: DirectMethods,
}

impl Endpoint {
    /// The endpoint of `hub`, whose desired-property changes and session closes go to
    /// `sessions` (the table the hub was opened with).
    pub(crate) fn new(hub: Hub, sessions: SessionTable, connections: Connections) -> Endpoint {
        Endpoint {
            hub,
            methods: DirectMethods::new(sessions.clone()),
            sessions,
            connections,
        }
    }

    /// The direct-method calls to this endpoint's sessions (for the REST API).
    pub(crate) fn methods(&self) -> DirectMethods {
        self.methods.clone()
    }

    /// Serves one MQTT-over-TLS connection, after the listener's handshake.
    pub(crate) async fn serve_tls(self, tls: TlsStream<TcpStream>, peer: SocketAddr) {
        driver::run(StreamTransport(tls), self, peer.to_string()).await;
    }

    /// Upgrades `GET /$iothub/websocket` to MQTT over WebSockets, echoing the `mqtt`
    /// subprotocol the client offered, in the client's own spelling (`mqtt` from most SDKs,
    /// `MQTT` from the C SDK; rumqttc fails the connection without the echo).
    ///
    /// The session runs in the task axum spawns for the upgraded connection; it holds a token of
    /// the emulator's [`Connections`] from this request on, so shutdown waits for it too.
    pub(crate) fn websocket_upgrade(
        &self,
        mut ws: WebSocketUpgrade,
        headers: &HeaderMap,
    ) -> Response {
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
        let held = self.connections.hold();
        ws.read_buffer_size(8 * 1024)
            .max_message_size(MAX_WEBSOCKET_MESSAGE)
            .max_frame_size(MAX_WEBSOCKET_MESSAGE)
            .on_upgrade(move |socket| async move {
                driver::run(WebSocketTransport(socket), endpoint, peer).await;
                drop(held);
            })
    }
}

#[cfg(test)]
mod tests;
