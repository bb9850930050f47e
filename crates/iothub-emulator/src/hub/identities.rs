//! The identity registry: create, update (If-Match), delete, list, statistics.

use iothub_auth::SharedAccessKey;
use serde_json::Value;

use super::edge::{system_modules, Scopes};
use super::modules::device_module_keys;
use super::twin::TwinState;
use super::{
    clock, now_iso, validate_device_id, AuthSpec, Authentication, ConnectionInfo, DeviceAuth,
    DeviceRecord, DeviceSpec, Entry, Hub, HubError, IfMatch, ModuleEntry, RegistryStatistics, Undo,
};
use crate::persist::WriteOp;

impl Hub {
    /// Registers a new device; `DeviceAlreadyExists` if the id is taken.
    ///
    /// # Errors
    /// Invalid id or keys, existing device, storage failure.
    pub(crate) async fn create_device(
        &self,
        id: &str,
        spec: DeviceSpec,
    ) -> Result<Value, HubError> {
        validate_device_id(id)?;
        let authentication = resolve_auth(spec.authentication)?;
        let (json, pending) = {
            let mut state = self.lock();
            if state.devices.contains_key(id) {
                return Err(HubError::DeviceAlreadyExists(id.to_string()));
            }
            let generation_id = clock::dotnet_ticks_now().to_string();
            let scopes =
                state.resolve_scopes(id, &generation_id, spec.iot_edge, None, &spec.scopes)?;
            state.etag_counter += 1;
            let now = now_iso();
            let record = DeviceRecord {
                device_id: id.to_string(),
                generation_id,
                etag_counter: state.etag_counter,
                enabled: spec.enabled,
                status_reason: spec.status_reason,
                status_updated_time: None,
                authentication,
                iot_edge: spec.iot_edge,
                device_scope: scopes.device_scope,
                parent_scopes: scopes.parent_scopes,
                twin: TwinState::new(&now),
                connection: ConnectionInfo::default(),
            };
            let mut ops = vec![Self::put_device_op(&record)?];
            let json = record.identity_json();
            state.devices.insert(id.to_string(), Entry::new(record));
            let mut undos = vec![self.device_undo(id, None)];
            if spec.iot_edge {
                let mut counter = state.etag_counter;
                for (key, module) in system_modules(id, &mut counter) {
                    ops.push(Self::put_module_op(&key, &module)?);
                    undos.push(self.module_undo(&key, None));
                    state.modules.insert(key, ModuleEntry::new(module));
                }
                state.etag_counter = counter;
            }
            let undo = Undo::Batch(undos);
            (json, self.submit(&mut state, ops, undo, None))
        };
        pending.committed().await?;
        Ok(json)
    }

    /// Replaces a device's identity (PUT with `If-Match`).
    ///
    /// # Errors
    /// Unknown device, etag mismatch, invalid keys, storage failure.
    pub(crate) async fn update_device(
        &self,
        id: &str,
        spec: DeviceSpec,
        if_match: &IfMatch,
    ) -> Result<Value, HubError> {
        let authentication = resolve_auth(spec.authentication)?;
        let (json, pending, revoked, modules) = {
            let mut state = self.lock();
            let modules: Vec<String> = device_module_keys(&state.modules, id)
                .map(str::to_string)
                .collect();
            let scopes = {
                let current = state
                    .devices
                    .get(id)
                    .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))?;
                let record = &current.record;
                let own = Scopes {
                    device_scope: record.device_scope.clone(),
                    parent_scopes: record.parent_scopes.clone(),
                };
                state.resolve_scopes(
                    id,
                    &record.generation_id,
                    spec.iot_edge,
                    Some(&own),
                    &spec.scopes,
                )?
            };
            state.etag_counter += 1;
            let counter = state.etag_counter;
            let mut entry = state
                .devices
                .get_identity_mut(id)
                .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))?;
            let record = &mut entry.record;
            if_match.check(&record.etag(), "Device version")?;
            let undo = self.device_undo(id, Some(record));
            if record.enabled != spec.enabled {
                record.status_updated_time = Some(now_iso());
            }
            let revoked =
                !spec.enabled || credentials_changed(&record.authentication, &authentication);
            // A disabled device's modules cannot connect either.
            let modules = if spec.enabled { Vec::new() } else { modules };
            record.enabled = spec.enabled;
            record.status_reason = spec.status_reason;
            record.authentication = authentication;
            record.iot_edge = spec.iot_edge;
            record.device_scope = scopes.device_scope;
            record.parent_scopes = scopes.parent_scopes;
            record.etag_counter = counter;
            record.twin.version += 1;
            let op = Self::put_device_op(record)?;
            let json = record.identity_json();
            entry.invalidate();
            // Settles the enabled count before the write is handed on.
            drop(entry);
            let pending = self.submit(&mut state, vec![op], undo, None);
            (json, pending, revoked, modules)
        };
        pending.committed().await?;
        if revoked {
            // New keys or a disabled device end what the old credentials opened, as a delete
            // does; CONNECT with them is refused from now on.
            self.shared.sessions.disconnect(id);
        }
        for key in &modules {
            self.shared.sessions.disconnect(key);
        }
        Ok(json)
    }

    /// Deletes a device and its modules (one commit), then closes their MQTT connections and
    /// forgets their sessions.
    ///
    /// # Errors
    /// Unknown device, etag mismatch, storage failure.
    pub(crate) async fn delete_device(
        &self,
        id: &str,
        if_match: Option<&IfMatch>,
    ) -> Result<(), HubError> {
        let (pending, modules) = {
            let mut state = self.lock();
            let entry = state
                .devices
                .get(id)
                .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))?;
            if let Some(cond) = if_match {
                cond.check(&entry.record.etag(), "Device version")?;
            }
            let modules: Vec<String> = device_module_keys(&state.modules, id)
                .map(str::to_string)
                .collect();
            let previous = state.devices.remove(id).map(|e| Box::new(e.record));
            let mut undos = vec![Undo::Device {
                id: id.to_string(),
                previous,
            }];
            let mut ops = vec![WriteOp::DeleteDevice { id: id.to_string() }];
            for key in &modules {
                let previous = state.modules.remove(key).map(|e| Box::new(e.record));
                undos.push(Undo::Module {
                    key: key.clone(),
                    previous,
                });
                ops.push(WriteOp::DeleteModule { key: key.clone() });
            }
            let undo = if self.shared.store.is_some() {
                Undo::Batch(undos)
            } else {
                Undo::Nothing
            };
            (self.submit(&mut state, ops, undo, None), modules)
        };
        pending.committed().await?;
        self.shared.sessions.device_deleted(id);
        for key in &modules {
            self.shared.sessions.device_deleted(key);
        }
        // Its queued cloud-to-device rows were deleted with the device's row.
        self.shared.c2d.device_deleted(id);
        Ok(())
    }

    /// Registers `id` with generated keys unless it exists; returns its keys either way.
    ///
    /// # Errors
    /// Invalid id, an existing device without SAS keys, storage failure.
    pub(crate) async fn ensure_device(&self, id: &str) -> Result<DeviceAuth, HubError> {
        if let Some(keys) = self.device_keys(id) {
            return Ok(keys);
        }
        match self.create_device(id, DeviceSpec::default()).await {
            Ok(_) | Err(HubError::DeviceAlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        self.device_keys(id).ok_or_else(|| {
            HubError::InvalidArgument(format!("device '{id}' does not use SAS authentication"))
        })
    }

    /// Device-identity JSON.
    ///
    /// # Errors
    /// `DeviceNotFound`.
    pub fn device_json(&self, id: &str) -> Result<Value, HubError> {
        let mut json = self
            .lock()
            .devices
            .get(id)
            .map(|e| e.record.identity_json())
            .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))?;
        json["cloudToDeviceMessageCount"] = self.shared.c2d.queue_depth(id).into();
        Ok(json)
    }

    /// Registry counts.
    pub(crate) fn registry_statistics(&self) -> RegistryStatistics {
        self.lock().devices.statistics()
    }

    /// Devices currently connected over MQTT.
    pub(crate) fn connected_device_count(&self) -> u64 {
        self.lock()
            .devices
            .values()
            .filter(|e| e.record.connection.connected)
            .count() as u64
    }
}

pub(super) fn resolve_auth(spec: AuthSpec) -> Result<Authentication, HubError> {
    Ok(match spec {
        AuthSpec::Sas {
            primary: None,
            secondary: None,
        } => Authentication::Sas {
            primary: SharedAccessKey::generate(),
            secondary: SharedAccessKey::generate(),
        },
        AuthSpec::Sas {
            primary: Some(primary),
            secondary: Some(secondary),
        } => Authentication::Sas { primary, secondary },
        AuthSpec::Sas { .. } => {
            return Err(HubError::InvalidArgument(
                "Either both primary and secondary keys must be specified or neither one to auto generate on service side".into(),
            ))
        }
        AuthSpec::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        } => Authentication::SelfSigned {
            primary_thumbprint,
            secondary_thumbprint,
        },
        AuthSpec::CertificateAuthority => Authentication::CertificateAuthority,
        AuthSpec::None => Authentication::None,
    })
}

/// Whether `new` credentials differ from `old` (tokens signed with the old ones stop working).
pub(super) fn credentials_changed(old: &Authentication, new: &Authentication) -> bool {
    match (old, new) {
        (
            Authentication::Sas { primary, secondary },
            Authentication::Sas {
                primary: new_primary,
                secondary: new_secondary,
            },
        ) => primary != new_primary || secondary != new_secondary,
        (
            Authentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            },
            Authentication::SelfSigned {
                primary_thumbprint: new_primary,
                secondary_thumbprint: new_secondary,
            },
        ) => primary_thumbprint != new_primary || secondary_thumbprint != new_secondary,
        (Authentication::CertificateAuthority, Authentication::CertificateAuthority)
        | (Authentication::None, Authentication::None) => false,
        _ => true,
    }
}
