//! Twin operations over MQTT (ARCHITECTURE.md#device-mqtt): what a twin request asks of the hub, and how each
//! outcome becomes a response on `$iothub/twin/res/{status}/?$rid=…`.

use bytes::Bytes;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::topic;

/// A twin operation the session needs the hub to perform; the driver runs it and hands the
/// [`TwinOutcome`] back to the session.
#[derive(Debug, Clone, PartialEq)]
pub enum TwinRequest {
    /// Read desired and reported properties.
    Get {
        /// Echoed in the response topic.
        rid: String,
    },
    /// Merge a patch into the reported properties.
    PatchReported {
        /// Echoed in the response topic.
        rid: String,
        /// The parsed JSON object the device sent.
        patch: Value,
    },
}

impl TwinRequest {
    /// The request id to answer with.
    pub fn rid(&self) -> &str {
        match self {
            TwinRequest::Get { rid } | TwinRequest::PatchReported { rid, .. } => rid,
        }
    }
}

/// What the hub answered to a [`TwinRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum TwinOutcome {
    /// GET: `{"desired":{…,"$version":n},"reported":{…,"$version":m}}`.
    Document(Value),
    /// PATCH: the new reported `$version`.
    Patched {
        /// Sent back as `&$version=` on the 204 response.
        version: u64,
    },
    /// Any failure: validation (400), injected faults (429, 503), storage (500), ...
    Failed(TwinFailure),
}

/// A failed twin operation, rendered as the hub's JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinFailure {
    /// The response status in the topic.
    pub status: u16,
    /// Human-readable reason (never contains secrets: it comes from twin validation).
    pub message: String,
}

/// The topic and payload answering `rid` with `outcome`.
pub fn response(rid: &str, outcome: &TwinOutcome) -> (String, Bytes) {
    match outcome {
        TwinOutcome::Document(doc) => (
            topic::twin_response(200, rid, None),
            Bytes::from(doc.to_string()),
        ),
        TwinOutcome::Patched { version } => {
            (topic::twin_response(204, rid, Some(*version)), Bytes::new())
        }
        TwinOutcome::Failed(failure) => (
            topic::twin_response(failure.status, rid, None),
            error_body(failure),
        ),
    }
}

/// The hub's JSON error body, e.g. `{"errorCode":400004,"trackingId":"…","message":"…",
/// "timestampUtc":"…"}` (ARCHITECTURE.md#device-mqtt). Node's SDK treats any body with `errorCode` as an error.
pub fn error_body(failure: &TwinFailure) -> Bytes {
    let timestamp = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let body = json!({
        "errorCode": numeric_error_code(failure.status),
        "trackingId": uuid::Uuid::new_v4().simple().to_string(),
        "message": failure.message,
        "timestampUtc": timestamp,
    });
    Bytes::from(body.to_string())
}

/// The six-digit code IoT Hub pairs with each status (ArgumentInvalid, DeviceNotFound,
/// PreconditionFailed, ThrottlingException, ServiceUnavailable, ServerError).
fn numeric_error_code(status: u16) -> u32 {
    match status {
        400 => 400_004,
        404 => 404_001,
        412 => 412_002,
        429 => 429_001,
        503 => 503_001,
        other => u32::from(other) * 1000 + 1,
    }
}

/// Parses a reported-properties PATCH body: a JSON object, or a 400 naming the problem.
pub fn parse_reported_patch(payload: &[u8]) -> Result<Value, TwinFailure> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(TwinFailure {
            status: 400,
            message: "Malformed reported properties: the body must be a JSON object".to_string(),
        }),
        Err(error) => Err(TwinFailure {
            status: 400,
            message: format!("Malformed JSON in reported properties: {error}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_responses() {
        let doc = json!({"desired":{"$version":1},"reported":{"$version":2}});
        let (topic, body) = response("r1", &TwinOutcome::Document(doc.clone()));
        assert_eq!(topic, "$iothub/twin/res/200/?$rid=r1");
        assert_eq!(serde_json::from_slice::<Value>(&body).expect("json"), doc);

        let (topic, body) = response("r2", &TwinOutcome::Patched { version: 6 });
        assert_eq!(topic, "$iothub/twin/res/204/?$rid=r2&$version=6");
        assert!(body.is_empty());
    }

    #[test]
    fn failures_carry_the_json_error_body() {
        let failure = TwinFailure {
            status: 400,
            message: "depth".into(),
        };
        let (topic, body) = response("r3", &TwinOutcome::Failed(failure));
        assert_eq!(topic, "$iothub/twin/res/400/?$rid=r3");
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["errorCode"], 400_004);
        assert_eq!(body["message"], "depth");
        assert!(body["trackingId"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(body["timestampUtc"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')));
        assert_eq!(numeric_error_code(429), 429_001);
        assert_eq!(numeric_error_code(503), 503_001);
    }

    #[test]
    fn reported_patch_must_be_a_json_object() {
        assert!(parse_reported_patch(br#"{"a":1}"#).is_ok());
        assert_eq!(parse_reported_patch(b"[1]").map_err(|f| f.status), Err(400));
        assert_eq!(
            parse_reported_patch(b"{oops").map_err(|f| f.status),
            Err(400)
        );
        assert_eq!(parse_reported_patch(b"").map_err(|f| f.status), Err(400));
    }
}
