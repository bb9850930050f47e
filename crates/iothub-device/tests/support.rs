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
    hub.owner_call(method, path, body).await
}

/// Registers module `module` on the registered device `device` and returns its connection
/// string (`…;DeviceId=…;ModuleId=…;SharedAccessKey=…`, the device's host and port).
pub async fn add_module(hub: &TestHub, device: &str, module: &str) -> DeviceConnectionString {
    let host_name = hub.device_connection(device).host_name;
    hub.add_module(device, module, &host_name)
        .await
        .parse()
        .expect("module connection string")
}
