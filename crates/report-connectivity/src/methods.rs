//! Canned direct-method answers (`--method-response NAME=STATUS[:JSON|@FILE]`, like
//! `az iot device simulate --mrc/--mrp`) and answering one call with them.

use std::collections::BTreeMap;
use std::time::Duration;

use iothub_cli::parse_json_arg;
use iothub_device::{MethodRequest, MAX_METHOD_PAYLOAD};
use serde_json::{json, Value};

use crate::error::AppError;

const FLAG: &str = "--method-response";

/// The status an unknown method is answered with.
pub const NOT_IMPLEMENTED: i32 = 501;

/// One canned answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CannedAnswer {
    /// The status the REST caller sees.
    pub status: i32,
    /// The payload the REST caller sees (`null` when none was given).
    pub payload: Value,
}

/// The answers by method name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodResponses {
    by_name: BTreeMap<String, CannedAnswer>,
}

impl MethodResponses {
    /// Parses every `--method-response` value.
    ///
    /// # Errors
    /// [`AppError::MethodResponse`] naming the bad value (exit code 2), or the JSON argument's
    /// error for a bad payload or unreadable `@FILE`.
    pub fn parse(values: &[String]) -> Result<MethodResponses, AppError> {
        let mut by_name = BTreeMap::new();
        for value in values {
            let (name, answer) = parse_one(value)?;
            if by_name.insert(name.clone(), answer).is_some() {
                return Err(AppError::MethodResponse(format!(
                    "method '{name}' is given more than once"
                )));
            }
        }
        Ok(MethodResponses { by_name })
    }

    /// Whether `--method-response` gave an answer for `name`.
    pub fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The answer for `name`: the canned one, or 501 with a body naming the method.
    pub fn answer_for(&self, name: &str) -> CannedAnswer {
        match self.by_name.get(name) {
            Some(answer) => answer.clone(),
            None => CannedAnswer {
                status: NOT_IMPLEMENTED,
                payload: json!({
                    "message": format!("method '{name}' is not implemented by this device; give it an answer with {FLAG} {name}=STATUS[:JSON]"),
                    "methodName": name,
                }),
            },
        }
    }
}

fn parse_one(value: &str) -> Result<(String, CannedAnswer), AppError> {
    let usage = |why: &str| {
        AppError::MethodResponse(format!(
            "'{value}': {why} (expected NAME=STATUS[:JSON|@FILE], e.g. reboot=200:{{\"ok\":true}})"
        ))
    };
    let Some((name, rest)) = value.split_once('=') else {
        return Err(usage("no '='"));
    };
    if name.is_empty() {
        return Err(usage("the method name is empty"));
    }
    // A topic segment carries the name, so it can never contain these.
    if name.contains(['/', '#', '+']) {
        return Err(usage("a method name cannot contain '/', '#' or '+'"));
    }
    let (status_text, payload_text) = match rest.split_once(':') {
        Some((s, p)) => (s, Some(p)),
        None => (rest, None),
    };
    let status = status_text
        .trim()
        .parse::<i32>()
        .map_err(|_| usage("the status is not an integer"))?;
    let payload = match payload_text {
        Some(text) => parse_json_arg(FLAG, text)?,
        None => Value::Null,
    };
    let size = payload.to_string().len();
    if size > MAX_METHOD_PAYLOAD {
        return Err(usage(&format!(
            "the payload is {size} bytes; the hub accepts at most {MAX_METHOD_PAYLOAD}"
        )));
    }
    Ok((name.to_owned(), CannedAnswer { status, payload }))
}

/// One answered call, for the printer.
#[derive(Debug, Clone)]
pub struct MethodCall {
    /// The method name.
    pub name: String,
    /// The request payload: JSON, or the raw text when it is not JSON.
    pub payload: Value,
    /// The status answered.
    pub status: i32,
    /// The payload answered.
    pub response: Value,
    /// From the request's arrival to the hub's acknowledgement of the answer.
    pub latency: Duration,
    /// Why the answer did not reach the hub, if it did not.
    pub error: Option<String>,
}

/// Answers `request` from `responses` and reports what happened.
pub async fn answer(request: MethodRequest, responses: &MethodResponses) -> MethodCall {
    let canned = responses.answer_for(request.name());
    answer_with(request, canned).await
}

/// The request's payload: JSON, or the raw text when it is not JSON.
pub fn request_payload(request: &MethodRequest) -> Value {
    request.payload().unwrap_or_else(|| {
        Value::String(String::from_utf8_lossy(request.payload_bytes()).into_owned())
    })
}

/// Answers `request` with `answer` and reports what happened.
pub async fn answer_with(request: MethodRequest, answer: CannedAnswer) -> MethodCall {
    let name = request.name().to_owned();
    let payload = request_payload(&request);
    let received = request.received_at();
    let CannedAnswer {
        status,
        payload: response,
    } = answer;
    let error = request
        .respond(status, &response)
        .await
        .err()
        .map(|e| e.to_string());
    MethodCall {
        name,
        payload,
        status,
        response,
        latency: received.elapsed(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<MethodResponses, AppError> {
        MethodResponses::parse(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn name_status_and_optional_payload() {
        let r = parse(&["reboot=200", "getTemp=201:{\"t\":21.5}", "fail=-3:\"no\""]).unwrap();
        assert_eq!(
            r.answer_for("reboot"),
            CannedAnswer {
                status: 200,
                payload: Value::Null
            }
        );
        assert_eq!(
            r.answer_for("getTemp"),
            CannedAnswer {
                status: 201,
                payload: json!({"t": 21.5})
            }
        );
        assert_eq!(r.answer_for("fail").status, -3);
        assert_eq!(r.answer_for("fail").payload, json!("no"));
    }

    #[test]
    fn a_payload_may_hold_colons_and_come_from_a_file() {
        let r = parse(&["m=200:{\"url\":\"http://x:1\"}"]).unwrap();
        assert_eq!(r.answer_for("m").payload, json!({"url": "http://x:1"}));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answer.json");
        std::fs::write(&path, r#"{"fromFile":true}"#).unwrap();
        let r = parse(&[&format!("m=200:@{}", path.display())]).unwrap();
        assert_eq!(r.answer_for("m").payload, json!({"fromFile": true}));
    }

    #[test]
    fn unknown_methods_get_501_naming_the_method() {
        let answer = MethodResponses::default().answer_for("selfDestruct");
        assert_eq!(answer.status, 501);
        assert_eq!(answer.payload["methodName"], "selfDestruct");
        assert!(answer.payload["message"]
            .as_str()
            .unwrap()
            .contains("'selfDestruct'"));
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_value() {
        for bad in [
            "reboot",
            "=200",
            "reboot=ok",
            "reboot=",
            "a/b=200",
            "reboot=200:{bad",
            "reboot=200:@/nonexistent/answer.json",
            "reboot=200:@/dev/zero",
        ] {
            let err = parse(&[bad]).expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad}");
            let text = err.to_string();
            assert!(text.contains("--method-response"), "{bad}: {text}");
        }
        let err = parse(&["a=200", "a=500"]).unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
        let big = format!("a=200:\"{}\"", "x".repeat(MAX_METHOD_PAYLOAD));
        let err = parse(&[&big]).unwrap_err();
        assert!(err.to_string().contains("at most 131072"), "{err}");
    }
}
