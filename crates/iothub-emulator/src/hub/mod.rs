//! The one owner of the emulator's state: registry, twins, policies and connection state.
//!
//! [`Hub`] is a cheap clone over `Arc<Shared>`. State sits behind a `std::sync::Mutex` that is
//! never held across `.await`: every write mutates memory, hands the changed row to the durable
//! store under the same lock (so disk order equals memory order), releases the lock, and only then
//! awaits the commit before acknowledging. REST handlers and MQTT sessions are two front doors
//! onto this type; desired-property changes fan out to MQTT sessions over a broadcast channel.

mod clock;
mod device;
mod error;
mod ids;
pub mod limits;
mod policy;
mod query;
mod twin;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use iothub_auth::SharedAccessKey;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, oneshot};

use crate::faults::Faults;
use crate::persist::{Loaded, PersistError, Store, WriteOp};

pub use clock::now_iso;
pub(crate) use clock::tracking_timestamp;
pub use device::{Authentication, ConnectionInfo, DeviceRecord};
pub use error::HubError;
pub use ids::validate_device_id;
pub use policy::{default_policies, DeviceAuth, Permissions, Policy};
pub use twin::twin_etag;

/// A desired-properties change, pushed to the device's MQTT session.
#[derive(Debug, Clone)]
pub struct DesiredPatch {
    /// Which device.
    pub device_id: String,
    /// The new desired `$version`.
    pub version: u64,
    /// The patch (PATCH) or the full new desired document (PUT), with `"$version"`.
    pub patch: Value,
}

/// What a service write sends for a device identity (parsed from a `PUT /devices/{id}` body).
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// `status` = "enabled".
    pub enabled: bool,
    /// `statusReason`.
    pub status_reason: Option<String>,
    /// Requested credentials.
    pub authentication: AuthSpec,
    /// `capabilities.iotEdge`.
    pub iot_edge: bool,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec {
            enabled: true,
            status_reason: None,
            authentication: AuthSpec::Sas {
                primary: None,
                secondary: None,
            },
            iot_edge: false,
        }
    }
}

/// Requested credentials; SAS keys that are both absent are generated.
#[derive(Debug, Clone)]
pub enum AuthSpec {
    /// Symmetric keys (either both given or both generated).
    Sas {
        /// Primary key, if supplied.
        primary: Option<SharedAccessKey>,
        /// Secondary key, if supplied.
        secondary: Option<SharedAccessKey>,
    },
    /// X.509 self-signed thumbprints.
    SelfSigned {
        /// Primary thumbprint.
        primary_thumbprint: Option<String>,
        /// Secondary thumbprint.
        secondary_thumbprint: Option<String>,
    },
    /// X.509 CA.
    CertificateAuthority,
    /// No credentials.
    None,
}

/// An `If-Match` condition (already unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any existing entity.
    Any,
    /// A specific etag.
    Etag(String),
}

impl IfMatch {
    fn matches(&self, current: &str) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Etag(e) => e == current,
        }
    }
}

/// Twin PATCH (merge) or PUT (replace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwinWriteMode {
    /// Merge tags and desired; `null` deletes.
    Patch,
    /// Replace tags and desired entirely.
    Replace,
}

/// A service-side twin write.
#[derive(Debug, Clone)]
pub struct TwinWrite {
    /// Merge or replace.
    pub mode: TwinWriteMode,
    /// `tags` from the body (None = absent).
    pub tags: Option<Map<String, Value>>,
    /// `properties.desired` from the body (None = absent).
    pub desired: Option<Map<String, Value>>,
}

/// Registry counts of `GET /statistics/devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryStatistics {
    /// All devices.
    pub total: u64,
    /// Enabled devices.
    pub enabled: u64,
    /// Disabled devices.
    pub disabled: u64,
}

/// Handle on the hub state.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("hostname", &self.shared.hostname)
            .finish_non_exhaustive()
    }
}

struct Shared {
    hostname: String,
    state: Mutex<State>,
    desired_tx: broadcast::Sender<DesiredPatch>,
    faults: Arc<Faults>,
    /// `None` with `--in-memory`.
    store: Option<Store>,
}

struct State {
    /// Ordered by id: query paging resumes after the last returned key.
    devices: BTreeMap<String, Entry>,
    policies: BTreeMap<String, Policy>,
    /// Hub-wide identity etag counter.
    etag_counter: u64,
}

struct Entry {
    record: DeviceRecord,
    /// The rendered twin document, cached for queries and GETs; `None` after a change (a write
    /// renders the document once for its response and does not pay for caching it).
    twin_doc: Option<Value>,
}

impl Entry {
    fn new(record: DeviceRecord) -> Entry {
        Entry {
            record,
            twin_doc: None,
        }
    }

    fn invalidate(&mut self) {
        self.twin_doc = None;
    }

    /// The twin document, rendered on first use after a change.
    fn twin_doc(&mut self) -> &Value {
        let Entry { record, twin_doc } = self;
        twin_doc.get_or_insert_with(|| record.twin_json())
    }
}

/// A write handed to the store, to be awaited outside the state lock.
#[must_use]
struct Pending(Option<oneshot::Receiver<Result<(), PersistError>>>);

impl Pending {
    async fn committed(self) -> Result<(), HubError> {
        let Some(rx) = self.0 else { return Ok(()) };
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HubError::Storage(e.to_string())),
            Err(_) => Err(HubError::Storage(PersistError::Closed.to_string())),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredPolicyKeys {
    primary: String,
    secondary: String,
}

fn storage_error(e: impl std::fmt::Display) -> HubError {
    HubError::Storage(e.to_string())
}

impl Hub {
    /// Builds the hub from stored rows, creating the default policies that are missing.
    ///
    /// # Errors
    /// A stored row is corrupt, or storing new policy keys fails.
    pub(crate) async fn open(
        hostname: String,
        store: Option<Store>,
        loaded: Loaded,
    ) -> Result<Hub, HubError> {
        let mut devices = BTreeMap::new();
        let mut etag_counter = 0;
        for (id, doc) in loaded.devices {
            let record: DeviceRecord = serde_json::from_str(&doc).map_err(|e| {
                storage_error(PersistError::Corrupt {
                    key: id.clone(),
                    reason: e.to_string(),
                })
            })?;
            etag_counter = etag_counter.max(record.etag_counter);
            devices.insert(id, Entry::new(record));
        }
        let stored_keys: BTreeMap<String, String> = loaded.policies.into_iter().collect();
        let mut policies = BTreeMap::new();
        let mut new_rows = Vec::new();
        for (name, permissions) in default_policies() {
            let (primary, secondary) = match stored_keys.get(name) {
                Some(doc) => {
                    let keys: StoredPolicyKeys = serde_json::from_str(doc).map_err(|e| {
                        storage_error(PersistError::Corrupt {
                            key: name.to_string(),
                            reason: e.to_string(),
                        })
                    })?;
                    let parse = |k: &str| {
                        SharedAccessKey::from_base64(k).map_err(|_| {
                            storage_error(PersistError::Corrupt {
                                key: name.to_string(),
                                reason: "stored policy key is not valid base64".into(),
                            })
                        })
                    };
                    (parse(&keys.primary)?, parse(&keys.secondary)?)
                }
                None => {
                    let (p, s) = (SharedAccessKey::generate(), SharedAccessKey::generate());
                    let doc = serde_json::to_string(&StoredPolicyKeys {
                        primary: p.expose_base64().to_string(),
                        secondary: s.expose_base64().to_string(),
                    })
                    .map_err(storage_error)?;
                    new_rows.push(WriteOp::PutPolicy {
                        name: name.to_string(),
                        doc,
                    });
                    (p, s)
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
        let (desired_tx, _) = broadcast::channel(4096);
        let hub = Hub {
            shared: Arc::new(Shared {
                hostname,
                state: Mutex::new(State {
                    devices,
                    policies,
                    etag_counter,
                }),
                desired_tx,
                faults: Arc::new(Faults::new()),
                store,
            }),
        };
        if !new_rows.is_empty() {
            hub.submit(new_rows).committed().await?;
        }
        Ok(hub)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state for an emulator.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands rows to the store; call with the state lock held so disk order equals memory order.
    fn submit(&self, ops: Vec<WriteOp>) -> Pending {
        Pending(self.shared.store.as_ref().map(|s| s.submit(ops)))
    }

    fn put_device_op(record: &DeviceRecord) -> Result<WriteOp, HubError> {
        Ok(WriteOp::PutDevice {
            id: record.device_id.clone(),
            doc: serde_json::to_string(record).map_err(storage_error)?,
        })
    }

    /// Commits everything queued and stops the store writer (graceful shutdown).
    pub(crate) async fn close_store(&self) {
        if let Some(store) = &self.shared.store {
            store.close().await;
        }
    }

    /// The hub host name (as in connection strings and SAS resources).
    pub fn hostname(&self) -> &str {
        &self.shared.hostname
    }

    /// Fault-injection state.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    pub(crate) fn faults_arc(&self) -> Arc<Faults> {
        Arc::clone(&self.shared.faults)
    }

    /// A shared access policy by name (case-sensitive, like the hub).
    pub fn policy(&self, name: &str) -> Option<Policy> {
        self.lock().policies.get(name).cloned()
    }

    /// A device's SAS keys; `None` for unknown devices and devices without SAS authentication.
    pub fn device_keys(&self, device_id: &str) -> Option<DeviceAuth> {
        let state = self.lock();
        let record = &state.devices.get(device_id)?.record;
        match &record.authentication {
            Authentication::Sas { primary, secondary } => Some(DeviceAuth {
                primary: primary.clone(),
                secondary: secondary.clone(),
                enabled: record.enabled,
            }),
            _ => None,
        }
    }

    /// Desired-property changes of every device, as they are acknowledged.
    pub fn subscribe_desired(&self) -> broadcast::Receiver<DesiredPatch> {
        self.shared.desired_tx.subscribe()
    }

    // ----- registry -------------------------------------------------------------------------

    /// Registers a new device; `DeviceAlreadyExists` if the id is taken.
    ///
    /// # Errors
    /// Invalid id or keys, existing device, storage failure.
    pub async fn create_device(&self, id: &str, spec: DeviceSpec) -> Result<Value, HubError> {
        validate_device_id(id)?;
        let authentication = resolve_auth(spec.authentication)?;
        let (json, pending) = {
            let mut state = self.lock();
            if state.devices.contains_key(id) {
                return Err(HubError::DeviceAlreadyExists(id.to_string()));
            }
            state.etag_counter += 1;
            let now = now_iso();
            let record = DeviceRecord {
                device_id: id.to_string(),
                generation_id: clock::dotnet_ticks_now().to_string(),
                etag_counter: state.etag_counter,
                enabled: spec.enabled,
                status_reason: spec.status_reason,
                status_updated_time: None,
                authentication,
                iot_edge: spec.iot_edge,
                twin: twin::TwinState::new(&now),
                connection: ConnectionInfo::default(),
            };
            let op = Self::put_device_op(&record)?;
            let json = record.identity_json();
            state.devices.insert(id.to_string(), Entry::new(record));
            (json, self.submit(vec![op]))
        };
        pending.committed().await?;
        Ok(json)
    }

    /// Replaces a device's identity (PUT with `If-Match`).
    ///
    /// # Errors
    /// Unknown device, etag mismatch, invalid keys, storage failure.
    pub async fn update_device(
        &self,
        id: &str,
        spec: DeviceSpec,
        if_match: &IfMatch,
    ) -> Result<Value, HubError> {
        let authentication = resolve_auth(spec.authentication)?;
        let (json, pending) = {
            let mut state = self.lock();
            state.etag_counter += 1;
            let counter = state.etag_counter;
            let entry = state
                .devices
                .get_mut(id)
                .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))?;
            let record = &mut entry.record;
            if !if_match.matches(&record.etag()) {
                return Err(HubError::PreconditionFailed(format!(
                    "Device version did not match, existing etag: {}",
                    record.etag()
                )));
            }
            if record.enabled != spec.enabled {
                record.status_updated_time = Some(now_iso());
            }
            record.enabled = spec.enabled;
            record.status_reason = spec.status_reason;
            record.authentication = authentication;
            record.iot_edge = spec.iot_edge;
            record.etag_counter = counter;
            record.twin.version += 1;
            let op = Self::put_device_op(record)?;
            let json = record.identity_json();
            entry.invalidate();
            (json, self.submit(vec![op]))
        };
        pending.committed().await?;
        Ok(json)
    }

    /// Deletes a device (and closes its MQTT connection).
    ///
    /// # Errors
    /// Unknown device, etag mismatch, storage failure.
    pub async fn delete_device(
        &self,
        id: &str,
        if_match: Option<&IfMatch>,
    ) -> Result<(), HubError> {
        let pending = {
            let mut state = self.lock();
            let entry = state
                .devices
                .get(id)
                .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))?;
            if let Some(cond) = if_match {
                if !cond.matches(&entry.record.etag()) {
                    return Err(HubError::PreconditionFailed(format!(
                        "Device version did not match, existing etag: {}",
                        entry.record.etag()
                    )));
                }
            }
            state.devices.remove(id);
            self.submit(vec![WriteOp::DeleteDevice { id: id.to_string() }])
        };
        pending.committed().await?;
        self.shared.faults.drop_device_connection(id);
        Ok(())
    }

    /// Registers `id` with generated keys unless it exists; returns its keys either way.
    ///
    /// # Errors
    /// Invalid id, an existing device without SAS keys, storage failure.
    pub async fn ensure_device(&self, id: &str) -> Result<DeviceAuth, HubError> {
        if self.device_json(id).is_err() {
            match self.create_device(id, DeviceSpec::default()).await {
                Ok(_) | Err(HubError::DeviceAlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
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
        self.lock()
            .devices
            .get(id)
            .map(|e| e.record.identity_json())
            .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))
    }

    /// Up to `top` device identities, ordered by id.
    pub fn list_devices(&self, top: usize) -> Vec<Value> {
        self.lock()
            .devices
            .values()
            .take(top)
            .map(|e| e.record.identity_json())
            .collect()
    }

    /// Registry counts.
    pub fn registry_statistics(&self) -> RegistryStatistics {
        let state = self.lock();
        let total = state.devices.len() as u64;
        let enabled = state.devices.values().filter(|e| e.record.enabled).count() as u64;
        RegistryStatistics {
            total,
            enabled,
            disabled: total - enabled,
        }
    }

    /// Devices currently connected over MQTT.
    pub fn connected_device_count(&self) -> u64 {
        self.lock()
            .devices
            .values()
            .filter(|e| e.record.connection.connected)
            .count() as u64
    }

    // ----- twins ----------------------------------------------------------------------------

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
                if !cond.matches(&twin.etag_string()) {
                    return Err(HubError::PreconditionFailed(format!(
                        "Twin etag did not match, existing etag: {}",
                        twin.etag_string()
                    )));
                }
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

    /// Records a device's MQTT connect or disconnect.
    pub async fn set_connected(&self, device_id: &str, connected: bool) {
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(device_id) {
            let now = now_iso();
            let conn = &mut entry.record.connection;
            conn.connected = connected;
            conn.state_updated_time = Some(now.clone());
            conn.last_activity_time = Some(now);
            entry.invalidate();
        }
    }

    /// Records device activity (`lastActivityTime`).
    pub fn record_activity(&self, device_id: &str) {
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(device_id) {
            let now = now_iso();
            if let Some(Value::Object(doc)) = &mut entry.twin_doc {
                doc.insert("lastActivityTime".into(), Value::String(now.clone()));
            }
            entry.record.connection.last_activity_time = Some(now);
        }
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

fn resolve_auth(spec: AuthSpec) -> Result<Authentication, HubError> {
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

#[cfg(test)]
mod tests;
