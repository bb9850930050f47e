//! Device id validation: ≤128 chars of `[A-Za-z0-9-:.+%_#*?!(),=@;$']` (ARCHITECTURE.md#limits;
//! <https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-identity-registry>).

use super::HubError;

/// Longest device id the hub accepts.
pub const MAX_ID_LEN: usize = 128;

/// Checks a device id against the hub's character set and length.
///
/// # Errors
/// [`HubError::InvalidArgument`] naming the first offending character.
pub fn validate_device_id(id: &str) -> Result<(), HubError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(HubError::InvalidArgument(format!(
            "Device id must be 1 to {MAX_ID_LEN} characters long, got {}",
            id.chars().count()
        )));
    }
    if let Some(bad) = id.chars().find(|c| !is_id_char(*c)) {
        return Err(HubError::InvalidArgument(format!(
            "Device id contains the invalid character {bad:?}; allowed are letters, digits and -:.+%_#*?!(),=@;$'"
        )));
    }
    Ok(())
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-:.+%_#*?!(),=@;$'".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_charset() {
        assert!(validate_device_id("a-b:c.d+e%f_g#h*i?j!k(l)m,n=o@p;q$r's").is_ok());
        assert!(validate_device_id(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn rejects_spaces_slashes_and_length() {
        assert!(validate_device_id("a b").is_err());
        assert!(validate_device_id("a/b").is_err());
        assert!(validate_device_id("").is_err());
        assert!(validate_device_id(&"x".repeat(129)).is_err());
    }
}
