//! `HostName=…;DeviceId=…[;ModuleId=…];SharedAccessKey=…|SharedAccessSignature=…[;GatewayHostName=…]`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::segments::{Field, Segments};
use super::{split_host_port, validate};
use crate::clock::unix_now;
use crate::error::{ConnectionStringError, ConnectionStringKind, SasError};
use crate::key::SharedAccessKey;
use crate::sas::SasToken;

/// How a device proves its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCredential {
    /// The device's own key; tokens are signed locally as needed.
    SharedAccessKey(SharedAccessKey),
    /// A token made elsewhere; usable until it expires, then the user must supply a new one.
    SharedAccessSignature(SasToken),
}

/// A device (or module) connection string. `Display` and `Debug` redact the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConnectionString {
    /// Hub host name, possibly with `:port`; the identity in the MQTT username and the SAS `sr`.
    pub host_name: String,
    /// The device id.
    pub device_id: String,
    /// The module id, for module identities.
    pub module_id: Option<String>,
    /// Where to open the connection instead of `host_name` (an edge gateway, or an emulator
    /// standing in for a real hub name).
    pub gateway_host_name: Option<String>,
    /// Field or token.
    pub credential: DeviceCredential,
}

impl DeviceConnectionString {
    /// A key-based device connection string (no module, no gateway).
    pub fn with_key(
        host_name: impl Into<String>,
        device_id: impl Into<String>,
        key: SharedAccessKey,
    ) -> Self {
        Self {
            host_name: host_name.into(),
            device_id: device_id.into(),
            module_id: None,
            gateway_host_name: None,
            credential: DeviceCredential::SharedAccessKey(key),
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

    /// `{host_name}/devices/{device_id}[/modules/{module_id}]`, unencoded: the SAS resource.
    pub fn resource_uri(&self) -> String {
        match &self.module_id {
            Some(module) => format!(
                "{}/devices/{}/modules/{}",
                self.host_name, self.device_id, module
            ),
            None => format!("{}/devices/{}", self.host_name, self.device_id),
        }
    }

    /// A token for this identity valid for `ttl`: signed now with a key credential, or the
    /// given token if it has not expired yet.
    pub fn sas_token(&self, ttl: Duration) -> Result<SasToken, SasError> {
        let now = unix_now();
        // A token credential ignores the requested expiry, so one call covers both kinds.
        self.sas_token_expiring_at(now.saturating_add(ttl.as_secs()), now)
    }

    /// [`DeviceConnectionString::sas_token`] with an explicit clock: a key credential signs a
    /// token expiring at `expires_at_unix`; a token credential is returned unless it expired
    /// before `now_unix` (its own expiry wins; `expires_at_unix` is ignored).
    pub fn sas_token_expiring_at(
        &self,
        expires_at_unix: u64,
        now_unix: u64,
    ) -> Result<SasToken, SasError> {
        match &self.credential {
            DeviceCredential::SharedAccessKey(key) => Ok(SasToken::generate(
                &self.resource_uri(),
                key,
                None,
                expires_at_unix,
            )),
            DeviceCredential::SharedAccessSignature(token) => {
                token.parsed().check_not_expired(now_unix)?;
                Ok(token.clone())
            }
        }
    }

    /// The connection string including the secret, in canonical key order; parses back to
    /// `self`.
    pub fn expose_connection_string(&self) -> String {
        let secret = match &self.credential {
            DeviceCredential::SharedAccessKey(key) => {
                format!("SharedAccessKey={}", key.expose_base64())
            }
            DeviceCredential::SharedAccessSignature(token) => {
                format!("SharedAccessSignature={}", token.as_str())
            }
        };
        self.render(&secret)
    }

    /// Shared by `Display` (secret redacted) and `expose_connection_string`.
    fn render(&self, credential_segment: &str) -> String {
        let mut text = format!("HostName={};DeviceId={}", self.host_name, self.device_id);
        if let Some(module) = &self.module_id {
            text.push_str(";ModuleId=");
            text.push_str(module);
        }
        text.push(';');
        text.push_str(credential_segment);
        if let Some(gateway) = &self.gateway_host_name {
            text.push_str(";GatewayHostName=");
            text.push_str(gateway);
        }
        text
    }
}

impl FromStr for DeviceConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let segments = Segments::split(s)?;
        segments.reject_x509()?;
        if segments.has(Field::SharedAccessKeyName) {
            return Err(if segments.has(Field::DeviceId) {
                // Policy-signed device tokens exist in C#, but the MQTT side here signs with the
                // device's own key only.
                ConnectionStringError::NotAllowed {
                    field: "SharedAccessKeyName",
                    kind: ConnectionStringKind::Device,
                }
            } else {
                ConnectionStringError::WrongKind {
                    given: ConnectionStringKind::Service,
                    needed: ConnectionStringKind::Device,
                }
            });
        }
        let host_name = segments.require(Field::HostName)?;
        validate::host_name("HostName", host_name)?;
        let device_id = segments.require(Field::DeviceId)?;
        validate::identity("DeviceId", device_id)?;
        let module_id = segments.get(Field::ModuleId);
        if let Some(module) = module_id {
            validate::identity("ModuleId", module)?;
        }
        let gateway_host_name = segments.get(Field::GatewayHostName);
        if let Some(gateway) = gateway_host_name {
            validate::host_name("GatewayHostName", gateway)?;
        }
        let credential = match (
            segments.get(Field::SharedAccessKey),
            segments.get(Field::SharedAccessSignature),
        ) {
            (Some(_), Some(_)) => return Err(ConnectionStringError::BothCredentials),
            (None, None) => return Err(ConnectionStringError::MissingCredential),
            (Some(key), None) => DeviceCredential::SharedAccessKey(
                SharedAccessKey::from_base64(key).map_err(ConnectionStringError::InvalidKey)?,
            ),
            (None, Some(token)) => DeviceCredential::SharedAccessSignature(
                SasToken::parse(token).map_err(ConnectionStringError::InvalidSignature)?,
            ),
        };
        let parsed = Self {
            host_name: host_name.to_owned(),
            device_id: device_id.to_owned(),
            module_id: module_id.map(str::to_owned),
            gateway_host_name: gateway_host_name.map(str::to_owned),
            credential,
        };
        if let DeviceCredential::SharedAccessSignature(token) = &parsed.credential {
            if !token.parsed().covers(&parsed.resource_uri()) {
                return Err(ConnectionStringError::InvalidValue {
                    field: "SharedAccessSignature",
                    reason: "its sr does not cover this HostName/DeviceId/ModuleId",
                });
            }
        }
        Ok(parsed)
    }
}

impl fmt::Display for DeviceConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = match &self.credential {
            DeviceCredential::SharedAccessKey(_) => "SharedAccessKey=<redacted>",
            DeviceCredential::SharedAccessSignature(_) => "SharedAccessSignature=<redacted>",
        };
        f.write_str(&self.render(secret))
    }
}
