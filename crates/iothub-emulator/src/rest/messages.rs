//! Cloud-to-device messages over REST (ARCHITECTURE.md#cloud-to-device-messages): sending with
//! `POST /devices/{id}/messages/deviceBound` (the body as is, properties in headers, as Azure IoT
//! Explorer sends), purging with `DELETE /devices/{id}/commands`, and the feedback queue:
//! `GET /messages/serviceBound/feedback` (204 when empty, else a batch whose lock token is the
//! `ETag`), `DELETE /messages/serviceBound/feedback/{lockToken}` (complete) and
//! `POST /messages/serviceBound/feedback/{lockToken}/abandon`. All need ServiceConnect
//! (<https://learn.microsoft.com/rest/api/iothub/service/cloud-to-device-messages>).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::request::PathId;
use super::response::JsonResponse;
use crate::c2d::{parse_expiry, Ack, OutgoingMessage, Refusal};
use crate::c2d::{MAX_MESSAGE_BYTES, MAX_QUEUE_DEPTH};
use crate::hub::{Hub, HubError, Permissions};

/// ServiceConnect, the only permission these operations accept.
const SERVICE_CONNECT: Permissions = Permissions {
    registry_read: false,
    registry_write: false,
    service_connect: true,
    device_connect: false,
};

/// The content type of a feedback batch.
const FEEDBACK_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.feedback.json";

/// Prefix of the headers that carry application properties.
const APP_PREFIX: &str = "iothub-app-";

/// `POST /devices/{id}/messages/deviceBound` → 204 once the message is queued (and stored).
pub async fn send(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require(SERVICE_CONNECT)?;
    let outgoing = parse_message(&headers, body)?;
    let c2d = hub.c2d().clone();
    let accepted = hub
        .with_device(&id, |device| {
            c2d.enqueue(&id, &device.generation_id, outgoing)
        })?
        .map_err(refusal)?;
    c2d.committed(accepted)
        .await
        .map_err(|e| ApiError::from(HubError::Storage(e)))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /devices/{id}/commands` → 200 `{"totalMessagesPurged": n, "deviceId": id}`.
pub async fn purge(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<JsonResponse, ApiError> {
    caller.require(SERVICE_CONNECT)?;
    let c2d = hub.c2d().clone();
    let (count, written) = hub.with_device(&id, |_| c2d.purge(&id))?;
    written
        .committed()
        .await
        .map_err(|e| ApiError::from(HubError::Storage(e)))?;
    Ok(JsonResponse::ok(
        json!({"totalMessagesPurged": count, "deviceId": id}),
    ))
}

/// `GET /messages/serviceBound/feedback` → 204, or 200 with a batch of records.
pub async fn receive_feedback(
    State(hub): State<Hub>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(SERVICE_CONNECT)?;
    let Some(batch) = hub.c2d().receive_feedback() else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let records: Vec<Value> = batch.records.iter().map(|r| r.to_json()).collect();
    let mut response = (StatusCode::OK, Value::Array(records).to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static(FEEDBACK_CONTENT_TYPE),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", batch.lock_token)) {
        headers.insert("etag", etag);
    }
    Ok(response)
}

/// `DELETE /messages/serviceBound/feedback/{lockToken}` → 204.
pub async fn complete_feedback(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(lock): PathId,
) -> Result<StatusCode, ApiError> {
    caller.require(SERVICE_CONNECT)?;
    settle(hub.c2d().complete_feedback(unquote(&lock)), &lock)
}

/// `POST /messages/serviceBound/feedback/{lockToken}/abandon` → 204.
pub async fn abandon_feedback(
    State(hub): State<Hub>,
    caller: Caller,
    PathId(lock): PathId,
) -> Result<StatusCode, ApiError> {
    caller.require(SERVICE_CONNECT)?;
    settle(hub.c2d().abandon_feedback(unquote(&lock)), &lock)
}

fn settle(found: bool, lock: &str) -> Result<StatusCode, ApiError> {
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "DeviceMessageLockLost",
            format!("The lock token '{lock}' is unknown or its lock has expired; receive the feedback again"),
        ))
    }
}

/// A lock token as the `ETag` carried it, quotes and all, or bare.
fn unquote(lock: &str) -> &str {
    lock.strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or(lock)
}

/// The Format A error of a refused message.
fn refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::QueueFull => ApiError::new(
            StatusCode::FORBIDDEN,
            "DeviceMaximumQueueDepthExceeded",
            format!("C2D messages enqueued for the device exceeded the queue limit of {MAX_QUEUE_DEPTH}, see more at http://aka.ms/iothub403004"),
        ),
        Refusal::HubFull => ApiError::new(
            StatusCode::FORBIDDEN,
            "IotHubQuotaExceeded",
            "The emulator's cloud-to-device store is full (its bounds are in the README); complete, purge or let messages expire",
        ),
        Refusal::TooLarge(size) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "MessageTooLarge",
            format!("The message is {size} bytes (body and application properties); the limit is {MAX_MESSAGE_BYTES} bytes"),
        ),
        Refusal::TopicTooLong(size) => ApiError::invalid(format!(
            "The message's properties make a {size}-byte MQTT topic for the device; the limit is 65535 bytes"
        )),
    }
}

/// Reads the message from the request: the body as is, system properties from the `iothub-*`
/// headers (and, leniently, from `iothub-app-{messageId,correlationId,contentType,
/// contentEncoding,expiryTimeUtc,ack}`, which IoT Explorer sends for its "system property"
/// rows), `Content-Type` and `Content-Encoding`, and every other `iothub-app-{name}` header as an
/// application property. HTTP header names arrive lower-cased, so property names do too.
fn parse_message(headers: &HeaderMap, body: Bytes) -> Result<OutgoingMessage, ApiError> {
    let mut message = OutgoingMessage {
        body,
        ..OutgoingMessage::default()
    };
    let mut ack = None;
    let mut expiry = None;
    for (name, value) in headers {
        let name = name.as_str();
        let text = || header_text(name, value);
        match name {
            "iothub-messageid" => message.message_id = Some(text()?),
            "iothub-correlationid" => message.correlation_id = Some(text()?),
            "iothub-to" => message.to = Some(text()?),
            "iothub-userid" => message.user_id = Some(text()?),
            "iothub-ack" => ack = Some(text()?),
            "iothub-expiry" => expiry = Some(text()?),
            "content-type" | "iothub-contenttype" => message.content_type = Some(text()?),
            "content-encoding" | "iothub-contentencoding" => {
                message.content_encoding = Some(text()?);
            }
            _ => {
                let Some(key) = name.strip_prefix(APP_PREFIX) else {
                    continue;
                };
                match key {
                    "messageid" => message.message_id = Some(text()?),
                    "correlationid" => message.correlation_id = Some(text()?),
                    "contenttype" => message.content_type = Some(text()?),
                    "contentencoding" => message.content_encoding = Some(text()?),
                    "expirytimeutc" => expiry = Some(text()?),
                    "ack" => ack = Some(text()?),
                    _ => message.properties.push((key.to_string(), text()?)),
                }
            }
        }
    }
    if let Some(ack) = ack {
        message.ack = Some(Ack::parse(&ack).ok_or_else(|| {
            ApiError::invalid(format!(
                "iothub-ack '{ack}' is not one of none, positive, negative, full"
            ))
        })?);
    }
    if let Some(expiry) = expiry {
        message.expiry_ms = Some(parse_expiry(&expiry).ok_or_else(|| {
            ApiError::invalid(format!(
                "The expiry time '{expiry}' is neither an ISO 8601 UTC time nor milliseconds since 1970"
            ))
        })?);
    }
    Ok(message)
}

fn header_text(name: &str, value: &HeaderValue) -> Result<String, ApiError> {
    String::from_utf8(value.as_bytes().to_vec())
        .map_err(|_| ApiError::invalid(format!("The header {name} is not valid UTF-8")))
}
