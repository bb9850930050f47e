//! Client settings: transport, trust, token lifetime and renewal, timeouts, reconnect policy.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::gate::{ConnectGate, SharedTls};

/// How MQTT reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// MQTT over TLS, port 8883 unless the connection string names one.
    #[default]
    Mqtt,
    /// MQTT over secure WebSockets (`wss://{host}:{port}/$iothub/websocket`), port 443 unless
    /// the connection string names one. Passes proxies and firewalls that only allow HTTPS.
    MqttWebSockets,
}

impl TransportKind {
    /// Port used when the connection string's host carries none.
    pub fn default_port(self) -> u16 {
        match self {
            TransportKind::Mqtt => 8883,
            TransportKind::MqttWebSockets => 443,
        }
    }

    /// Short name used in logs and CLI output (`mqtt`, `mqtt-ws`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Mqtt => "mqtt",
            TransportKind::MqttWebSockets => "mqtt-ws",
        }
    }
}

/// Settings for [`crate::DeviceClient::connect`]. Start from [`ClientOptions::default`].
#[derive(Clone)]
pub struct ClientOptions {
    /// Transport; default MQTT over TLS.
    pub transport: TransportKind,
    /// Extra trusted CA certificates (PEM), added to the system roots (which stay trusted).
    pub ca_pem: Option<Vec<u8>>,
    /// Lifetime of each SAS token the client signs; default 3,600 s.
    pub sas_ttl: Duration,
    /// Reconnect with a fresh token this long before the current one expires; default 120 s.
    /// It is capped at a fifth of `sas_ttl` so that short lifetimes still get used.
    pub renewal_margin: Duration,
    /// How long [`crate::DeviceClient::connect`] keeps trying before giving up; default 30 s.
    pub connect_timeout: Duration,
    /// Deadline of each twin request, from submission to the hub's answer, and of each
    /// telemetry message and method answer, from submission to PUBACK; default 30 s.
    pub request_timeout: Duration,
    /// How long a direct-method call may wait for the application's answer before the client
    /// forgets it; default 300 s, the longest `responseTimeoutInSeconds` the hub accepts, so
    /// the hub has given up on the call by then whatever its caller asked for.
    pub method_timeout: Duration,
    /// MQTT keep-alive; default 60 s (the hub allows at most 1,177 s).
    pub keep_alive: Duration,
    /// Delays between reconnect attempts after a lost connection.
    pub backoff: Backoff,
    /// A TLS configuration built once for many clients; when set, `ca_pem` is not read.
    pub shared_tls: Option<SharedTls>,
    /// Bounds the connection attempts in flight across the clients sharing it.
    pub connect_gate: Option<ConnectGate>,
    /// Appended to the username as `DeviceClientType` (URL-encoded); default
    /// `iothub-twins/<version>`.
    pub product_info: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            transport: TransportKind::Mqtt,
            ca_pem: None,
            sas_ttl: Duration::from_secs(3600),
            renewal_margin: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            method_timeout: Duration::from_secs(300),
            keep_alive: Duration::from_secs(60),
            backoff: Backoff::default(),
            shared_tls: None,
            connect_gate: None,
            product_info: concat!("iothub-twins/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    // The CA is public material but long; show whether one is set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("transport", &self.transport)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("sas_ttl", &self.sas_ttl)
            .field("renewal_margin", &self.renewal_margin)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("method_timeout", &self.method_timeout)
            .field("keep_alive", &self.keep_alive)
            .field("backoff", &self.backoff)
            .field("shared_tls", &self.shared_tls.is_some())
            .field("connect_gate", &self.connect_gate)
            .field("product_info", &self.product_info)
            .finish()
    }
}

impl ClientOptions {
    /// The renewal margin actually applied for the configured TTL.
    pub fn effective_renewal_margin(&self) -> Duration {
        self.renewal_margin.min(self.sas_ttl / 5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_sdks() {
        let o = ClientOptions::default();
        assert_eq!(o.sas_ttl, Duration::from_secs(3600));
        assert_eq!(o.effective_renewal_margin(), Duration::from_secs(120));
        assert_eq!(o.transport.default_port(), 8883);
        assert_eq!(TransportKind::MqttWebSockets.default_port(), 443);
    }

    #[test]
    fn short_ttls_get_a_proportional_margin() {
        let o = ClientOptions {
            sas_ttl: Duration::from_secs(5),
            ..ClientOptions::default()
        };
        assert_eq!(o.effective_renewal_margin(), Duration::from_secs(1));
    }
}
