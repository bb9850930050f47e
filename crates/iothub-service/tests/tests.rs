//! Integration tests of the service client against an in-process emulator
//! (`iothub_emulator::test_support::TestHub`), one binary; each module has one subject.

// Clippy's allow-*-in-tests covers #[test] functions only; the helpers beside them fail a test
// the same way, by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Service clients for the test hub.
mod support;

/// Error classification: not found, bad key, bad query, TLS, unreachable.
mod errors;
/// Statistics, device get/list, twin get/patch/replace, etags.
mod operations;
/// Paging: 1,000 devices in 10 requests, limits, listing without a cap.
mod paging;
/// Retries: 429/503 from fault injection, connection resets, bounded budgets.
mod retries;
