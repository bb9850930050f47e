//! Parsing the hub's error answers (ARCHITECTURE.md#service-rest-api; the codes are listed at
//! <https://learn.microsoft.com/rest/api/iothub/common-error-codes>): the `iothub-errorcode`
//! header first, then the body in either of its two formats:
//!
//! * Format A: `{"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":"Tracking ID:…"}`
//! * Format B: `{"Message":"{\"errorCode\":404001,\"trackingId\":\"…\",\"message\":\"…\"}"}`
//!   (or the inner object as the whole body).

use std::time::Duration;

use serde_json::Value;

use crate::error::HubError;

/// Longest non-JSON body text kept in a message; a proxy's HTML error page is not useful
/// beyond its first lines.
const MAX_TEXT_BODY: usize = 300;

/// Builds a [`HubError`] from an error answer.
pub(crate) fn parse_hub_error(
    status: u16,
    header_code: Option<&str>,
    retry_after: Option<Duration>,
    body: &[u8],
) -> HubError {
    let parsed = parse_body(body);
    let header_code = header_code.map(str::trim).filter(|c| !c.is_empty());
    let code = header_code
        .map(str::to_owned)
        .or(parsed.code)
        .or_else(|| parsed.numeric_code.and_then(code_name).map(str::to_owned));
    HubError {
        status,
        code,
        numeric_code: parsed.numeric_code,
        message: parsed.message,
        tracking_id: parsed.tracking_id,
        retry_after,
    }
}

#[derive(Default)]
struct ParsedBody {
    code: Option<String>,
    numeric_code: Option<u64>,
    message: String,
    tracking_id: Option<String>,
}

fn parse_body(body: &[u8]) -> ParsedBody {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return ParsedBody::default();
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => {
            let message = get_ci(&obj, "Message").and_then(Value::as_str);
            let exception = get_ci(&obj, "ExceptionMessage").and_then(Value::as_str);
            // The inner Format-B object can also be the whole body (MQTT-style errors); its
            // lower-case `message` must not be mistaken for the outer `Message`.
            let mut parsed = match (parse_format_b(&obj), message) {
                (Some(b), _) => b,
                (None, Some(m)) => parse_message(m),
                (None, None) => ParsedBody::default(),
            };
            if parsed.tracking_id.is_none() {
                parsed.tracking_id = exception.and_then(tracking_id_from_exception);
            }
            parsed
        }
        _ => ParsedBody {
            message: truncate(text, MAX_TEXT_BODY),
            ..ParsedBody::default()
        },
    }
}

fn parse_message(message: &str) -> ParsedBody {
    if let Ok(Value::Object(inner)) = serde_json::from_str::<Value>(message) {
        if let Some(parsed) = parse_format_b(&inner) {
            return parsed;
        }
    }
    // Format A: the text after the first ';' may itself contain ';' (query text does).
    if let Some((head, rest)) = message.split_once(';') {
        if let Some(name) = head.trim().strip_prefix("ErrorCode:") {
            return ParsedBody {
                code: Some(name.trim().to_owned()).filter(|n| !n.is_empty()),
                message: rest.trim().to_owned(),
                ..ParsedBody::default()
            };
        }
    }
    ParsedBody {
        message: message.trim().to_owned(),
        ..ParsedBody::default()
    }
}

fn parse_format_b(obj: &serde_json::Map<String, Value>) -> Option<ParsedBody> {
    let numeric = get_ci(obj, "errorCode")?;
    let numeric_code = numeric
        .as_u64()
        .or_else(|| numeric.as_str().and_then(|s| s.parse().ok()));
    Some(ParsedBody {
        code: None,
        numeric_code,
        message: get_ci(obj, "message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        tracking_id: get_ci(obj, "trackingId")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn tracking_id_from_exception(exception: &str) -> Option<String> {
    exception
        .trim()
        .strip_prefix("Tracking ID:")
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// The hub's JSON is ASP.NET-bound, so member names are matched case-insensitively.
fn get_ci<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// `text` cut to `max` characters, with `…` when something was cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &text[..idx]),
        None => text.to_owned(),
    }
}

/// Names of the numeric codes a Format-B body may carry
/// (<https://learn.microsoft.com/rest/api/iothub/common-error-codes>), so callers can
/// match on names whichever format the hub used.
fn code_name(numeric: u64) -> Option<&'static str> {
    Some(match numeric {
        400001 => "InvalidProtocolVersion",
        400003 => "InvalidOperation",
        400004 => "ArgumentInvalid",
        400005 => "ArgumentNull",
        400006 => "IotHubFormatError",
        401002 => "IotHubUnauthorizedAccess",
        401003 => "IotHubUnauthorized",
        403002 => "IotHubQuotaExceeded",
        404001 => "DeviceNotFound",
        404010 => "ModuleNotFound",
        409001 => "DeviceAlreadyExists",
        412001 => "PreconditionFailed",
        413001 => "MessageTooLarge",
        429001 => "ThrottlingException",
        500001 => "ServerError",
        503001 => "ServiceUnavailable",
        _ => return None,
    })
}

/// Parses a `Retry-After` header in its delta-seconds form. The HTTP-date form is not used
/// by IoT Hub; it yields `None` and the client falls back to its own backoff.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractional seconds; accept them, reject negatives and garbage.
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_a_with_header() {
        let body = br#"{"Message":"ErrorCode:DeviceNotFound;mydevice","ExceptionMessage":"Tracking ID:1bc3-G:20-TimeStamp:02/05/2021 10:03:38"}"#;
        let e = parse_hub_error(404, Some("DeviceNotFound"), None, body);
        assert_eq!(e.code.as_deref(), Some("DeviceNotFound"));
        assert_eq!(e.message, "mydevice");
        assert_eq!(
            e.tracking_id.as_deref(),
            Some("1bc3-G:20-TimeStamp:02/05/2021 10:03:38")
        );
    }

    #[test]
    fn header_wins_over_body() {
        let body = br#"{"Message":"ErrorCode:Other;x"}"#;
        let e = parse_hub_error(404, Some("DeviceNotFound"), None, body);
        assert_eq!(e.code.as_deref(), Some("DeviceNotFound"));
    }

    #[test]
    fn format_a_without_header_keeps_semicolons_in_message() {
        let body = br#"{"Message":"ErrorCode:ArgumentInvalid;line 1, column 30: expected ';' here; found x","ExceptionMessage":""}"#;
        let e = parse_hub_error(400, None, None, body);
        assert_eq!(e.code.as_deref(), Some("ArgumentInvalid"));
        assert_eq!(e.message, "line 1, column 30: expected ';' here; found x");
        assert_eq!(e.tracking_id, None);
    }

    #[test]
    fn format_b_in_message() {
        let body = br#"{"Message":"{\"errorCode\":401002,\"trackingId\":\"84f2-G:6\",\"message\":\"Unauthorized\",\"timestampUtc\":\"2018-08-28T15:34:17Z\"}","ExceptionMessage":""}"#;
        let e = parse_hub_error(401, None, None, body);
        assert_eq!(e.numeric_code, Some(401002));
        assert_eq!(e.code.as_deref(), Some("IotHubUnauthorizedAccess"));
        assert_eq!(e.message, "Unauthorized");
        assert_eq!(e.tracking_id.as_deref(), Some("84f2-G:6"));
    }

    #[test]
    fn format_b_as_whole_body_and_lowercase_keys() {
        let body = br#"{"errorCode":404001,"message":"gone","trackingId":"t"}"#;
        let e = parse_hub_error(404, None, None, body);
        assert_eq!(e.code.as_deref(), Some("DeviceNotFound"));
        assert_eq!(e.message, "gone");
        let body = br#"{"message":"ErrorCode:PreconditionFailed;etag mismatch"}"#;
        let e = parse_hub_error(412, None, None, body);
        assert_eq!(e.code.as_deref(), Some("PreconditionFailed"));
    }

    #[test]
    fn plain_text_and_empty_bodies() {
        let e = parse_hub_error(502, None, None, b"<html>Bad gateway</html>");
        assert_eq!(e.code, None);
        assert_eq!(e.message, "<html>Bad gateway</html>");
        let e = parse_hub_error(503, Some(" "), None, b"");
        assert_eq!(e.code, None);
        assert_eq!(e.message, "");
        let long = "x".repeat(1000);
        let e = parse_hub_error(500, None, None, long.as_bytes());
        assert_eq!(e.message.chars().count(), MAX_TEXT_BODY + 1);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
