//! `POST /devices/query` through `iothub-query` (ARCHITECTURE.md#query-language,
//! <https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language>).
//!
//! - Body `{"query": "…"}` (member name case-insensitive); missing → 400 `ArgumentNull`.
//! - `x-ms-max-item-count`: default 100, values above 100 are clamped, ≤0 or non-numeric → 400.
//! - `x-ms-continuation`: opaque; it encodes the last device id returned and the count returned
//!   so far (for `TOP` across pages). Absent on the last page. Continuations re-send the query.
//! - `x-ms-item-type` always, PascalCase (`Twin` or `Raw`); the body is a bare JSON array.
//! - A malformed query (or one longer than 8192 characters) gets 400 `ArgumentInvalid` with the
//!   parser's positioned message.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use iothub_query::CompiledQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{need, Caller};
use super::error::ApiError;
use super::request::{parse_object, present};
use super::response::JsonResponse;
use crate::hub::Hub;

/// Default and maximum page size.
pub const MAX_PAGE: usize = 100;

/// What a continuation token carries.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Continuation {
    /// Resume strictly after this device id (non-aggregate queries).
    #[serde(rename = "a", skip_serializing_if = "Option::is_none", default)]
    after: Option<String>,
    /// Rows returned on earlier pages.
    #[serde(rename = "n")]
    returned: u64,
}

impl Continuation {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(token: &str) -> Result<Continuation, ApiError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ApiError::invalid("The continuation token is not valid"))
    }
}

fn page_size(headers: &HeaderMap) -> Result<usize, ApiError> {
    let Some(raw) = headers.get("x-ms-max-item-count") else {
        return Ok(MAX_PAGE);
    };
    let n = raw
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| ApiError::invalid("x-ms-max-item-count must be an integer"))?;
    if n <= 0 {
        return Err(ApiError::invalid("x-ms-max-item-count must be positive"));
    }
    Ok(usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE))
}

/// `POST /devices/query`.
pub async fn query(
    State(hub): State<Hub>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(need::SERVICE_OR_READ)?;
    let body = parse_object(&body)?;
    let text = present(&body, "query")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::null_argument("The request body must contain \"query\""))?;
    let max_items = page_size(&headers)?;
    let continuation = match headers
        .get("x-ms-continuation")
        .and_then(|v| v.to_str().ok())
    {
        Some(token) if !token.trim().is_empty() => Some(Continuation::decode(token)?),
        _ => None,
    };
    let compiled = CompiledQuery::compile(text)
        .map_err(|e| ApiError::invalid(format!("The query is invalid: {e}")))?;
    let item_type = compiled.result_item_type().as_header();

    // A scan may cover the whole fleet: it runs on a blocking thread, over a snapshot of the
    // twins, so neither the async workers nor the state lock wait for it.
    let (body, next) =
        tokio::task::spawn_blocking(move || evaluate(&hub, &compiled, continuation, max_items))
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServerError",
                    format!("The query could not be evaluated: {e}"),
                )
            })?;

    let mut response = body.into_response();
    let out = response.headers_mut();
    out.insert("x-ms-item-type", HeaderValue::from_static(item_type));
    if let Some(next) = next {
        if let Ok(v) = HeaderValue::from_str(&next.encode()) {
            out.insert("x-ms-continuation", v);
        }
    }
    Ok(response)
}

/// One page of the query's answer, and the continuation of the next page if there is one.
///
/// A plain query's token names the last device (or module) id returned: the next page is a
/// new snapshot scanned from just after that key, so an unchanged twin is neither repeated nor
/// skipped however the hub changed between pages. An aggregate's token counts the group rows
/// already returned; each page recomputes the groups over its own snapshot.
fn evaluate(
    hub: &Hub,
    compiled: &CompiledQuery,
    continuation: Option<Continuation>,
    max_items: usize,
) -> (JsonResponse, Option<Continuation>) {
    let returned = continuation.as_ref().map_or(0, |c| c.returned);
    if compiled.is_aggregate() {
        let mut rows = hub.query_aggregate(compiled);
        let total = rows.len();
        let start = usize::try_from(returned).unwrap_or(usize::MAX).min(total);
        let end = start.saturating_add(max_items).min(total);
        let next = (end < total).then_some(Continuation {
            after: None,
            returned: end as u64,
        });
        // This page's rows, moved out rather than cloned.
        rows.truncate(end);
        rows.drain(..start);
        return (JsonResponse::ok(Value::Array(rows)), next);
    }
    let after = continuation.and_then(|c| c.after);
    let page = hub.query_page(compiled, after.as_deref(), returned, max_items);
    let count = page.rows as u64;
    let next = match (page.done, page.last_key) {
        (false, Some(last)) => Some(Continuation {
            after: Some(last),
            returned: returned + count,
        }),
        _ => None,
    };
    (JsonResponse::rendered(page.body), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_round_trips() {
        let c = Continuation {
            after: Some("dev;'42".into()),
            returned: 100,
        };
        assert_eq!(Continuation::decode(&c.encode()).unwrap(), c);
        assert!(Continuation::decode("not a token").is_err());
    }

    #[test]
    fn page_size_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(page_size(&h).unwrap(), 100);
        h.insert("x-ms-max-item-count", HeaderValue::from_static("1000"));
        assert_eq!(page_size(&h).unwrap(), 100);
        h.insert("x-ms-max-item-count", HeaderValue::from_static("7"));
        assert_eq!(page_size(&h).unwrap(), 7);
        h.insert("x-ms-max-item-count", HeaderValue::from_static("0"));
        assert!(page_size(&h).is_err());
        h.insert("x-ms-max-item-count", HeaderValue::from_static("-3"));
        assert!(page_size(&h).is_err());
    }
}
