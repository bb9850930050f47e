//! Request paths with percent-encoded IDs (device IDs may contain `# ? % + ; : $ '` …).

use crate::error::ServiceError;

/// Encodes one path segment (everything but RFC 3986 unreserved characters, as the SDKs do),
/// refusing the empty ID (which would address the collection).
pub(crate) fn segment(id: &str) -> Result<String, ServiceError> {
    if id.is_empty() {
        return Err(ServiceError::InvalidArgument("device ID is empty".into()));
    }
    Ok(iothub_auth::encode_component(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(segment("myDeviceId").unwrap(), "myDeviceId");
        assert_eq!(segment("a-b.c_d~e").unwrap(), "a-b.c_d~e");
        assert_eq!(
            segment("a#b?c%d+e;f:g$h'i j/k").unwrap(),
            "a%23b%3Fc%25d%2Be%3Bf%3Ag%24h%27i%20j%2Fk"
        );
        assert!(segment("").is_err());
    }
}
