//! Typed errors of this crate.
//!
//! Every message names the field that is wrong and why, and none of them ever carries secret
//! material (key bytes, signatures, or the text that failed to parse): these errors end up in
//! logs and terminal output.

use std::fmt;

/// Why a text is not an acceptable shared access key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key text is empty.
    #[error("the key is empty")]
    Empty,
    /// The key is not standard base64 (alphabet `A-Za-z0-9+/`, `=` padding).
    // The base64 crate's own error names the offending byte and its offset; that would leak a
    // character of the key, so it is deliberately dropped here.
    #[error("the key is not valid base64 (standard alphabet with '=' padding)")]
    InvalidBase64,
    /// The decoded key length is outside what IoT Hub accepts.
    #[error("the key decodes to {len} bytes; IoT Hub keys are 16 to 64 bytes")]
    InvalidLength {
        /// Decoded length in bytes.
        len: usize,
    },
}

/// Which of the two connection-string kinds a text is (used for hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStringKind {
    /// `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` (a hub-level shared access policy).
    Service,
    /// `HostName=…;DeviceId=…;SharedAccessKey=…` (one device or module identity).
    Device,
}

impl fmt::Display for ConnectionStringKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service => f.write_str(
                "service connection string \
                 (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…, e.g. the iothubowner policy)",
            ),
            Self::Device => {
                f.write_str("device connection string (HostName=…;DeviceId=…;SharedAccessKey=…)")
            }
        }
    }
}

/// Why a connection string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    /// Nothing but whitespace and `;`.
    #[error("the connection string is empty")]
    Empty,
    /// A `;`-separated segment without `=`. Only its position is reported: the segment itself
    /// might be a pasted key.
    #[error("segment {index} of the connection string is not a Key=Value pair")]
    SegmentWithoutEquals {
        /// 1-based position among the non-empty segments.
        index: usize,
    },
    /// A segment such as `=value`.
    #[error("segment {index} of the connection string has an empty key name")]
    EmptyKeyName {
        /// 1-based position among the non-empty segments.
        index: usize,
    },
    /// A key this crate does not know. Keys are case-sensitive, as in every official SDK.
    #[error(
        "unknown key '{name}' in the connection string{}; known keys (case-sensitive): HostName, \
         DeviceId, ModuleId, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, \
         GatewayHostName, x509",
        did_you_mean(name)
    )]
    UnknownKey {
        /// The unknown key name as written.
        name: String,
    },
    /// An unknown key whose name is too long or odd to be a key name; it may be key material,
    /// so it is not echoed.
    #[error(
        "segment {index} of the connection string has an unknown key that is not shown (it may \
         be key material); is a ';' or 'SharedAccessKey=' missing?"
    )]
    UnknownKeyNotShown {
        /// 1-based position among the non-empty segments.
        index: usize,
    },
    /// The same key twice.
    #[error("duplicate key '{name}' in the connection string")]
    DuplicateKey {
        /// The repeated key.
        name: &'static str,
    },
    /// A required key is absent.
    #[error("the connection string is missing {field}")]
    Missing {
        /// The missing key.
        field: &'static str,
    },
    /// A key with an empty value.
    #[error("{field} in the connection string is empty")]
    EmptyValue {
        /// The key whose value is empty.
        field: &'static str,
    },
    /// A value that is syntactically unacceptable.
    #[error("invalid {field} in the connection string: {reason}")]
    InvalidValue {
        /// The key whose value is invalid.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `SharedAccessKey` value is not a usable key.
    #[error("invalid SharedAccessKey in the connection string: {0}")]
    InvalidKey(#[source] KeyError),
    /// The `SharedAccessSignature` value is not a usable token.
    #[error("invalid SharedAccessSignature in the connection string: {0}")]
    InvalidSignature(#[source] SasError),
    /// `x509=true`.
    #[error(
        "X.509 authentication is not supported yet (the connection string has x509=true); \
         use a SharedAccessKey or SharedAccessSignature"
    )]
    X509NotSupported,
    /// A device string with both credentials.
    #[error(
        "the connection string has both SharedAccessKey and SharedAccessSignature; give exactly one"
    )]
    BothCredentials,
    /// A device string with no credential.
    #[error("the connection string is missing SharedAccessKey (or SharedAccessSignature)")]
    MissingCredential,
    /// A key that is valid somewhere, but not in this kind of string.
    #[error("{field} is not supported in a {kind}")]
    NotAllowed {
        /// The offending key.
        field: &'static str,
        /// The kind being parsed.
        kind: ConnectionStringKind,
    },
    /// A device string where a service string is needed, or the reverse.
    #[error("a {given} was given, but a {needed} is needed here")]
    WrongKind {
        /// What the text looks like.
        given: ConnectionStringKind,
        /// What the caller asked for.
        needed: ConnectionStringKind,
    },
}

/// Suggests the canonical spelling when an unknown key only differs in case.
fn did_you_mean(name: &str) -> String {
    crate::connection_string::segments::KNOWN_KEYS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map(|known| format!(" (did you mean '{known}'?)"))
        .unwrap_or_default()
}

/// Why a SAS token was rejected (or could not be produced).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    /// The token text does not have the `SharedAccessSignature sr=…&sig=…&se=…` shape. The
    /// message names the problem, never the signature.
    #[error("malformed SAS token: {0}")]
    Malformed(String),
    /// No candidate key produces the token's signature.
    #[error("SAS token signature does not match")]
    BadSignature,
    /// `se` is in the past.
    #[error("SAS token expired at {expired_at} (unix seconds)")]
    Expired {
        /// The token's `se`.
        expired_at: u64,
    },
    /// The token's `sr` does not cover the requested resource.
    #[error("SAS token for '{token_resource}' does not grant access to '{requested}'")]
    OutOfScope {
        /// The token's resource (`sr`, percent-decoded).
        token_resource: String,
        /// The resource the caller asked about.
        requested: String,
    },
}
