//! The one owner of the emulator's state: registry, twins, policies and connection state.
//!
//! [`Hub`] is a cheap clone over `Arc<Shared>`. State sits behind a `std::sync::Mutex` that is
//! never held across `.await`: every write mutates memory, hands the changed row to the durable
//! store under the same lock (so disk order equals memory order), releases the lock, and only then
//! awaits the commit before acknowledging. REST handlers and MQTT sessions are two front doors
//! onto this type; desired-property changes fan out to MQTT sessions over a broadcast channel.

mod clock;
mod connection;
mod device;
mod error;
mod ids;
pub mod limits;
mod policy;
mod properties;
mod query;
mod identities;
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
}

#[cfg(test)]
mod tests;
