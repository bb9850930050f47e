//! `connection_string`: the device and service connection-string parsers.
//!
//! Invariants: nothing panics; `Display` and `Debug` of a parsed string, and of the tokens
//! it signs, never show its key or signature; an error message never shows a 16-character
//! fragment of the input's `SharedAccessKey` (or token signature); a parsed string's
//! `expose_connection_string` parses back to the same value; a token signed from a key
//! credential verifies with that key.

use std::fmt::Debug;

use iothub_auth::{DeviceConnectionString, DeviceCredential, ParsedSas, ServiceConnectionString};

use crate::secrets::{assert_no_leak, field_values};

/// A fixed expiry for signing, so the target does not depend on the clock.
const EXPIRES_AT: u64 = 1_700_000_000;

/// The `connection_string` target.
pub fn connection_string(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let mut secrets = field_values(text, "SharedAccessKey", &[';'], false);
    secrets.extend(field_values(text, "sig", &[';', '&'], true));
    let check = |what: &str, shown: &str| {
        for secret in &secrets {
            assert_no_leak(what, shown, secret, text);
        }
    };

    match text.parse::<DeviceConnectionString>() {
        Ok(device) => {
            check_shown(&check, "device connection string", &device);
            let exposed = device.expose_connection_string();
            assert_eq!(
                exposed.parse::<DeviceConnectionString>().as_ref(),
                Ok(&device),
                "{text:?}: the exposed string does not parse back"
            );
            let token = device
                .sas_token_expiring_at(EXPIRES_AT, 0)
                .unwrap_or_else(|e| panic!("{text:?}: no token at time 0: {e}"));
            check_shown(&check, "device token", &token);
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
        Err(e) => check_error(&check, &e),
    }

    match text.parse::<ServiceConnectionString>() {
        Ok(service) => {
            check_shown(&check, "service connection string", &service);
            let exposed = service.expose_connection_string();
            assert_eq!(
                exposed.parse::<ServiceConnectionString>().as_ref(),
                Ok(&service),
                "{text:?}: the exposed string does not parse back"
            );
            let token = service.sas_token_expiring_at(EXPIRES_AT);
            check_shown(&check, "service token", &token);
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
        Err(e) => check_error(&check, &e),
    }
}

/// `Display`, `Debug` and pretty `Debug` of a value holding secrets.
fn check_shown<T: std::fmt::Display + Debug>(check: &impl Fn(&str, &str), what: &str, value: &T) {
    check(what, &value.to_string());
    check(what, &format!("{value:?}"));
    check(what, &format!("{value:#?}"));
}

/// An error's message, its sources' messages, and its `Debug`.
fn check_error(check: &impl Fn(&str, &str), error: &(dyn std::error::Error + 'static)) {
    check("error", &format!("{error:?}"));
    let mut next = Some(error);
    while let Some(e) = next {
        check("error message", &e.to_string());
        next = e.source();
    }
}
