//! Module identities: `PUT`/`GET`/`DELETE /devices/{id}/modules/{mid}` and
//! `GET /devices/{id}/modules` (ARCHITECTURE.md#service-rest-api). As for devices, PUT without
//! `If-Match` creates (409 `ModuleAlreadyExistsOnDevice` if it exists) and with `If-Match`
//! updates (404 if missing, 412 on a mismatch); creation answers 200.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::auth::{need, Caller};
use super::devices::parse_auth;
use super::error::ApiError;
use super::request::{if_match, parse_object, present};
use super::response::JsonResponse;
use crate::hub::{AuthSpec, Hub, ModuleSpec};

/// The `{id}` and `{mid}` of a module route, percent-decoded (Format A error otherwise).
#[derive(Debug)]
pub struct ModulePath(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for ModulePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<(String, String)>::from_request_parts(parts, state).await {
            Ok(Path((device, module))) => Ok(ModulePath(device, module)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::invalid(
                format!("The request path is invalid: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::invalid(e.body_text())),
        }
    }
}

/// `GET /devices/{id}/modules/{mid}`.
pub async fn get(
    State(hub): State<Hub>,
    caller: Caller,
    ModulePath(device, module): ModulePath,
) -> Result<JsonResponse, ApiError> {
    caller.require(need::REGISTRY_READ)?;
    Ok(JsonResponse::ok(hub.module_json(&device, &module)?))
}

/// `GET /devices/{id}/modules`.
pub async fn list(
    State(hub): State<Hub>,
    caller: Caller,
    super::request::PathId(device): super::request::PathId,
) -> Result<JsonResponse, ApiError> {
    caller.require(need::REGISTRY_READ)?;
    Ok(JsonResponse::ok(Value::Array(hub.list_modules(&device)?)))
}

/// `PUT /devices/{id}/modules/{mid}`: create or (with `If-Match`) update.
pub async fn put(
    State(hub): State<Hub>,
    caller: Caller,
    ModulePath(device, module): ModulePath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<JsonResponse, ApiError> {
    caller.require(need::REGISTRY_WRITE)?;
    let spec = parse_spec(&device, &module, &parse_object(&body)?)?;
    let json = match if_match(&headers) {
        None => hub.create_module(&device, &module, spec).await?,
        Some(cond) => hub.update_module(&device, &module, spec, &cond).await?,
    };
    Ok(JsonResponse::ok(json))
}

/// `DELETE /devices/{id}/modules/{mid}` → 204.
pub async fn delete(
    State(hub): State<Hub>,
    caller: Caller,
    ModulePath(device, module): ModulePath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    caller.require(need::REGISTRY_WRITE)?;
    hub.delete_module(&device, &module, if_match(&headers).as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn parse_spec(
    device: &str,
    module: &str,
    body: &Map<String, Value>,
) -> Result<ModuleSpec, ApiError> {
    for (name, expected) in [("deviceId", device), ("moduleId", module)] {
        if let Some(given) = present(body, name) {
            if given.as_str() != Some(expected) {
                return Err(ApiError::invalid(format!(
                    "The {name} in the body ({given}) does not match the one in the path ('{expected}')"
                )));
            }
        }
    }
    let managed_by = match present(body, "managedBy") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid("managedBy must be a string")),
    };
    let authentication = match present(body, "authentication") {
        None => AuthSpec::Sas {
            primary: None,
            secondary: None,
        },
        Some(Value::Object(auth)) => parse_auth(auth)?,
        Some(_) => return Err(ApiError::invalid("authentication must be an object")),
    };
    Ok(ModuleSpec {
        managed_by,
        authentication,
    })
}
