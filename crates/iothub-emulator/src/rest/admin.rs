//! Emulator admin endpoints for fault injection (owner key only: an `iothubowner` SAS token;
//! no `api-version` needed). All answer 204 on success.
//!
//! - `POST /$emulator/faults/drop-connection/{deviceId}`: close the device's MQTT connection now.
//! - `POST /$emulator/faults/refuse-connections?seconds=N`: refuse MQTT CONNECTs for N seconds
//!   (`seconds=0` stops refusing).
//! - `POST /$emulator/faults/fail-twin-operations?count=N&status=429|503`: the next N twin
//!   operations (REST GET/PATCH/PUT, MQTT GET/PATCH) fail with that status (default 503).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::request::PathId;
use crate::hub::Hub;

/// `POST /$emulator/faults/drop-connection/{deviceId}`.
pub async fn drop_connection(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    caller.require_owner()?;
    hub.disconnect_device(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `refuse-connections`.
#[derive(Debug, Deserialize)]
pub struct RefuseParams {
    seconds: u64,
}

/// `POST /$emulator/faults/refuse-connections?seconds=N`.
pub async fn refuse_connections(
    State(hub): State<Hub>,
    caller: Caller,
    Query(p): Query<RefuseParams>,
) -> Result<StatusCode, ApiError> {
    caller.require_owner()?;
    hub.faults()
        .refuse_connections_for(Duration::from_secs(p.seconds));
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `fail-twin-operations`.
#[derive(Debug, Deserialize)]
pub struct FailParams {
    count: u32,
    status: Option<u16>,
}

/// `POST /$emulator/faults/fail-twin-operations?count=N&status=429`.
pub async fn fail_twin_operations(
    State(hub): State<Hub>,
    caller: Caller,
    Query(p): Query<FailParams>,
) -> Result<StatusCode, ApiError> {
    caller.require_owner()?;
    let status = p.status.unwrap_or(503);
    if status != 429 && status != 503 {
        return Err(ApiError::invalid("status must be 429 or 503"));
    }
    hub.faults().fail_next_twin_operations(p.count, status);
    Ok(StatusCode::NO_CONTENT)
}
