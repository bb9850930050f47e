//! Every service request must carry `api-version`; any value is accepted (ARCHITECTURE.md#service-rest-api).

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Middleware: 400 `InvalidProtocolVersion` when `api-version` is missing or empty.
pub async fn require_api_version(request: Request, next: Next) -> Response {
    let has_version = request.uri().query().is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(k, v)| k == "api-version" && !v.is_empty())
        })
    });
    if has_version {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidProtocolVersion",
            "BadRequest: the api-version query parameter is required",
        )
        .into_response()
    }
}
