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
//! - [`DeviceClient::connection_events`], the connection lifecycle;
//! - [`DeviceClient::method_requests`], direct-method calls, each a [`MethodRequest`] answered
//!   exactly once (a dropped one is answered with status 500);
//! - [`DeviceClient::c2d_messages`], cloud-to-device messages with their system and application
//!   properties, each completed (MQTT PUBACK) by [`C2dMessage::complete`];
//! - [`DeviceClient::send_telemetry`], a [`Message`] with properties, returning after PUBACK.
//!
//! A module connection string (`…;DeviceId=d;ModuleId=m;SharedAccessKey=…`) connects as the
//! module: client id `d/m`, username `{host}/d/m/?api-version=…`, SAS scope
//! `{host}/devices/d/modules/m`, and the module's own telemetry and C2D topics.
//!
//! Behind the handle one task keeps the connection healthy: SAS tokens are signed for
//! [`ClientOptions::sas_ttl`] (default one hour) and renewed by reconnecting before expiry;
//! lost connections are retried with exponential backoff and jitter; CONNACK 5 (credentials
//! rejected) stops the client at once instead of looping.
//!
//! Layout: `protocol` is the twin state machine (topics, `$rid` table, retransmission, desired
//! `$version` rules) plus the method table, the QoS 1 outbox, property bags and the optional
//! subscriptions, all with no I/O; `driver` runs rumqttc's event loop and applies their
//! outputs; `client` is the public handle, `methods` and `message` the application's handles.
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
mod gate;
mod message;
mod methods;
mod options;
mod protocol;
mod tls;
mod twin;

pub use backoff::Backoff;
pub use client::{ConnectionEvents, DesiredUpdates, DeviceClient, ReportedAck, MAX_TELEMETRY_SIZE};
pub use error::{ConnackRefusal, Error};
pub use events::{ConnectionEvent, DisconnectReason};
pub use fanout::Subscription;
pub use gate::{ConnectGate, SharedTls};
pub use message::{C2dMessage, C2dMessages, Message, SystemProperties};
pub use methods::{MethodRequest, MethodRequests, DROPPED_REQUEST_STATUS, MAX_METHOD_PAYLOAD};
pub use options::{ClientOptions, TransportKind};
pub use twin::{DesiredUpdate, DesiredUpdateKind, Twin};

/// Re-exported so callers can parse connection strings without naming the auth crate.
pub use iothub_auth::DeviceConnectionString;
