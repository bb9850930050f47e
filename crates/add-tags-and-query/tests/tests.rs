//! End-to-end tests of the `add-tags-and-query` binary against an in-process emulator
//! (`iothub_emulator::test_support::TestHub`), one test binary; each module has one subject.
//! Every run goes through `support::run`, which fails the test if stdout or stderr contains a
//! secret.

// Clippy's allow-*-in-tests covers #[test] functions only; the helpers beside them fail a test
// the same way, by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The binary's command line for the hub, and the secret-checking runner.
mod support;

/// Exit codes and messages of every documented failure.
mod failures;
/// The tutorial transcript, JSON output, custom queries, --top, --wait.
mod tutorial;
