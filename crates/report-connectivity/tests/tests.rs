//! The `report-connectivity` binary against an in-process emulator
//! (`iothub_emulator::test_support::TestHub`), one test binary: exit codes, output, and the
//! twin as seen through the service REST API.

/// Running the binary: one-shot and long-running.
mod support;

/// Exit codes and messages of the documented failures, and `--help`.
mod exit_codes;
/// Long runs: desired patches, reconnects, and how a run ends.
mod long_running;
/// `--once` over TLS and WebSockets.
mod once;
