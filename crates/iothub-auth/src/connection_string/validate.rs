//! Value checks shared by both connection-string kinds. Messages name the rule, never the value.

use crate::error::ConnectionStringError;

/// IoT Hub's limit for device and module ids.
const MAX_ID_LEN: usize = 128;

/// `host` or `host:port`: letters, digits, `-`, `.`, `_`; port 1–65535.
pub(crate) fn host_name(field: &'static str, value: &str) -> Result<(), ConnectionStringError> {
    let invalid = |reason| ConnectionStringError::InvalidValue { field, reason };
    let host = match value.split_once(':') {
        Some((host, port)) => {
            let port_ok = !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p != 0);
            if !port_ok {
                return Err(invalid(
                    "the port after ':' must be a number from 1 to 65535",
                ));
            }
            host
        }
        None => value,
    };
    if host.is_empty() {
        return Err(invalid("the host part before ':' is empty"));
    }
    if !host.bytes().all(is_name_byte) {
        return Err(invalid(
            "a host name may contain only letters, digits, '-', '.' and '_' (plus an optional :port)",
        ));
    }
    Ok(())
}

/// Device and module ids: at most 128 characters, no `/` (it would change the resource URI),
/// no control characters.
pub(crate) fn identity(field: &'static str, value: &str) -> Result<(), ConnectionStringError> {
    let invalid = |reason| ConnectionStringError::InvalidValue { field, reason };
    if value.chars().count() > MAX_ID_LEN {
        return Err(invalid("it is longer than 128 characters"));
    }
    if value.contains('/') {
        return Err(invalid("it must not contain '/'"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("it must not contain control characters"));
    }
    Ok(())
}

/// Policy names: at most 64 characters of letters, digits, `-`, `.`, `_`.
pub(crate) fn policy_name(field: &'static str, value: &str) -> Result<(), ConnectionStringError> {
    if value.len() > 64 || !value.bytes().all(is_name_byte) {
        return Err(ConnectionStringError::InvalidValue {
            field,
            reason: "a policy name is at most 64 letters, digits, '-', '.' or '_'",
        });
    }
    Ok(())
}

/// Letters, digits, `-`, `.`, `_`: what host names and policy names are made of.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}
