//! End-to-end tests of the workspace: the two built binaries, run as a user runs them, against
//! an in-process emulator (`iothub_emulator::test_support::TestHub`). One test binary; each
//! module has one subject.

// Clippy's allow-*-in-tests covers #[test] functions only; the helpers beside them fail a test
// the same way, by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The test hub with the tutorial's device, and running the built binaries.
mod support;

/// The flow a CI job scripts: report once, then wait for the device in JSON output.
mod ci_scripting_flow;
/// The tutorial's transcript before and after the device reports.
mod tutorial_transcript;
