//! `connection_string`: the device and service connection-string parsers.
//!
//! Invariants: nothing panics; `Display` and `Debug` of a parsed string, and of the tokens
//! it signs, never show its key or signature; an error message never shows a 16-character
//! fragment of the input's `SharedAccessKey` (or token signature) value; a parsed string's
//! `expose_connection_string` parses back to the same value; a token signed from a key
//! credential verifies with that key.

use std::error::Error;
use std::fmt::{Debug, Display};

use iothub_auth::{DeviceConnectionString, DeviceCredential, ParsedSas, ServiceConnectionString};

use crate::secrets::{assert_no_leak, field_values, Secrets};

/// A fixed expiry for signing, so the target does not depend on the clock.
const EXPIRES_AT: u64 = 1_700_000_000;

/// The `connection_string` target.
pub fn connection_string(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let seen = shown(text);
    assert_no_leak(text, &secrets(text), &seen, shown);

    if let Ok(device) = text.parse::<DeviceConnectionString>() {
        let exposed = device.expose_connection_string();
        assert_eq!(
            exposed.parse::<DeviceConnectionString>().as_ref(),
            Ok(&device),
            "{text:?}: the exposed string does not parse back"
        );
        let token = device
            .sas_token_expiring_at(EXPIRES_AT, 0)
            .unwrap_or_else(|e| panic!("{text:?}: no token at time 0: {e}"));
        let parsed = ParsedSas::parse(token.as_str())
            .unwrap_or_else(|e| panic!("{text:?}: its own token does not parse: {e}"));
        assert_eq!(
            &parsed,
            token.parsed(),
            "{text:?}: token parses differently"
        );
        if let DeviceCredential::SharedAccessKey(key) = &device.credential {
            assert_eq!(
                parsed.verify_signature(&[key]),
                Ok(()),
                "{text:?}: own token"
            );
        }
    }

    if let Ok(service) = text.parse::<ServiceConnectionString>() {
        let exposed = service.expose_connection_string();
        assert_eq!(
            exposed.parse::<ServiceConnectionString>().as_ref(),
            Ok(&service),
            "{text:?}: the exposed string does not parse back"
        );
        let token = service.sas_token_expiring_at(EXPIRES_AT);
        let parsed = ParsedSas::parse(token.as_str())
            .unwrap_or_else(|e| panic!("{text:?}: its own token does not parse: {e}"));
        assert_eq!(
            parsed.verify_signature(&[&service.shared_access_key]),
            Ok(()),
            "{text:?}: own token"
        );
        assert_eq!(
            parsed.policy_name(),
            Some(service.shared_access_key_name.as_str())
        );
    }
}

/// The `SharedAccessKey` values and the `sig` of each `SharedAccessSignature` value (a
/// `sig=` elsewhere, say inside a module id, is ordinary text).
fn secrets(text: &str) -> Secrets {
    let mut secrets = field_values(text, "SharedAccessKey", &[';'], false);
    for token in field_values(text, "SharedAccessSignature", &[';'], false) {
        let sigs = field_values(&text[token.clone()], "sig", &['&'], true);
        secrets.extend(
            sigs.into_iter()
                .map(|s| s.start + token.start..s.end + token.start),
        );
    }
    secrets
}

/// Everything a user could be shown for `text`: both parsers' results (value or error) and
/// the tokens the parsed values sign.
fn shown(text: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match text.parse::<DeviceConnectionString>() {
        Ok(device) => {
            show(&mut out, "device connection string", &device);
            if let Ok(token) = device.sas_token_expiring_at(EXPIRES_AT, 0) {
                show(&mut out, "device token", &token);
            }
        }
        Err(e) => show_error(&mut out, &e),
    }
    match text.parse::<ServiceConnectionString>() {
        Ok(service) => {
            show(&mut out, "service connection string", &service);
            show(
                &mut out,
                "service token",
                &service.sas_token_expiring_at(EXPIRES_AT),
            );
        }
        Err(e) => show_error(&mut out, &e),
    }
    out
}

/// `Display`, `Debug` and pretty `Debug`.
fn show<T: Display + Debug>(out: &mut Vec<(&'static str, String)>, what: &'static str, value: &T) {
    out.push((what, value.to_string()));
    out.push((what, format!("{value:?}")));
    out.push((what, format!("{value:#?}")));
}

/// An error's `Debug`, its message and its sources' messages.
fn show_error(out: &mut Vec<(&'static str, String)>, error: &(dyn Error + 'static)) {
    out.push(("error Debug", format!("{error:?}")));
    let mut next = Some(error);
    while let Some(e) = next {
        out.push(("error message", e.to_string()));
        next = e.source();
    }
}
