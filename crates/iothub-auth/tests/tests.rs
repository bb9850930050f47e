//! Integration tests of iothub-auth, one binary (linked once); each module has one subject.

// Clippy's allow-*-in-tests covers #[test] functions only; the helpers beside them fail a test
// the same way, by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Connection strings: parsing in any order, printing, round trips, errors that name the
/// problem and never the key.
mod connection_strings;

/// Property tests: no input makes a parser panic, generated tokens verify, errors never echo
/// a key.
mod never_panics;

/// Hub-side SAS verification: round trips, tampering, expiry, the SDKs' variations, scope.
mod sas_verify;
