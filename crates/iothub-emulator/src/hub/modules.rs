//! Module identities (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-module-twins>):
//! create, update (If-Match), delete, get, list; their records and JSON views. Module twins are
//! written through the same twin code as device twins (`properties.rs`, via `twin_target.rs`).
//!
//! A module lives in the hub's module table under its MQTT client id `{deviceId}/{moduleId}`;
//! neither id may contain `/`, so a device's modules are the keys that start with `{deviceId}/`.
//! Modules are not devices: they have their own keys and twin, but no `status` and no
//! `capabilities`, and they are not counted by `GET /statistics/devices`. Deleting a device
//! deletes its modules in the same commit.

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::device::{identity_etag, TwinHeader};
use super::identities::{credentials_changed, resolve_auth};
use super::twin::TwinState;
use super::twin_map::TwinMap;
use super::{
    clock, now_iso, validate_device_id, AuthSpec, Authentication, ConnectionInfo, DeviceAuth, Hub,
    HubError, IfMatch, ModuleEntry, TwinRecord, Undo,
};
use crate::persist::{PersistError, WriteOp};

/// The most modules one device may have (the real hub's bound, "up to 50 module identities"
/// under each device identity: <https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-module-twins>).
pub(crate) const MAX_MODULES_PER_DEVICE: usize = 50;

/// What a service write sends for a module identity (parsed from a
/// `PUT /devices/{id}/modules/{mid}` body).
#[derive(Debug, Clone)]
pub(crate) struct ModuleSpec {
    /// `managedBy` (free text; IoT Edge writes `"IotEdge"` there).
    pub managed_by: Option<String>,
    /// Requested credentials; SAS keys that are both absent are generated, as for devices.
    pub authentication: AuthSpec,
}

/// Everything the hub knows about one module.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleRecord {
    /// The device the module belongs to.
    pub device_id: String,
    /// Case-sensitive module id.
    pub module_id: String,
    /// Distinguishes re-created modules of the same id.
    pub generation_id: String,
    /// Identity etag counter (the hub-wide one devices use).
    pub etag_counter: u64,
    /// `managedBy`.
    pub managed_by: Option<String>,
    /// Credentials.
    pub authentication: Authentication,
    /// Twin content and counters.
    pub twin: TwinState,
    /// Not durable, as for devices.
    #[serde(skip)]
    pub connection: ConnectionInfo,
}

impl ModuleRecord {
    /// The module identity JSON of `GET /devices/{id}/modules/{mid}`, in the order of the
    /// hub's `Module` model (no `status`, no `capabilities`).
    pub fn identity_json(&self) -> Value {
        let never = || clock::DEVICE_NEVER.to_string();
        json!({
            "moduleId": self.module_id,
            "managedBy": self.managed_by,
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": identity_etag(self.etag_counter),
            "connectionState": self.connection.state_name(),
            "connectionStateUpdatedTime": self.connection.state_updated_time.clone().unwrap_or_else(never),
            "lastActivityTime": self.connection.last_activity_time.clone().unwrap_or_else(never),
            "cloudToDeviceMessageCount": 0,
            "authentication": self.authentication.identity_json(),
        })
    }
}

impl TwinRecord for ModuleRecord {
    /// The module twin of `GET /twins/{id}/modules/{mid}` and of `SELECT * FROM devices.modules`:
    /// a device twin's members with `moduleId` after `deviceId`, without `capabilities`.
    fn twin_json(&self) -> Value {
        let doc = TwinHeader {
            device_id: &self.device_id,
            module_id: Some(&self.module_id),
            identity_etag: identity_etag(self.etag_counter),
            // A module has no status of its own; its twin shows "enabled", as the hub's do.
            status: "enabled",
            status_updated_time: None,
            connection: &self.connection,
            authentication: &self.authentication,
            twin: &self.twin,
        }
        .render();
        Value::Object(doc)
    }
}

/// The module table key (and MQTT client id) of a module.
pub(super) fn module_key(device_id: &str, module_id: &str) -> String {
    format!("{device_id}/{module_id}")
}

/// The keys of `device_id`'s modules, in module-id order.
pub(super) fn device_module_keys<'a>(
    modules: &'a TwinMap<ModuleRecord>,
    device_id: &str,
) -> impl Iterator<Item = &'a str> + 'a {
    let prefix = format!("{device_id}/");
    modules
        .range(Bound::Included(prefix.as_str()))
        .map(|(key, _)| key)
        .take_while(move |key| key.starts_with(&prefix))
}

impl Hub {
    pub(super) fn put_module_op(key: &str, record: &ModuleRecord) -> Result<WriteOp, HubError> {
        Ok(WriteOp::PutModule {
            key: key.to_string(),
            doc: serde_json::to_string(record)
                .map_err(|e| HubError::Storage(PersistError::from(e)))?,
        })
    }

    /// The undo of a write to module `key`, whose record was `previous`.
    pub(super) fn module_undo(&self, key: &str, previous: Option<&ModuleRecord>) -> Undo {
        if self.shared.store.is_none() {
            return Undo::Nothing;
        }
        Undo::Module {
            key: key.to_string(),
            previous: previous.map(|record| Box::new(record.clone())),
        }
    }

    /// Registers a new module on an existing device.
    ///
    /// # Errors
    /// Invalid id or keys, unknown device, existing module, too many modules, storage failure.
    pub(crate) async fn create_module(
        &self,
        device_id: &str,
        module_id: &str,
        spec: ModuleSpec,
    ) -> Result<Value, HubError> {
        validate_device_id(module_id).map_err(|e| {
            HubError::InvalidArgument(e.to_string().replacen("Device", "Module", 1))
        })?;
        let authentication = resolve_auth(spec.authentication)?;
        let key = module_key(device_id, module_id);
        let (json, pending) = {
            let mut state = self.lock();
            if !state.devices.contains_key(device_id) {
                return Err(HubError::DeviceNotFound(device_id.to_string()));
            }
            if state.modules.contains_key(&key) {
                return Err(HubError::ModuleAlreadyExists {
                    device: device_id.to_string(),
                    module: module_id.to_string(),
                });
            }
            if device_module_keys(&state.modules, device_id).count() >= MAX_MODULES_PER_DEVICE {
                return Err(HubError::TooManyModules {
                    device: device_id.to_string(),
                    limit: MAX_MODULES_PER_DEVICE,
                });
            }
            state.etag_counter += 1;
            let record = ModuleRecord {
                device_id: device_id.to_string(),
                module_id: module_id.to_string(),
                generation_id: clock::dotnet_ticks_now().to_string(),
                etag_counter: state.etag_counter,
                managed_by: spec.managed_by,
                authentication,
                twin: TwinState::new(&now_iso()),
                connection: ConnectionInfo::default(),
            };
            let op = Self::put_module_op(&key, &record)?;
            let json = record.identity_json();
            state.modules.insert(key.clone(), ModuleEntry::new(record));
            let undo = self.module_undo(&key, None);
            (json, self.submit(&mut state, vec![op], undo, None))
        };
        pending.committed().await?;
        Ok(json)
    }

    /// Replaces a module's identity (PUT with `If-Match`); new credentials close the module's
    /// MQTT connection.
    ///
    /// # Errors
    /// Unknown module, etag mismatch, invalid keys, storage failure.
    pub(crate) async fn update_module(
        &self,
        device_id: &str,
        module_id: &str,
        spec: ModuleSpec,
        if_match: &IfMatch,
    ) -> Result<Value, HubError> {
        let authentication = resolve_auth(spec.authentication)?;
        let key = module_key(device_id, module_id);
        let (json, pending, revoked) = {
            let mut state = self.lock();
            let not_found = module_not_found(&state.devices, device_id, module_id);
            state.etag_counter += 1;
            let counter = state.etag_counter;
            let entry = state.modules.get_mut(&key).ok_or(not_found)?;
            let record = &mut entry.record;
            if_match.check(&identity_etag(record.etag_counter), "Module version")?;
            let undo = self.module_undo(&key, Some(record));
            let revoked = credentials_changed(&record.authentication, &authentication);
            record.managed_by = spec.managed_by;
            record.authentication = authentication;
            record.etag_counter = counter;
            record.twin.version += 1;
            let op = Self::put_module_op(&key, record)?;
            let json = record.identity_json();
            entry.invalidate();
            (json, self.submit(&mut state, vec![op], undo, None), revoked)
        };
        pending.committed().await?;
        if revoked {
            self.shared.sessions.disconnect(&key);
        }
        Ok(json)
    }

    /// Deletes a module, then closes its MQTT connection and forgets its session.
    ///
    /// # Errors
    /// Unknown module, etag mismatch, storage failure.
    pub(crate) async fn delete_module(
        &self,
        device_id: &str,
        module_id: &str,
        if_match: Option<&IfMatch>,
    ) -> Result<(), HubError> {
        let key = module_key(device_id, module_id);
        let pending = {
            let mut state = self.lock();
            let not_found = module_not_found(&state.devices, device_id, module_id);
            let entry = state.modules.get(&key).ok_or(not_found)?;
            if let Some(cond) = if_match {
                cond.check(&identity_etag(entry.record.etag_counter), "Module version")?;
            }
            let previous = state.modules.remove(&key).map(|e| Box::new(e.record));
            let undo = if self.shared.store.is_some() {
                Undo::Module {
                    key: key.clone(),
                    previous,
                }
            } else {
                Undo::Nothing
            };
            let op = WriteOp::DeleteModule { key: key.clone() };
            self.submit(&mut state, vec![op], undo, None)
        };
        pending.committed().await?;
        self.shared.sessions.device_deleted(&key);
        Ok(())
    }

    /// Module identity JSON.
    ///
    /// # Errors
    /// `DeviceNotFound` or `ModuleNotFound`.
    pub(crate) fn module_json(&self, device_id: &str, module_id: &str) -> Result<Value, HubError> {
        let state = self.lock();
        state
            .modules
            .get(&module_key(device_id, module_id))
            .map(|e| e.record.identity_json())
            .ok_or_else(|| module_not_found(&state.devices, device_id, module_id))
    }

    /// Every module identity of a device, in module-id order.
    ///
    /// # Errors
    /// `DeviceNotFound`.
    pub(crate) fn list_modules(&self, device_id: &str) -> Result<Vec<Value>, HubError> {
        let state = self.lock();
        if !state.devices.contains_key(device_id) {
            return Err(HubError::DeviceNotFound(device_id.to_string()));
        }
        Ok(device_module_keys(&state.modules, device_id)
            .filter_map(|key| state.modules.get(key))
            .map(|e| e.record.identity_json())
            .collect())
    }

    /// Whether the device has a module with this id (for routing calls to the client id
    /// `{device}/{module}`).
    pub(crate) fn module_exists(&self, device_id: &str, module_id: &str) -> bool {
        self.lock()
            .modules
            .contains_key(&module_key(device_id, module_id))
    }

    /// A module's SAS keys; `enabled` is its device's status (a module has none of its own).
    /// `None` for unknown modules and modules without SAS authentication.
    pub(crate) fn module_keys(&self, device_id: &str, module_id: &str) -> Option<DeviceAuth> {
        let state = self.lock();
        let record = &state.modules.get(&module_key(device_id, module_id))?.record;
        let enabled = state.devices.get(device_id)?.record.enabled;
        match &record.authentication {
            Authentication::Sas { primary, secondary } => Some(DeviceAuth {
                primary: primary.clone(),
                secondary: secondary.clone(),
                enabled,
            }),
            _ => None,
        }
    }
}

/// `ModuleNotFound`, or `DeviceNotFound` when the device itself is missing.
pub(super) fn module_not_found(
    devices: &super::table::DeviceTable,
    device_id: &str,
    module_id: &str,
) -> HubError {
    if devices.contains_key(device_id) {
        HubError::ModuleNotFound {
            device: device_id.to_string(),
            module: module_id.to_string(),
        }
    } else {
        HubError::DeviceNotFound(device_id.to_string())
    }
}
