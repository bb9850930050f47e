//! End-to-end tests of the `add-tags-and-query` binary against an in-process emulator
//! (one test binary; each module has one subject). Every run goes through
//! `support::run`, which fails the test if stdout or stderr contains a secret.

mod support;

/// Exit codes and messages of every documented failure.
mod failures;
/// The tutorial transcript, JSON output, custom queries, --top, --wait.
mod tutorial;
