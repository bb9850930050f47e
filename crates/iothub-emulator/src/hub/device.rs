//! A registered device: identity (keys, status, etag, generation id), its twin state, and its
//! connection state; plus the two JSON views of it (device identity, twin document).

use base64::Engine as _;
use iothub_auth::SharedAccessKey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::clock;
use super::twin::TwinState;

/// How a device authenticates (the identity's `authentication`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Authentication {
    /// Symmetric keys; SAS tokens signed with either are accepted.
    #[serde(rename = "sas")]
    Sas {
        /// Primary key.
        #[serde(with = "key_serde")]
        primary: SharedAccessKey,
        /// Secondary key.
        #[serde(with = "key_serde")]
        secondary: SharedAccessKey,
    },
    /// X.509 self-signed, identified by thumbprints (stored and echoed; not verified here).
    #[serde(rename = "selfSigned")]
    SelfSigned {
        /// Primary certificate thumbprint.
        primary_thumbprint: Option<String>,
        /// Secondary certificate thumbprint.
        secondary_thumbprint: Option<String>,
    },
    /// X.509 CA-signed.
    #[serde(rename = "certificateAuthority")]
    CertificateAuthority,
    /// No credentials.
    #[serde(rename = "none")]
    None,
}

impl Authentication {
    /// The wire name of the authentication type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Authentication::Sas { .. } => "sas",
            Authentication::SelfSigned { .. } => "selfSigned",
            Authentication::CertificateAuthority => "certificateAuthority",
            Authentication::None => "none",
        }
    }

    /// The identity JSON's `authentication` member (keys included: only registry readers see it).
    pub(super) fn identity_json(&self) -> Value {
        let symmetric = match self {
            Authentication::Sas { primary, secondary } => json!({
                "primaryKey": primary.expose_base64(),
                "secondaryKey": secondary.expose_base64(),
            }),
            _ => json!({"primaryKey": null, "secondaryKey": null}),
        };
        json!({
            "symmetricKey": symmetric,
            "x509Thumbprint": self.thumbprints(),
            "type": self.type_name(),
        })
    }

    fn thumbprints(&self) -> Value {
        match self {
            Authentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            } => {
                json!({"primaryThumbprint": primary_thumbprint, "secondaryThumbprint": secondary_thumbprint})
            }
            _ => json!({"primaryThumbprint": null, "secondaryThumbprint": null}),
        }
    }
}

/// Keys are persisted as their base64 text; the in-memory type keeps them redacted.
mod key_serde {
    use iothub_auth::SharedAccessKey;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &SharedAccessKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(key.expose_base64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SharedAccessKey, D::Error> {
        let text = String::deserialize(d)?;
        SharedAccessKey::from_base64(&text)
            .map_err(|_| serde::de::Error::custom("stored device key is not valid base64"))
    }
}

/// An identity etag (device or module): base64 of the ASCII decimal counter
/// (ARCHITECTURE.md#wire-facts).
pub(super) fn identity_etag(counter: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(counter.to_string())
}

/// Everything the hub knows about one device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Case-sensitive device id.
    pub device_id: String,
    /// Distinguishes re-created devices of the same id (.NET ticks at creation, like the hub).
    pub generation_id: String,
    /// Identity etag counter (hub-wide monotonic, so a re-created device never reuses one).
    pub etag_counter: u64,
    /// `true` = "enabled".
    pub enabled: bool,
    /// Free-text reason for the status.
    pub status_reason: Option<String>,
    /// When `status` last changed (`None` = never).
    pub status_updated_time: Option<String>,
    /// Credentials.
    pub authentication: Authentication,
    /// `capabilities.iotEdge`.
    pub iot_edge: bool,
    /// `deviceScope`: an Edge device's own scope, or a leaf device's parent's.
    #[serde(default)]
    pub device_scope: Option<String>,
    /// `parentScopes`: the parent's scope, if the device has a parent.
    #[serde(default)]
    pub parent_scopes: Vec<String>,
    /// Twin content and counters.
    pub twin: TwinState,
    /// Connection state is not durable: after a restart every device is disconnected.
    #[serde(skip)]
    pub connection: ConnectionInfo,
}

impl super::TwinRecord for DeviceRecord {
    fn twin_json(&self) -> Value {
        DeviceRecord::twin_json(self)
    }
}

/// Live connection state, fed by the MQTT endpoint.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// `connectionState` = "Connected".
    pub connected: bool,
    /// `connectionStateUpdatedTime`.
    pub state_updated_time: Option<String>,
    /// `lastActivityTime`.
    pub last_activity_time: Option<String>,
    /// Number of the last connection-state report recorded (see `Hub::set_connected`).
    pub state_seq: u64,
}

impl ConnectionInfo {
    /// `connectionState`.
    pub(super) fn state_name(&self) -> &'static str {
        if self.connected {
            "Connected"
        } else {
            "Disconnected"
        }
    }
}

/// What a twin document shows of its identity: the members device and module twins share, in
/// the hub's order (ARCHITECTURE.md#service-rest-api).
pub(super) struct TwinHeader<'a> {
    /// Device id.
    pub device_id: &'a str,
    /// Module id, for a module twin (written right after `deviceId`).
    pub module_id: Option<&'a str>,
    /// The identity etag (`deviceEtag`).
    pub identity_etag: String,
    /// `status`.
    pub status: &'static str,
    /// When the status last changed.
    pub status_updated_time: Option<&'a str>,
    /// Connection state.
    pub connection: &'a ConnectionInfo,
    /// Credentials (`authenticationType`, `x509Thumbprint`).
    pub authentication: &'a Authentication,
    /// The twin itself.
    pub twin: &'a TwinState,
}

impl TwinHeader<'_> {
    /// The twin document up to and including `properties`.
    pub(super) fn render(&self) -> Map<String, Value> {
        let never = || clock::TWIN_NEVER.to_string();
        let mut doc = Map::new();
        doc.insert("deviceId".into(), json!(self.device_id));
        if let Some(module_id) = self.module_id {
            doc.insert("moduleId".into(), json!(module_id));
        }
        doc.insert("etag".into(), json!(self.twin.etag_string()));
        doc.insert("deviceEtag".into(), json!(self.identity_etag));
        doc.insert("status".into(), json!(self.status));
        doc.insert(
            "statusUpdateTime".into(),
            json!(self.status_updated_time.map_or_else(never, str::to_string)),
        );
        doc.insert(
            "connectionState".into(),
            json!(self.connection.state_name()),
        );
        doc.insert(
            "lastActivityTime".into(),
            json!(self
                .connection
                .last_activity_time
                .clone()
                .unwrap_or_else(never)),
        );
        doc.insert("cloudToDeviceMessageCount".into(), json!(0));
        doc.insert(
            "authenticationType".into(),
            json!(self.authentication.type_name()),
        );
        doc.insert("x509Thumbprint".into(), self.authentication.thumbprints());
        doc.insert("modelId".into(), json!(""));
        doc.insert("version".into(), json!(self.twin.version));
        // The hub omits an empty `tags` (ARCHITECTURE.md#wire-facts).
        if !self.twin.tags.is_empty() {
            doc.insert("tags".into(), Value::Object(self.twin.tags.clone()));
        }
        doc.insert(
            "properties".into(),
            json!({"desired": self.twin.desired.render(), "reported": self.twin.reported.render()}),
        );
        doc
    }
}

impl DeviceRecord {
    /// The identity etag: base64 of the ASCII decimal counter (ARCHITECTURE.md#wire-facts).
    pub fn etag(&self) -> String {
        identity_etag(self.etag_counter)
    }

    fn status(&self) -> &'static str {
        if self.enabled {
            "enabled"
        } else {
            "disabled"
        }
    }

    /// The device-identity JSON of `GET /devices/{id}` (ARCHITECTURE.md#service-rest-api).
    pub fn identity_json(&self) -> Value {
        let never = || clock::DEVICE_NEVER.to_string();
        json!({
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.etag(),
            "connectionState": self.connection.state_name(),
            "status": self.status(),
            "statusReason": self.status_reason,
            "connectionStateUpdatedTime": self.connection.state_updated_time.clone().unwrap_or_else(never),
            "statusUpdatedTime": self.status_updated_time.clone().unwrap_or_else(never),
            "lastActivityTime": self.connection.last_activity_time.clone().unwrap_or_else(never),
            "cloudToDeviceMessageCount": 0,
            "authentication": self.authentication.identity_json(),
            "capabilities": {"iotEdge": self.iot_edge},
            "deviceScope": self.device_scope,
            "parentScopes": self.parent_scopes,
        })
    }

    /// The twin document of `GET /twins/{id}` and of `SELECT * FROM devices`
    /// (ARCHITECTURE.md#service-rest-api).
    pub fn twin_json(&self) -> Value {
        let mut doc = TwinHeader {
            device_id: &self.device_id,
            module_id: None,
            identity_etag: self.etag(),
            status: self.status(),
            status_updated_time: self.status_updated_time.as_deref(),
            connection: &self.connection,
            authentication: &self.authentication,
            twin: &self.twin,
        }
        .render();
        doc.insert("capabilities".into(), json!({"iotEdge": self.iot_edge}));
        // Twins of Edge devices and of their children carry the scopes (queries such as
        // `array_contains(parentScopes, …)` list a parent's children).
        if self.device_scope.is_some() || !self.parent_scopes.is_empty() {
            doc.insert("deviceScope".into(), json!(self.device_scope));
            doc.insert("parentScopes".into(), json!(self.parent_scopes));
        }
        Value::Object(doc)
    }
}
