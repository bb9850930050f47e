//! The one owner of the emulator's state: identity registry, twins, policies and connection
//! state (ARCHITECTURE.md#inside-the-emulator).
//!
//! [`Hub`] is a cheap clone over `Arc<Shared>`. State sits behind a `std::sync::Mutex` that is
//! never held across `.await`: every write mutates memory, hands the changed row to the durable
//! store under the same lock (so disk order equals memory order), releases the lock, and only then
//! awaits the commit before acknowledging. If the commit fails, every write not yet committed is
//! undone in memory (newest first) before the error is returned, and the store refuses later
//! writes: once a client has its answer, no reader sees a write that is not on disk (a reader
//! racing with the commit itself may). REST handlers and MQTT sessions are two front doors onto
//! this type. What the hub has to tell the MQTT side (a committed desired-property change, a
//! connection to close) goes straight to its [`DeviceSessions`], never through a channel that can
//! drop it.

mod clock;
mod connection;
mod device;
mod edge;
mod error;
mod identities;
mod ids;
mod limits;
mod modules;
mod policy;
mod properties;
mod query;
mod query_lag;
mod restore;
mod table;
mod twin;
mod twin_target;

use std::collections::{BTreeMap, VecDeque};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use table::DeviceTable;

use iothub_auth::SharedAccessKey;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::faults::Faults;
use crate::persist::{AfterCommit, PersistError, Store, WriteOp};

pub(crate) use clock::{now_iso, tracking_timestamp};
pub(crate) use device::{Authentication, ConnectionInfo, DeviceRecord};
pub(crate) use edge::ScopeSpec;
pub use error::HubError;
pub(crate) use ids::validate_device_id;
pub(crate) use policy::{DeviceAuth, Permissions, Policy};
// For the REST twin handler, which has yet to pass explicit `null` sections on.
#[cfg(feature = "fuzzing")]
pub(crate) use limits::{
    validate_patch as validate_twin_patch, validate_section as validate_twin_section,
    MAX_PROPERTIES_BYTES, MAX_TAGS_BYTES,
};
pub(crate) use modules::{ModuleRecord, ModuleSpec};
pub(crate) use properties::ClearedSections;
#[cfg(feature = "fuzzing")]
pub(crate) use properties::{apply_reported_patch, apply_service_write};
#[cfg(feature = "fuzzing")]
pub(crate) use twin::TwinState;
pub(crate) use twin_target::TwinId;

/// A committed desired-properties change, for the device's MQTT session.
#[derive(Debug, Clone)]
pub(crate) struct DesiredPatch {
    /// Whose session: the device id, or the module's client id `{deviceId}/{moduleId}` for a
    /// module twin (the session table is keyed by client id).
    pub device_id: String,
    /// The new desired `$version`.
    pub version: u64,
    /// The patch (PATCH) or the full new desired document (PUT), with `"$version"`.
    pub patch: Value,
}

/// The hub's link to the device sessions it does not own (the MQTT session table).
///
/// `desired_changed` is called once per committed desired-property change, in version order:
/// for an in-memory hub under the state lock, for a durable one on the store's writer thread
/// right after the commit. So an implementation must not call back into the hub, and must not
/// block.
pub(crate) trait DeviceSessions: Send + Sync {
    /// A desired-properties change has committed: deliver it to the device's session.
    fn desired_changed(&self, change: DesiredPatch);
    /// Close the device's live connection; its stored session stays (fault injection).
    fn disconnect(&self, device_id: &str);
    /// The device was deleted: close its connection and forget its session.
    fn device_deleted(&self, device_id: &str);
    /// The device has cloud-to-device messages waiting: tell its connection, if it has one.
    fn cloud_to_device_ready(&self, _device_id: &str) {}
}

/// What a service write sends for a device identity (parsed from a `PUT /devices/{id}` body).
#[derive(Debug, Clone)]
pub(crate) struct DeviceSpec {
    /// `status` = "enabled".
    pub enabled: bool,
    /// `statusReason`.
    pub status_reason: Option<String>,
    /// Requested credentials.
    pub authentication: AuthSpec,
    /// `capabilities.iotEdge`.
    pub iot_edge: bool,
    /// `deviceScope` and `parentScopes`.
    pub scopes: ScopeSpec,
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
            scopes: ScopeSpec::default(),
        }
    }
}

/// Requested credentials; SAS keys that are both absent are generated.
#[derive(Debug, Clone)]
pub(crate) enum AuthSpec {
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
pub(crate) enum IfMatch {
    /// `*`: any existing entity.
    Any,
    /// A specific etag.
    Etag(String),
}

impl IfMatch {
    /// `PreconditionFailed` ("{what} did not match, existing etag: …") unless this condition
    /// holds for the `current` etag.
    fn check(&self, current: &str, what: &str) -> Result<(), HubError> {
        match self {
            IfMatch::Etag(e) if e != current => Err(HubError::PreconditionFailed(format!(
                "{what} did not match, existing etag: {current}"
            ))),
            _ => Ok(()),
        }
    }
}

/// Twin PATCH (merge) or PUT (replace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TwinWriteMode {
    /// Merge tags and desired; `null` deletes.
    Patch,
    /// Replace tags and desired entirely.
    Replace,
}

/// A service-side twin write.
#[derive(Debug, Clone)]
pub(crate) struct TwinWrite {
    /// Merge or replace.
    pub mode: TwinWriteMode,
    /// `tags` from the body (None = absent).
    pub tags: Option<Map<String, Value>>,
    /// `properties.desired` from the body (None = absent).
    pub desired: Option<Map<String, Value>>,
}

/// Registry counts of `GET /statistics/devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegistryStatistics {
    /// All devices.
    pub total: u64,
    /// Enabled devices.
    pub enabled: u64,
    /// Disabled devices.
    pub disabled: u64,
}

/// Handle on the hub state: the device identities, their twins and connection state, and the
/// shared access policies. Cheap to clone.
///
/// Embedders reach it through `RunningEmulator::hub()`, mostly to act as a device would without
/// an MQTT connection ([`Hub::patch_reported`]).
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
    sessions: Arc<dyn DeviceSessions>,
    faults: Faults,
    /// `None` with `--in-memory`.
    store: Option<Store>,
    /// Cloud-to-device queues and feedback (their own lock, taken after `state`).
    c2d: crate::c2d::CloudToDevice,
    /// The most recent device-to-cloud messages.
    telemetry: crate::telemetry::TelemetryBuffer,
    /// The partitioned event log behind the built-in Event Hub-compatible endpoint.
    events: crate::events::EventLog,
}

struct State {
    /// Ordered by id: query paging resumes after the last returned key. Keeps the registry
    /// counts as entries come and go, rollbacks included.
    devices: DeviceTable,
    /// Module identities and twins by client id `{deviceId}/{moduleId}` (ids contain no `/`,
    /// so a device's modules are the keys starting with `{deviceId}/`).
    modules: BTreeMap<String, ModuleEntry>,
    policies: BTreeMap<String, Policy>,
    /// Hub-wide identity etag counter.
    etag_counter: u64,
    /// How to undo each write handed to the store and not yet committed, oldest first. A commit
    /// pops its write's entry before the client is answered; when a commit fails, the store
    /// refuses every later write, and the hub undoes all of them, newest first, so memory goes
    /// back to what is on disk (ARCHITECTURE.md#inside-the-emulator).
    uncommitted: VecDeque<Undo>,
    /// What queries see with `--query-lag`; `None` (queries read `devices`) without.
    query_lag: Option<query_lag::LaggedIndex>,
}

/// What memory held before one write, to restore it if the write does not commit.
enum Undo {
    /// Nothing to restore (rows that only mirror memory, such as start-up policy keys).
    Nothing,
    /// The device's record before the write; `None` if it did not exist.
    Device {
        /// Device id.
        id: String,
        /// The record as committed.
        previous: Option<Box<DeviceRecord>>,
    },
    /// The module's record before the write; `None` if it did not exist.
    Module {
        /// Client id `{deviceId}/{moduleId}`.
        key: String,
        /// The record as committed.
        previous: Option<Box<ModuleRecord>>,
    },
    /// Several undos of one write (a device delete with its modules), undone last to first.
    Batch(Vec<Undo>),
}

impl State {
    /// Undoes every uncommitted write, newest first. Connection state is not durable and is
    /// kept as it is now.
    fn roll_back_uncommitted(&mut self) {
        while let Some(undo) = self.uncommitted.pop_back() {
            let lagged = self.query_lag.is_some().then(|| undo.lagged_keys());
            self.undo(undo);
            for key in lagged.into_iter().flatten() {
                self.lag_key(&key);
            }
        }
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Nothing => {}
            Undo::Device { id, previous } => match previous {
                Some(mut record) => {
                    if let Some(current) = self.devices.get(&id) {
                        record.connection = current.record.connection.clone();
                    }
                    self.devices.insert(id, Entry::new(*record));
                }
                None => {
                    self.devices.remove(&id);
                }
            },
            Undo::Module { key, previous } => match previous {
                Some(mut record) => {
                    if let Some(current) = self.modules.get(&key) {
                        record.connection = current.record.connection.clone();
                    }
                    self.modules.insert(key, ModuleEntry::new(*record));
                }
                None => {
                    self.modules.remove(&key);
                }
            },
            Undo::Batch(undos) => {
                for undo in undos.into_iter().rev() {
                    self.undo(undo);
                }
            }
        }
    }
}

/// A record whose twin document the hub renders (a device or a module).
trait TwinRecord {
    /// The twin document of `GET /twins/…` and of queries.
    fn twin_json(&self) -> Value;
}

/// A record with its rendered twin document, cached for queries and GETs; the cache is `None`
/// after a change (a write renders the document once for its response and does not pay for
/// caching it).
struct Cached<R> {
    record: R,
    twin_doc: Option<Value>,
}

/// A device table entry.
type Entry = Cached<DeviceRecord>;
/// A module table entry.
type ModuleEntry = Cached<ModuleRecord>;

impl<R: TwinRecord> Cached<R> {
    fn new(record: R) -> Cached<R> {
        Cached {
            record,
            twin_doc: None,
        }
    }

    fn invalidate(&mut self) {
        self.twin_doc = None;
    }

    /// The twin document, rendered on first use after a change.
    fn twin_doc(&mut self) -> &Value {
        let Cached { record, twin_doc } = self;
        twin_doc.get_or_insert_with(|| record.twin_json())
    }
}

/// A write handed to the store, to be awaited outside the state lock.
#[must_use]
struct Pending<'a> {
    hub: &'a Hub,
    commit: Option<oneshot::Receiver<Result<(), PersistError>>>,
}

impl Pending<'_> {
    /// Waits for the commit. If it failed, memory is rolled back to the committed state before
    /// the error is returned, so no reader ever sees the write.
    async fn committed(self) -> Result<(), HubError> {
        let Some(rx) = self.commit else {
            return Ok(());
        };
        let error = match rx.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => PersistError::Closed,
        };
        self.hub.lock().roll_back_uncommitted();
        Err(HubError::Storage(error))
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state for an emulator.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands rows to the store; call with the state lock held (hence `state`) so disk order
    /// equals memory order. `undo` restores memory if the rows do not commit. `after_commit`
    /// runs once the rows have committed: at once without a store (still under the caller's
    /// lock), on the writer thread in commit order with one.
    fn submit(
        &self,
        state: &mut State,
        ops: Vec<WriteOp>,
        undo: Undo,
        after_commit: Option<AfterCommit>,
    ) -> Pending<'_> {
        state.lag_writes(&ops);
        let Some(store) = &self.shared.store else {
            if let Some(after_commit) = after_commit {
                after_commit();
            }
            return Pending {
                hub: self,
                commit: None,
            };
        };
        state.uncommitted.push_back(undo);
        let shared = Arc::downgrade(&self.shared);
        let committed: AfterCommit = Box::new(move || {
            if let Some(shared) = shared.upgrade() {
                // Entries are popped in commit order, which is submission order.
                let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.uncommitted.pop_front();
            }
            if let Some(after_commit) = after_commit {
                after_commit();
            }
        });
        Pending {
            hub: self,
            commit: Some(store.submit(ops, Some(committed))),
        }
    }

    /// The undo of a write to device `id`, whose record was `previous`; nothing to keep (and no
    /// copy made) for an in-memory hub, where every write commits.
    fn device_undo(&self, id: &str, previous: Option<&DeviceRecord>) -> Undo {
        if self.shared.store.is_none() {
            return Undo::Nothing;
        }
        Undo::Device {
            id: id.to_string(),
            previous: previous.map(|record| Box::new(record.clone())),
        }
    }

    /// Makes the store's next commit fail, as a full disk would (test hook).
    #[cfg(feature = "test-support")]
    pub(crate) fn fail_next_commit(&self) {
        if let Some(store) = &self.shared.store {
            store.fail_next_commit();
        }
    }

    fn put_device_op(record: &DeviceRecord) -> Result<WriteOp, HubError> {
        Ok(WriteOp::PutDevice {
            id: record.device_id.clone(),
            doc: serde_json::to_string(record)
                .map_err(|e| HubError::Storage(PersistError::from(e)))?,
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
    pub(crate) fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Closes the device's MQTT connection now, if it has one (fault injection).
    pub(crate) fn disconnect_device(&self, device_id: &str) {
        self.shared.sessions.disconnect(device_id);
    }

    /// The cloud-to-device queues and feedback.
    pub(crate) fn c2d(&self) -> &crate::c2d::CloudToDevice {
        &self.shared.c2d
    }

    /// The most recent device-to-cloud messages.
    pub(crate) fn telemetry(&self) -> &crate::telemetry::TelemetryBuffer {
        &self.shared.telemetry
    }

    /// The partitioned event log behind the built-in Event Hub-compatible endpoint.
    pub(crate) fn events(&self) -> &crate::events::EventLog {
        &self.shared.events
    }

    /// Who sends the telemetry of client id `device_id` (`{deviceId}` or
    /// `{deviceId}/{moduleId}`), for its events' annotations; `None` for an unknown identity.
    pub(crate) fn telemetry_origin(
        &self,
        device_id: &str,
    ) -> Option<crate::events::TelemetryOrigin> {
        let state = self.lock();
        let (device, module, generation_id) = match TwinId::from_client_id(device_id) {
            TwinId::Device(id) => (
                id,
                None,
                state.devices.get(id)?.record.generation_id.clone(),
            ),
            TwinId::Module { device, module } => {
                let key = modules::module_key(device, module);
                let generation = state.modules.get(&key)?.record.generation_id.clone();
                (device, Some(module.to_string()), generation)
            }
        };
        Some(crate::events::TelemetryOrigin {
            device_id: device.to_string(),
            module_id: module,
            generation_id,
        })
    }

    /// Runs `f` on device `id`'s record under the state lock, so that no delete comes between
    /// the lookup and what `f` does (a cloud-to-device enqueue).
    ///
    /// # Errors
    /// `DeviceNotFound`.
    pub(crate) fn with_device<R>(
        &self,
        id: &str,
        f: impl FnOnce(&DeviceRecord) -> R,
    ) -> Result<R, HubError> {
        let state = self.lock();
        let entry = state
            .devices
            .get(id)
            .ok_or_else(|| HubError::DeviceNotFound(id.to_string()))?;
        Ok(f(&entry.record))
    }

    /// A shared access policy by name (case-sensitive, like the hub).
    pub(crate) fn policy(&self, name: &str) -> Option<Policy> {
        self.lock().policies.get(name).cloned()
    }

    /// Whether a device with this id is registered; for a module's client id
    /// `{deviceId}/{moduleId}`, whether that module is.
    pub(crate) fn device_exists(&self, device_id: &str) -> bool {
        match TwinId::from_client_id(device_id) {
            TwinId::Device(id) => self.lock().devices.contains_key(id),
            TwinId::Module { device, module } => self.module_exists(device, module),
        }
    }

    /// A device's SAS keys; `None` for unknown devices and devices without SAS authentication.
    pub(crate) fn device_keys(&self, device_id: &str) -> Option<DeviceAuth> {
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
}

#[cfg(test)]
mod tests;
