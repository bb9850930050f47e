//! The command-line conventions the iothub-twins binaries share (`add-tags-and-query`,
//! `report-connectivity`, `iothub-emulator`), each defined once:
//!
//! - arguments: durations ([`parse_duration`]), JSON given inline or as `@file`
//!   ([`parse_json_arg`]), CA files ([`load_ca_file`]), and secrets that never print
//!   ([`Secret`]); files named on the command line are capped at [`INPUT_FILE_LIMIT`];
//! - logging on stderr with one default level and secret redaction ([`init_logging`]);
//! - stopping on SIGINT or SIGTERM ([`StopSignals`]);
//! - the rustls crypto provider ([`install_crypto_provider`]);
//! - exit codes ([`exit`]).
//!
//! Only binaries depend on this crate; the libraries (`iothub-auth`, `iothub-service`,
//! `iothub-device`, `iothub-query`, the emulator's library) never do, so they never link
//! a log subscriber. See ARCHITECTURE.md#crate-map.
//!
//! ```
//! use std::time::Duration;
//! let wait = iothub_cli::parse_duration("1m30s").unwrap();
//! assert_eq!(wait, Duration::from_secs(90));
//! let tags = iothub_cli::parse_json_arg("--tags", r#"{"plant":"Redmond43"}"#).unwrap();
//! assert_eq!(tags["plant"], "Redmond43");
//! assert_eq!(iothub_cli::exit::UNREACHABLE, 5);
//! ```

#![deny(missing_docs)]

mod ca_file;
mod crypto;
mod duration;
pub mod exit;
mod input_file;
mod json_arg;
mod logging;
mod redact;
mod secret;
mod signal;

pub use ca_file::{load_ca_file, CaFile, CaFileError};
pub use crypto::install_crypto_provider;
pub use duration::{parse_duration, parse_positive_duration, DurationError};
pub use input_file::{read_input_file, InputFileError, INPUT_FILE_LIMIT};
pub use json_arg::{parse_json_arg, JsonArgError};
pub use logging::init_logging;
pub use redact::{redact_secrets, REDACTED_TOKEN};
pub use secret::{Secret, REDACTED};
pub use signal::{StopSignal, StopSignals};
