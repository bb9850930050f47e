//! The leak oracle shared by the credential targets.

/// Fragments this long of a secret must never be shown: shorter ones collide with ordinary
/// text too often to mean anything.
pub(crate) const MIN_LEAK_CHARS: usize = 16;

/// Panics if `shown` contains a [`MIN_LEAK_CHARS`]-character fragment of `secret` that the
/// `input` holds nowhere but inside the secret itself (text the input also has elsewhere,
/// such as a host name that happens to repeat part of a key, may be echoed legitimately).
pub(crate) fn assert_no_leak(what: &str, shown: &str, secret: &str, input: &str) {
    let chars: Vec<(usize, char)> = secret.char_indices().collect();
    if chars.len() < MIN_LEAK_CHARS {
        return;
    }
    let outside_secret = input.replace(secret, "\u{0}");
    for (i, &(start, _)) in chars.iter().enumerate() {
        let Some(&(last, c)) = chars.get(i + MIN_LEAK_CHARS - 1) else {
            break;
        };
        let fragment = &secret[start..last + c.len_utf8()];
        if shown.contains(fragment) && !outside_secret.contains(fragment) {
            panic!("{what} shows {fragment:?}, part of a secret: {shown:?}");
        }
    }
}

/// The values of every `name=` field in `text`, split at any of `separators`: fields whose
/// name's last word equals `name` (ASCII case-insensitively if `any_case`), so that the
/// first field of `SharedAccessSignature sig=…` counts too.
pub(crate) fn field_values<'a>(
    text: &'a str,
    name: &str,
    separators: &[char],
    any_case: bool,
) -> Vec<&'a str> {
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
        .map(|(_, value)| value.trim())
        .collect()
}
