//! The bulk registry API (`POST /devices`): create or delete up to 100 identities per request,
//! with a result per entry. Larger sets are split into batches sent one after another; each
//! batch is one request through the shared transport, so 429 and 503 are retried with
//! backoff like every other call.
//!
//! Reference: [bulk registry operations](https://learn.microsoft.com/rest/api/iothub/service/bulk-registry/update-registry).

use iothub_auth::SharedAccessKey;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::ServiceClient;
use crate::error::ServiceError;
use crate::transport::Call;

/// The hub accepts at most this many entries per bulk request.
pub const MAX_BULK_ENTRIES: usize = 100;

/// A device identity to create with keys chosen by the caller. Sending the keys in the create
/// body saves reading each device back: the bulk answer carries no keys.
#[derive(Clone)]
pub struct NewDevice {
    /// The device id.
    pub device_id: String,
    /// The primary symmetric key.
    pub primary_key: SharedAccessKey,
    /// The secondary symmetric key.
    pub secondary_key: SharedAccessKey,
}

impl NewDevice {
    /// A device with freshly generated random keys.
    pub fn with_generated_keys(device_id: impl Into<String>) -> NewDevice {
        NewDevice {
            device_id: device_id.into(),
            primary_key: SharedAccessKey::generate(),
            secondary_key: SharedAccessKey::generate(),
        }
    }
}

impl std::fmt::Debug for NewDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDevice")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// One entry the hub refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkFailure {
    /// The device the entry named.
    pub device_id: String,
    /// The hub's error code, e.g. `DeviceAlreadyExists`.
    #[serde(default)]
    pub error_code: String,
    /// The hub's message for this entry.
    #[serde(default)]
    pub error_status: String,
}

/// The outcome of a bulk operation over all its batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Batches sent (one request each, not counting retries).
    pub batches: usize,
    /// Entries that succeeded.
    pub succeeded: usize,
    /// Entries the hub refused, each with its reason.
    pub failures: Vec<BulkFailure>,
}

#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    errors: Vec<BulkFailure>,
}

impl ServiceClient {
    /// Creates `devices` (enabled, SAS authentication with their keys), at most
    /// [`MAX_BULK_ENTRIES`] per request. An entry the hub refuses (an id that exists, a bad
    /// id) is listed in [`BulkOutcome::failures`]; the other entries of its batch still count.
    ///
    /// # Errors
    /// A [`ServiceError`] when a batch as a whole fails (unauthorized, throttled until the
    /// retry budget ran out, unreachable); batches before it stay applied.
    pub async fn create_devices(&self, devices: &[NewDevice]) -> Result<BulkOutcome, ServiceError> {
        let entries: Vec<Value> = devices
            .iter()
            .map(|d| {
                json!({
                    "id": d.device_id,
                    "importMode": "create",
                    "status": "enabled",
                    "authentication": {
                        "type": "sas",
                        "symmetricKey": {
                            "primaryKey": d.primary_key.expose_base64(),
                            "secondaryKey": d.secondary_key.expose_base64(),
                        }
                    }
                })
            })
            .collect();
        self.bulk(&entries, "create devices in bulk").await
    }

    /// Deletes the devices `device_ids` (whatever their etag), at most [`MAX_BULK_ENTRIES`] per
    /// request; refused entries (e.g. `DeviceNotFound`) are listed in the outcome.
    ///
    /// # Errors
    /// As [`ServiceClient::create_devices`].
    pub async fn delete_devices(&self, device_ids: &[String]) -> Result<BulkOutcome, ServiceError> {
        let entries: Vec<Value> = device_ids
            .iter()
            .map(|id| json!({"id": id, "importMode": "delete"}))
            .collect();
        self.bulk(&entries, "delete devices in bulk").await
    }

    async fn bulk(&self, entries: &[Value], operation: &str) -> Result<BulkOutcome, ServiceError> {
        let mut outcome = BulkOutcome::default();
        for batch in entries.chunks(MAX_BULK_ENTRIES) {
            let body = serde_json::to_vec(batch)
                .map_err(|e| ServiceError::InvalidArgument(format!("bulk request: {e}")))?;
            let call = Call {
                method: Method::POST,
                path: "/devices".into(),
                body: Some(&body),
                headers: Vec::new(),
                operation,
            };
            // 400 carries the per-entry errors in the same shape as a 200.
            let answer = self
                .transport()
                .send_accepting(&call, Some(StatusCode::BAD_REQUEST))
                .await?;
            let parsed: BulkAnswer =
                serde_json::from_slice(&answer.body).map_err(|e| ServiceError::Protocol {
                    operation: operation.to_owned(),
                    detail: format!("cannot parse the bulk answer: {e}"),
                })?;
            outcome.batches += 1;
            outcome.succeeded += batch.len().saturating_sub(parsed.errors.len());
            outcome.failures.extend(parsed.errors);
        }
        Ok(outcome)
    }
}
