//! Building the hub from the rows the store loaded at start-up, creating the default shared
//! access policies that are missing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use iothub_auth::SharedAccessKey;

use super::policy::default_policies;
use super::table::DeviceTable;
use super::{
    DeviceRecord, DeviceSessions, Entry, Hub, HubError, ModuleEntry, ModuleRecord, Policy, Shared,
    State, Undo,
};
use crate::faults::Faults;
use crate::persist::{Loaded, PersistError, Store, WriteOp};

/// A policy's keys as stored (base64 text).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredPolicyKeys {
    primary: String,
    secondary: String,
}

impl Hub {
    /// Builds the hub from stored rows, creating (and storing) the default policies that are
    /// missing. Desired-property changes and session closes go to `sessions`.
    ///
    /// # Errors
    /// A stored row is corrupt, or storing new policy keys fails.
    pub(crate) async fn open(
        hostname: String,
        store: Option<Store>,
        loaded: Loaded,
        sessions: Arc<dyn DeviceSessions>,
        events: crate::events::EventsConfig,
    ) -> Result<Hub, HubError> {
        let (devices, device_etags) = restore_devices(loaded.devices)?;
        let (modules, module_etags) = restore_modules(loaded.modules)?;
        let etag_counter = device_etags.max(module_etags);
        let (policies, new_rows) = restore_policies(loaded.policies)?;
        let c2d = crate::c2d::CloudToDevice::restore(
            loaded.c2d_messages,
            store.as_ref().map(Store::sender),
            Arc::clone(&sessions),
        )
        .map_err(HubError::Storage)?;
        let (event_log, event_rows) = crate::events::EventLog::restore(
            events,
            loaded.event_partitions,
            loaded.events,
            store.as_ref().map(Store::sender),
        )
        .map_err(HubError::Storage)?;
        let hub = Hub {
            shared: Arc::new(Shared {
                hostname,
                state: Mutex::new(State {
                    devices,
                    modules,
                    policies,
                    etag_counter,
                    uncommitted: VecDeque::new(),
                    query_lag: None,
                }),
                sessions,
                faults: Faults::default(),
                store,
                c2d,
                telemetry: crate::telemetry::TelemetryBuffer::default(),
                events: event_log,
            }),
        };
        if let (Some(store), false) = (&hub.shared.store, event_rows.is_empty()) {
            store
                .submit(event_rows, None)
                .await
                .map_err(|_| HubError::Storage(PersistError::Closed))?
                .map_err(HubError::Storage)?;
        }
        if !new_rows.is_empty() {
            let pending = {
                let mut state = hub.lock();
                hub.submit(&mut state, new_rows, Undo::Nothing, None)
            };
            pending.committed().await?;
        }
        Ok(hub)
    }
}

fn corrupt(key: &str, reason: impl std::fmt::Display) -> HubError {
    HubError::Storage(PersistError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    })
}

/// The devices by id, and the highest identity etag counter among them (the hub-wide counter
/// continues from there, so a re-created device never reuses an etag).
fn restore_devices(rows: Vec<(String, String)>) -> Result<(DeviceTable, u64), HubError> {
    let mut devices = DeviceTable::default();
    let mut etag_counter = 0;
    for (id, doc) in rows {
        let record: DeviceRecord = serde_json::from_str(&doc).map_err(|e| corrupt(&id, e))?;
        etag_counter = etag_counter.max(record.etag_counter);
        devices.insert(id, Entry::new(record));
    }
    Ok((devices, etag_counter))
}

/// The modules by client id, and the highest identity etag counter among them.
fn restore_modules(
    rows: Vec<(String, String)>,
) -> Result<(BTreeMap<String, ModuleEntry>, u64), HubError> {
    let mut modules = BTreeMap::new();
    let mut etag_counter = 0;
    for (key, doc) in rows {
        let record: ModuleRecord = serde_json::from_str(&doc).map_err(|e| corrupt(&key, e))?;
        etag_counter = etag_counter.max(record.etag_counter);
        modules.insert(key, ModuleEntry::new(record));
    }
    Ok((modules, etag_counter))
}

/// Every default policy with its stored keys, or fresh keys plus the rows that store them.
fn restore_policies(
    rows: Vec<(String, String)>,
) -> Result<(BTreeMap<String, Policy>, Vec<WriteOp>), HubError> {
    let stored: BTreeMap<String, String> = rows.into_iter().collect();
    let mut policies = BTreeMap::new();
    let mut new_rows = Vec::new();
    for (name, permissions) in default_policies() {
        let (primary, secondary) = match stored.get(name) {
            Some(doc) => parse_policy_keys(name, doc)?,
            None => {
                let (keys, row) = new_policy_keys(name)?;
                new_rows.push(row);
                keys
            }
        };
        policies.insert(
            name.to_string(),
            Policy {
                name: name.to_string(),
                permissions,
                primary,
                secondary,
            },
        );
    }
    Ok((policies, new_rows))
}

fn parse_policy_keys(
    name: &str,
    doc: &str,
) -> Result<(SharedAccessKey, SharedAccessKey), HubError> {
    let keys: StoredPolicyKeys = serde_json::from_str(doc).map_err(|e| corrupt(name, e))?;
    let parse = |k: &str| {
        SharedAccessKey::from_base64(k)
            .map_err(|_| corrupt(name, "stored policy key is not valid base64"))
    };
    Ok((parse(&keys.primary)?, parse(&keys.secondary)?))
}

type KeyPair = (SharedAccessKey, SharedAccessKey);

fn new_policy_keys(name: &str) -> Result<(KeyPair, WriteOp), HubError> {
    let (primary, secondary) = (SharedAccessKey::generate(), SharedAccessKey::generate());
    let doc = serde_json::to_string(&StoredPolicyKeys {
        primary: primary.expose_base64().to_string(),
        secondary: secondary.expose_base64().to_string(),
    })
    .map_err(|e| HubError::Storage(PersistError::from(e)))?;
    let row = WriteOp::PutPolicy {
        name: name.to_string(),
        doc,
    };
    Ok(((primary, secondary), row))
}
