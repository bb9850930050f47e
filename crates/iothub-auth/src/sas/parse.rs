//! Reading a `SharedAccessSignature …` header or MQTT password into its fields.
//!
//! Tolerant where the official SDKs differ (field order, field-name case, `sr` encoded or raw,
//! `sig` hex case, an empty `skn`), strict about everything else (unknown or duplicate fields,
//! non-numeric `se`, undecodable `sig`).

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use percent_encoding::percent_decode_str;

use crate::error::SasError;

/// Scheme word that starts every token.
const SCHEME: &str = "SharedAccessSignature";

/// Longest decimal `se` accepted (`u64::MAX` has 20 digits).
const MAX_SE_DIGITS: usize = 20;

/// Signatures are compared as bytes, so how the sender padded its base64 does not matter.
const SIG_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A SAS token taken apart for verification.
///
/// `sr` is kept exactly as transmitted because the signature covers that text (the C SDK sends
/// it unencoded, the others percent-encoded with either hex case); it is decoded only for the
/// scope check. `Debug` never shows the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedSas {
    pub(crate) sr_raw: String,
    pub(crate) sr_decoded: String,
    pub(crate) sig: Vec<u8>,
    pub(crate) se_raw: String,
    pub(crate) se: u64,
    pub(crate) skn: Option<String>,
}

impl ParsedSas {
    /// Parses `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]`, fields in any order, field names
    /// case-insensitive, surrounding whitespace ignored. The scheme word itself is matched
    /// case-insensitively (HTTP auth schemes are).
    pub fn parse(header_or_password: &str) -> Result<ParsedSas, SasError> {
        let text = header_or_password.trim();
        let body = strip_scheme(text)?;
        let mut sr = None;
        let mut sig = None;
        let mut se = None;
        let mut skn = None;
        let mut index = 0;
        for field in body.split('&') {
            // `&&` or a trailing `&` carries nothing; skipping it is harmless because the
            // signature covers `sr` and `se` only.
            if field.is_empty() {
                continue;
            }
            index += 1;
            let (name, value) = field
                .split_once('=')
                .ok_or_else(|| malformed(format!("field {index} is not name=value")))?;
            let slot = match name.to_ascii_lowercase().as_str() {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                _ => return Err(unknown_field(index, name)),
            };
            if slot.is_some() {
                return Err(malformed(format!(
                    "duplicate field '{}'",
                    name.to_ascii_lowercase()
                )));
            }
            *slot = Some(value);
        }
        let sr_raw = sr.ok_or_else(|| malformed("missing field 'sr'"))?;
        let sig = sig.ok_or_else(|| malformed("missing field 'sig'"))?;
        let se_raw = se.ok_or_else(|| malformed("missing field 'se'"))?;
        Ok(ParsedSas {
            sr_decoded: decode_sr(sr_raw)?,
            sr_raw: sr_raw.to_owned(),
            sig: decode_sig(sig)?,
            se: parse_se(se_raw)?,
            se_raw: se_raw.to_owned(),
            skn: skn.map(decode_skn).transpose()?.filter(|s| !s.is_empty()),
        })
    }

    /// The `skn` field (percent-decoded): the shared access policy whose key signed the token.
    /// `None` for device tokens. Not covered by the signature, see
    /// [`ParsedSas::verify_signature`].
    pub fn policy_name(&self) -> Option<&str> {
        self.skn.as_deref()
    }

    /// The `se` field: expiry in seconds since the Unix epoch.
    pub fn expires_at_unix(&self) -> u64 {
        self.se
    }

    /// The `sr` field, percent-decoded (e.g. `myhub.azure-devices.net/devices/device1`).
    pub fn resource(&self) -> &str {
        &self.sr_decoded
    }

    /// The `sr` field exactly as transmitted (what the signature covers).
    pub fn resource_as_sent(&self) -> &str {
        &self.sr_raw
    }
}

impl fmt::Debug for ParsedSas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedSas")
            .field("sr", &self.sr_raw)
            .field("se", &self.se)
            .field("skn", &self.skn)
            .field("sig", &"<redacted>")
            .finish()
    }
}

fn malformed(message: impl Into<String>) -> SasError {
    SasError::Malformed(message.into())
}

/// Returns the text after `SharedAccessSignature` and its separating whitespace.
fn strip_scheme(text: &str) -> Result<&str, SasError> {
    let scheme_matches = text
        .get(..SCHEME.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(SCHEME));
    if !scheme_matches {
        return Err(malformed("it does not start with 'SharedAccessSignature '"));
    }
    let rest = &text[SCHEME.len()..];
    if !rest.starts_with(char::is_whitespace) {
        return Err(malformed(
            "expected a space between 'SharedAccessSignature' and the fields",
        ));
    }
    Ok(rest.trim_start())
}

/// Names an unknown field only when the name is short and plain; anything else could be a
/// fragment of a signature and is not echoed.
fn unknown_field(index: usize, name: &str) -> SasError {
    let printable = !name.is_empty()
        && name.len() <= 16
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if printable {
        malformed(format!(
            "unknown field '{name}' (expected sr, sig, se and optionally skn)"
        ))
    } else {
        malformed(format!(
            "field {index} has an unknown name (expected sr, sig, se and optionally skn)"
        ))
    }
}

fn decode_sr(raw: &str) -> Result<String, SasError> {
    if raw.is_empty() {
        return Err(malformed("field 'sr' is empty"));
    }
    percent_decode_utf8("sr", raw)
}

fn decode_sig(raw: &str) -> Result<Vec<u8>, SasError> {
    if raw.is_empty() {
        return Err(malformed("field 'sig' is empty"));
    }
    let text = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| malformed("field 'sig' is not percent-encoded base64"))?;
    // Base64 has no spaces, so a space is a `+` that went through form-decoding somewhere.
    let text = text.replace(' ', "+");
    SIG_BASE64
        .decode(text.as_bytes())
        .map_err(|_| malformed("field 'sig' is not percent-encoded base64"))
}

fn parse_se(raw: &str) -> Result<u64, SasError> {
    // `u64::from_str` alone would also accept a leading `+`, which no SDK sends.
    let digits_only =
        !raw.is_empty() && raw.len() <= MAX_SE_DIGITS && raw.bytes().all(|b| b.is_ascii_digit());
    let value = digits_only.then(|| raw.parse::<u64>().ok()).flatten();
    value.ok_or_else(|| malformed("field 'se' is not a whole number of seconds since 1970"))
}

fn decode_skn(raw: &str) -> Result<String, SasError> {
    percent_decode_utf8("skn", raw)
}

fn percent_decode_utf8(field: &str, raw: &str) -> Result<String, SasError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            malformed(format!(
                "field '{field}' is not UTF-8 after percent-decoding"
            ))
        })
}
