//! Building tokens byte-for-byte like the official SDKs, and holding tokens given by users.

use std::fmt;

use super::encode::encode_component;
use super::parse::ParsedSas;
use crate::error::SasError;
use crate::key::SharedAccessKey;

/// A complete `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` token.
///
/// The text is a bearer secret: `Debug` and `Display` show `sr`, `se` and `skn` but never `sig`;
/// [`SasToken::as_str`] is the explicit way to the full text.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    text: String,
    parsed: ParsedSas,
}

impl SasToken {
    /// Signs `resource_uri` (unencoded, e.g. `myhub.azure-devices.net/devices/device1`) the way
    /// the Python SDK does, field order `sr, sig, se, skn`:
    /// `sr` = resource percent-encoded (unreserved `A-Za-z0-9-._~` kept, upper-case hex),
    /// `sig` = percent-encoded `base64(HMAC-SHA256(key, sr + "\n" + se))`,
    /// `skn` = percent-encoded policy name when given.
    pub fn generate(
        resource_uri: &str,
        key: &SharedAccessKey,
        policy_name: Option<&str>,
        expires_at_unix: u64,
    ) -> SasToken {
        let sr = encode_component(resource_uri);
        let se = expires_at_unix.to_string();
        let mac = key.mac(format!("{sr}\n{se}").as_bytes());
        let sig = encode_component(&base64_encode(&mac));
        let mut text = format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}");
        if let Some(policy) = policy_name {
            text.push_str("&skn=");
            text.push_str(&encode_component(policy));
        }
        SasToken {
            text,
            parsed: ParsedSas {
                sr_raw: sr,
                sr_decoded: resource_uri.to_owned(),
                sig: mac.to_vec(),
                se_raw: se,
                se: expires_at_unix,
                skn: policy_name.filter(|p| !p.is_empty()).map(str::to_owned),
            },
        }
    }

    /// Accepts a token produced elsewhere (e.g. the `SharedAccessSignature=` of a device
    /// connection string). Same rules as [`ParsedSas::parse`]; surrounding whitespace dropped.
    pub fn parse(s: &str) -> Result<SasToken, SasError> {
        let parsed = ParsedSas::parse(s)?;
        Ok(SasToken {
            text: s.trim().to_owned(),
            parsed,
        })
    }

    /// The full token text, signature included: what goes into an `Authorization` header or
    /// MQTT password. Treat it as a secret.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `se`: expiry in seconds since the Unix epoch.
    pub fn expires_at_unix(&self) -> u64 {
        self.parsed.se
    }

    /// The token's resource, percent-decoded.
    pub fn resource(&self) -> &str {
        self.parsed.resource()
    }

    /// The `skn` policy name, if any.
    pub fn policy_name(&self) -> Option<&str> {
        self.parsed.policy_name()
    }

    /// The token's fields, for verification or scope checks.
    pub fn parsed(&self) -> &ParsedSas {
        &self.parsed
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl fmt::Display for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedAccessSignature sr={}&sig=<redacted>&se={}",
            self.parsed.sr_raw, self.parsed.se_raw
        )?;
        if let Some(policy) = &self.parsed.skn {
            write!(f, "&skn={}", encode_component(policy))?;
        }
        Ok(())
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("sr", &self.parsed.sr_raw)
            .field("se", &self.parsed.se)
            .field("skn", &self.parsed.skn)
            .field("sig", &"<redacted>")
            .finish()
    }
}
