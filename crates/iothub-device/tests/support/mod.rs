//! Test hub: an in-process emulator on ephemeral ports, plus REST helpers to check what the
//! device did (and to push desired changes) through the service API, not through the device.

#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use iothub_auth::ServiceConnectionString;
use iothub_device::{ClientOptions, DeviceConnectionString, TransportKind};
use iothub_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use serde_json::Value;

pub struct TestHub {
    pub emulator: RunningEmulator,
    http: reqwest::Client,
    service: ServiceConnectionString,
    _dir: tempfile::TempDir,
}

impl TestHub {
    pub async fn start() -> TestHub {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let emulator = Emulator::start(EmulatorConfig::for_tests(dir.path()))
            .await
            .expect("emulator starts");
        let ca = reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).expect("CA PEM");
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let service = emulator
            .service_connection_string()
            .parse()
            .expect("service connection string");
        TestHub {
            emulator,
            http,
            service,
            _dir: dir,
        }
    }

    /// Registers `id`; returns its MQTT (TLS) connection string.
    pub async fn device(&self, id: &str) -> DeviceConnectionString {
        self.emulator
            .add_device(id)
            .await
            .expect("add device")
            .parse()
            .expect("device connection string")
    }

    /// The WebSocket flavour of `id`'s connection string (HostName carries the HTTPS port).
    pub fn device_ws(&self, id: &str) -> DeviceConnectionString {
        self.emulator
            .device_connection_string_ws(id)
            .expect("device exists")
            .parse()
            .expect("device connection string")
    }

    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            ca_pem: Some(self.emulator.ca_pem().as_bytes().to_vec()),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            ..ClientOptions::default()
        }
    }

    pub fn ws_options(&self) -> ClientOptions {
        ClientOptions {
            transport: TransportKind::MqttWebSockets,
            ..self.options()
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "https://{}:{}{path}?api-version=2021-04-12",
            self.emulator.hostname(),
            self.emulator.https_port()
        )
    }

    fn auth(&self) -> String {
        self.service
            .sas_token(Duration::from_secs(600))
            .as_str()
            .to_owned()
    }

    /// The twin as the service API returns it.
    pub async fn rest_twin(&self, id: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/twins/{id}")))
            .header("Authorization", self.auth())
            .send()
            .await
            .expect("GET twin");
        assert!(
            response.status().is_success(),
            "GET twin: {}",
            response.status()
        );
        response.json().await.expect("twin JSON")
    }

    /// Deletes a device through the service API.
    pub async fn delete_device(&self, id: &str) {
        let response = self
            .http
            .delete(self.url(&format!("/devices/{id}")))
            .header("Authorization", self.auth())
            .header("If-Match", "\"*\"")
            .send()
            .await
            .expect("DELETE device");
        assert!(
            response.status().is_success(),
            "DELETE device: {}",
            response.status()
        );
    }

    /// PATCHes desired properties through the service API.
    pub async fn patch_desired(&self, id: &str, desired: Value) {
        let response = self
            .http
            .patch(self.url(&format!("/twins/{id}")))
            .header("Authorization", self.auth())
            .header("If-Match", "\"*\"")
            .json(&serde_json::json!({ "properties": { "desired": desired } }))
            .send()
            .await
            .expect("PATCH twin");
        assert!(
            response.status().is_success(),
            "PATCH twin: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
}

/// A connection string for `conn`'s device with a different (valid-looking) key.
pub fn with_wrong_key(conn: &DeviceConnectionString) -> DeviceConnectionString {
    DeviceConnectionString::with_key(
        conn.host_name.clone(),
        conn.device_id.clone(),
        iothub_auth::SharedAccessKey::generate(),
    )
}

/// A TCP port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}
