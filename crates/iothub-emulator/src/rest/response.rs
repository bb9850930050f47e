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
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// Serialized when the response is built.
    Value(Value),
    /// Already serialized (a query page written row by row into one buffer).
    Rendered(Vec<u8>),
}

impl JsonResponse {
    /// 200 with `body`.
    pub fn ok(body: Value) -> JsonResponse {
        JsonResponse {
            status: StatusCode::OK,
            body: Body::Value(body),
        }
    }

    /// 200 with `json`, which the caller has serialized: sent as one body, unchanged.
    pub fn rendered(json: Vec<u8>) -> JsonResponse {
        JsonResponse {
            status: StatusCode::OK,
            body: Body::Rendered(json),
        }
    }
}

impl IntoResponse for JsonResponse {
    fn into_response(self) -> Response {
        let bytes = match self.body {
            Body::Rendered(bytes) => bytes,
            Body::Value(value) => match serde_json::to_vec(&value) {
                Ok(b) => b,
                Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            },
        };
        let mut response = (self.status, bytes).into_response();
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static(JSON_UTF8));
        response
    }
}
