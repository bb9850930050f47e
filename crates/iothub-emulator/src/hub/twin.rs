//! Twin state and its evolution (ARCHITECTURE.md#wire-facts; <https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins>): JSON merge patch per section with `null`
//! deleting, `$version` per section, `$metadata` kept at every node on the path of a write
//! (`$lastUpdatedVersion` only in `desired`), twin `etag`/`version` counters.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const LAST_UPDATED: &str = "$lastUpdated";
const LAST_UPDATED_VERSION: &str = "$lastUpdatedVersion";

/// One of `properties.desired` / `properties.reported`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    /// The properties, without `$metadata` / `$version`.
    pub content: Map<String, Value>,
    /// `$version`: 1 at creation, +1 per write.
    pub version: u64,
    /// `$metadata`: mirrors `content`, each node stamped with `$lastUpdated` (and, in desired,
    /// `$lastUpdatedVersion`).
    pub metadata: Map<String, Value>,
}

/// How a write stamps `$metadata`.
struct Stamp<'a> {
    time: &'a str,
    /// `Some` for desired (`$lastUpdatedVersion`), `None` for reported.
    version: Option<u64>,
}

impl Stamp<'_> {
    fn apply(&self, node: &mut Map<String, Value>) {
        node.insert(LAST_UPDATED.into(), Value::String(self.time.to_string()));
        if let Some(v) = self.version {
            node.insert(LAST_UPDATED_VERSION.into(), Value::from(v));
        }
    }
}

impl Section {
    /// A fresh section: `$version` 1, root metadata with only `$lastUpdated` (as the hub does).
    pub fn new(now: &str) -> Section {
        let mut metadata = Map::new();
        metadata.insert(LAST_UPDATED.into(), Value::String(now.to_string()));
        Section {
            content: Map::new(),
            version: 1,
            metadata,
        }
    }

    /// Merges `patch` (null deletes), bumps `$version` and stamps every touched node.
    pub fn merge(&mut self, patch: &Map<String, Value>, now: &str, versioned_metadata: bool) {
        self.version += 1;
        let stamp = Stamp {
            time: now,
            version: versioned_metadata.then_some(self.version),
        };
        merge_into(&mut self.content, &mut self.metadata, patch, &stamp);
        stamp.apply(&mut self.metadata);
    }

    /// Replaces the whole content (twin PUT): every node gets fresh metadata.
    pub fn replace(&mut self, content: &Map<String, Value>, now: &str, versioned_metadata: bool) {
        self.content = Map::new();
        self.metadata = Map::new();
        self.merge(content, now, versioned_metadata);
    }

    /// The section as it appears in a twin document, with `$metadata` and `$version`.
    pub fn render(&self) -> Value {
        let mut out = self.content.clone();
        out.insert("$metadata".into(), Value::Object(self.metadata.clone()));
        out.insert("$version".into(), Value::from(self.version));
        Value::Object(out)
    }

    /// The section as the device sees it over MQTT: content plus `$version`, no metadata.
    pub fn render_for_device(&self) -> Value {
        let mut out = self.content.clone();
        out.insert("$version".into(), Value::from(self.version));
        Value::Object(out)
    }
}

fn merge_into(
    content: &mut Map<String, Value>,
    metadata: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    stamp: &Stamp<'_>,
) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                content.remove(key);
                metadata.remove(key);
            }
            Value::Object(child_patch) => {
                if let Some(Value::Object(existing)) = content.get_mut(key) {
                    let child_meta = metadata
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !child_meta.is_object() {
                        *child_meta = Value::Object(Map::new());
                    }
                    if let Value::Object(child_meta) = child_meta {
                        merge_into(existing, child_meta, child_patch, stamp);
                        stamp.apply(child_meta);
                    }
                } else {
                    let mut fresh = Map::new();
                    let mut fresh_meta = Map::new();
                    merge_into(&mut fresh, &mut fresh_meta, child_patch, stamp);
                    stamp.apply(&mut fresh_meta);
                    content.insert(key.clone(), Value::Object(fresh));
                    metadata.insert(key.clone(), Value::Object(fresh_meta));
                }
            }
            leaf => {
                content.insert(key.clone(), leaf.clone());
                let mut leaf_meta = Map::new();
                stamp.apply(&mut leaf_meta);
                metadata.insert(key.clone(), Value::Object(leaf_meta));
            }
        }
    }
}

/// The service-writable and device-writable state of one twin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwinState {
    /// Twin etag counter: 1 at creation, +1 per service write of tags and/or desired.
    pub etag: u64,
    /// Twin `version`: 2 at creation, +1 on every change.
    pub version: u64,
    /// `tags` (service only).
    pub tags: Map<String, Value>,
    /// `properties.desired` (service writes, device reads).
    pub desired: Section,
    /// `properties.reported` (device writes, service reads).
    pub reported: Section,
}

impl TwinState {
    /// The twin of a newly created device.
    pub fn new(now: &str) -> TwinState {
        TwinState {
            etag: 1,
            version: 2,
            tags: Map::new(),
            desired: Section::new(now),
            reported: Section::new(now),
        }
    }

    /// The quoted-on-the-wire etag value: base64 of the 8-byte big-endian counter.
    pub fn etag_string(&self) -> String {
        twin_etag(self.etag)
    }
}

/// base64(8-byte big-endian counter): `AAAAAAAAAAE=` for 1.
pub fn twin_etag(counter: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(counter.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn etag_of_one() {
        assert_eq!(twin_etag(1), "AAAAAAAAAAE=");
    }

    /// The worked `$metadata` example of ARCHITECTURE.md#wire-facts.
    #[test]
    fn desired_metadata_follows_the_worked_example() {
        let mut s = Section::new("T0");
        s.merge(&obj(json!({"cfg": {"a": 1, "b": 2}})), "T2", true);
        assert_eq!(s.version, 2);
        assert_eq!(
            Value::Object(s.metadata.clone()),
            json!({"$lastUpdated":"T2","$lastUpdatedVersion":2,
                   "cfg":{"a":{"$lastUpdated":"T2","$lastUpdatedVersion":2},
                          "b":{"$lastUpdated":"T2","$lastUpdatedVersion":2},
                          "$lastUpdated":"T2","$lastUpdatedVersion":2}})
        );
        s.merge(&obj(json!({"cfg": {"b": null}})), "T3", true);
        assert_eq!(s.version, 3);
        assert_eq!(Value::Object(s.content.clone()), json!({"cfg": {"a": 1}}));
        assert_eq!(s.metadata["cfg"]["a"]["$lastUpdatedVersion"], 2);
        assert_eq!(s.metadata["cfg"]["$lastUpdatedVersion"], 3);
        assert!(s.metadata["cfg"].get("b").is_none());
        assert_eq!(s.metadata["$lastUpdated"], "T3");
    }

    #[test]
    fn reported_metadata_has_no_version_and_objects_replace_leaves() {
        let mut s = Section::new("T0");
        s.merge(&obj(json!({"x": 1})), "T1", false);
        s.merge(&obj(json!({"x": {"y": 2}})), "T2", false);
        assert_eq!(Value::Object(s.content.clone()), json!({"x": {"y": 2}}));
        assert!(s.metadata["x"].get("$lastUpdatedVersion").is_none());
        assert_eq!(s.metadata["x"]["y"]["$lastUpdated"], "T2");
        assert_eq!(s.render_for_device(), json!({"x": {"y": 2}, "$version": 3}));
    }
}
