//! The `report-connectivity` binary against an in-process emulator
//! (`iothub_emulator::test_support::TestHub`), one test binary: exit codes, output, and the
//! twin as seen through the service REST API.

// Clippy's allow-*-in-tests covers #[test] functions only; the helpers beside them fail a test
// the same way, by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Running the binary: one-shot and long-running.
mod support;

/// Cloud-to-device messages printed and completed.
mod c2d;
/// Exit codes and messages of the documented failures, and `--help`.
mod exit_codes;
/// `--fleet`: bulk-created devices, mass drops, throttling, `--devices-file`.
mod fleet;
/// Long runs: desired patches, reconnects, and how a run ends.
mod long_running;
/// Direct methods answered with `--method-response`.
mod methods;
/// Module connection strings.
mod modules;
/// `--once` over TLS and WebSockets.
mod once;
/// Telemetry: template, properties, count, desired telemetryConfig, setTelemetryInterval,
/// queueing across a dropped connection.
mod telemetry;
