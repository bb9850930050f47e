//! A local Azure IoT Hub for offline development and end-to-end tests: the service REST API
//! (statistics, devices, twins, query) and the device MQTT endpoint (TLS and WebSockets), with
//! SAS authentication, its own TLS CA, and state that survives `kill -9`.
//!
//! Embedders use [`Emulator::start`] with an [`EmulatorConfig`] and get a [`RunningEmulator`]:
//! its ports, CA, connection strings, a [`FaultInjector`], the [`Hub`] state (to act as a device
//! would without an MQTT connection) and [`RunningEmulator::shutdown`]. Everything else is
//! internal; ARCHITECTURE.md#inside-the-emulator describes it:
//! - `hub`: the one owner of state (identity registry, twins, policies, connection state);
//! - `persist`: the durable SQLite store on its own writer thread (group commit);
//! - `rest`: the service REST API (axum), one file per resource;
//! - `mqtt`: the device MQTT endpoint (TLS and WebSockets) and its session table;
//! - `listener`, `https`, `connections`: the shared TLS accept loop, the HTTPS connections, and
//!   the one lifetime every connection task belongs to;
//! - `tls`: the emulator's CA and server certificate;
//! - `faults`: fault injection for clients' reliability tests;
//! - `c2d`: cloud-to-device queues (durable) and the feedback queue;
//! - `telemetry`: the device-to-cloud message type and the hub's buffer of recent ones;
//! - `events`: the partitioned, retained event log behind the built-in Event Hub-compatible
//!   endpoint (telemetry and the hub's own events).
//!
//! ```no_run
//! # async fn demo() -> Result<(), iothub_emulator::EmulatorError> {
//! let dir = std::env::temp_dir().join("hub-demo");
//! let emulator = iothub_emulator::Emulator::start(iothub_emulator::EmulatorConfig::for_tests(&dir)).await?;
//! let device = emulator.add_device("myDevice").await?;
//! println!("{} / {}", emulator.https_port(), device.len());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

mod amqp;
mod c2d;
mod config;
mod connections;
mod emulator;
mod events;
mod faults;
mod https;
mod hub;
mod listener;
mod mqtt;
mod persist;
mod rest;
mod telemetry;
mod tls;

#[cfg(feature = "test-support")]
pub mod test_support;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use config::{ConnectionLimits, EmulatorConfig};
pub use emulator::{Emulator, EmulatorError, RunningEmulator};
pub use events::{
    EventProperties, EventValue, EventsConfig, PartitionInfo, StartPosition, StoredEvent,
    DEFAULT_PARTITIONS, DEFAULT_RETENTION, DEFAULT_RETENTION_BYTES, MAX_PARTITIONS,
};
pub use faults::FaultInjector;
pub use hub::{Hub, HubError};
pub use persist::PersistError;
pub use telemetry::{SystemProperties, TelemetryMessage, DEFAULT_TELEMETRY_CAPACITY};
pub use tls::TlsError;
