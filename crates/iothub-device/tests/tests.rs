//! `DeviceClient` against an in-process emulator (`iothub_emulator::test_support::TestHub`),
//! one binary; each module has one subject. What the device did is checked through the
//! service REST API, as a back end would see it.

// Clippy's allow-*-in-tests covers #[test] functions only; the helpers beside them fail a test
// the same way, by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Client options for the test hub, and shared helpers.
mod support;

/// Cloud-to-device messages: properties, completion, redelivery.
mod c2d;
/// Desired-property updates, live and after being offline.
mod desired;
/// Terminal failures: rejected or revoked credentials, unreachable hub, untrusted certificate.
mod failures;
/// Direct methods invoked over REST.
mod methods;
/// Module identities from module connection strings.
mod modules;
/// Dropped and refused connections.
mod reconnect;
/// SAS token renewal, fixed and expired tokens.
mod sas;
/// Telemetry with properties, and the method and C2D subscriptions.
mod telemetry;
/// Twin GET and reported PATCH, over TLS and WebSockets.
mod twin;
