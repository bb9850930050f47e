//! The leak oracle shared by the credential targets.
//!
//! A value shown to users (an error message, a `Display` or `Debug`) leaks a secret if it
//! contains a [`MIN_LEAK_CHARS`]-character fragment of the secret that
//! - the input holds nowhere but inside the secret (else it may be echoing, say, a host name
//!   that repeats part of a key), and
//! - is not shown when the secret is masked, by either of two masks: the same input with
//!   the secret replaced by base64 of other bytes of the same length (so a key stays a
//!   valid key), or with each of its characters rotated within its class (so the text
//!   around it stays valid). A message that echoes the secret echoes the mask instead;
//!   fragments that survive a mask come from the message's fixed text, or from the rest of
//!   the input as the message transforms it (a percent-encoded resource, say).

use std::ops::Range;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use iothub_auth::encode_component;
use percent_encoding::percent_decode_str;

/// Fragments this long of a secret must never be shown: shorter ones collide with ordinary
/// text too often to mean anything.
pub(crate) const MIN_LEAK_CHARS: usize = 16;

/// Byte ranges of secret values in an input.
pub(crate) type Secrets = Vec<Range<usize>>;

/// Panics if the texts `shown` for `input` leak one of its `secrets`; `render` computes
/// what would be shown for another input (the masked one).
pub(crate) fn assert_no_leak(
    input: &str,
    secrets: &Secrets,
    shown: &[(&'static str, String)],
    render: impl Fn(&str) -> Vec<(&'static str, String)>,
) {
    if secrets
        .iter()
        .all(|s| input[s.clone()].chars().count() < MIN_LEAK_CHARS)
    {
        return;
    }
    let masked: Vec<String> = [Mask::OtherBytes, Mask::Rotated]
        .into_iter()
        .map(|how| {
            let shown = render(&mask(input, secrets, how));
            shown
                .into_iter()
                .map(|(_, text)| text)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let outside: String = input
        .char_indices()
        .map(|(i, c)| {
            if secrets.iter().any(|s| s.contains(&i)) {
                '\u{0}'
            } else {
                c
            }
        })
        .collect();
    for range in secrets {
        let secret = &input[range.clone()];
        for fragment in fragments(secret) {
            if outside.contains(fragment) || masked.iter().any(|m| m.contains(fragment)) {
                continue;
            }
            for (what, text) in shown {
                if text.contains(fragment) {
                    panic!("{what} shows {fragment:?}, part of a secret in {input:?}: {text:?}");
                }
            }
        }
    }
}

/// Panics if `shown` contains any [`MIN_LEAK_CHARS`]-character fragment of `secret`.
pub(crate) fn assert_not_shown(what: &str, shown: &str, secret: &str) {
    for fragment in fragments(secret) {
        assert!(
            !shown.contains(fragment),
            "{what} shows {fragment:?}, part of a secret: {shown:?}"
        );
    }
}

/// Every window of [`MIN_LEAK_CHARS`] characters of `secret`.
fn fragments(secret: &str) -> impl Iterator<Item = &str> {
    let bounds: Vec<usize> = secret
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(secret.len()))
        .collect();
    (0..bounds.len().saturating_sub(MIN_LEAK_CHARS))
        .map(move |i| &secret[bounds[i]..bounds[i + MIN_LEAK_CHARS]])
}

/// How a secret is replaced to see what a message shows without it.
#[derive(Clone, Copy)]
enum Mask {
    /// Base64 of other bytes of the same length, in the secret's encoding.
    OtherBytes,
    /// Every character rotated within its class.
    Rotated,
}

/// `input` with each secret (overlapping ones merged) masked.
fn mask(input: &str, secrets: &Secrets, how: Mask) -> String {
    let mut ranges = secrets.clone();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Secrets = Vec::new();
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    let mut out = String::new();
    let mut at = 0;
    for range in merged {
        out.push_str(&input[at..range.start]);
        let secret = &input[range.clone()];
        match how {
            Mask::OtherBytes => out.push_str(&other_bytes(secret)),
            Mask::Rotated => out.extend(secret.chars().map(rotate)),
        }
        at = range.end;
    }
    out.push_str(&input[at..]);
    out
}

/// Base64 of other bytes of the same length for a key, the same percent-encoded for a
/// signature, else every character rotated.
fn other_bytes(secret: &str) -> String {
    let other =
        |bytes: Vec<u8>| STANDARD.encode(bytes.iter().map(|b| b ^ 0xA5).collect::<Vec<_>>());
    if let Ok(bytes) = STANDARD.decode(secret) {
        return other(bytes);
    }
    if let Ok(text) = percent_decode_str(secret).decode_utf8() {
        if let Ok(bytes) = SIGNATURE.decode(text.replace(' ', "+")) {
            return encode_component(&other(bytes));
        }
    }
    secret.chars().map(rotate).collect()
}

/// How iothub-auth reads a token's `sig`: standard alphabet, padding optional.
const SIGNATURE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Digits, hex letters and other letters each rotate within their own class and case, so
/// base64 stays base64 of the same length and percent-escapes stay escapes.
fn rotate(c: char) -> char {
    let within = |first: u8, len: u8, by: u8| char::from(first + (c as u8 - first + by) % len);
    match c {
        '0'..='9' => within(b'0', 10, 5),
        'a'..='f' => within(b'a', 6, 3),
        'A'..='F' => within(b'A', 6, 3),
        'g'..='z' => within(b'g', 20, 10),
        'G'..='Z' => within(b'G', 20, 10),
        _ => c,
    }
}

/// The byte ranges of the values of every `name=` field in `text`, fields split at any of
/// `separators`, values trimmed. A field counts if its name's last word equals `name`
/// (ASCII case-insensitively if `any_case`), so the first field of
/// `SharedAccessSignature sig=…` counts too.
pub(crate) fn field_values(text: &str, name: &str, separators: &[char], any_case: bool) -> Secrets {
    let offset = |part: &str| part.as_ptr() as usize - text.as_ptr() as usize;
    text.split(separators)
        .filter_map(|segment| segment.split_once('='))
        .filter(|(n, _)| {
            let n = n
                .trim()
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or_default();
            if any_case {
                n.eq_ignore_ascii_case(name)
            } else {
                n == name
            }
        })
        .map(|(_, value)| {
            let value = value.trim();
            offset(value)..offset(value) + value.len()
        })
        .filter(|range| !range.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=";

    fn input() -> (String, Secrets) {
        let input = format!("HostName=h;SharedAccessKey={KEY}");
        let secrets = field_values(&input, "SharedAccessKey", &[';'], false);
        (input, secrets)
    }

    #[test]
    #[should_panic(expected = "part of a secret")]
    fn a_message_echoing_the_key_is_a_leak() {
        let (input, secrets) = input();
        let echo = |text: &str| vec![("error message", format!("bad value in {text}"))];
        assert_no_leak(&input, &secrets, &echo(&input), echo);
    }

    #[test]
    fn fixed_text_and_the_rest_of_the_input_are_not_leaks() {
        let (input, secrets) = input();
        let fixed = |_: &str| vec![("error message", format!("HostName=h; {KEY}"))];
        // The key text appears in the message whatever the key is: fixed text.
        assert_no_leak(&input, &secrets, &fixed(&input), fixed);
        let repeated = format!("HostName={KEY};SharedAccessKey={KEY}");
        let secrets = vec![repeated.rfind(KEY).map(|at| at..at + KEY.len()).unwrap()];
        let host = |text: &str| vec![("Display", text.split(';').next().unwrap().to_owned())];
        assert_no_leak(&repeated, &secrets, &host(&repeated), host);
    }

    #[test]
    fn masks_keep_the_shape() {
        let (input, secrets) = input();
        let other = mask(&input, &secrets, Mask::OtherBytes);
        let key = other.strip_prefix("HostName=h;SharedAccessKey=").unwrap();
        assert_ne!(key, KEY);
        assert_eq!(STANDARD.decode(key).map(|k| k.len()), Ok(32));
        let rotated = mask(&input, &secrets, Mask::Rotated);
        assert_eq!(rotated.len(), input.len());
        assert!(!rotated.contains(&KEY[..MIN_LEAK_CHARS]));
    }
}
