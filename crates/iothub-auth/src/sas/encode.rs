//! Percent-encoding exactly as the official SDKs apply it to SAS token fields.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything except RFC 3986 "unreserved" (`A-Za-z0-9-._~`) is escaped, with upper-case hex:
/// Python's `urllib.parse.quote(s, safe="")`, Node's `encodeUriComponentStrict` and the Embedded C
/// SDK all agree on this set, so tokens we generate are byte-identical to theirs.
const UNRESERVED_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a SAS field value (resource URI, base64 signature, policy name), or any
/// other URL component the IoT Hub clients send (path segments, MQTT username parameters).
pub fn encode_component(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED_KEPT).to_string()
}

#[cfg(test)]
mod tests {
    use super::encode_component;

    #[test]
    fn keeps_unreserved_and_escapes_the_rest_in_upper_case() {
        assert_eq!(encode_component("aZ09-._~"), "aZ09-._~");
        assert_eq!(
            encode_component("myhub.azure-devices.net/devices/dev #1+x"),
            "myhub.azure-devices.net%2Fdevices%2Fdev%20%231%2Bx"
        );
        assert_eq!(encode_component("a+b/c="), "a%2Bb%2Fc%3D");
        assert_eq!(
            encode_component("encode('Me')*!"),
            "encode%28%27Me%27%29%2A%21"
        );
        assert_eq!(encode_component("localhost:18443"), "localhost%3A18443");
        assert_eq!(encode_component("é"), "%C3%A9");
    }
}
