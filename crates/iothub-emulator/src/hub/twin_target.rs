//! Whose twin a twin operation is about, a device's or a module's, so that one code path
//! (`properties.rs`) serves both with the same etags, versions, `$metadata`, limits and errors.
//!
//! The MQTT side names a twin by its connection's client id: `{deviceId}` or
//! `{deviceId}/{moduleId}` ([`TwinId::from_client_id`]); ids never contain `/`.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::modules::{module_key, module_not_found};
use super::twin::TwinState;
use super::{ConnectionInfo, Entry, Hub, HubError, ModuleEntry, State, Undo};
use crate::persist::WriteOp;

/// A device twin or a module twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TwinId<'a> {
    /// `/twins/{id}`, client id `{id}`.
    Device(&'a str),
    /// `/twins/{id}/modules/{mid}`, client id `{id}/{mid}`.
    Module {
        /// Device id.
        device: &'a str,
        /// Module id.
        module: &'a str,
    },
}

impl<'a> TwinId<'a> {
    /// The twin an MQTT client id names: `{deviceId}` or `{deviceId}/{moduleId}`.
    pub(crate) fn from_client_id(client_id: &'a str) -> TwinId<'a> {
        match client_id.split_once('/') {
            Some((device, module)) => TwinId::Module { device, module },
            None => TwinId::Device(client_id),
        }
    }

    /// The MQTT client id (session key) of the twin's owner.
    pub(crate) fn client_id(&self) -> String {
        match self {
            TwinId::Device(id) => (*id).to_string(),
            TwinId::Module { device, module } => module_key(device, module),
        }
    }
}

/// A borrowed device or module entry, for one twin operation under the state lock.
pub(super) enum TwinSlot<'s> {
    Device(&'s mut Entry),
    Module(&'s mut ModuleEntry),
}

/// A device or module entry borrowed to read it: unlike a [`TwinSlot`], it never copies an
/// entry that a query snapshot shares.
pub(super) enum TwinRef<'s> {
    Device(&'s Entry),
    Module(&'s ModuleEntry),
}

impl State {
    /// The entry holding `id`'s twin.
    ///
    /// # Errors
    /// `DeviceNotFound` or `ModuleNotFound`.
    pub(super) fn twin_slot(&mut self, id: TwinId<'_>) -> Result<TwinSlot<'_>, HubError> {
        match id {
            TwinId::Device(device) => self
                .devices
                .get_mut(device)
                .map(TwinSlot::Device)
                .ok_or_else(|| HubError::DeviceNotFound(device.to_string())),
            TwinId::Module { device, module } => {
                let not_found = module_not_found(&self.devices, device, module);
                self.modules
                    .get_mut(&module_key(device, module))
                    .map(TwinSlot::Module)
                    .ok_or(not_found)
            }
        }
    }

    /// The entry holding `id`'s twin, to read it.
    ///
    /// # Errors
    /// `DeviceNotFound` or `ModuleNotFound`.
    pub(super) fn twin_ref(&self, id: TwinId<'_>) -> Result<TwinRef<'_>, HubError> {
        match id {
            TwinId::Device(device) => self
                .devices
                .get(device)
                .map(TwinRef::Device)
                .ok_or_else(|| HubError::DeviceNotFound(device.to_string())),
            TwinId::Module { device, module } => self
                .modules
                .get(&module_key(device, module))
                .map(TwinRef::Module)
                .ok_or_else(|| module_not_found(&self.devices, device, module)),
        }
    }

    /// The connection state of a client id's identity and its cached twin document, if the
    /// identity exists.
    pub(super) fn connection_mut(
        &mut self,
        client_id: &str,
    ) -> Option<(&mut ConnectionInfo, &mut OnceLock<Arc<Value>>)> {
        match self.twin_slot(TwinId::from_client_id(client_id)).ok()? {
            TwinSlot::Device(entry) => Some((&mut entry.record.connection, &mut entry.twin_doc)),
            TwinSlot::Module(entry) => Some((&mut entry.record.connection, &mut entry.twin_doc)),
        }
    }
}

impl TwinRef<'_> {
    pub(super) fn twin(&self) -> &TwinState {
        match self {
            TwinRef::Device(e) => &e.record.twin,
            TwinRef::Module(e) => &e.record.twin,
        }
    }

    /// The cached twin document (rendered now if the entry changed since it was last read).
    pub(super) fn twin_doc(&self) -> &Arc<Value> {
        match self {
            TwinRef::Device(e) => e.twin_doc(),
            TwinRef::Module(e) => e.twin_doc(),
        }
    }
}

impl TwinSlot<'_> {
    pub(super) fn twin(&self) -> &TwinState {
        match self {
            TwinSlot::Device(e) => &e.record.twin,
            TwinSlot::Module(e) => &e.record.twin,
        }
    }

    pub(super) fn twin_mut(&mut self) -> &mut TwinState {
        match self {
            TwinSlot::Device(e) => &mut e.record.twin,
            TwinSlot::Module(e) => &mut e.record.twin,
        }
    }

    pub(super) fn connection_mut(&mut self) -> &mut ConnectionInfo {
        match self {
            TwinSlot::Device(e) => &mut e.record.connection,
            TwinSlot::Module(e) => &mut e.record.connection,
        }
    }

    /// The cached twin document.
    pub(super) fn twin_doc(&self) -> &Value {
        match self {
            TwinSlot::Device(e) => e.twin_doc(),
            TwinSlot::Module(e) => e.twin_doc(),
        }
    }

    /// The twin document rendered afresh (for a write's response).
    pub(super) fn render(&self) -> Value {
        use super::TwinRecord as _;
        match self {
            TwinSlot::Device(e) => e.record.twin_json(),
            TwinSlot::Module(e) => e.record.twin_json(),
        }
    }

    pub(super) fn invalidate(&mut self) {
        match self {
            TwinSlot::Device(e) => e.invalidate(),
            TwinSlot::Module(e) => e.invalidate(),
        }
    }

    /// The row that stores the entry as it is now.
    pub(super) fn put_op(&self) -> Result<WriteOp, HubError> {
        match self {
            TwinSlot::Device(e) => Hub::put_device_op(&e.record),
            TwinSlot::Module(e) => Hub::put_module_op(
                &module_key(&e.record.device_id, &e.record.module_id),
                &e.record,
            ),
        }
    }

    /// How to restore the entry as it is now.
    pub(super) fn undo(&self, hub: &Hub) -> Undo {
        match self {
            TwinSlot::Device(e) => hub.device_undo(&e.record.device_id, Some(&e.record)),
            TwinSlot::Module(e) => hub.module_undo(
                &module_key(&e.record.device_id, &e.record.module_id),
                Some(&e.record),
            ),
        }
    }
}
