//! Twin documents as the device sees them: the GET result and desired-property updates.

use serde_json::Value;

/// The device's view of its twin, as returned by a twin GET over MQTT
/// (`{"desired":{…,"$version":n},"reported":{…,"$version":m}}`; tags are not visible to devices).
#[derive(Debug, Clone, PartialEq)]
pub struct Twin {
    /// Desired properties, including `$version`.
    pub desired: Value,
    /// Reported properties, including `$version`.
    pub reported: Value,
}

impl Twin {
    /// Builds a twin from the GET response body; `None` when the body lacks either section.
    pub(crate) fn from_response(body: &Value) -> Option<Twin> {
        let desired = body.get("desired")?.clone();
        let reported = body.get("reported")?.clone();
        Some(Twin { desired, reported })
    }

    /// `desired.$version`, when the hub sent one (it always does).
    pub fn desired_version(&self) -> Option<u64> {
        self.desired.get("$version").and_then(Value::as_u64)
    }

    /// `reported.$version`, when the hub sent one (it always does).
    pub fn reported_version(&self) -> Option<u64> {
        self.reported.get("$version").and_then(Value::as_u64)
    }

    /// The twin as one JSON value, in the shape the hub sent it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "desired": self.desired, "reported": self.reported })
    }
}

/// What a [`DesiredUpdate`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredUpdateKind {
    /// A patch pushed by the hub while connected (`null` members were deleted).
    Patch,
    /// The complete desired document, fetched after a reconnect because its `$version` moved
    /// while the device was offline (the hub does not keep notifications for offline devices).
    Full,
}

/// One change of the desired properties, delivered by [`crate::DeviceClient::desired_updates`].
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredUpdate {
    /// Desired `$version` after this change.
    pub version: u64,
    /// Patch or complete document.
    pub kind: DesiredUpdateKind,
    /// The patch or the complete desired document (including `$version`).
    pub properties: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_versions() {
        let twin = Twin::from_response(&json!({
            "desired": {"a": 1, "$version": 12},
            "reported": {"$version": 123}
        }))
        .unwrap();
        assert_eq!(twin.desired_version(), Some(12));
        assert_eq!(twin.reported_version(), Some(123));
        assert_eq!(twin.to_json()["desired"]["a"], 1);
    }

    #[test]
    fn rejects_body_without_sections() {
        assert!(Twin::from_response(&json!({"desired": {}})).is_none());
        assert!(Twin::from_response(&json!([1])).is_none());
    }
}
