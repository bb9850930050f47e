//! `sas_token`: parsing and verifying SAS tokens against a fixed key set.
//!
//! The first input byte picks a mode:
//! - even (seeds use `T`): the rest is token text, parsed and checked against the keys;
//! - odd (seeds use `S`): the rest describes a token to sign (key, expiry, resource, policy)
//!   and up to [`MAX_EDITS`] byte edits; the signed token must verify, and the edited text
//!   is then checked like any other text.
//!
//! Invariants: nothing panics; `Display`, `Debug` and errors never show the signature; a
//! token signed by iothub-auth parses to the fields it was signed with and verifies; a token
//! that verifies is field for field the token the key would sign over the same `sr` and
//! `se` (so a mutation verifies only if it is semantically the same token: other hex case,
//! padding, field order or names' case, or a different unsigned `skn`).

use std::sync::OnceLock;

use iothub_auth::{encode_component, ParsedSas, SasToken, SharedAccessKey};

use crate::secrets::{assert_no_leak, assert_not_shown, field_values};

/// Most edits applied to a signed token in one input.
const MAX_EDITS: usize = 8;

/// The hub's keys: the key iothub-auth's tests use, and two fixed 32-byte keys (a device's
/// primary and secondary).
fn keys() -> &'static [SharedAccessKey] {
    static KEYS: OnceLock<Vec<SharedAccessKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=",
            // [5u8; 32] and [1u8; 32], as the tests' `key(byte)` builds them.
            "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        ]
        .iter()
        .map(|text| SharedAccessKey::from_base64(text).expect("fixture keys are valid"))
        .collect()
    })
}

/// The `sas_token` target.
pub fn sas_token(data: &[u8]) {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => check_text(&String::from_utf8_lossy(rest)),
        Some((_, rest)) => sign_then_edit(rest),
        None => {}
    }
}

/// Token text from anywhere: parse, show, verify.
fn check_text(text: &str) {
    let seen = shown(text);
    assert_no_leak(text, &field_values(text, "sig", &['&'], true), &seen, shown);
    let parsed = match (ParsedSas::parse(text), SasToken::parse(text)) {
        (Ok(parsed), Ok(token)) => {
            assert_eq!(
                &parsed,
                token.parsed(),
                "{text:?}: parsed twice, differently"
            );
            assert_eq!(token.as_str(), text.trim());
            parsed
        }
        (Err(e), Err(f)) => {
            assert_eq!(e, f, "{text:?}: two parsers, two errors");
            return;
        }
        (p, t) => panic!("{text:?}: ParsedSas says {p:?}, SasToken says {t:?}"),
    };

    let se = parsed.expires_at_unix();
    assert!(parsed.check_not_expired(se).is_ok());
    if let Some(later) = se.checked_add(1) {
        assert!(parsed.check_not_expired(later).is_err());
    }
    for key in keys() {
        if parsed.verify_signature(&[key]).is_ok() {
            assert_eq!(
                parsed,
                canonical(&parsed, key),
                "{text:?} verifies but is not the token its key signs over the same sr and se"
            );
        }
    }
    let all: Vec<&SharedAccessKey> = keys().iter().collect();
    let any_key = keys().iter().any(|k| parsed.verify_signature(&[k]).is_ok());
    assert_eq!(
        parsed.verify_signature(&all).is_ok(),
        any_key,
        "{text:?}: key set"
    );
}

/// What a user could be shown for token `text`: the parsed token's `Display` and `Debug`, or
/// the error, and the scope error for its own resource.
fn shown(text: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match SasToken::parse(text) {
        Ok(token) => {
            out.push(("token Display", token.to_string()));
            out.push(("token Debug", format!("{token:?}")));
            out.push(("parsed Debug", format!("{:?}", token.parsed())));
            if let Err(e) = token.parsed().check_covers(token.resource()) {
                out.push(("scope error", e.to_string()));
            }
        }
        Err(e) => {
            out.push(("error message", e.to_string()));
            out.push(("error Debug", format!("{e:?}")));
        }
    }
    out
}

/// The token `key` signs over `parsed`'s `sr` (as sent) and `se`, with its `skn`.
fn canonical(parsed: &ParsedSas, key: &SharedAccessKey) -> ParsedSas {
    let sr = parsed.resource_as_sent();
    let se = parsed.expires_at_unix();
    let sig = encode_component(&key.sign(format!("{sr}\n{se}").as_bytes()));
    let mut text = format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}");
    if let Some(policy) = parsed.policy_name() {
        text.push_str("&skn=");
        text.push_str(&encode_component(policy));
    }
    ParsedSas::parse(&text).unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"))
}

/// Input: key selector (bit 2: with a policy name), 8 bytes of `se` (little-endian), an edit
/// count, that many 4-byte edits, then `resource` text, optionally `\n` and the policy name.
fn sign_then_edit(data: &[u8]) {
    let mut input = Bytes(data);
    let selector = input.byte();
    let key = &keys()[usize::from(selector) % keys().len()];
    let se = u64::from_le_bytes(std::array::from_fn(|_| input.byte()));
    let edits: Vec<[u8; 4]> = (0..usize::from(input.byte()).min(MAX_EDITS))
        .map(|_| std::array::from_fn(|_| input.byte()))
        .collect();
    let rest = String::from_utf8_lossy(input.0);
    let (resource, policy) = match rest.split_once('\n') {
        Some((resource, policy)) if selector & 4 != 0 => (resource, Some(policy)),
        _ => (rest.as_ref(), None),
    };

    if resource.is_empty() {
        // `generate` trusts its caller; a token with an empty `sr` is refused by `parse`
        // (FUZZING.md, findings).
        return;
    }
    let token = SasToken::generate(resource, key, policy, se);
    let parsed = ParsedSas::parse(token.as_str())
        .unwrap_or_else(|e| panic!("signed {resource:?} into {:?}: {e}", token.as_str()));
    assert_eq!(
        &parsed,
        token.parsed(),
        "{:?} parses differently",
        token.as_str()
    );
    assert_eq!(parsed.resource(), resource);
    assert_eq!(parsed.expires_at_unix(), se);
    assert_eq!(parsed.policy_name(), policy.filter(|p| !p.is_empty()));
    assert_eq!(
        parsed.verify_signature(&[key]),
        Ok(()),
        "{:?}",
        token.as_str()
    );
    assert_eq!(parsed.check_not_expired(se), Ok(()));
    let text = token.as_str();
    for secret in field_values(text, "sig", &['&'], true) {
        for shown in [
            token.to_string(),
            format!("{token:?}"),
            format!("{parsed:?}"),
        ] {
            assert_not_shown("signed token", &shown, &text[secret.clone()]);
        }
    }

    if edits.is_empty() {
        return;
    }
    let mut text = token.as_str().as_bytes().to_vec();
    for edit in &edits {
        apply(&mut text, *edit);
    }
    let edited = String::from_utf8_lossy(&text);
    check_text(&edited);
    if let Ok(reparsed) = ParsedSas::parse(&edited) {
        if reparsed.verify_signature(&[key]).is_ok() {
            assert_eq!(
                (reparsed.resource_as_sent(), reparsed.expires_at_unix()),
                (parsed.resource_as_sent(), se),
                "{edited:?} verifies but signs something else than {:?}",
                token.as_str()
            );
        }
    }
}

/// One edit `[op, position low, position high, value]` of the token text: overwrite,
/// insert, delete, percent-encode or flip the ASCII case of the byte at the position.
fn apply(text: &mut Vec<u8>, [op, lo, hi, value]: [u8; 4]) {
    if text.is_empty() {
        return;
    }
    let at = usize::from(u16::from_le_bytes([lo, hi])) % text.len();
    match op % 5 {
        0 => text[at] = value,
        1 => text.insert(at, value),
        2 => drop(text.remove(at)),
        3 => {
            let escaped = format!("%{:02X}", text[at]);
            text.splice(at..=at, escaped.into_bytes());
        }
        _ => {
            text[at] = if text[at].is_ascii_lowercase() {
                text[at].to_ascii_uppercase()
            } else {
                text[at].to_ascii_lowercase()
            }
        }
    }
}

/// Reads bytes from the front, yielding zeros once the input runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}
