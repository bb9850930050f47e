//! Device identities: `PUT`/`GET`/`DELETE /devices/{id}` and `GET /devices?top=N`
//! (ARCHITECTURE.md#service-rest-api). PUT without `If-Match` creates (409 if the device exists); with `If-Match` it
//! updates (404 if missing, 412 on a mismatch). Creation answers 200, as the hub does.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use http_body::Frame;
use iothub_auth::SharedAccessKey;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::auth::{need, Caller};
use super::error::ApiError;
use super::request::{if_match, member, parse_object, present, PathId};
use super::response::{JsonResponse, JSON_UTF8};
use crate::hub::{AuthSpec, DeviceList, DeviceSpec, Hub, ScopeSpec};

/// Symmetric key length bounds in decoded bytes (ARCHITECTURE.md#limits).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 16..=64;
/// `GET /devices?top` outside 1..=1000 means 1000 (ARCHITECTURE.md#service-rest-api).
const MAX_LIST: usize = 1000;

/// `GET /devices/{id}`.
pub async fn get(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<JsonResponse, ApiError> {
    caller.require(need::REGISTRY_READ)?;
    Ok(JsonResponse::ok(hub.device_json(&id)?))
}

/// `PUT /devices/{id}`: create or (with `If-Match`) update.
pub async fn put(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<JsonResponse, ApiError> {
    caller.require(need::REGISTRY_WRITE)?;
    let spec = parse_spec(&id, &parse_object(&body)?)?;
    let device = match if_match(&headers) {
        None => hub.create_device(&id, spec).await?,
        Some(cond) => hub.update_device(&id, spec, &cond).await?,
    };
    Ok(JsonResponse::ok(device))
}

/// `DELETE /devices/{id}` → 204.
pub async fn delete(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    caller.require(need::REGISTRY_WRITE)?;
    hub.delete_device(&id, if_match(&headers).as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query string of `GET /devices`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    top: Option<String>,
}

/// `GET /devices?top=N`.
pub async fn list(
    State(hub): State<Hub>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    caller.require(need::REGISTRY_READ)?;
    let top = params
        .top
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| usize::try_from(t).ok())
        .filter(|t| (1..=MAX_LIST).contains(t))
        .unwrap_or(MAX_LIST);
    let body = axum::body::Body::new(DeviceListBody(hub.device_list(top)));
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(JSON_UTF8));
    Ok(response)
}

/// Identities written per body frame of `GET /devices`.
const LIST_CHUNK: usize = 64;

/// The `GET /devices` body: each frame renders the next [`LIST_CHUNK`] devices of the
/// snapshot the request took, so the list is never held as one JSON value.
struct DeviceListBody(DeviceList);

impl http_body::Body for DeviceListBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = self.0.next_chunk(LIST_CHUNK);
        Poll::Ready(chunk.map(|bytes| Ok(Frame::data(Bytes::from(bytes)))))
    }
}

pub(super) fn parse_spec(path_id: &str, body: &Map<String, Value>) -> Result<DeviceSpec, ApiError> {
    if let Some(id) = present(body, "deviceId") {
        if id.as_str() != Some(path_id) {
            return Err(ApiError::invalid(format!(
                "The deviceId in the body ({id}) does not match the device id in the path ('{path_id}')"
            )));
        }
    }
    let enabled = match present(body, "status").map(|s| s.as_str()) {
        None => true,
        Some(Some(s)) if s.eq_ignore_ascii_case("enabled") => true,
        Some(Some(s)) if s.eq_ignore_ascii_case("disabled") => false,
        Some(_) => {
            return Err(ApiError::invalid(
                "status must be \"enabled\" or \"disabled\"",
            ))
        }
    };
    let status_reason = match present(body, "statusReason") {
        None => None,
        Some(Value::String(s)) if s.chars().count() <= 128 => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "statusReason must be a string of at most 128 characters",
            ))
        }
    };
    let iot_edge = match present(body, "capabilities").and_then(Value::as_object) {
        Some(caps) => present(caps, "iotEdge")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        None => false,
    };
    let authentication = match present(body, "authentication") {
        None => AuthSpec::Sas {
            primary: None,
            secondary: None,
        },
        Some(Value::Object(auth)) => parse_auth(auth)?,
        Some(_) => return Err(ApiError::invalid("authentication must be an object")),
    };
    let device_scope = match present(body, "deviceScope") {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid("deviceScope must be a string")),
    };
    let parent_scopes = match present(body, "parentScopes") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| ApiError::invalid("parentScopes must be an array of strings"))?,
        ),
        Some(_) => {
            return Err(ApiError::invalid(
                "parentScopes must be an array of strings",
            ))
        }
    };
    Ok(DeviceSpec {
        enabled,
        status_reason,
        authentication,
        iot_edge,
        scopes: ScopeSpec {
            device_scope,
            parent_scopes,
        },
    })
}

pub(super) fn parse_auth(auth: &Map<String, Value>) -> Result<AuthSpec, ApiError> {
    let kind = present(auth, "type")
        .and_then(Value::as_str)
        .unwrap_or("sas");
    let empty = Map::new();
    let symmetric = present(auth, "symmetricKey")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let thumbprints = present(auth, "x509Thumbprint")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let thumb = |name: &str| {
        present(thumbprints, name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(match kind.to_ascii_lowercase().as_str() {
        "sas" => AuthSpec::Sas {
            primary: parse_key(symmetric, "primaryKey")?,
            secondary: parse_key(symmetric, "secondaryKey")?,
        },
        "selfsigned" => AuthSpec::SelfSigned {
            primary_thumbprint: thumb("primaryThumbprint"),
            secondary_thumbprint: thumb("secondaryThumbprint"),
        },
        "certificateauthority" => AuthSpec::CertificateAuthority,
        "none" => AuthSpec::None,
        other => {
            return Err(ApiError::invalid(format!(
                "authentication.type '{other}' is not one of sas, selfSigned, certificateAuthority, none"
            )))
        }
    })
}

/// A key member: absent, `null` or `""` mean "generate" (what Node and C# send).
fn parse_key(obj: &Map<String, Value>, name: &str) -> Result<Option<SharedAccessKey>, ApiError> {
    let text = match member(obj, name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err(ApiError::invalid(format!("{name} must be a string"))),
    };
    let invalid = || {
        ApiError::invalid(format!(
            "{name} must be base64 of {} to {} bytes",
            KEY_BYTES.start(),
            KEY_BYTES.end()
        ))
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| invalid())?;
    if !KEY_BYTES.contains(&decoded.len()) {
        return Err(invalid());
    }
    SharedAccessKey::from_base64(text)
        .map(Some)
        .map_err(|_| invalid())
}
