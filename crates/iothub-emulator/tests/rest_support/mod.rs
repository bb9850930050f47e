//! Shared helpers of the REST integration tests: an in-process emulator on ephemeral ports and a
//! plain reqwest client that trusts its CA and signs requests with a chosen policy.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use iothub_auth::{SasToken, ServiceConnectionString, SharedAccessKey};
use iothub_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use reqwest::{Method, Response};
use serde_json::Value;

/// The api-version the official SDKs send.
pub const API: &str = "api-version=2021-04-12";

pub struct TestHub {
    pub emulator: RunningEmulator,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A reqwest client trusting `ca_pem`, with `localhost` pinned to 127.0.0.1:`port`.
pub fn client_for(ca_pem: &str, port: u16) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM"))
        .resolve("localhost", SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client builds")
}

impl TestHub {
    pub async fn start() -> TestHub {
        let dir = tempfile::tempdir().expect("temp dir");
        let emulator = Emulator::start(EmulatorConfig::for_tests(dir.path()))
            .await
            .expect("emulator starts");
        let client = client_for(emulator.ca_pem(), emulator.https_port());
        TestHub {
            emulator,
            client,
            _dir: dir,
        }
    }

    /// `https://localhost:{port}{path}` with `api-version` appended.
    pub fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!(
            "https://localhost:{}{path}{sep}{API}",
            self.emulator.https_port()
        )
    }

    /// An Authorization header value for `policy`, valid for an hour.
    pub fn token(&self, policy: &str) -> String {
        let cs = self
            .emulator
            .policy_connection_string(policy)
            .expect("policy exists");
        ServiceConnectionString::from_str(&cs)
            .expect("valid connection string")
            .sas_token(Duration::from_secs(3600))
            .as_str()
            .to_string()
    }

    /// A token for the hub signed with a key that is not the policy's.
    pub fn forged_token(&self, policy: &str) -> String {
        let host = format!("localhost:{}", self.emulator.https_port());
        SasToken::generate(
            &host,
            &SharedAccessKey::generate(),
            Some(policy),
            iothub_auth::unix_now() + 3600,
        )
        .as_str()
        .to_string()
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        policy: &str,
        body: Option<&Value>,
    ) -> Response {
        self.send_with(method, path, &self.token(policy), body, &[])
            .await
    }

    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        auth: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self
            .client
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

    pub async fn create_device(&self, id: &str) -> Value {
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
