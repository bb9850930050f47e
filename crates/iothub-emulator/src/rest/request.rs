//! Request helpers shared by the resources: JSON bodies (with Format A errors), case-insensitive
//! member lookup (the hub binds body members case-insensitively, ARCHITECTURE.md#wire-facts),
//! `If-Match`.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::hub::IfMatch;

/// The `{id}` of a route, percent-decoded; a segment that does not decode gets a Format A error
/// instead of axum's plain-text one.
#[derive(Debug)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(PathId(id)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::invalid(
                format!("The request path is invalid: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::invalid(e.body_text())),
        }
    }
}

/// Parses a JSON body; an empty body is `None`.
///
/// # Errors
/// 400 `IotHubFormatError` with serde's position for malformed JSON.
pub fn parse_json(body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::format(format!("The request body is not valid JSON: {e}")))
}

/// Parses a JSON body that must be an object (empty = `{}`).
///
/// # Errors
/// Malformed JSON, or JSON that is not an object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match parse_json(body)? {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(ApiError::invalid("The request body must be a JSON object")),
    }
}

/// A member by name, exact match first, then ASCII case-insensitive.
pub fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A member that is absent or `null` → `None`.
pub fn present<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    member(obj, name).filter(|v| !v.is_null())
}

/// `If-Match`, with optional `W/` and quotes stripped; `*` means any.
pub fn if_match(headers: &HeaderMap) -> Option<IfMatch> {
    let raw = headers.get("if-match")?.to_str().ok()?.trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    let unquoted = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if unquoted.is_empty() {
        return None;
    }
    Some(if unquoted == "*" {
        IfMatch::Any
    } else {
        IfMatch::Etag(unquoted.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("if-match", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(&with("\"*\"")), Some(IfMatch::Any));
        assert_eq!(if_match(&with("*")), Some(IfMatch::Any));
        assert_eq!(
            if_match(&with("W/\"AAAAAAAAAAE=\"")),
            Some(IfMatch::Etag("AAAAAAAAAAE=".into()))
        );
        assert_eq!(if_match(&HeaderMap::new()), None);
    }

    #[test]
    fn members_are_case_insensitive() {
        let Value::Object(m) = serde_json::json!({"Query": "x"}) else {
            unreachable!()
        };
        assert_eq!(member(&m, "query"), Some(&Value::from("x")));
    }
}
