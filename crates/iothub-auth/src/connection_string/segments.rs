//! Splitting `Field=Value;Field=Value` text into known keys.
//!
//! Rules (stricter than Node, more forgiving than Python): segments are separated by `;`,
//! whitespace around segments, names and values is trimmed, empty segments (including a trailing
//! `;`) are ignored, a value is everything after the **first** `=` (base64 padding survives),
//! names are case-sensitive, unknown and duplicate names are errors, and empty values are errors.

use crate::error::ConnectionStringError;

/// Every key a connection string may carry, in the official SDKs' spelling.
pub(crate) const KNOWN_KEYS: [&str; 8] = [
    "HostName",
    "DeviceId",
    "ModuleId",
    "SharedAccessKeyName",
    "SharedAccessKey",
    "SharedAccessSignature",
    "GatewayHostName",
    "x509",
];

/// Index into [`KNOWN_KEYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    HostName = 0,
    DeviceId = 1,
    ModuleId = 2,
    SharedAccessKeyName = 3,
    SharedAccessKey = 4,
    SharedAccessSignature = 5,
    GatewayHostName = 6,
    X509 = 7,
}

impl Field {
    const ALL: [Field; 8] = [
        Field::HostName,
        Field::DeviceId,
        Field::ModuleId,
        Field::SharedAccessKeyName,
        Field::SharedAccessKey,
        Field::SharedAccessSignature,
        Field::GatewayHostName,
        Field::X509,
    ];

    pub(crate) fn name(self) -> &'static str {
        KNOWN_KEYS[self as usize]
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|key| key.name() == name)
    }
}

/// The values of one connection string, by key.
#[derive(Debug, Default)]
pub(crate) struct Segments<'a> {
    values: [Option<&'a str>; 8],
}

impl<'a> Segments<'a> {
    pub(crate) fn split(text: &'a str) -> Result<Self, ConnectionStringError> {
        let mut segments = Segments::default();
        let mut index = 0;
        for segment in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            index += 1;
            let (name, value) = segment
                .split_once('=')
                .ok_or(ConnectionStringError::SegmentWithoutEquals { index })?;
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                return Err(ConnectionStringError::EmptyKeyName { index });
            }
            let key = Field::from_name(name).ok_or_else(|| unknown_key(index, name))?;
            let slot = &mut segments.values[key as usize];
            if slot.is_some() {
                return Err(ConnectionStringError::DuplicateKey { name: key.name() });
            }
            if value.is_empty() {
                return Err(ConnectionStringError::EmptyValue { field: key.name() });
            }
            *slot = Some(value);
        }
        if index == 0 {
            return Err(ConnectionStringError::Empty);
        }
        Ok(segments)
    }

    pub(crate) fn get(&self, key: Field) -> Option<&'a str> {
        self.values[key as usize]
    }

    pub(crate) fn has(&self, key: Field) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn require(&self, key: Field) -> Result<&'a str, ConnectionStringError> {
        self.get(key)
            .ok_or(ConnectionStringError::Missing { field: key.name() })
    }

    /// `x509=true` is recognised only to say it is unsupported; any other value is invalid.
    pub(crate) fn reject_x509(&self) -> Result<(), ConnectionStringError> {
        match self.get(Field::X509) {
            None => Ok(()),
            Some(value) if value.eq_ignore_ascii_case("true") => {
                Err(ConnectionStringError::X509NotSupported)
            }
            Some(_) => Err(ConnectionStringError::InvalidValue {
                field: "x509",
                reason: "the only recognised value is 'true' (and X.509 is not supported yet)",
            }),
        }
    }
}

/// Longest unknown key name that is echoed in errors. A pasted key without `SharedAccessKey=`
/// splits at its `=` padding into a base64 "name"; 16 key bytes are at least 22 base64
/// characters, so names up to 21 characters (the longest real key name is 21) cannot be a whole
/// key. Longer names are not shown at all: no heuristic on the characters is reliable.
const MAX_ECHOED_NAME_LEN: usize = 21;

/// Names the unknown key unless it could be key material.
fn unknown_key(index: usize, name: &str) -> ConnectionStringError {
    let echo = name.len() <= MAX_ECHOED_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if echo {
        ConnectionStringError::UnknownKey {
            name: name.to_owned(),
        }
    } else {
        ConnectionStringError::UnknownKeyNotShown { index }
    }
}
