//! JSON success responses with the content type every SDK accepts (Node parses a body only when
//! it says `application/json`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The content type of every JSON response.
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// A JSON body with a status.
#[derive(Debug)]
pub struct JsonResponse {
    status: StatusCode,
    body: Value,
}

impl JsonResponse {
    /// 200 with `body`.
    pub fn ok(body: Value) -> JsonResponse {
        JsonResponse {
            status: StatusCode::OK,
            body,
        }
    }
}

impl IntoResponse for JsonResponse {
    fn into_response(self) -> Response {
        let bytes = match serde_json::to_vec(&self.body) {
            Ok(b) => b,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
        let mut response = (self.status, bytes).into_response();
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static(JSON_UTF8));
        response
    }
}
