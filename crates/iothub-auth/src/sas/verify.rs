//! Checking a parsed token: signature, expiry, scope.

use subtle::{Choice, ConstantTimeEq as _};

use super::parse::ParsedSas;
use super::scope::covers;
use crate::error::SasError;
use crate::key::SharedAccessKey;

impl ParsedSas {
    /// Accepts the token if any candidate key (typically a primary and a secondary) produced its
    /// signature: `HMAC-SHA256(key, sr_as_sent + "\n" + se_as_sent)`.
    ///
    /// `sr` is used exactly as transmitted, never re-encoded: SDKs differ in how they encode it
    /// and each signs its own form. The comparison runs in constant time and always tries every
    /// candidate, so timing reveals neither how much of the signature matched nor which key did.
    ///
    /// `skn` is **not** covered by the signature (no SDK signs it). It only tells the verifier
    /// which policy's keys to pass here; a forged `skn` therefore selects the wrong (or no)
    /// policy and fails this check, as long as the caller looks keys up by `skn` and by nothing
    /// the client could choose after signing.
    pub fn verify_signature(&self, candidate_keys: &[&SharedAccessKey]) -> Result<(), SasError> {
        let message = format!("{}\n{}", self.sr_raw, self.se_raw);
        let mut matched = Choice::from(0);
        for key in candidate_keys {
            matched |= key.mac(message.as_bytes()).as_slice().ct_eq(&self.sig);
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(SasError::BadSignature)
        }
    }

    /// Strict expiry check: the token is valid up to and including second `se`.
    ///
    /// There is deliberately no clock-skew allowance here (the C# SDK allows 5 minutes); a
    /// caller that wants one passes `now_unix.saturating_sub(skew)`.
    pub fn check_not_expired(&self, now_unix: u64) -> Result<(), SasError> {
        if now_unix > self.se {
            Err(SasError::Expired {
                expired_at: self.se,
            })
        } else {
            Ok(())
        }
    }

    /// Whether the token's resource covers `resource` (an unencoded resource URI such as
    /// `{host}/devices/{id}`): same host (ASCII case-insensitive, any `:port` ignored on both
    /// sides), and the token's path is a whole-segment prefix of the requested path, so
    /// `{host}/devices/a` covers `{host}/devices/a/modules/m` but not `{host}/devices/ab`, and a
    /// service token (`sr={host}`) covers everything on that host.
    pub fn covers(&self, resource: &str) -> bool {
        covers(&self.sr_decoded, resource)
    }

    /// [`ParsedSas::covers`] as a `Result`, for `?` chains.
    pub fn check_covers(&self, resource: &str) -> Result<(), SasError> {
        if self.covers(resource) {
            Ok(())
        } else {
            Err(SasError::OutOfScope {
                token_resource: self.sr_decoded.clone(),
                requested: resource.to_owned(),
            })
        }
    }

    /// Signature, then expiry, then scope: the full check an endpoint makes before serving
    /// `resource`.
    pub fn authorize(
        &self,
        candidate_keys: &[&SharedAccessKey],
        now_unix: u64,
        resource: &str,
    ) -> Result<(), SasError> {
        self.verify_signature(candidate_keys)?;
        self.check_not_expired(now_unix)?;
        self.check_covers(resource)
    }
}
