//! Error responses in the hub's "Format A" (ARCHITECTURE.md#service-rest-api; codes:
//! <https://learn.microsoft.com/rest/api/iothub/common-error-codes>): body
//! `{"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":"Tracking ID:…"}`, the matching
//! `iothub-errorcode` header, and `Content-Type: application/json; charset=utf-8`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::response::JSON_UTF8;
use crate::hub::{tracking_timestamp, HubError};

/// A REST error: status, IoT Hub error code name, message.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401 `IotHubUnauthorizedAccess`.
    pub fn unauthorized(reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "IotHubUnauthorizedAccess",
            format!("Unauthorized: {reason}"),
        )
    }

    /// 400 `ArgumentInvalid`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ArgumentInvalid", message)
    }

    /// 400 `ArgumentNull`.
    pub fn null_argument(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ArgumentNull", message)
    }

    /// 400 `ArgumentInvalid` for a path segment that is not UTF-8 once percent-decoded.
    pub fn invalid_utf8_path(segment: &str) -> ApiError {
        ApiError::invalid(format!(
            "The path segment '{segment}' is not valid UTF-8 once percent-decoded; percent-encode the UTF-8 bytes of the id"
        ))
    }

    /// 400 `IotHubFormatError` (unparseable JSON).
    pub fn format(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "IotHubFormatError", message)
    }
}

impl ApiError {
    /// The IoT Hub error code name.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message after `ErrorCode:<Name>;`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.error_code(), e.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let tracking = uuid::Uuid::new_v4().simple().to_string();
        let body = json!({
            "Message": format!("ErrorCode:{};{}", self.code, self.message),
            "ExceptionMessage": format!("Tracking ID:{tracking}-G:0-TimeStamp:{}", tracking_timestamp()),
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(JSON_UTF8));
        headers.insert("iothub-errorcode", HeaderValue::from_static(self.code));
        if let Ok(v) = HeaderValue::from_str(&tracking) {
            headers.insert("x-ms-request-id", v);
        }
        response
    }
}
