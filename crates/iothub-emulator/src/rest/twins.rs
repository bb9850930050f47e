//! Device twins: `GET`, `PATCH` (merge, `null` deletes) and `PUT` (replace tags and desired)
//! on `/twins/{id}` (ARCHITECTURE.md#service-rest-api). Read-only members in bodies (`deviceId`, `etag`, `version`,
//! `properties.reported`, `$metadata`, `$version`, …) are ignored because SDKs echo them.
//! Injected faults (`fail_next_twin_operations`) apply to all three.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::auth::{need, Caller};
use super::error::ApiError;
use super::modules::ModulePath;
use super::request::{if_match, member, parse_object, present, PathId};
use super::response::JsonResponse;
use crate::hub::{ClearedSections, Hub, HubError, TwinId, TwinWrite, TwinWriteMode};

fn injected_fault(hub: &Hub) -> Result<(), ApiError> {
    match hub.faults().take_twin_failure() {
        Some(status) => Err(HubError::injected(status).into()),
        None => Ok(()),
    }
}

/// `GET /twins/{id}`.
pub async fn get(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<JsonResponse, ApiError> {
    caller.require(need::SERVICE_OR_READ)?;
    injected_fault(&hub)?;
    Ok(JsonResponse::ok(hub.twin_json(&id)?))
}

/// `GET /twins/{id}/modules/{mid}`.
pub async fn get_module(
    State(hub): State<Hub>,
    caller: Caller,
    ModulePath(device, module): ModulePath,
) -> Result<JsonResponse, ApiError> {
    caller.require(need::SERVICE_OR_READ)?;
    injected_fault(&hub)?;
    let id = TwinId::Module {
        device: &device,
        module: &module,
    };
    Ok(JsonResponse::ok(hub.twin_document(id)?))
}

/// `PATCH /twins/{id}/modules/{mid}`.
pub async fn patch_module(
    State(hub): State<Hub>,
    caller: Caller,
    ModulePath(device, module): ModulePath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<JsonResponse, ApiError> {
    let id = TwinId::Module {
        device: &device,
        module: &module,
    };
    write_twin(&hub, &caller, id, &headers, &body, TwinWriteMode::Patch).await
}

/// `PUT /twins/{id}/modules/{mid}`.
pub async fn put_module(
    State(hub): State<Hub>,
    caller: Caller,
    ModulePath(device, module): ModulePath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<JsonResponse, ApiError> {
    let id = TwinId::Module {
        device: &device,
        module: &module,
    };
    write_twin(&hub, &caller, id, &headers, &body, TwinWriteMode::Replace).await
}

/// `PATCH /twins/{id}`.
pub async fn patch(
    state: State<Hub>,
    caller: Caller,
    id: PathId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<JsonResponse, ApiError> {
    write(state, caller, id, headers, body, TwinWriteMode::Patch).await
}

/// `PUT /twins/{id}`.
pub async fn put(
    state: State<Hub>,
    caller: Caller,
    id: PathId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<JsonResponse, ApiError> {
    write(state, caller, id, headers, body, TwinWriteMode::Replace).await
}

async fn write(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Bytes,
    mode: TwinWriteMode,
) -> Result<JsonResponse, ApiError> {
    write_twin(&hub, &caller, TwinId::Device(&id), &headers, &body, mode).await
}

/// A twin PATCH or PUT of a device or module twin: one path for both.
async fn write_twin(
    hub: &Hub,
    caller: &Caller,
    id: TwinId<'_>,
    headers: &HeaderMap,
    body: &[u8],
    mode: TwinWriteMode,
) -> Result<JsonResponse, ApiError> {
    caller.require(need::SERVICE_OR_WRITE)?;
    injected_fault(hub)?;
    let (write, cleared) = parse_write(body, mode)?;
    let twin = hub
        .update_twin_clearing(id, write, cleared, if_match(headers).as_ref())
        .await?;
    Ok(JsonResponse::ok(twin))
}

/// A twin PATCH or PUT body as the hub's write: the `tags` and `properties.desired` sections,
/// and which of them a PATCH clears by sending `null`.
///
/// # Errors
/// Not a JSON object, or a section that is neither an object nor (PATCH) `null`.
pub(crate) fn parse_write(
    body: &[u8],
    mode: TwinWriteMode,
) -> Result<(TwinWrite, ClearedSections), ApiError> {
    let body = parse_object(body)?;
    let tags = section(present(&body, "tags"), "tags")?;
    let properties = match present(&body, "properties") {
        None => None,
        Some(Value::Object(props)) => Some(props),
        Some(_) => return Err(ApiError::invalid("properties must be an object")),
    };
    let desired = match properties {
        None => None,
        Some(props) => section(present(props, "desired"), "properties.desired")?,
    };
    // A PATCH that sends a whole section as `null` clears it, as on the real hub; a PUT
    // replaces both sections anyway.
    let cleared = match mode {
        TwinWriteMode::Patch => ClearedSections {
            tags: is_null(member(&body, "tags")),
            desired: properties.is_some_and(|props| is_null(member(props, "desired"))),
        },
        TwinWriteMode::Replace => ClearedSections::default(),
    };
    let write = TwinWrite {
        mode,
        tags,
        desired,
    };
    Ok((write, cleared))
}

fn is_null(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Null))
}

fn section(value: Option<&Value>, name: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    match value {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(_) => Err(ApiError::invalid(format!("{name} must be a JSON object"))),
    }
}
