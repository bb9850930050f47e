//! `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`: a hub-level shared access policy.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::segments::{Field, Segments};
use super::{split_host_port, validate};
use crate::clock::unix_now;
use crate::error::{ConnectionStringError, ConnectionStringKind};
use crate::key::SharedAccessKey;
use crate::sas::SasToken;

/// A service (policy) connection string. `Display` and `Debug` redact the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConnectionString {
    /// Hub host name, possibly with `:port` (emulators on non-standard ports).
    pub host_name: String,
    /// The shared access policy, e.g. `iothubowner`.
    pub shared_access_key_name: String,
    /// The policy's key.
    pub shared_access_key: SharedAccessKey,
}

impl ServiceConnectionString {
    /// Builds one from parts (no validation: the parts are trusted, e.g. the emulator's own).
    pub fn new(
        host_name: impl Into<String>,
        key_name: impl Into<String>,
        key: SharedAccessKey,
    ) -> Self {
        Self {
            host_name: host_name.into(),
            shared_access_key_name: key_name.into(),
            shared_access_key: key,
        }
    }

    /// Host name without any `:port`.
    pub fn host(&self) -> &str {
        split_host_port(&self.host_name).0
    }

    /// The `:port` of the host name, if any.
    pub fn port(&self) -> Option<u16> {
        split_host_port(&self.host_name).1
    }

    /// A token valid for `ttl` from now, `sr` = the host name (port included, as the Python
    /// service SDK sends it), `skn` = the policy.
    pub fn sas_token(&self, ttl: Duration) -> SasToken {
        self.sas_token_expiring_at(unix_now().saturating_add(ttl.as_secs()))
    }

    /// Like [`ServiceConnectionString::sas_token`] with an explicit expiry (tests, replay).
    pub fn sas_token_expiring_at(&self, expires_at_unix: u64) -> SasToken {
        SasToken::generate(
            &self.host_name,
            &self.shared_access_key,
            Some(&self.shared_access_key_name),
            expires_at_unix,
        )
    }

    /// The connection string including the key, in canonical key order; parses back to `self`.
    pub fn expose_connection_string(&self) -> String {
        format!(
            "HostName={};SharedAccessKeyName={};SharedAccessKey={}",
            self.host_name,
            self.shared_access_key_name,
            self.shared_access_key.expose_base64()
        )
    }
}

impl FromStr for ServiceConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let segments = Segments::split(s)?;
        segments.reject_x509()?;
        if segments.has(Field::DeviceId) || segments.has(Field::ModuleId) {
            return Err(ConnectionStringError::WrongKind {
                given: ConnectionStringKind::Device,
                needed: ConnectionStringKind::Service,
            });
        }
        for key in [Field::SharedAccessSignature, Field::GatewayHostName] {
            if segments.has(key) {
                return Err(ConnectionStringError::NotAllowed {
                    field: key.name(),
                    kind: ConnectionStringKind::Service,
                });
            }
        }
        let host_name = segments.require(Field::HostName)?;
        validate::host_name("HostName", host_name)?;
        let key_name = segments.require(Field::SharedAccessKeyName)?;
        validate::policy_name("SharedAccessKeyName", key_name)?;
        let key = SharedAccessKey::from_base64(segments.require(Field::SharedAccessKey)?)
            .map_err(ConnectionStringError::InvalidKey)?;
        Ok(Self::new(host_name, key_name, key))
    }
}

impl fmt::Display for ServiceConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HostName={};SharedAccessKeyName={};SharedAccessKey=<redacted>",
            self.host_name, self.shared_access_key_name
        )
    }
}
