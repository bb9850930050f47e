//! Device twins (`/twins/{id}`), twin patches and `If-Match` preconditions.

use std::fmt;

use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::null_as_default;
use crate::error::ServiceError;

/// A device (or module) twin
/// (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins>). Members this
/// type does not name are kept in
/// `other`, so nothing the hub sent is lost when a twin is re-serialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Twin {
    /// Case-sensitive device ID.
    pub device_id: String,
    /// Present on module twins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// The twin's etag, unquoted (e.g. `AAAAAAAAAAE=`); pass it to [`IfMatch::Etag`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Twin version, bumped on every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// `enabled` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `Connected` or `Disconnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<String>,
    /// As sent by the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<String>,
    /// Service-side tags; the hub omits the member when there are none.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Map::is_empty"
    )]
    pub tags: Map<String, Value>,
    /// Desired and reported properties, each with `$metadata` and `$version`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: TwinProperties,
    /// Every other member (`deviceEtag`, `authenticationType`, `modelId`, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The two property sections of a twin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TwinProperties {
    /// Written by the service, read by the device.
    #[serde(default, deserialize_with = "null_as_default")]
    pub desired: Map<String, Value>,
    /// Written by the device.
    #[serde(default, deserialize_with = "null_as_default")]
    pub reported: Map<String, Value>,
}

impl TwinProperties {
    /// `properties.desired.$version`.
    pub fn desired_version(&self) -> Option<u64> {
        self.desired.get("$version").and_then(Value::as_u64)
    }

    /// `properties.reported.$version`.
    pub fn reported_version(&self) -> Option<u64> {
        self.reported.get("$version").and_then(Value::as_u64)
    }
}

impl Twin {
    /// Looks up a dotted path (`tags.location.plant`, `properties.reported.connectivity.type`)
    /// in the twin's JSON form.
    pub fn pointer(&self, dotted: &str) -> Option<Value> {
        let json = serde_json::to_value(self).ok()?;
        let mut current = &json;
        for segment in dotted.split('.') {
            current = current.get(segment)?;
        }
        Some(current.clone())
    }
}

/// What a twin PATCH (merge) or PUT (replace) sends: tags and/or desired properties.
/// Read-only members (`$metadata`, `$version`) are stripped from the desired section's root,
/// where clients that echo a fetched twin typically leave them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwinPatch {
    tags: Option<Map<String, Value>>,
    desired: Option<Map<String, Value>>,
}

impl TwinPatch {
    /// An empty patch.
    pub fn new() -> Self {
        TwinPatch::default()
    }

    /// Sets the tags section (merged by PATCH; `null` values delete keys).
    pub fn with_tags(mut self, tags: Map<String, Value>) -> Self {
        self.tags = Some(tags);
        self
    }

    /// Sets the desired-properties section.
    pub fn with_desired(mut self, mut desired: Map<String, Value>) -> Self {
        desired.remove("$metadata");
        desired.remove("$version");
        self.desired = Some(desired);
        self
    }

    /// Builds a patch from JSON values, each of which must be an object.
    ///
    /// # Errors
    /// [`ServiceError::NotAnObject`] naming the section that is not an object.
    pub fn from_json(tags: Option<Value>, desired: Option<Value>) -> Result<Self, ServiceError> {
        let mut patch = TwinPatch::new();
        if let Some(tags) = tags {
            patch = patch.with_tags(into_object(PatchSection::Tags, tags)?);
        }
        if let Some(desired) = desired {
            patch = patch.with_desired(into_object(PatchSection::Desired, desired)?);
        }
        Ok(patch)
    }

    /// The tags section, if set.
    pub fn tags(&self) -> Option<&Map<String, Value>> {
        self.tags.as_ref()
    }

    /// The desired section, if set.
    pub fn desired(&self) -> Option<&Map<String, Value>> {
        self.desired.as_ref()
    }

    /// True when neither section is set.
    pub fn is_empty(&self) -> bool {
        self.tags.is_none() && self.desired.is_none()
    }

    /// The request body: `{"tags":{…},"properties":{"desired":{…}}}` with unset sections
    /// omitted.
    pub fn to_body(&self) -> Value {
        let mut body = Map::new();
        if let Some(tags) = &self.tags {
            body.insert("tags".into(), Value::Object(tags.clone()));
        }
        if let Some(desired) = &self.desired {
            let mut props = Map::new();
            props.insert("desired".into(), Value::Object(desired.clone()));
            body.insert("properties".into(), Value::Object(props));
        }
        Value::Object(body)
    }
}

/// A section of a [`TwinPatch`], as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchSection {
    /// `tags`.
    Tags,
    /// `properties.desired`.
    Desired,
}

impl fmt::Display for PatchSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatchSection::Tags => "tags",
            PatchSection::Desired => "desired properties",
        })
    }
}

fn into_object(section: PatchSection, value: Value) -> Result<Map<String, Value>, ServiceError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ServiceError::NotAnObject {
            section,
            found: json_type(&other),
        }),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `If-Match` precondition of a twin write. On the wire it is always quoted
/// (`"*"` or `"AAAAAAAAAAE="`), the form C#, Python, Node and the CLI send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// Write whatever the current etag is.
    Any,
    /// Write only if the twin's etag is still this one (quotes and `W/` are accepted and
    /// normalised).
    Etag(String),
}

impl IfMatch {
    /// The header value, quoted.
    ///
    /// # Errors
    /// [`ServiceError::InvalidArgument`] for an empty etag or one containing `"` or
    /// control characters.
    pub fn header_value(&self) -> Result<HeaderValue, ServiceError> {
        let bare = match self {
            IfMatch::Any => "*",
            IfMatch::Etag(etag) => normalise_etag(etag),
        };
        if bare.is_empty() || bare.contains('"') || bare.chars().any(char::is_control) {
            return Err(ServiceError::InvalidArgument(format!(
                "etag {bare:?} is not a valid etag"
            )));
        }
        HeaderValue::from_str(&format!("\"{bare}\"")).map_err(|_| {
            ServiceError::InvalidArgument(format!("etag {bare:?} is not a valid etag"))
        })
    }
}

fn normalise_etag(etag: &str) -> &str {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn if_match_is_always_quoted() {
        assert_eq!(IfMatch::Any.header_value().unwrap(), "\"*\"");
        assert_eq!(
            IfMatch::Etag("AAAAAAAAAAE=".into()).header_value().unwrap(),
            "\"AAAAAAAAAAE=\""
        );
        assert_eq!(
            IfMatch::Etag("\"AAAAAAAAAAE=\"".into())
                .header_value()
                .unwrap(),
            "\"AAAAAAAAAAE=\""
        );
        assert_eq!(
            IfMatch::Etag("W/\"abc\"".into()).header_value().unwrap(),
            "\"abc\""
        );
        assert!(IfMatch::Etag("".into()).header_value().is_err());
        assert!(IfMatch::Etag("a\"b".into()).header_value().is_err());
        assert!(IfMatch::Etag("a\nb".into()).header_value().is_err());
    }

    #[test]
    fn patch_body_shape() {
        let patch = TwinPatch::from_json(
            Some(json!({"location":{"region":"US","plant":"Redmond43"}})),
            Some(json!({"power":1,"$version":4,"$metadata":{}})),
        )
        .unwrap();
        assert_eq!(
            patch.to_body(),
            json!({"tags":{"location":{"region":"US","plant":"Redmond43"}},
                   "properties":{"desired":{"power":1}}})
        );
        assert_eq!(
            TwinPatch::from_json(Some(json!({"a":1})), None)
                .unwrap()
                .to_body(),
            json!({"tags":{"a":1}})
        );
        assert!(TwinPatch::new().is_empty());
    }

    #[test]
    fn patch_rejects_non_objects() {
        let err = TwinPatch::from_json(Some(json!([1])), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: tags must be a JSON object, got an array"
        );
        assert!(matches!(
            err,
            ServiceError::NotAnObject {
                section: PatchSection::Tags,
                found: "an array"
            }
        ));
        let err = TwinPatch::from_json(None, Some(json!("x"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: desired properties must be a JSON object, got a string"
        );
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
    }

    #[test]
    fn twin_parses_and_keeps_unknown_members() {
        let json = json!({
            "deviceId":"myDeviceId","etag":"AAAAAAAAAAc=","deviceEtag":"ODQ4","status":"enabled",
            "connectionState":"Disconnected","version":2,
            "tags":{"location":{"region":"US","plant":"Redmond43"}},
            "properties":{"desired":{"$metadata":{},"$version":4},
                          "reported":{"connectivity":{"type":"cellular"},"$metadata":{},"$version":7}}
        });
        let twin: Twin = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(twin.etag.as_deref(), Some("AAAAAAAAAAc="));
        assert_eq!(twin.properties.desired_version(), Some(4));
        assert_eq!(twin.properties.reported_version(), Some(7));
        assert_eq!(twin.other.get("deviceEtag"), Some(&json!("ODQ4")));
        assert_eq!(
            twin.pointer("properties.reported.connectivity.type"),
            Some(json!("cellular"))
        );
        assert_eq!(
            twin.pointer("tags.location.plant"),
            Some(json!("Redmond43"))
        );
        assert_eq!(twin.pointer("tags.nope"), None);
        assert_eq!(serde_json::to_value(&twin).unwrap(), json);
    }

    #[test]
    fn twin_tolerates_missing_and_null_sections() {
        let twin: Twin =
            serde_json::from_value(json!({"deviceId":"d","tags":null,"properties":null})).unwrap();
        assert!(twin.tags.is_empty());
        let twin: Twin = serde_json::from_value(json!({"deviceId":"d"})).unwrap();
        assert!(twin.properties.desired.is_empty());
    }
}
