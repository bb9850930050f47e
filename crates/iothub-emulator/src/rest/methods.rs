//! Direct methods: `POST /twins/{id}/methods` and `POST /twins/{id}/modules/{mid}/methods`
//! (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods>;
//! ARCHITECTURE.md#direct-methods).
//!
//! - Body `{"methodName", "payload", "responseTimeoutInSeconds", "connectTimeoutInSeconds"}`,
//!   member names case-insensitive. `responseTimeoutInSeconds` defaults to 30 and must be within
//!   5–300, `connectTimeoutInSeconds` defaults to 0 (the device must be online now) and must be
//!   within 0–300; the hub answers other values with 400 `ArgumentInvalid` ("… must be within
//!   [5; 300]."). An absent or `null` payload reaches the device as an empty body, anything
//!   else as its compact JSON text, at most 128 KB.
//! - Permission: ServiceConnect.
//! - 200 `{"status": <device status>, "payload": <device body>}`: the device's body is spliced
//!   in as it was sent, as the hub does (an empty body becomes `null`).
//! - Errors: 404 `DeviceNotFound` (unknown device), 404 `ModuleNotFound` (unknown module),
//!   404 `DeviceNotOnline` (not connected and
//!   subscribed within the connect timeout, or disconnected before answering), 504
//!   `GatewayTimeout` (no answer in time), 400 (bad request), 413 `MessageTooLarge` (a device
//!   answer over 128 KB), 429 `ThrottlingException` (too many calls in flight).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use tracing::debug;

use super::auth::Caller;
use super::error::ApiError;
use super::request::{member, parse_object, present, PathId};
use super::response::JsonResponse;
use crate::hub::{Hub, HubError, Permissions};
use crate::mqtt::{DeviceAnswer, DirectMethods, MethodCall, MethodError};

/// Largest method payload, request or response: 128 KB.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// Longest method name accepted *(project decision: the hub documents none; this keeps the
/// request topic short)*.
pub const MAX_METHOD_NAME_BYTES: usize = 256;

const DEFAULT_RESPONSE_TIMEOUT: i64 = 30;
const RESPONSE_TIMEOUT_RANGE: (i64, i64) = (5, 300);
const CONNECT_TIMEOUT_RANGE: (i64, i64) = (0, 300);

/// Direct methods need ServiceConnect.
const SERVICE_CONNECT: Permissions = Permissions {
    registry_read: false,
    registry_write: false,
    service_connect: true,
    device_connect: false,
};

/// `POST /twins/{id}/methods`.
pub async fn invoke_device(
    State(hub): State<Hub>,
    Extension(methods): Extension<DirectMethods>,
    caller: Caller,
    PathId(device_id): PathId,
    body: Bytes,
) -> Result<JsonResponse, ApiError> {
    caller.require(SERVICE_CONNECT)?;
    let request = parse_request(&body)?;
    if !hub.device_exists(&device_id) {
        return Err(HubError::DeviceNotFound(device_id).into());
    }
    invoke(&methods, device_id, request).await
}

/// `POST /twins/{id}/modules/{mid}/methods`: routed to the session of client id
/// `{id}/{mid}`.
pub async fn invoke_module(
    State(hub): State<Hub>,
    Extension(methods): Extension<DirectMethods>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<JsonResponse, ApiError> {
    caller.require(SERVICE_CONNECT)?;
    let Path((device_id, module_id)) = path.map_err(|rejection| {
        ApiError::invalid(format!(
            "The request path is invalid: {}",
            rejection.body_text()
        ))
    })?;
    let request = parse_request(&body)?;
    if !hub.device_exists(&device_id) {
        return Err(HubError::DeviceNotFound(device_id).into());
    }
    if !hub.module_exists(&device_id, &module_id) {
        return Err(HubError::ModuleNotFound {
            device: device_id,
            module: module_id,
        }
        .into());
    }
    invoke(&methods, format!("{device_id}/{module_id}"), request).await
}

/// A checked request body.
#[derive(Debug, PartialEq)]
struct Request {
    name: String,
    payload: Bytes,
    connect_timeout: Duration,
    response_timeout: Duration,
}

async fn invoke(
    methods: &DirectMethods,
    client_id: String,
    request: Request,
) -> Result<JsonResponse, ApiError> {
    let call = MethodCall {
        client_id,
        name: request.name,
        payload: request.payload,
        connect_timeout: request.connect_timeout,
        response_timeout: request.response_timeout,
    };
    let (client_id, name) = (call.client_id.clone(), call.name.clone());
    match methods.invoke(call).await {
        Ok(answer) => {
            debug!(%client_id, method = %name, status = answer.status, "direct method answered");
            answer_body(answer).map(JsonResponse::rendered)
        }
        Err(error) => {
            debug!(%client_id, method = %name, %error, "direct method failed");
            Err(method_error(error))
        }
    }
}

/// `{"status":…,"payload":…}` with the device's body as it was sent (`null` for none).
fn answer_body(answer: DeviceAnswer) -> Result<Vec<u8>, ApiError> {
    if answer.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "MessageTooLarge",
            format!(
                "The device answered with {} bytes; a method response may have at most {MAX_PAYLOAD_BYTES} bytes",
                answer.payload.len()
            ),
        ));
    }
    let payload: &[u8] = if answer.payload.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        &answer.payload
    };
    let mut body = format!("{{\"status\":{},\"payload\":", answer.status).into_bytes();
    body.extend_from_slice(payload);
    body.push(b'}');
    Ok(body)
}

fn method_error(error: MethodError) -> ApiError {
    let message = error.to_string();
    match error {
        MethodError::NotConnected | MethodError::NotSubscribed | MethodError::Disconnected => {
            ApiError::new(StatusCode::NOT_FOUND, "DeviceNotOnline", message)
        }
        MethodError::Timeout => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "GatewayTimeout", message)
        }
        MethodError::TooManyForClient(_) | MethodError::TooManyForHub => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            message,
        ),
    }
}

fn parse_request(body: &[u8]) -> Result<Request, ApiError> {
    let body = parse_object(body)?;
    let name = match member(&body, "methodName") {
        None | Some(Value::Null) => {
            return Err(ApiError::null_argument(
                "methodName is required: the name of the method to invoke",
            ))
        }
        Some(Value::String(name)) => check_name(name)?,
        Some(_) => return Err(ApiError::invalid("methodName must be a string")),
    };
    let response = seconds(
        &body,
        "responseTimeoutInSeconds",
        DEFAULT_RESPONSE_TIMEOUT,
        RESPONSE_TIMEOUT_RANGE,
    )?;
    let connect = seconds(&body, "connectTimeoutInSeconds", 0, CONNECT_TIMEOUT_RANGE)?;
    let payload = match present(&body, "payload") {
        None => Bytes::new(),
        Some(value) => Bytes::from(value.to_string()),
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::invalid(format!(
            "The method payload is {} bytes of JSON; at most {MAX_PAYLOAD_BYTES} bytes (128 KB) are allowed",
            payload.len()
        )));
    }
    Ok(Request {
        name: name.to_string(),
        payload,
        connect_timeout: connect,
        response_timeout: response,
    })
}

/// A method name becomes a topic level: no level separator, wildcard, query or percent sign,
/// no whitespace or control characters.
fn check_name(name: &str) -> Result<&str, ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid("methodName must not be empty"));
    }
    if name.len() > MAX_METHOD_NAME_BYTES {
        return Err(ApiError::invalid(format!(
            "methodName is {} bytes long; at most {MAX_METHOD_NAME_BYTES} are allowed",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '+' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(format!(
            "methodName '{}' contains {bad:?}; method names may not contain '/', '?', '#', '+', '%', whitespace or control characters",
            name.escape_debug()
        )));
    }
    Ok(name)
}

/// A whole number of seconds within `range` (absent or `null`: `default`).
fn seconds(
    body: &serde_json::Map<String, Value>,
    name: &str,
    default: i64,
    (low, high): (i64, i64),
) -> Result<Duration, ApiError> {
    let value = match present(body, name) {
        None => default,
        Some(value) => whole_number(value).ok_or_else(|| {
            ApiError::invalid(format!("{name} must be an integer number of seconds"))
        })?,
    };
    if !(low..=high).contains(&value) {
        return Err(ApiError::invalid(format!(
            "{name} must be within [{low}; {high}]."
        )));
    }
    Ok(Duration::from_secs(value.unsigned_abs()))
}

fn whole_number(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // 30.0 is 30; anything else is not a number of seconds (huge values fail the range check).
    (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Request, String> {
        parse_request(body.as_bytes()).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn defaults_and_payload_text() {
        let request = parse(r#"{"methodName":"reboot"}"#).unwrap();
        assert_eq!(request.response_timeout, Duration::from_secs(30));
        assert_eq!(request.connect_timeout, Duration::ZERO);
        assert!(request.payload.is_empty());
        let request =
            parse(r#"{"MethodName":"m","payload":null,"responseTimeoutInSeconds":null}"#).unwrap();
        assert!(request.payload.is_empty());
        assert_eq!(request.response_timeout, Duration::from_secs(30));
        let request = parse(r#"{"methodName":"m","payload":""}"#).unwrap();
        assert_eq!(&request.payload[..], b"\"\"");
        let request =
            parse(r#"{"methodName":"m","payload":{ "b": [1, 2.5], "a": "x" },"connectTimeoutInSeconds":300,"responseTimeoutInSeconds":5.0}"#)
                .unwrap();
        assert_eq!(&request.payload[..], br#"{"b":[1,2.5],"a":"x"}"#);
        assert_eq!(request.connect_timeout, Duration::from_secs(300));
        assert_eq!(request.response_timeout, Duration::from_secs(5));
    }

    #[test]
    fn refusals_name_the_problem() {
        for (body, needle) in [
            ("{}", "ArgumentNull"),
            (r#"{"methodName":""}"#, "must not be empty"),
            (r#"{"methodName":7}"#, "must be a string"),
            (r#"{"methodName":"a/b"}"#, "may not contain"),
            (r#"{"methodName":"a b"}"#, "may not contain"),
            (r#"{"methodName":"a#"}"#, "may not contain"),
            (
                r#"{"methodName":"m","responseTimeoutInSeconds":4}"#,
                "must be within [5; 300].",
            ),
            (
                r#"{"methodName":"m","responseTimeoutInSeconds":301}"#,
                "must be within [5; 300].",
            ),
            (
                r#"{"methodName":"m","responseTimeoutInSeconds":0}"#,
                "must be within [5; 300].",
            ),
            (
                r#"{"methodName":"m","connectTimeoutInSeconds":-1}"#,
                "must be within [0; 300].",
            ),
            (
                r#"{"methodName":"m","connectTimeoutInSeconds":"5"}"#,
                "integer number",
            ),
            (
                r#"{"methodName":"m","connectTimeoutInSeconds":1.5}"#,
                "integer number",
            ),
            ("[1]", "JSON object"),
            ("{", "IotHubFormatError"),
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.contains(needle), "{body}: {error}");
        }
        let long = format!(
            r#"{{"methodName":"{}"}}"#,
            "a".repeat(MAX_METHOD_NAME_BYTES + 1)
        );
        assert!(parse(&long).unwrap_err().contains("at most"));
    }

    #[test]
    fn payload_limit_is_128_kb_of_json() {
        let fits = "x".repeat(MAX_PAYLOAD_BYTES - 2);
        assert!(parse(&format!(r#"{{"methodName":"m","payload":"{fits}"}}"#)).is_ok());
        let over = "x".repeat(MAX_PAYLOAD_BYTES - 1);
        let error = parse(&format!(r#"{{"methodName":"m","payload":"{over}"}}"#)).unwrap_err();
        assert!(
            error.contains("ArgumentInvalid") && error.contains("128 KB"),
            "{error}"
        );
    }

    #[test]
    fn answers_splice_the_device_body() {
        let body = |payload: &'static [u8]| {
            answer_body(DeviceAnswer {
                status: 299,
                payload: Bytes::from_static(payload),
            })
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap()
        };
        assert_eq!(body(b""), r#"{"status":299,"payload":null}"#);
        assert_eq!(body(b"{\"a\": 1}"), r#"{"status":299,"payload":{"a": 1}}"#);
        assert_eq!(body(b"'x'"), r#"{"status":299,"payload":'x'}"#);
        let too_big = answer_body(DeviceAnswer {
            status: 200,
            payload: Bytes::from(vec![b' '; MAX_PAYLOAD_BYTES + 1]),
        });
        assert!(too_big.is_err());
    }
}
