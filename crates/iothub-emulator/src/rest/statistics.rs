//! `GET /statistics/devices` and `GET /statistics/service` (ARCHITECTURE.md#service-rest-api).

use axum::extract::State;
use serde_json::json;

use super::auth::{need, Caller};
use super::error::ApiError;
use super::response::JsonResponse;
use crate::hub::Hub;

/// Registry counts.
pub async fn devices(State(hub): State<Hub>, caller: Caller) -> Result<JsonResponse, ApiError> {
    caller.require(need::REGISTRY_READ)?;
    let stats = hub.registry_statistics();
    Ok(JsonResponse::ok(json!({
        "totalDeviceCount": stats.total,
        "enabledDeviceCount": stats.enabled,
        "disabledDeviceCount": stats.disabled,
    })))
}

/// Connected device count.
pub async fn service(State(hub): State<Hub>, caller: Caller) -> Result<JsonResponse, ApiError> {
    caller.require(need::SERVICE_OR_READ)?;
    Ok(JsonResponse::ok(
        json!({ "connectedDeviceCount": hub.connected_device_count() }),
    ))
}
