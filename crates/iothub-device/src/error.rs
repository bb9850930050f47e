//! The client's error type. Messages never contain keys, tokens or connection strings.

use std::fmt;
use std::time::Duration;

use crate::protocol::outbox::OutboxError;
use crate::protocol::RequestError;

/// Everything that can go wrong talking to the hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The hub refused the credentials (CONNACK 4 or 5). Retrying with the same credentials is
    /// pointless, so the client stops at once.
    #[error("the hub rejected the device credentials ({0})")]
    AuthenticationRejected(ConnackRefusal),
    /// The connection string carries a fixed SAS token that has expired; it cannot be renewed.
    #[error("the SAS token in the connection string has expired; supply a new one, or a SharedAccessKey so the client can sign its own")]
    TokenExpired,
    /// The hub refused the connection for a reason other than credentials (CONNACK 1 or 2).
    #[error("the hub refused the connection ({0})")]
    Refused(ConnackRefusal),
    /// No connection could be made before the connect timeout.
    #[error("could not connect to {endpoint} within {after:?}: {last_error}")]
    Unreachable {
        /// `host:port (transport)` that was dialled.
        endpoint: String,
        /// The connect timeout that elapsed.
        after: Duration,
        /// What the last attempt ran into.
        last_error: String,
    },
    /// A twin request got no answer before its deadline.
    #[error("no answer from the hub within {0:?}")]
    Timeout(Duration),
    /// The hub answered a twin request with an error status.
    #[error("the hub answered with status {status}: {message}")]
    Status {
        /// HTTP-style status from the response topic (400, 412, 429, …).
        status: u16,
        /// The hub's error message, if it sent one.
        message: String,
    },
    /// The hub's answer did not have the documented shape.
    #[error("invalid answer from the hub: {0}")]
    InvalidResponse(String),
    /// A reported patch that cannot be sent (it must be a JSON object).
    #[error("invalid reported patch: {0}")]
    InvalidPatch(String),
    /// The hub's certificate failed verification (unknown CA, wrong host name, expired).
    /// Retrying cannot fix it, so the client stops at once.
    #[error("the hub's TLS certificate is not trusted: {0}")]
    UntrustedCertificate(String),
    /// The TLS configuration could not be built (bad CA file, no trusted roots, …).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The connection settings are unusable (bad gateway host, …).
    #[error("invalid connection settings: {0}")]
    Config(String),
    /// The client was closed, or its connection task stopped.
    #[error("the client is closed")]
    Closed,
    /// A telemetry message or method answer that cannot be sent (too large, not JSON).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// A method call or C2D delivery that can no longer be answered or completed: its
    /// deadline passed, or the connection that carried it is gone.
    #[error("too late: {0}")]
    NoLongerPending(String),
    /// The hub refused a subscription (SUBACK failure) to this topic filter.
    #[error("the hub refused the subscription to {0}")]
    SubscriptionRefused(String),
    /// The connection was lost before the hub acknowledged a method answer.
    #[error("the connection was lost before the hub acknowledged the message")]
    ConnectionLost,
}

/// A CONNACK refusal that retrying cannot fix (MQTT 3.1.1 section 3.2.2.3; code 3, "server
/// unavailable", is retried instead). IoT Hub answers every credential problem, an unknown or
/// disabled device included, with [`ConnackRefusal::NotAuthorized`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnackRefusal {
    /// 1: unacceptable protocol version.
    UnacceptableProtocolVersion,
    /// 2: identifier (client id) rejected.
    IdentifierRejected,
    /// 4: bad user name or password.
    BadUserNameOrPassword,
    /// 5: not authorized.
    NotAuthorized,
}

impl ConnackRefusal {
    /// The return code on the wire.
    pub fn code(self) -> u8 {
        match self {
            ConnackRefusal::UnacceptableProtocolVersion => 1,
            ConnackRefusal::IdentifierRejected => 2,
            ConnackRefusal::BadUserNameOrPassword => 4,
            ConnackRefusal::NotAuthorized => 5,
        }
    }
}

impl fmt::Display for ConnackRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The names rumqttc gives these codes, which the messages have always shown.
        let name = match self {
            ConnackRefusal::UnacceptableProtocolVersion => "RefusedProtocolVersion",
            ConnackRefusal::IdentifierRejected => "BadClientId",
            ConnackRefusal::BadUserNameOrPassword => "BadUserNamePassword",
            ConnackRefusal::NotAuthorized => "NotAuthorized",
        };
        write!(f, "CONNACK {name}")
    }
}

impl Error {
    /// Whether the hub rejected the credentials (CLI exit code 3).
    pub fn is_authentication(&self) -> bool {
        matches!(self, Error::AuthenticationRejected(_) | Error::TokenExpired)
    }

    /// Whether the hub could not be reached or did not answer in time (CLI exit code 5).
    pub fn is_unreachable_or_timeout(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Timeout(_))
    }
}

impl From<OutboxError> for Error {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::Timeout { after } => Error::Timeout(after),
            OutboxError::ConnectionLost => Error::ConnectionLost,
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Status { status, message } => Error::Status { status, message },
            RequestError::Timeout { after } => Error::Timeout(after),
            RequestError::InvalidResponse(m) => Error::InvalidResponse(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_print_as_before_and_carry_their_code() {
        let e = Error::AuthenticationRejected(ConnackRefusal::NotAuthorized);
        assert_eq!(
            e.to_string(),
            "the hub rejected the device credentials (CONNACK NotAuthorized)"
        );
        assert!(e.is_authentication());
        let e = Error::Refused(ConnackRefusal::IdentifierRejected);
        assert_eq!(
            e.to_string(),
            "the hub refused the connection (CONNACK BadClientId)"
        );
        assert!(!e.is_authentication());
        assert_eq!(ConnackRefusal::NotAuthorized.code(), 5);
        assert_eq!(ConnackRefusal::UnacceptableProtocolVersion.code(), 1);
    }
}
