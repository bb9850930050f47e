//! Twin operations: service writes of tags and desired properties (PATCH merge, PUT replace),
//! device writes of reported properties, and the two read views.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::twin::{Section, TwinState};
use super::twin_target::TwinId;
use super::{limits, now_iso, DesiredPatch, Hub, HubError, IfMatch, TwinWrite, TwinWriteMode};
use crate::persist::AfterCommit;

impl Hub {
    /// The full twin document.
    ///
    /// # Errors
    /// `DeviceNotFound`.
    pub fn twin_json(&self, id: &str) -> Result<Value, HubError> {
        self.twin_document(TwinId::Device(id))
    }

    /// The full twin document of a device or a module.
    ///
    /// # Errors
    /// `DeviceNotFound`, `ModuleNotFound`.
    pub(crate) fn twin_document(&self, id: TwinId<'_>) -> Result<Value, HubError> {
        // The document is shared with the table; the copy for the caller is made off the lock.
        let doc = Arc::clone(self.lock().twin_ref(id)?.twin_doc());
        Ok(Value::clone(&doc))
    }

    /// Applies a service twin write (PATCH or PUT) and returns the new twin document. A change
    /// of `desired` reaches the device's MQTT session once it has committed.
    ///
    /// # Errors
    /// Unknown device, etag mismatch, content rules (400), storage failure.
    // The REST API writes through `update_twin_clearing`; the crate's tests use this shorthand.
    #[cfg(test)]
    pub(crate) async fn update_twin(
        &self,
        id: &str,
        write: TwinWrite,
        if_match: Option<&IfMatch>,
    ) -> Result<Value, HubError> {
        self.update_twin_clearing(
            TwinId::Device(id),
            write,
            ClearedSections::default(),
            if_match,
        )
        .await
    }

    /// Applies a service twin write (PATCH or PUT) and returns the new twin document; a PATCH
    /// may also clear whole sections, as a body with
    /// `"tags": null` or `"properties": {"desired": null}` does on the real hub: the section
    /// becomes empty, the versions advance, and the device is sent `null` for every removed
    /// desired key with the new `$version`.
    ///
    /// # Errors
    /// Unknown device, etag mismatch, content rules (400), storage failure.
    pub(crate) async fn update_twin_clearing(
        &self,
        id: TwinId<'_>,
        write: TwinWrite,
        cleared: ClearedSections,
        if_match: Option<&IfMatch>,
    ) -> Result<Value, HubError> {
        let write = CheckedWrite::new(write, cleared)?;
        let (doc, pending) = {
            let mut state = self.lock();
            let mut slot = state.twin_slot(id)?;
            if let Some(cond) = if_match {
                cond.check(&slot.twin().etag_string(), "Twin etag")?;
            }
            if write.is_empty() {
                return Ok(slot.twin_doc().clone());
            }
            let undo = slot.undo(self);
            let change = write.apply(slot.twin_mut())?;
            let op = slot.put_op()?;
            slot.invalidate();
            let after_commit = change.map(|(version, patch)| {
                let change = DesiredPatch {
                    device_id: id.client_id(),
                    version,
                    patch,
                };
                let sessions = Arc::clone(&self.shared.sessions);
                Box::new(move || sessions.desired_changed(change)) as AfterCommit
            });
            let doc = slot.render();
            (doc, self.submit(&mut state, vec![op], undo, after_commit))
        };
        pending.committed().await?;
        Ok(doc)
    }

    /// `{"desired":{…,"$version":n},"reported":{…,"$version":m}}` as the device's twin GET
    /// returns; `client_id` is the connection's: `{deviceId}`, or `{deviceId}/{moduleId}` for
    /// the module twin.
    ///
    /// # Errors
    /// `DeviceNotFound`, `ModuleNotFound`.
    pub(crate) fn device_twin_properties(&self, client_id: &str) -> Result<Value, HubError> {
        let state = self.lock();
        let slot = state.twin_ref(TwinId::from_client_id(client_id))?;
        let twin = slot.twin();
        Ok(serde_json::json!({
            "desired": twin.desired.render_for_device(),
            "reported": twin.reported.render_for_device(),
        }))
    }

    /// Applies a device's reported-properties patch, as a device's twin PATCH over MQTT does;
    /// returns the new reported `$version` once the change has committed. `device_id` may also
    /// be a module's client id, `{deviceId}/{moduleId}`, for its module twin.
    ///
    /// # Errors
    /// Not an object, content rules (400), unknown device or module, storage failure.
    pub async fn patch_reported(&self, device_id: &str, patch: Value) -> Result<u64, HubError> {
        let Value::Object(patch) = patch else {
            return Err(HubError::InvalidArgument(
                "The reported properties patch must be a JSON object".into(),
            ));
        };
        limits::validate_patch("properties.reported", &patch)?;
        let (version, pending) = {
            let mut state = self.lock();
            let mut slot = state.twin_slot(TwinId::from_client_id(device_id))?;
            let undo = slot.undo(self);
            let now = now_iso();
            let section = merged_reported(&slot.twin().reported, &patch, &now)?;
            let version = section.version;
            let twin = slot.twin_mut();
            twin.reported = section;
            twin.version += 1;
            slot.connection_mut().last_activity_time = Some(now);
            let op = slot.put_op()?;
            slot.invalidate();
            (version, self.submit(&mut state, vec![op], undo, None))
        };
        pending.committed().await?;
        Ok(version)
    }
}

/// The reported section after a device's patch (already checked by
/// [`limits::validate_patch`]), within the section limits.
fn merged_reported(
    current: &Section,
    patch: &Map<String, Value>,
    now: &str,
) -> Result<Section, HubError> {
    let mut section = current.clone();
    section.merge(patch, now, false);
    limits::validate_section(
        "properties.reported",
        &section.content,
        limits::MAX_PROPERTIES_BYTES,
    )?;
    Ok(section)
}

/// [`Hub::update_twin_clearing`]'s checks and change applied to a bare twin, without the
/// device table, the store or the device's session (for the fuzz targets, `crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn apply_service_write(
    twin: &mut TwinState,
    write: TwinWrite,
    cleared: ClearedSections,
) -> Result<Option<(u64, Value)>, HubError> {
    let write = CheckedWrite::new(write, cleared)?;
    if write.is_empty() {
        return Ok(None);
    }
    write.apply(twin)
}

/// [`Hub::patch_reported`]'s checks and merge applied to a bare twin (for `crate::fuzzing`);
/// returns the new reported `$version`.
#[cfg(feature = "fuzzing")]
pub(crate) fn apply_reported_patch(
    twin: &mut TwinState,
    patch: &Map<String, Value>,
) -> Result<u64, HubError> {
    limits::validate_patch("properties.reported", patch)?;
    twin.reported = merged_reported(&twin.reported, patch, &now_iso())?;
    twin.version += 1;
    Ok(twin.reported.version)
}

/// Sections a twin PATCH clears as a whole (sent as `null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClearedSections {
    /// `"tags": null`.
    pub tags: bool,
    /// `"properties": {"desired": null}`.
    pub desired: bool,
}

/// A service twin write, normalized and with its property names and values checked, before the
/// state lock is taken. Each section has its own mode: a cleared section is replaced by an
/// empty one within a PATCH.
struct CheckedWrite {
    tags_mode: TwinWriteMode,
    tags: Option<Map<String, Value>>,
    desired_mode: TwinWriteMode,
    desired: Option<Map<String, Value>>,
}

impl CheckedWrite {
    /// A replace always writes both sections (an absent one becomes empty); `$metadata` and
    /// `$version` that clients echo in `desired` are dropped.
    fn new(write: TwinWrite, cleared: ClearedSections) -> Result<CheckedWrite, HubError> {
        let TwinWrite {
            mode,
            tags,
            desired,
        } = write;
        let section_mode = |is_cleared: bool| {
            if is_cleared {
                TwinWriteMode::Replace
            } else {
                mode
            }
        };
        let (tags_mode, desired_mode) = (section_mode(cleared.tags), section_mode(cleared.desired));
        let tags = tags.or_else(|| cleared.tags.then(Map::new));
        let desired = desired.or_else(|| cleared.desired.then(Map::new));
        let (tags, desired) = match mode {
            TwinWriteMode::Patch => (tags, desired),
            TwinWriteMode::Replace => (
                Some(tags.unwrap_or_default()),
                Some(desired.unwrap_or_default()),
            ),
        };
        let desired = desired.map(strip_section_metadata);
        if let Some(t) = &tags {
            limits::validate_patch("tags", t)?;
        }
        if let Some(d) = &desired {
            limits::validate_patch("properties.desired", d)?;
        }
        Ok(CheckedWrite {
            tags_mode,
            tags,
            desired_mode,
            desired,
        })
    }

    /// Writes nothing (a body without `tags` and `properties.desired`).
    fn is_empty(&self) -> bool {
        self.tags.is_none() && self.desired.is_none()
    }

    /// Applies the write to `twin`, all or nothing: both new sections are built and checked
    /// against the size and depth limits before anything changes. Returns the new desired
    /// `$version` and the patch for the device, if `desired` was written.
    fn apply(self, twin: &mut TwinState) -> Result<Option<(u64, Value)>, HubError> {
        let now = now_iso();
        let new_tags = match &self.tags {
            Some(patch) => Some(merged_tags(self.tags_mode, &twin.tags, patch)?),
            None => None,
        };
        let new_desired = match &self.desired {
            Some(patch) => Some(updated_desired(
                self.desired_mode,
                &twin.desired,
                patch,
                &now,
            )?),
            None => None,
        };
        twin.etag += 1;
        twin.version += 1;
        if let Some(tags) = new_tags {
            twin.tags = tags;
        }
        Ok(new_desired.map(|section| {
            let version = section.version;
            // A PATCH notifies the patch as written; a PUT (or a cleared section) the whole new
            // document plus a `null` for every key it removed, so a device that merges patches
            // ends up equal to it.
            let mut patch = match self.desired_mode {
                TwinWriteMode::Patch => self.desired.unwrap_or_default(),
                TwinWriteMode::Replace => {
                    replacement_patch(&twin.desired.content, &section.content)
                }
            };
            patch.insert("$version".into(), Value::from(version));
            twin.desired = section;
            (version, Value::Object(patch))
        }))
    }
}

/// The tags after a write: merged into the current ones (PATCH) or replacing them (PUT).
fn merged_tags(
    mode: TwinWriteMode,
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, HubError> {
    let mut merged = match mode {
        TwinWriteMode::Patch => current.clone(),
        TwinWriteMode::Replace => Map::new(),
    };
    merge_plain(&mut merged, patch);
    limits::validate_section("tags", &merged, limits::MAX_TAGS_BYTES)?;
    Ok(merged)
}

/// The desired section after a write, with `$version` and `$metadata` advanced.
fn updated_desired(
    mode: TwinWriteMode,
    current: &Section,
    patch: &Map<String, Value>,
    now: &str,
) -> Result<Section, HubError> {
    let mut section = current.clone();
    match mode {
        TwinWriteMode::Patch => section.merge(patch, now, true),
        TwinWriteMode::Replace => section.replace(patch, now, true),
    }
    limits::validate_section(
        "properties.desired",
        &section.content,
        limits::MAX_PROPERTIES_BYTES,
    )?;
    Ok(section)
}

/// The merge patch that turns `old` into `new`: `new` itself, with `null` for each key of `old`
/// that `new` lacks, at every depth where both hold an object.
fn replacement_patch(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, value) in new {
        let entry = match (old.get(key), value) {
            (Some(Value::Object(old_child)), Value::Object(new_child)) => {
                Value::Object(replacement_patch(old_child, new_child))
            }
            _ => value.clone(),
        };
        patch.insert(key.clone(), entry);
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    patch
}

/// Clients echo `$metadata` / `$version` at the section root; they are read-only, so dropped.
fn strip_section_metadata(mut section: Map<String, Value>) -> Map<String, Value> {
    section.remove("$metadata");
    section.remove("$version");
    section
}

/// RFC 7386 merge without metadata (tags have none).
fn merge_plain(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(child) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    merge_plain(existing, child);
                }
            }
            leaf => {
                target.insert(key.clone(), leaf.clone());
            }
        }
    }
}
