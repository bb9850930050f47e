//! SAS tokens for the MQTT password: signing a fresh one per connection attempt and deciding
//! when to reconnect so the hub never closes the connection on an expired token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_auth::{DeviceConnectionString, DeviceCredential, SasError};

use crate::error::Error;

/// Never renew sooner than this after connecting.
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) struct Credentials {
    conn: DeviceConnectionString,
    ttl: Duration,
    margin: Duration,
    expires_at: u64,
}

impl Credentials {
    pub(crate) fn new(conn: DeviceConnectionString, ttl: Duration, margin: Duration) -> Self {
        Credentials {
            conn,
            ttl,
            margin,
            expires_at: 0,
        }
    }

    /// Whether the client can sign new tokens (a key), or only has a fixed token.
    pub(crate) fn renewable(&self) -> bool {
        matches!(self.conn.credential, DeviceCredential::SharedAccessKey(_))
    }

    /// A token for the next CONNECT. With a key it is freshly signed for `ttl`; a fixed token
    /// is returned while it is valid.
    pub(crate) fn token(&mut self) -> Result<String, Error> {
        let token = self.conn.sas_token(self.ttl).map_err(|e| match e {
            SasError::Expired { .. } => Error::TokenExpired,
            other => Error::Config(format!("cannot produce a SAS token: {other}")),
        })?;
        self.expires_at = token.expires_at_unix();
        Ok(token.as_str().to_owned())
    }

    /// How long before expiry the connection is renewed.
    pub(crate) fn margin(&self) -> Duration {
        self.margin
    }

    /// Expiry (Unix seconds) of the last token handed out.
    pub(crate) fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// How long from now until the connection should be renewed: `margin` before expiry.
    /// `None` for fixed tokens, which cannot be renewed.
    pub(crate) fn renew_in(&self) -> Option<Duration> {
        if !self.renewable() {
            return None;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let expiry = Duration::from_secs(self.expires_at);
        // `se` is whole seconds, so a tiny TTL can leave nothing before the margin; a floor keeps
        // that from turning into a reconnect loop.
        Some(
            expiry
                .saturating_sub(now)
                .saturating_sub(self.margin)
                .max(MIN_RENEW_INTERVAL),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_auth::SharedAccessKey;

    #[test]
    fn tiny_ttls_do_not_renew_in_a_loop() {
        let conn = DeviceConnectionString::with_key("h.net", "d", SharedAccessKey::generate());
        let mut c = Credentials::new(conn, Duration::from_secs(1), Duration::from_secs(1));
        c.token().unwrap();
        assert!(c.renew_in().unwrap() >= MIN_RENEW_INTERVAL);
    }

    #[test]
    fn key_tokens_are_fresh_and_renewed_before_expiry() {
        let conn = DeviceConnectionString::with_key("h.net", "d", SharedAccessKey::generate());
        let mut c = Credentials::new(conn, Duration::from_secs(5), Duration::from_secs(1));
        assert!(c.renewable());
        let token = c.token().unwrap();
        assert!(token.starts_with("SharedAccessSignature "));
        let now = iothub_auth::unix_now();
        assert!(c.expires_at() >= now + 4 && c.expires_at() <= now + 6);
        let renew = c.renew_in().unwrap();
        assert!(renew <= Duration::from_secs(4), "{renew:?}");
        assert!(renew >= Duration::from_secs(2), "{renew:?}");
    }
}
