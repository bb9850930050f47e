//! REST calls for the emulator's own API tests: [`RestHub`] sends any request with a chosen
//! policy (or a raw `Authorization` value) and registers devices the way the SDKs do, and
//! [`assert_error`] checks the hub's error format.

use iothub_auth::{SasToken, SharedAccessKey};
use iothub_emulator::test_support::TestHub;
use reqwest::{Method, Response};
use serde_json::Value;

/// Requests of the REST tests, on top of the shared test hub.
pub trait RestHub {
    /// A token for the hub signed with a key that is not the policy's.
    fn forged_token(&self, policy: &str) -> String;
    /// `method path` signed for `policy`, with an optional JSON body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        policy: &str,
        body: Option<&Value>,
    ) -> Response;
    /// `method path` with `auth` as the `Authorization` value and extra headers.
    async fn send_with(
        &self,
        method: Method,
        path: &str,
        auth: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response;
    /// `PUT /devices/{id}` as `iothubowner`; returns the created identity.
    async fn create_device(&self, id: &str) -> Value;
}

impl RestHub for TestHub {
    fn forged_token(&self, policy: &str) -> String {
        let host = format!("localhost:{}", self.emulator().https_port());
        SasToken::generate(
            &host,
            &SharedAccessKey::generate(),
            Some(policy),
            iothub_auth::unix_now() + 3600,
        )
        .as_str()
        .to_string()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        policy: &str,
        body: Option<&Value>,
    ) -> Response {
        self.send_with(method, path, &self.service_token(policy), body, &[])
            .await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        auth: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self
            .http()
            .request(method, self.url(path))
            .header("authorization", auth);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json; charset=utf-8")
                .body(b.to_string());
        }
        req.send().await.expect("request completes")
    }

    async fn create_device(&self, id: &str) -> Value {
        let res = self
            .send(
                Method::PUT,
                &format!("/devices/{}", encode(id)),
                "iothubowner",
                Some(&serde_json::json!({"deviceId": id})),
            )
            .await;
        assert_eq!(res.status(), 200, "create {id}");
        res.json().await.expect("device JSON")
    }
}

/// Percent-encodes an id for a path segment, like Python's `quote(id, safe='')`.
pub fn encode(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Asserts a Format A error: status, `iothub-errorcode`, content type, body `Message` prefix.
pub async fn assert_error(res: Response, status: u16, code: &str) -> String {
    assert_eq!(res.status().as_u16(), status, "status for expected {code}");
    assert_eq!(
        res.headers()
            .get("iothub-errorcode")
            .and_then(|v| v.to_str().ok()),
        Some(code)
    );
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8")
    );
    let body: Value = res.json().await.expect("error body is JSON");
    let message = body["Message"].as_str().expect("Message").to_string();
    assert!(
        message.starts_with(&format!("ErrorCode:{code};")),
        "{message}"
    );
    assert!(body["ExceptionMessage"]
        .as_str()
        .is_some_and(|m| m.starts_with("Tracking ID:")));
    message
}
