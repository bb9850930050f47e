//! Connection lifecycle events, delivered by [`crate::DeviceClient::connection_events`].

use std::time::Duration;

use crate::error::Error;

/// Something happened to the MQTT connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// CONNACK received.
    Connected {
        /// Whether the hub kept the previous session (subscriptions).
        session_present: bool,
        /// When the SAS token used for this connection expires (Unix seconds).
        token_expires_at: u64,
    },
    /// The connection ended; the client reconnects unless it is closing.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// The next connection attempt starts after `delay`.
    Reconnecting {
        /// 1 for the first retry after a loss.
        attempt: u32,
        /// Backoff delay before the attempt.
        delay: Duration,
    },
    /// The client stopped for good: closed by the caller (`error: None`) or a terminal error.
    Closed {
        /// The terminal error, if any.
        error: Option<Error>,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client disconnected to reconnect with a fresh SAS token.
    TokenRenewal,
    /// The network or the hub closed the connection.
    ConnectionLost(String),
    /// The caller closed the client.
    ClientClosed,
}
