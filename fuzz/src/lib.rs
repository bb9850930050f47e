//! Fuzz target bodies for the front doors of iothub-twins (query text, connection strings, SAS
//! tokens, the emulator's MQTT session and twin writes), written once as plain functions.
//!
//! Each target is a `fn(&[u8])` that panics exactly when an invariant breaks. The libFuzzer
//! binaries in `fuzz_targets/` only forward to these functions, and `tests/replay.rs` runs
//! every committed corpus file through the same functions on stable, so a crash found by
//! `cargo +nightly fuzz run` is a failing `cargo test` once its input is in the corpus.
//!
//! Adding a target: a module with its `pub fn`, one entry in [`TARGETS`], a three-line
//! wrapper in `fuzz_targets/<name>.rs`, a `[[bin]]` in `Cargo.toml` and a seed corpus in
//! `corpus/<name>/` (see FUZZING.md).

mod connection_string;
mod fleet;
mod mqtt_session;
mod query;
mod sas_token;
mod secrets;
mod twin_patch;

pub mod replay;

pub use connection_string::connection_string;
pub use mqtt_session::mqtt_session;
pub use query::query;
pub use sas_token::sas_token;
pub use twin_patch::twin_patch;

/// A fuzz target: panics if an invariant breaks for this input.
pub type Target = fn(&[u8]);

/// Every target by name; the name is also its `fuzz_targets/<name>.rs` and `corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("query", query),
    ("connection_string", connection_string),
    ("sas_token", sas_token),
    ("mqtt_session", mqtt_session),
    ("twin_patch", twin_patch),
];
