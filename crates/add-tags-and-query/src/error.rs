//! The command's errors and their exit codes ([`iothub_cli::exit`]): 0 ok · 1 other failure
//! (e.g. a stale `--etag`, an untrusted certificate) · 2 invalid usage or input (arguments,
//! connection string, JSON, CA file, query) · 3 authentication rejected · 4 device not found ·
//! 5 hub unreachable, throttled beyond the retry budget, or `--wait` timed out.

use std::time::Duration;

use iothub_cli::{exit, CaFileError, JsonArgError};
use iothub_service::{ErrorKind, PatchSection, ServiceError};

/// Why the command failed. `Display` is the one-line message printed to stderr; none of the
/// variants can carry a key or a connection string.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// A `--tags`/`--desired` value that is not JSON, or an unreadable `@file`.
    #[error(transparent)]
    JsonArg(#[from] JsonArgError),
    /// A `--ca-file` that cannot be read or holds no usable certificate.
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    /// `--tags` or `--desired` is valid JSON but not an object.
    #[error("--tags/--desired: {section} must be a JSON object, got {found}")]
    PatchNotAnObject {
        /// Which part of the patch.
        section: PatchSection,
        /// What it was instead, e.g. `an array`.
        found: &'static str,
    },
    /// The connection string was rejected by iothub-auth (its message carries the hint when
    /// a device connection string was given).
    #[error("--connection-string: {0}")]
    ConnectionString(#[from] iothub_auth::ConnectionStringError),
    /// A hub operation failed.
    #[error("{}", describe_service_error(.error, .etag.as_deref()))]
    Service {
        /// The failure.
        error: ServiceError,
        /// The `--etag` given, to name it in conflict messages.
        etag: Option<String>,
    },
    /// `--wait` ran out before the device showed up in every query.
    #[error("timed out after {waited:?} waiting for device '{device}' to appear in: {}", missing.join("; "))]
    WaitTimedOut {
        /// The expected device.
        device: String,
        /// How long we polled.
        waited: Duration,
        /// Headings of the queries that still lacked it.
        missing: Vec<String>,
    },
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<ServiceError> for AppError {
    fn from(error: ServiceError) -> Self {
        AppError::Service { error, etag: None }
    }
}

impl AppError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_)
            | AppError::JsonArg(_)
            | AppError::CaFile(_)
            | AppError::PatchNotAnObject { .. }
            | AppError::ConnectionString(_) => exit::USAGE,
            AppError::Service { error, .. } => match error.kind() {
                ErrorKind::BadRequest | ErrorKind::InvalidInput => exit::USAGE,
                ErrorKind::Unauthorized => exit::AUTH,
                ErrorKind::NotFound => exit::DEVICE_NOT_FOUND,
                ErrorKind::Unreachable | ErrorKind::Timeout | ErrorKind::Throttled => {
                    exit::UNREACHABLE
                }
                _ => exit::OTHER,
            },
            AppError::WaitTimedOut { .. } => exit::UNREACHABLE,
            // A closed pipe (`| head`) is the reader's choice, not a failure.
            AppError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
            AppError::Output(_) => exit::OTHER,
        }
    }

    /// The message as one line (hub messages may contain line breaks).
    pub fn one_line(&self) -> String {
        self.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn describe_service_error(error: &ServiceError, etag: Option<&str>) -> String {
    match error.kind() {
        ErrorKind::Conflict => match etag {
            Some(etag) => format!(
                "conflict: --etag \"{etag}\" is stale, the twin has changed since (fetch the current etag and retry): {error}"
            ),
            None => format!("conflict: {error}"),
        },
        ErrorKind::Unauthorized => format!(
            "authentication rejected: {error} (check the connection string's key and that its policy has registry read and service connect rights)"
        ),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_output_codes() {
        assert_eq!(AppError::Usage("x".into()).exit_code(), exit::USAGE);
        let pipe = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        assert_eq!(AppError::Output(pipe).exit_code(), exit::OK);
        let other = std::io::Error::other("disk full");
        assert_eq!(AppError::Output(other).exit_code(), exit::OTHER);
        let wait = AppError::WaitTimedOut {
            device: "d".into(),
            waited: Duration::from_secs(2),
            missing: vec!["A".into(), "B".into()],
        };
        assert_eq!(wait.exit_code(), exit::UNREACHABLE);
        assert_eq!(
            wait.to_string(),
            "timed out after 2s waiting for device 'd' to appear in: A; B"
        );
    }

    #[test]
    fn service_error_codes() {
        let e = AppError::from(ServiceError::InvalidArgument("page size".into()));
        assert_eq!(e.exit_code(), exit::USAGE);
    }

    #[test]
    fn a_non_object_patch_names_both_flags_and_the_section() {
        let e = AppError::PatchNotAnObject {
            section: PatchSection::Desired,
            found: "an array",
        };
        assert_eq!(
            e.to_string(),
            "--tags/--desired: desired properties must be a JSON object, got an array"
        );
        assert_eq!(e.exit_code(), exit::USAGE);
    }

    #[test]
    fn one_line_flattens() {
        assert_eq!(AppError::Usage("a\n  b\r\nc".into()).one_line(), "a b c");
    }
}
