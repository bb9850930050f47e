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
    /// Twin content and counters.
    pub twin: TwinState,
    /// Connection state is not durable: after a restart every device is disconnected.
    #[serde(skip)]
    pub connection: ConnectionInfo,
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

impl DeviceRecord {
    /// The identity etag: base64 of the ASCII decimal counter (ARCHITECTURE.md#wire-facts).
    pub fn etag(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.etag_counter.to_string())
    }

    fn status(&self) -> &'static str {
        if self.enabled {
            "enabled"
        } else {
            "disabled"
        }
    }

    fn connection_state(&self) -> &'static str {
        if self.connection.connected {
            "Connected"
        } else {
            "Disconnected"
        }
    }

    /// The device-identity JSON of `GET /devices/{id}` (ARCHITECTURE.md#service-rest-api).
    pub fn identity_json(&self) -> Value {
        let never = || clock::DEVICE_NEVER.to_string();
        let symmetric = match &self.authentication {
            Authentication::Sas { primary, secondary } => json!({
                "primaryKey": primary.expose_base64(),
                "secondaryKey": secondary.expose_base64(),
            }),
            _ => json!({"primaryKey": null, "secondaryKey": null}),
        };
        json!({
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.etag(),
            "connectionState": self.connection_state(),
            "status": self.status(),
            "statusReason": self.status_reason,
            "connectionStateUpdatedTime": self.connection.state_updated_time.clone().unwrap_or_else(never),
            "statusUpdatedTime": self.status_updated_time.clone().unwrap_or_else(never),
            "lastActivityTime": self.connection.last_activity_time.clone().unwrap_or_else(never),
            "cloudToDeviceMessageCount": 0,
            "authentication": {
                "symmetricKey": symmetric,
                "x509Thumbprint": self.authentication.thumbprints(),
                "type": self.authentication.type_name(),
            },
            "capabilities": {"iotEdge": self.iot_edge},
            "deviceScope": null,
            "parentScopes": [],
        })
    }

    /// The twin document of `GET /twins/{id}` and of `SELECT * FROM devices`
    /// (ARCHITECTURE.md#service-rest-api).
    pub fn twin_json(&self) -> Value {
        let never = || clock::TWIN_NEVER.to_string();
        let mut doc = Map::new();
        doc.insert("deviceId".into(), json!(self.device_id));
        doc.insert("etag".into(), json!(self.twin.etag_string()));
        doc.insert("deviceEtag".into(), json!(self.etag()));
        doc.insert("status".into(), json!(self.status()));
        doc.insert(
            "statusUpdateTime".into(),
            json!(self.status_updated_time.clone().unwrap_or_else(never)),
        );
        doc.insert("connectionState".into(), json!(self.connection_state()));
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
        doc.insert("capabilities".into(), json!({"iotEdge": self.iot_edge}));
        Value::Object(doc)
    }
}
