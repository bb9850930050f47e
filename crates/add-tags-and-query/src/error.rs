//! The command's errors and their exit codes (DESIGN.md "CLI conventions"):
//! 0 ok · 1 other failure · 2 invalid usage or input · 3 authentication rejected ·
//! 4 device not found · 5 hub unreachable, throttled beyond the retry budget, or `--wait`
//! timed out.

use std::time::Duration;

use iothub_service::{ErrorKind, ServiceError};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: any failure not listed below (e.g. a stale `--etag`, an untrusted certificate).
pub const EXIT_OTHER: u8 = 1;
/// Exit code: invalid usage or input (arguments, connection string, JSON, query).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the hub rejected the credentials or the policy's permissions.
pub const EXIT_AUTH: u8 = 3;
/// Exit code: the device does not exist.
pub const EXIT_NOT_FOUND: u8 = 4;
/// Exit code: the hub could not be reached, kept throttling, or `--wait` ran out.
pub const EXIT_UNREACHABLE: u8 = 5;

/// Why the command failed. `Display` is the one-line message printed to stderr; none of the
/// variants can carry a key or a connection string.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad arguments or input files.
    #[error("{0}")]
    Usage(String),
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
            AppError::Usage(_) | AppError::ConnectionString(_) => EXIT_USAGE,
            AppError::Service { error, .. } => match error.kind() {
                ErrorKind::BadRequest | ErrorKind::InvalidInput => EXIT_USAGE,
                ErrorKind::Unauthorized => EXIT_AUTH,
                ErrorKind::NotFound => EXIT_NOT_FOUND,
                ErrorKind::Unreachable | ErrorKind::Timeout | ErrorKind::Throttled => {
                    EXIT_UNREACHABLE
                }
                _ => EXIT_OTHER,
            },
            AppError::WaitTimedOut { .. } => EXIT_UNREACHABLE,
            // A closed pipe (`| head`) is the reader's choice, not a failure.
            AppError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
            AppError::Output(_) => EXIT_OTHER,
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
        assert_eq!(AppError::Usage("x".into()).exit_code(), EXIT_USAGE);
        let pipe = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        assert_eq!(AppError::Output(pipe).exit_code(), EXIT_OK);
        let other = std::io::Error::other("disk full");
        assert_eq!(AppError::Output(other).exit_code(), EXIT_OTHER);
        let wait = AppError::WaitTimedOut {
            device: "d".into(),
            waited: Duration::from_secs(2),
            missing: vec!["A".into(), "B".into()],
        };
        assert_eq!(wait.exit_code(), EXIT_UNREACHABLE);
        assert_eq!(
            wait.to_string(),
            "timed out after 2s waiting for device 'd' to appear in: A; B"
        );
    }

    #[test]
    fn service_error_codes() {
        let e = AppError::from(ServiceError::InvalidArgument("page size".into()));
        assert_eq!(e.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn one_line_flattens() {
        assert_eq!(AppError::Usage("a\n  b\r\nc".into()).one_line(), "a b c");
    }
}
