//! Twin operations: service writes of tags and desired properties (PATCH merge, PUT replace),
//! device writes of reported properties, and the two read views.

use serde_json::{Map, Value};

use super::{limits, now_iso, DesiredPatch, Hub, HubError, IfMatch, TwinWrite, TwinWriteMode};

impl Hub {
    /// The full twin document.
    ///
    /// # Errors
    /// `DeviceNotFound`.
    pub fn twin_json(&self, id: &str) -> Result<Value, HubError> {
        self.lock()
            .devices
            .get_mut(id)
            .map(|e| e.twin_doc().clone())
            .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))
    }

    /// Applies a service twin write (PATCH or PUT) and returns the new twin document.
    ///
    /// # Errors
    /// Unknown device, etag mismatch, content rules (400), storage failure.
    pub async fn update_twin(
        &self,
        id: &str,
        write: TwinWrite,
        if_match: Option<&IfMatch>,
    ) -> Result<Value, HubError> {
        let TwinWrite {
            mode,
            tags,
            desired,
        } = write;
        let (tags, desired) = match mode {
            TwinWriteMode::Patch => (tags, desired),
            // A replace always writes both sections; an absent one becomes empty.
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
        let (doc, pending) = {
            let mut state = self.lock();
            let entry = state
                .devices
                .get_mut(id)
                .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))?;
            let twin = &entry.record.twin;
            if let Some(cond) = if_match {
                cond.check(&twin.etag_string(), "Twin etag")?;
            }
            if tags.is_none() && desired.is_none() {
                return Ok(entry.twin_doc().clone());
            }
            let now = now_iso();
            let new_tags = match &tags {
                Some(t) => {
                    let mut merged = match mode {
                        TwinWriteMode::Patch => twin.tags.clone(),
                        TwinWriteMode::Replace => Map::new(),
                    };
                    merge_plain(&mut merged, t);
                    limits::validate_section("tags", &merged, limits::MAX_TAGS_BYTES)?;
                    Some(merged)
                }
                None => None,
            };
            let new_desired = match &desired {
                Some(d) => {
                    let mut section = twin.desired.clone();
                    match mode {
                        TwinWriteMode::Patch => section.merge(d, &now, true),
                        TwinWriteMode::Replace => section.replace(d, &now, true),
                    }
                    limits::validate_section(
                        "properties.desired",
                        &section.content,
                        limits::MAX_PROPERTIES_BYTES,
                    )?;
                    Some(section)
                }
                None => None,
            };
            let twin = &mut entry.record.twin;
            twin.etag += 1;
            twin.version += 1;
            if let Some(t) = new_tags {
                twin.tags = t;
            }
            let push = new_desired.map(|section| {
                let version = section.version;
                let mut patch = match mode {
                    TwinWriteMode::Patch => desired.unwrap_or_default(),
                    TwinWriteMode::Replace => section.content.clone(),
                };
                patch.insert("$version".into(), Value::from(version));
                twin.desired = section;
                DesiredPatch {
                    device_id: id.to_string(),
                    version,
                    patch: Value::Object(patch),
                }
            });
            let op = Self::put_device_op(&entry.record)?;
            entry.invalidate();
            if let Some(push) = push {
                // Sent under the lock so sessions see desired versions in order; no receiver
                // (no MQTT session) is fine.
                let _ = self.shared.desired_tx.send(push);
            }
            (entry.record.twin_json(), self.submit(vec![op]))
        };
        pending.committed().await?;
        Ok(doc)
    }

    /// `{"desired":{…,"$version":n},"reported":{…,"$version":m}}` as the device's twin GET returns.
    ///
    /// # Errors
    /// `DeviceNotFound`.
    pub async fn device_twin_properties(&self, device_id: &str) -> Result<Value, HubError> {
        let state = self.lock();
        let twin = &state
            .devices
            .get(device_id)
            .ok_or_else(|| HubError::DeviceNotFound(device_id.to_string()))?
            .record
            .twin;
        Ok(serde_json::json!({
            "desired": twin.desired.render_for_device(),
            "reported": twin.reported.render_for_device(),
        }))
    }

    /// Applies a device's reported-properties patch; returns the new reported `$version`.
    ///
    /// # Errors
    /// Not an object, content rules (400), unknown device, storage failure.
    pub async fn patch_reported(&self, device_id: &str, patch: Value) -> Result<u64, HubError> {
        let Value::Object(patch) = patch else {
            return Err(HubError::InvalidArgument(
                "The reported properties patch must be a JSON object".into(),
            ));
        };
        limits::validate_patch("properties.reported", &patch)?;
        let (version, pending) = {
            let mut state = self.lock();
            let entry = state
                .devices
                .get_mut(device_id)
                .ok_or_else(|| HubError::DeviceNotFound(device_id.to_string()))?;
            let now = now_iso();
            let mut section = entry.record.twin.reported.clone();
            section.merge(&patch, &now, false);
            limits::validate_section(
                "properties.reported",
                &section.content,
                limits::MAX_PROPERTIES_BYTES,
            )?;
            let version = section.version;
            let record = &mut entry.record;
            record.twin.reported = section;
            record.twin.version += 1;
            record.connection.last_activity_time = Some(now);
            let op = Self::put_device_op(record)?;
            entry.invalidate();
            (version, self.submit(vec![op]))
        };
        pending.committed().await?;
        Ok(version)
    }
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
