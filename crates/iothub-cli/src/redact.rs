//! Scrubbing credentials out of text: the last line of defence for log output. The tools
//! never log a secret on purpose (connection strings are [`Secret`](crate::Secret)s, clients
//! never log headers), but a dependency's debug output (an MQTT CONNECT packet, a URL) may.
//!
//! What is recognised, case-insensitively and at the start of a word:
//! - `SharedAccessKey=VALUE` and `SharedAccessSignature=VALUE` (connection strings) keep the
//!   name and lose the value;
//! - a SAS token `SharedAccessSignature sr=…&sig=…&se=…` becomes `<redacted SAS token>`;
//! - `sig=VALUE` (a token's signature on its own, e.g. in a URL) keeps the name.
//!
//! Token format: <https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas>.

use std::borrow::Cow;

use crate::secret::REDACTED;

/// What a whole SAS token is replaced with.
pub const REDACTED_TOKEN: &str = "<redacted SAS token>";

const KEY_FIELD: &str = "sharedaccesskey=";
const SIGNATURE_FIELD: &str = "sharedaccesssignature=";
const TOKEN_PREFIX: &str = "sharedaccesssignature ";
const SIG_FIELD: &str = "sig=";

/// `text` with every recognised credential replaced (see the module docs). Borrows when
/// there is nothing to replace.
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Every marker starts with an ASCII `s`, so `i` is then a char boundary.
        let may_start_marker = bytes[i].eq_ignore_ascii_case(&b's')
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        let found = if may_start_marker {
            secret_at(text, i)
        } else {
            None
        };
        match found {
            Some((replacement_end, skip_to, replacement)) => {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
                out.push_str(&text[copied..replacement_end]);
                out.push_str(replacement);
                copied = skip_to;
                i = skip_to;
            }
            None => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// A credential starting at byte `i`, which must be a char boundary: (end of the text to keep,
/// end of the secret, replacement). Every boundary returned is at an ASCII byte or the end,
/// so slicing there is valid UTF-8.
fn secret_at(text: &str, i: usize) -> Option<(usize, usize, &'static str)> {
    let rest = &text[i..];
    if starts_with_ignore_case(rest, SIGNATURE_FIELD) {
        // The value is itself a token: `SharedAccessSignature=SharedAccessSignature sr=…`.
        let name_end = i + SIGNATURE_FIELD.len();
        let mut value_start = name_end;
        if starts_with_ignore_case(&text[value_start..], TOKEN_PREFIX) {
            value_start += TOKEN_PREFIX.len();
        }
        let value_end = value_start + token_len(&text[value_start..]);
        return (value_end > name_end).then_some((name_end, value_end, REDACTED));
    }
    if starts_with_ignore_case(rest, TOKEN_PREFIX) {
        let token_start = i + TOKEN_PREFIX.len();
        let token = &text[token_start..token_start + token_len(&text[token_start..])];
        // Prose that merely names the scheme ("SharedAccessSignature tokens …") stays.
        return token
            .contains('=')
            .then_some((i, token_start + token.len(), REDACTED_TOKEN));
    }
    for field in [KEY_FIELD, SIG_FIELD] {
        if starts_with_ignore_case(rest, field) {
            let name_end = i + field.len();
            let value_end = name_end + value_len(&text[name_end..]);
            return (value_end > name_end).then_some((name_end, value_end, REDACTED));
        }
    }
    None
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Length of a field value: up to a separator of connection strings, query strings, quoted
/// or escaped text, and the usual delimiters of `Debug` output.
fn value_len(text: &str) -> usize {
    text.bytes()
        .position(|b| b == b'&' || ends_value(b))
        .unwrap_or(text.len())
}

/// Length of a SAS token: like [`value_len`], but its fields are joined by `&`.
fn token_len(text: &str) -> usize {
    text.bytes().position(ends_value).unwrap_or(text.len())
}

fn ends_value(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b';' | b'"' | b'\'' | b'\\' | b',' | b')' | b']' | b'}' | b'<' | b'>'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_string_keys_lose_their_values() {
        assert_eq!(
            redact_secrets("HostName=h.net;DeviceId=d;SharedAccessKey=c2VjcmV0+/w==;x=1"),
            "HostName=h.net;DeviceId=d;SharedAccessKey=<redacted>;x=1"
        );
        assert_eq!(
            redact_secrets("cs=\"HostName=h;sharedaccesskey=abc\""),
            "cs=\"HostName=h;sharedaccesskey=<redacted>\""
        );
        assert_eq!(
            redact_secrets("HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h%2Fdevices%2Fd&sig=abc%3D&se=1"),
            "HostName=h;DeviceId=d;SharedAccessSignature=<redacted>"
        );
    }

    #[test]
    fn tokens_are_replaced_whole() {
        assert_eq!(
            redact_secrets(
                r#"Login { username: "h/d/?api-version=2021-04-12", password: "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=q%2Bw%3D&se=1700000000" }"#
            ),
            r#"Login { username: "h/d/?api-version=2021-04-12", password: "<redacted SAS token>" }"#
        );
        assert_eq!(
            redact_secrets("authorization: SharedAccessSignature sr=a&sig=b&se=1&skn=iothubowner"),
            "authorization: <redacted SAS token>"
        );
        assert_eq!(
            redact_secrets(r#"password: Some(\"SharedAccessSignature sig=x&se=1&sr=h\")"#),
            r#"password: Some(\"<redacted SAS token>\")"#
        );
    }

    #[test]
    fn lone_signatures_are_redacted() {
        assert_eq!(
            redact_secrets("wss://h/$iothub/websocket?sr=h&sig=abc%2B&se=1"),
            "wss://h/$iothub/websocket?sr=h&sig=<redacted>&se=1"
        );
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in [
            "retrying operation=\"get twin 'myDeviceId'\" attempt=2",
            "the SharedAccessSignature scheme is described in the docs",
            "design=1 xsig=2 SharedAccessKeyName=iothubowner",
            "sig= (empty) SharedAccessKey=;",
            "non-ASCII: Grüße, 設備 sig",
        ] {
            assert!(
                matches!(redact_secrets(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }

    #[test]
    fn non_ascii_around_secrets_survives() {
        assert_eq!(
            redact_secrets("Gerät «SharedAccessKey=abc;» ok"),
            "Gerät «SharedAccessKey=<redacted>;» ok"
        );
    }

    #[test]
    fn never_panics_on_markers_next_to_multibyte_text() {
        let fragments = [
            "ä",
            "設",
            "s",
            "S",
            "sig=",
            "SIG=",
            "SharedAccessKey=",
            "SharedAccessSignature ",
            "SharedAccessSignature=",
            "sr=",
            "&",
            ";",
            "\\",
            "\"",
            " ",
            "x",
        ];
        for a in fragments {
            for b in fragments {
                for c in fragments {
                    // The space ends any value, so the tail always survives.
                    let text = format!("{a}{b}{c} é");
                    let redacted = redact_secrets(&text);
                    assert!(redacted.ends_with('é'), "{text:?} -> {redacted:?}");
                }
            }
        }
    }
}
