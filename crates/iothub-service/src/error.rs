//! Typed errors of the service client.
//!
//! Every error names the operation it came from and never contains a key, a SAS token or a
//! connection string: requests carry the token only in a header that is never formatted.

use std::fmt;
use std::time::Duration;

/// Coarse classification of a [`ServiceError`], for callers that map errors to exit codes or
/// retry decisions without matching every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The hub rejected the request as malformed (HTTP 400): bad query, bad twin patch, ...
    BadRequest,
    /// The hub rejected the credentials or the policy lacks a permission (HTTP 401/403).
    Unauthorized,
    /// The device, module or hub does not exist (HTTP 404).
    NotFound,
    /// An `If-Match` etag did not match the current one (HTTP 412), or a 409 conflict.
    Conflict,
    /// The hub kept throttling (429) or being unavailable (503) until the retry budget ran out.
    Throttled,
    /// No connection could be made, or it broke, until the retry budget ran out.
    Unreachable,
    /// The hub did not answer in time.
    Timeout,
    /// The TLS handshake failed (typically: the hub's certificate is not trusted).
    Tls,
    /// The caller passed something the client refuses before sending (bad page size, bad CA).
    InvalidInput,
    /// Anything else: unexpected status, unparseable response.
    Other,
}

/// An error answer from the hub, as parsed from the `iothub-errorcode` header and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    /// HTTP status code.
    pub status: u16,
    /// Error code name, e.g. `DeviceNotFound`, from the `iothub-errorcode` header, else from
    /// the body (`ErrorCode:<Name>;…`). `None` when the hub sent neither.
    pub code: Option<String>,
    /// Six-digit numeric code (e.g. `404001`) when the body used the JSON-in-Message format.
    pub numeric_code: Option<u64>,
    /// Human-readable message from the body (query errors carry line and column here).
    pub message: String,
    /// Tracking ID for support requests, when the hub sent one.
    pub tracking_id: Option<String>,
    /// The hub's `Retry-After`, when present on a throttling answer.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hub answered {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl HubError {
    /// Classifies this answer by status.
    pub fn kind(&self) -> ErrorKind {
        match self.status {
            400 => ErrorKind::BadRequest,
            401 | 403 => ErrorKind::Unauthorized,
            404 => ErrorKind::NotFound,
            409 | 412 => ErrorKind::Conflict,
            429 | 503 => ErrorKind::Throttled,
            408 | 504 => ErrorKind::Timeout,
            _ => ErrorKind::Other,
        }
    }
}

/// Error returned by every [`crate::ServiceClient`] operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The hub answered with an error status.
    #[error("{operation}: {error}{}", retries_note(*attempts))]
    Hub {
        /// What the client was doing, e.g. `get twin 'myDeviceId'`.
        operation: String,
        /// The parsed answer (boxed to keep `Result<_, ServiceError>` small).
        error: Box<HubError>,
        /// HTTP attempts made, including retries.
        attempts: u32,
    },
    /// No connection could be established or it broke, and retries did not help.
    #[error("{operation}: cannot reach {host}: {detail}{}", retries_note(*attempts))]
    Unreachable {
        /// What the client was doing.
        operation: String,
        /// `host[:port]` of the hub.
        host: String,
        /// Cause, e.g. `connection refused`.
        detail: String,
        /// HTTP attempts made, including retries.
        attempts: u32,
    },
    /// The hub did not answer within the request or connect timeout.
    #[error("{operation}: no answer from {host} in time ({detail}){}", retries_note(*attempts))]
    Timeout {
        /// What the client was doing.
        operation: String,
        /// `host[:port]` of the hub.
        host: String,
        /// Which limit expired.
        detail: String,
        /// HTTP attempts made, including retries.
        attempts: u32,
    },
    /// The TLS handshake failed; not retried because it will fail the same way again.
    #[error("{operation}: TLS handshake with {host} failed: {detail} (is the hub's CA trusted? pass an extra CA file)")]
    Tls {
        /// What the client was doing.
        operation: String,
        /// `host[:port]` of the hub.
        host: String,
        /// rustls' reason, e.g. `invalid peer certificate: UnknownIssuer`.
        detail: String,
    },
    /// The hub answered 2xx with something this client cannot understand.
    #[error("{operation}: unexpected response from the hub: {detail}")]
    Protocol {
        /// What the client was doing.
        operation: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The extra CA certificate could not be used.
    #[error("invalid CA certificate: {0}")]
    InvalidCa(String),
    /// The caller passed an argument the client refuses before sending anything.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A twin patch section ([`crate::TwinPatch::from_json`]) is JSON but not an object.
    #[error("invalid argument: {section} must be a JSON object, got {found}")]
    NotAnObject {
        /// The section.
        section: crate::PatchSection,
        /// What it was instead: `an array`, `a string`, `null`, ...
        found: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

fn retries_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl ServiceError {
    /// Classifies the error; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Hub { error, .. } => error.kind(),
            ServiceError::Unreachable { .. } => ErrorKind::Unreachable,
            ServiceError::Timeout { .. } => ErrorKind::Timeout,
            ServiceError::Tls { .. } => ErrorKind::Tls,
            ServiceError::Protocol { .. } | ServiceError::Build(_) => ErrorKind::Other,
            ServiceError::InvalidCa(_)
            | ServiceError::InvalidArgument(_)
            | ServiceError::NotAnObject { .. } => ErrorKind::InvalidInput,
        }
    }

    /// The hub's answer, when the error is one.
    pub fn hub_error(&self) -> Option<&HubError> {
        match self {
            ServiceError::Hub { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The hub's error code name (`DeviceNotFound`, `PreconditionFailed`, …), when known.
    pub fn hub_code(&self) -> Option<&str> {
        self.hub_error().and_then(|e| e.code.as_deref())
    }

    /// HTTP requests sent for the failed operation, including retries (0 when the client
    /// refused before sending).
    pub fn attempts(&self) -> u32 {
        match self {
            ServiceError::Hub { attempts, .. }
            | ServiceError::Unreachable { attempts, .. }
            | ServiceError::Timeout { attempts, .. } => *attempts,
            ServiceError::Tls { .. } | ServiceError::Protocol { .. } => 1,
            ServiceError::InvalidCa(_)
            | ServiceError::InvalidArgument(_)
            | ServiceError::NotAnObject { .. }
            | ServiceError::Build(_) => 0,
        }
    }

    /// True for a 404 from the hub (device, module or twin not found).
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(status: u16, code: Option<&str>) -> HubError {
        HubError {
            status,
            code: code.map(str::to_owned),
            numeric_code: None,
            message: "m".into(),
            tracking_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn kinds_follow_status() {
        assert_eq!(hub(400, None).kind(), ErrorKind::BadRequest);
        assert_eq!(hub(401, None).kind(), ErrorKind::Unauthorized);
        assert_eq!(hub(404, None).kind(), ErrorKind::NotFound);
        assert_eq!(hub(412, None).kind(), ErrorKind::Conflict);
        assert_eq!(hub(429, None).kind(), ErrorKind::Throttled);
        assert_eq!(hub(500, None).kind(), ErrorKind::Other);
    }

    #[test]
    fn display_names_operation_code_and_attempts() {
        let e = ServiceError::Hub {
            operation: "get twin 'd1'".into(),
            error: Box::new(hub(404, Some("DeviceNotFound"))),
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "get twin 'd1': hub answered 404 DeviceNotFound: m"
        );
        let e = ServiceError::Hub {
            operation: "query".into(),
            error: Box::new(hub(429, Some("ThrottlingException"))),
            attempts: 5,
        };
        assert!(e.to_string().ends_with("(after 5 attempts)"), "{e}");
        assert_eq!(e.hub_code(), Some("ThrottlingException"));
    }
}
