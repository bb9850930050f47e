//! Client options for the shared test hub (`iothub_emulator::test_support::TestHub`), and
//! small helpers the tests share.

use std::time::Duration;

use iothub_device::{ClientOptions, ConnectionEvent, DeviceConnectionString, TransportKind};
use iothub_emulator::test_support::TestHub;

/// How long "promptly" may take: room for a loaded 2-core CI machine. How fast it really is
/// belongs in the benchmarks.
pub const PROMPTLY: Duration = Duration::from_secs(10);

/// Options of the client under test for the hub.
pub trait DeviceHub {
    /// MQTT over TLS, trusting the emulator's CA.
    fn options(&self) -> ClientOptions;
    /// The same over WebSockets.
    fn ws_options(&self) -> ClientOptions;
}

impl DeviceHub for TestHub {
    fn options(&self) -> ClientOptions {
        ClientOptions {
            ca_pem: Some(self.emulator().ca_pem().as_bytes().to_vec()),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            ..ClientOptions::default()
        }
    }

    fn ws_options(&self) -> ClientOptions {
        ClientOptions {
            transport: TransportKind::MqttWebSockets,
            ..self.options()
        }
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

/// The key of an emulator device's connection string.
pub fn key_of(conn: &DeviceConnectionString) -> &iothub_auth::SharedAccessKey {
    match &conn.credential {
        iothub_auth::DeviceCredential::SharedAccessKey(key) => key,
        other => panic!("emulator devices use keys, got {other:?}"),
    }
}

/// Skips connection events until one is `wanted`; each may take up to [`PROMPTLY`].
pub async fn wait_for(
    events: &mut iothub_device::ConnectionEvents,
    wanted: impl Fn(&ConnectionEvent) -> bool,
) {
    loop {
        let event = tokio::time::timeout(PROMPTLY, events.next())
            .await
            .expect("event in time")
            .expect("stream open");
        if wanted(&event) {
            return;
        }
    }
}

/// A service REST call signed for `iothubowner`: the status and the JSON body (`Null` when
/// there is none).
pub async fn rest(
    hub: &TestHub,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    // Unconditional updates and deletes; a PUT without If-Match creates.
    let conditional = method == reqwest::Method::PATCH || method == reqwest::Method::DELETE;
    let mut request = hub.request(method, path, "iothubowner");
    if conditional {
        request = request.header("if-match", "\"*\"");
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("REST call completes");
    let status = response.status().as_u16();
    let text = response.text().await.expect("REST body");
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Registers module `module` on the registered device `device` and returns its connection
/// string (`…;DeviceId=…;ModuleId=…;SharedAccessKey=…`, the device's host and port).
pub async fn add_module(hub: &TestHub, device: &str, module: &str) -> DeviceConnectionString {
    let (status, identity) = rest(
        hub,
        reqwest::Method::PUT,
        &format!("/devices/{device}/modules/{module}"),
        Some(serde_json::json!({"deviceId": device, "moduleId": module})),
    )
    .await;
    assert_eq!(status, 200, "create module: {identity}");
    let key = identity["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .expect("the hub generated a module key");
    let device_conn = hub.device_connection(device);
    format!(
        "HostName={};DeviceId={device};ModuleId={module};SharedAccessKey={key}",
        device_conn.host_name
    )
    .parse()
    .expect("module connection string")
}
