//! Device identities (`GET /devices/{id}`) and the summary derived from a twin.
//!
//! The identity's `authentication` member carries the device's keys; only its `type` is
//! kept, so keys never live in these structs, their Debug output or logs.

use serde::{Deserialize, Serialize};

/// A device identity as returned by `GET /devices/{id}`, without keys
/// (<https://learn.microsoft.com/rest/api/iothub/service/devices/get-identity>).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Device {
    /// Case-sensitive device ID.
    pub device_id: String,
    /// Distinguishes re-created devices with the same ID.
    #[serde(default)]
    pub generation_id: Option<String>,
    /// The identity's etag (not the twin's).
    #[serde(default)]
    pub etag: Option<String>,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Why the status was set, if anyone said.
    #[serde(default)]
    pub status_reason: Option<String>,
    /// `Connected` or `Disconnected`.
    #[serde(default)]
    pub connection_state: Option<String>,
    /// Timestamps are kept as sent: their format varies (with or without `Z`, 0–7
    /// fractional digits) and this client only displays them.
    #[serde(default)]
    pub connection_state_updated_time: Option<String>,
    /// See `connection_state_updated_time`.
    #[serde(default)]
    pub status_updated_time: Option<String>,
    /// See `connection_state_updated_time`.
    #[serde(default)]
    pub last_activity_time: Option<String>,
    /// Queued cloud-to-device messages.
    #[serde(default)]
    pub cloud_to_device_message_count: Option<u64>,
    /// `sas`, `selfSigned`, `certificateAuthority` or `none`.
    #[serde(default, rename = "authentication", deserialize_with = "auth_type")]
    pub authentication_type: Option<String>,
}

fn auth_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct AuthenticationTypeOnly {
        #[serde(rename = "type", default)]
        kind: Option<String>,
    }
    Ok(Option::<AuthenticationTypeOnly>::deserialize(d)?.and_then(|a| a.kind))
}

/// One line of the device listing, derived from a device twin (the listing pages through
/// `SELECT * FROM devices`, so it has the twin's members, not the identity's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeviceSummary {
    /// Case-sensitive device ID.
    pub device_id: String,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub status: Option<String>,
    /// `Connected` or `Disconnected`.
    #[serde(default)]
    pub connection_state: Option<String>,
    /// As sent by the hub.
    #[serde(default)]
    pub last_activity_time: Option<String>,
    /// `sas`, `selfSigned`, `certificateAuthority` or `none`.
    #[serde(default)]
    pub authentication_type: Option<String>,
    /// Queued cloud-to-device messages.
    #[serde(default)]
    pub cloud_to_device_message_count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_keeps_auth_type_but_not_keys() {
        let json = r#"{"deviceId":"d1","generationId":"6369","etag":"OTMz","connectionState":"Disconnected",
            "status":"enabled","statusReason":null,"connectionStateUpdatedTime":"0001-01-01T00:00:00",
            "statusUpdatedTime":"0001-01-01T00:00:00","lastActivityTime":"0001-01-01T00:00:00",
            "cloudToDeviceMessageCount":0,
            "authentication":{"symmetricKey":{"primaryKey":"mWO5BwVcGazLPWaM72g972iq7Yqk06qHMS+RRg1Z4Ss=","secondaryKey":"EFQY"},
              "x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"},
            "capabilities":{"iotEdge":false},"deviceScope":null,"parentScopes":[]}"#;
        let d: Device = serde_json::from_str(json).unwrap();
        assert_eq!(d.device_id, "d1");
        assert_eq!(d.authentication_type.as_deref(), Some("sas"));
        assert_eq!(d.status.as_deref(), Some("enabled"));
        assert!(!format!("{d:?}").contains("mWO5"));
    }

    #[test]
    fn device_tolerates_minimal_body() {
        let d: Device = serde_json::from_str(r#"{"deviceId":"d2","authentication":null}"#).unwrap();
        assert_eq!(d.authentication_type, None);
    }

    #[test]
    fn summary_from_twin() {
        let twin = r#"{"deviceId":"d1","etag":"AAAAAAAAAAE=","status":"enabled","connectionState":"Connected",
            "lastActivityTime":"2023-01-02T21:42:14.7050295Z","authenticationType":"sas","version":2,
            "properties":{"desired":{},"reported":{}}}"#;
        let s: DeviceSummary = serde_json::from_str(twin).unwrap();
        assert_eq!(s.connection_state.as_deref(), Some("Connected"));
        assert_eq!(s.authentication_type.as_deref(), Some("sas"));
    }
}
