//! An Azure IoT Hub **device client** over MQTT 3.1.1, for device twins.
//!
//! [`DeviceClient`] connects with a device connection string (`HostName=…;DeviceId=…;
//! SharedAccessKey=…`, optionally `GatewayHostName`, a `host:port` host name, or a fixed
//! `SharedAccessSignature`), over TLS (port 8883) or secure WebSockets (port 443), trusting the
//! system roots plus an optional CA. It then offers:
//! - [`DeviceClient::get_twin`] and [`DeviceClient::update_reported`], correlated by `$rid`,
//!   each with a timeout; reported patches survive reconnects and are resent until acknowledged;
//! - [`DeviceClient::desired_updates`], a stream of desired-property patches, plus the full
//!   desired document when a reconnect finds changes missed while offline;
//! - [`DeviceClient::connection_events`], the connection lifecycle.
//!
//! Behind the handle one task keeps the connection healthy: SAS tokens are signed for
//! [`ClientOptions::sas_ttl`] (default one hour) and renewed by reconnecting before expiry;
//! lost connections are retried with exponential backoff and jitter; CONNACK 5 (credentials
//! rejected) stops the client at once instead of looping.
//!
//! Layout: `protocol` is the twin state machine (topics, `$rid` table, retransmission, desired
//! `$version` rules) with no I/O; `driver` runs rumqttc's event loop and applies the state
//! machine's outputs; `client` is the public handle.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use iothub_device::{ClientOptions, DeviceClient};
//! let conn = std::env::var("IOTHUB_DEVICE_CONNECTION_STRING")?.parse()?;
//! let client = DeviceClient::connect(conn, ClientOptions::default()).await?;
//! let mut desired = client.desired_updates();
//! let version = client
//!     .update_reported(&serde_json::json!({"connectivity": {"type": "cellular"}}))
//!     .await?;
//! println!("reported $version is now {version}");
//! if let Some(update) = desired.next().await {
//!     println!("desired v{}: {}", update.version, update.properties);
//! }
//! client.disconnect().await;
//! # Ok(()) }
//! ```

mod backoff;
mod client;
mod credentials;
mod driver;
mod endpoint;
mod error;
mod events;
mod fanout;
mod options;
mod protocol;
mod tls;
mod twin;

pub use backoff::Backoff;
pub use client::{ConnectionEvents, DesiredUpdates, DeviceClient, ReportedAck};
pub use error::{ConnackRefusal, Error};
pub use events::{ConnectionEvent, DisconnectReason};
pub use fanout::Subscription;
pub use options::{ClientOptions, TransportKind};
pub use twin::{DesiredUpdate, DesiredUpdateKind, Twin};

/// Re-exported so callers can parse connection strings without naming the auth crate.
pub use iothub_auth::DeviceConnectionString;
