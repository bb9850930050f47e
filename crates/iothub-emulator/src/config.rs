//! Emulator configuration (the embedding API's `EmulatorConfig`; the binary fills it from flags).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where and how the emulator runs.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Hub host name in connection strings and certificate SANs.
    pub hostname: String,
    /// Listen address of both listeners.
    pub bind: IpAddr,
    /// REST API + MQTT over WebSockets; 0 = any free port.
    pub https_port: u16,
    /// MQTT over TLS; 0 = any free port.
    pub mqtt_port: u16,
    /// AMQP over TLS (the Event Hub-compatible endpoint); 0 = any free port.
    pub amqp_port: u16,
    /// State, keys and CA live here.
    pub data_dir: PathBuf,
    /// Keep nothing on disk except the CA files.
    pub in_memory: bool,
    /// Devices to register at start if missing (existing keys are kept).
    pub devices: Vec<String>,
    /// Bounds on the connections of each listener (the README's fidelity table lists them).
    pub connection_limits: ConnectionLimits,
    /// Device-to-cloud messages the hub keeps, the most recent ones (default 10,000; at least
    /// one; also bounded by 64 MiB of bodies and properties).
    pub telemetry_capacity: usize,
    /// How long a write (tags, desired, reported, connection state, a device created or
    /// deleted) takes to show in query results, as the real hub's query index trails writes;
    /// twin and device GETs stay current. Zero (the default): queries are current.
    pub query_lag: Duration,
    /// The built-in Event Hub-compatible endpoint's partitions and retention (defaults: 4
    /// partitions, 32 MiB and one day per partition).
    pub events: crate::events::EventsConfig,
}

/// How many connections each listener holds and how long a silent or slow one may stay. The
/// defaults suit a hub on a developer machine or CI runner; tests set small values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Concurrent connections per listener (HTTPS and MQTT each have this many). At the ceiling,
    /// a new socket takes the place of the oldest one still in its TLS handshake; if none is,
    /// it waits until a connection ends. Default 400: both listeners together stay well under
    /// the usual 1,024 open files.
    pub max_connections_per_listener: usize,
    /// A TLS handshake (both listeners) must finish within this. Default 10 s.
    pub handshake_timeout: Duration,
    /// HTTPS: the head of each HTTP/1.1 request must arrive within this, counted from when the
    /// connection is ready for a request (so it also bounds the gap between keep-alive
    /// requests). Default 10 s.
    pub header_read_timeout: Duration,
    /// HTTPS: a connection that moves no byte in either direction for this long is closed
    /// (HTTP/2 and a client that never sends a request included). Default 60 s.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections_per_listener: 400,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl EmulatorConfig {
    /// `localhost` on 127.0.0.1, ephemeral ports, in memory, CA files in `data_dir`.
    pub fn for_tests(data_dir: &Path) -> Self {
        EmulatorConfig {
            hostname: "localhost".into(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            https_port: 0,
            mqtt_port: 0,
            amqp_port: 0,
            data_dir: data_dir.to_path_buf(),
            in_memory: true,
            devices: Vec::new(),
            connection_limits: ConnectionLimits::default(),
            telemetry_capacity: crate::telemetry::DEFAULT_TELEMETRY_CAPACITY,
            query_lag: Duration::ZERO,
            events: crate::events::EventsConfig::default(),
        }
    }
}
