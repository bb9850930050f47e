//! The `Authorization` header value, cached and renewed before the token expires.
//!
//! Signing is cheap, but reusing one token keeps every request of a run consistent and
//! matches what the SDKs do; renewing early leaves room for clock skew and slow requests.

use std::sync::Mutex;
use std::time::Duration;

use iothub_auth::ServiceConnectionString;
use reqwest::header::HeaderValue;

use crate::error::ServiceError;

pub(crate) struct SasCache {
    connection: ServiceConnectionString,
    ttl: Duration,
    /// Renew when fewer than this many seconds remain.
    renew_before: u64,
    cached: Mutex<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    header: HeaderValue,
    expires_at: u64,
}

impl SasCache {
    pub(crate) fn new(connection: ServiceConnectionString, ttl: Duration) -> Self {
        // A fifth of the lifetime, at most five minutes: a 1 h token is renewed 5 min early,
        // a 10 s test token 2 s early.
        let renew_before = (ttl.as_secs() / 5).min(300);
        SasCache {
            connection,
            ttl,
            renew_before,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn header(&self) -> Result<HeaderValue, ServiceError> {
        self.header_at(iothub_auth::unix_now())
    }

    fn header_at(&self, now: u64) -> Result<HeaderValue, ServiceError> {
        // A poisoned lock only means another thread panicked while swapping an Option;
        // the data is still a valid cache entry or None.
        let mut guard = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = guard.as_ref() {
            if cached.expires_at > now.saturating_add(self.renew_before) {
                return Ok(cached.header.clone());
            }
        }
        let token = self.connection.sas_token(self.ttl);
        let mut header = HeaderValue::from_str(token.as_str()).map_err(|_| {
            // Never include the token text: it is the credential.
            ServiceError::Build("the SAS token is not a valid header value".into())
        })?;
        header.set_sensitive(true);
        tracing::debug!(
            expires_at = token.expires_at_unix(),
            "signed a new SAS token"
        );
        *guard = Some(Cached {
            header: header.clone(),
            expires_at: token.expires_at_unix(),
        });
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_auth::SharedAccessKey;

    fn cache(ttl: Duration) -> SasCache {
        let cs = ServiceConnectionString::new(
            "hub.example:8443".to_owned(),
            "iothubowner".to_owned(),
            SharedAccessKey::generate(),
        );
        SasCache::new(cs, ttl)
    }

    fn plant(c: &SasCache, text: &'static str, expires_at: u64) {
        *c.cached.lock().unwrap() = Some(Cached {
            header: HeaderValue::from_static(text),
            expires_at,
        });
    }

    #[test]
    fn reuses_token_while_fresh() {
        let c = cache(Duration::from_secs(3600));
        let now = iothub_auth::unix_now();
        let first = c.header_at(now).unwrap();
        assert!(first.is_sensitive());
        assert!(first
            .to_str()
            .unwrap()
            .starts_with("SharedAccessSignature "));
        assert_eq!(c.header_at(now + 60).unwrap(), first);
        plant(&c, "planted", now + 1000);
        assert_eq!(c.header_at(now).unwrap(), "planted");
    }

    #[test]
    fn renews_inside_the_window_and_after_expiry() {
        let c = cache(Duration::from_secs(3600));
        let now = iothub_auth::unix_now();
        // 4 minutes left is inside the 5 minute renewal window
        plant(&c, "stale", now + 240);
        let renewed = c.header_at(now).unwrap();
        assert_ne!(renewed, "stale");
        assert!(renewed
            .to_str()
            .unwrap()
            .starts_with("SharedAccessSignature "));
        plant(&c, "expired", now - 1);
        assert_ne!(c.header_at(now).unwrap(), "expired");
    }

    #[test]
    fn short_ttl_renews_early() {
        let c = cache(Duration::from_secs(10));
        assert_eq!(c.renew_before, 2);
    }
}
