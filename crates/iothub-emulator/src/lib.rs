//! A local Azure IoT Hub for offline development and end-to-end tests.
//!
//! Modules:
//! - `hub`: the one owner of state (registry, twins, policies, connection state);
//! - `persist`: the durable SQLite store on its own writer thread;
//! - `rest`: the service REST API (axum over TLS);
//! - `mqtt`: the device MQTT endpoint (TLS and WebSockets);
//! - `tls`: the emulator's CA and server certificate;
//! - `faults`: fault injection for clients' reliability tests.

pub mod faults;
pub mod hub;
pub mod mqtt;
pub mod persist;
