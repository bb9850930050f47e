//! The bulk registry operation `POST /devices` (ARCHITECTURE.md#service-rest-api;
//! <https://learn.microsoft.com/rest/api/iothub/service/bulk-registry/update-registry>).
//!
//! - Body: a JSON array of 1 to [`MAX_ENTRIES`] `ExportImportDevice` entries: `id` (and
//!   `moduleId` for a module), `importMode`, `eTag`, and the identity members of a device or
//!   module PUT (`status`, `authentication`, `capabilities`, `deviceScope`, …); `updateTwin`
//!   modes take `tags`, `properties.desired` and `twinETag`.
//! - `importMode`, case-insensitive: `create`, `createOrUpdate`, `update` (no etag check; a
//!   missing device is an error), `updateIfMatchETag`,
//!   `delete`, `deleteIfMatchETag`, `updateTwin`, `updateTwinIfMatchETag`.
//! - Each entry is one registry write with its own commit: atomic per device, not per call. A
//!   failed entry does not stop the others. A `create` entry's `tags` and `properties.desired`
//!   are written right after the identity; if the hub refuses them, the device stays registered
//!   and the answer carries a `DeviceRegisteredWithoutTwin` warning.
//! - 200 `{"isSuccessful":true,"errors":[],"warnings":[]}` when every entry succeeded; 400 with
//!   the same shape, `isSuccessful: false` and one `{deviceId, errorCode, errorStatus}` per
//!   failed entry (plus `moduleId` for a module) otherwise.
//! - A request that cannot be applied at all (not an array, empty, over [`MAX_ENTRIES`], an
//!   entry without `id` or with an unknown `importMode`, the same identity twice) is refused
//!   with a Format A 400 before anything is written.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::auth::{need, Caller};
use super::devices::parse_spec as parse_device_spec;
use super::error::ApiError;
use super::modules::parse_spec as parse_module_spec;
use super::request::{parse_json, present};
use super::response::JsonResponse;
use super::twins::parse_write;
use crate::hub::{Hub, HubError, IfMatch, TwinId, TwinWriteMode};

/// The most identities one call may carry (the hub's bound).
pub const MAX_ENTRIES: usize = 100;

/// An `importMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    CreateOrUpdate,
    Update,
    UpdateIfMatchEtag,
    Delete,
    DeleteIfMatchEtag,
    UpdateTwin,
    UpdateTwinIfMatchEtag,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        Some(match text.to_ascii_lowercase().as_str() {
            "create" => Mode::Create,
            "createorupdate" => Mode::CreateOrUpdate,
            "update" => Mode::Update,
            "updateifmatchetag" => Mode::UpdateIfMatchEtag,
            "delete" => Mode::Delete,
            "deleteifmatchetag" => Mode::DeleteIfMatchEtag,
            "updatetwin" => Mode::UpdateTwin,
            "updatetwinifmatchetag" => Mode::UpdateTwinIfMatchEtag,
            _ => return None,
        })
    }
}

/// One checked entry of the request.
struct Entry {
    device_id: String,
    module_id: Option<String>,
    mode: Mode,
    body: Map<String, Value>,
}

impl Entry {
    /// The `If-Match` of an `…IfMatchETag` mode: the entry's `eTag` (or `twinETag`), where `*`
    /// matches anything and a missing one matches nothing.
    fn condition(&self, member: &str) -> IfMatch {
        let etag = present(&self.body, member)
            .and_then(Value::as_str)
            .map(|e| e.trim_matches('"'))
            .unwrap_or_default();
        if etag == "*" {
            IfMatch::Any
        } else {
            IfMatch::Etag(etag.to_string())
        }
    }
}

/// `POST /devices`.
pub async fn apply(
    State(hub): State<Hub>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(need::REGISTRY_WRITE)?;
    let entries = parse_request(&body)?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for entry in &entries {
        match apply_entry(&hub, entry).await {
            Ok(()) => {}
            Err(Failed::Entry(failure)) => {
                let mut error = json!({
                    "deviceId": entry.device_id,
                    "errorCode": failure.code,
                    "errorStatus": failure.status,
                });
                if let (Some(module), Value::Object(map)) = (&entry.module_id, &mut error) {
                    map.insert("moduleId".into(), json!(module));
                }
                errors.push(error);
            }
            Err(Failed::Twin(failure)) => warnings.push(json!({
                "deviceId": entry.device_id,
                "warningCode": "DeviceRegisteredWithoutTwin",
                "warningStatus": format!("{}: {}", failure.code, failure.status),
            })),
        }
    }
    let successful = errors.is_empty();
    let result = json!({"isSuccessful": successful, "errors": errors, "warnings": warnings});
    let mut response = JsonResponse::ok(result).into_response();
    if !successful {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

fn parse_request(body: &[u8]) -> Result<Vec<Entry>, ApiError> {
    let items = match parse_json(body)? {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(ApiError::invalid(
                "The request body must be a JSON array of ExportImportDevice entries",
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_ENTRIES {
        return Err(ApiError::invalid(format!(
            "A bulk registry operation takes 1 to {MAX_ENTRIES} devices, got {}",
            items.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(body) = item else {
            return Err(ApiError::invalid(format!(
                "Entry {index} of the bulk operation is not a JSON object"
            )));
        };
        let device_id = present(&body, "id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(format!("Entry {index} of the bulk operation has no \"id\""))
            })?
            .to_string();
        let module_id = match present(&body, "moduleId") {
            None => None,
            Some(Value::String(m)) if !m.is_empty() => Some(m.clone()),
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "Entry {index}: moduleId must be a non-empty string"
                )))
            }
        };
        let mode_text = present(&body, "importMode")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mode = Mode::parse(mode_text).ok_or_else(|| {
            ApiError::invalid(format!(
                "Entry {index}: importMode '{mode_text}' is not one of create, createOrUpdate, update, updateIfMatchETag, delete, deleteIfMatchETag, updateTwin, updateTwinIfMatchETag"
            ))
        })?;
        if !seen.insert((device_id.clone(), module_id.clone())) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "DeviceDefinedMultipleTimes",
                format!("The device '{device_id}' is defined more than once in the request"),
            ));
        }
        entries.push(Entry {
            device_id,
            module_id,
            mode,
            body,
        });
    }
    Ok(entries)
}

/// Why one entry failed: the error code name and a message.
struct Failure {
    code: &'static str,
    status: String,
}

impl From<HubError> for Failure {
    fn from(e: HubError) -> Failure {
        Failure {
            code: e.error_code(),
            status: e.to_string(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure {
            code: e.code(),
            status: e.message().to_string(),
        }
    }
}

/// How an entry failed: not at all applied, or created without the twin content it carried.
enum Failed {
    Entry(Failure),
    Twin(Failure),
}

impl<E: Into<Failure>> From<E> for Failed {
    fn from(e: E) -> Failed {
        Failed::Entry(e.into())
    }
}

/// After a `create`: the entry's `tags` and `properties.desired`, if any, as a second write (as
/// on the hub, a device whose twin content is refused stays registered, with a warning).
async fn initial_twin(hub: &Hub, entry: &Entry, id: TwinId<'_>) -> Result<(), Failed> {
    if present(&entry.body, "tags").is_none() && present(&entry.body, "properties").is_none() {
        return Ok(());
    }
    update_twin(hub, entry, id).await.map_err(Failed::Twin)
}

/// Applies one entry: one registry write (a `create` with twin content: two).
async fn apply_entry(hub: &Hub, entry: &Entry) -> Result<(), Failed> {
    let device = entry.device_id.as_str();
    if let Some(module) = &entry.module_id {
        return apply_module_entry(hub, entry, device, module).await;
    }
    match entry.mode {
        Mode::Create => {
            let spec = parse_device_spec(device, &entry.body)?;
            hub.create_device(device, spec).await?;
            initial_twin(hub, entry, TwinId::Device(device)).await?;
        }
        Mode::CreateOrUpdate => {
            let spec = parse_device_spec(device, &entry.body)?;
            if hub.device_exists(device) {
                hub.update_device(device, spec, &IfMatch::Any).await?;
            } else {
                hub.create_device(device, spec).await?;
            }
        }
        Mode::Update | Mode::UpdateIfMatchEtag => {
            let spec = parse_device_spec(device, &entry.body)?;
            let cond = match entry.mode {
                Mode::Update => IfMatch::Any,
                _ => entry.condition("eTag"),
            };
            hub.update_device(device, spec, &cond).await?;
        }
        Mode::Delete => hub.delete_device(device, None).await?,
        Mode::DeleteIfMatchEtag => {
            hub.delete_device(device, Some(&entry.condition("eTag")))
                .await?;
        }
        Mode::UpdateTwin | Mode::UpdateTwinIfMatchEtag => {
            update_twin(hub, entry, TwinId::Device(device)).await?;
        }
    }
    Ok(())
}

async fn apply_module_entry(
    hub: &Hub,
    entry: &Entry,
    device: &str,
    module: &str,
) -> Result<(), Failed> {
    // Module entries name the device in `id`; the module PUT rules check `deviceId`.
    let mut body = entry.body.clone();
    body.remove("deviceId");
    match entry.mode {
        Mode::Create => {
            let spec = parse_module_spec(device, module, &body)?;
            hub.create_module(device, module, spec).await?;
            initial_twin(hub, entry, TwinId::Module { device, module }).await?;
        }
        Mode::CreateOrUpdate => {
            let spec = parse_module_spec(device, module, &body)?;
            if hub.module_exists(device, module) {
                hub.update_module(device, module, spec, &IfMatch::Any)
                    .await?;
            } else {
                hub.create_module(device, module, spec).await?;
            }
        }
        Mode::Update | Mode::UpdateIfMatchEtag => {
            let spec = parse_module_spec(device, module, &body)?;
            let cond = match entry.mode {
                Mode::Update => IfMatch::Any,
                _ => entry.condition("eTag"),
            };
            hub.update_module(device, module, spec, &cond).await?;
        }
        Mode::Delete => hub.delete_module(device, module, None).await?,
        Mode::DeleteIfMatchEtag => {
            hub.delete_module(device, module, Some(&entry.condition("eTag")))
                .await?;
        }
        Mode::UpdateTwin | Mode::UpdateTwinIfMatchEtag => {
            update_twin(hub, entry, TwinId::Module { device, module }).await?;
        }
    }
    Ok(())
}

/// `updateTwin*`: the entry's `tags` and `properties.desired` merged as a twin PATCH.
async fn update_twin(hub: &Hub, entry: &Entry, id: TwinId<'_>) -> Result<(), Failure> {
    let mut twin = Map::new();
    for member in ["tags", "properties"] {
        if let Some(value) = present(&entry.body, member) {
            twin.insert(member.to_string(), value.clone());
        }
    }
    let bytes = serde_json::to_vec(&Value::Object(twin)).unwrap_or_default();
    let (write, cleared) = parse_write(&bytes, TwinWriteMode::Patch)?;
    let cond = match entry.mode {
        Mode::UpdateTwinIfMatchEtag => Some(entry.condition("twinETag")),
        _ => None,
    };
    hub.update_twin_clearing(id, write, cleared, cond.as_ref())
        .await?;
    Ok(())
}
