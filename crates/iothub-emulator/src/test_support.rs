//! The hub every crate's integration tests start, written once.
//!
//! Enabled by the `test-support` feature, which is off by default and meant for
//! `[dev-dependencies]` only:
//!
//! ```toml
//! [dev-dependencies]
//! iothub-emulator = { workspace = true, features = ["test-support"] }
//! ```
//!
//! [`TestHub::start`] runs an in-memory emulator on ephemeral 127.0.0.1 ports with its CA in a
//! temporary directory, so tests run in parallel without seeing each other and never touch the
//! standard ports. Its REST helpers play the service side, so a test checks what a device or a
//! tool did the way a user would see it: through the service API. [`RefusedPort`] is an address
//! where nothing answers, reserved for as long as the test holds it.
//!
//! ```no_run
//! # async fn demo() {
//! use iothub_emulator::test_support::TestHub;
//!
//! let hub = TestHub::start().await;
//! let device = hub.add_device("myDeviceId").await;
//! // ... connect `device` with the client under test, then look at the result:
//! let twin = hub.twin("myDeviceId").await;
//! assert_eq!(twin["deviceId"], "myDeviceId");
//! hub.shutdown().await;
//! # }
//! ```
//!
//! Helpers panic with a message naming the step that failed: a test whose set-up breaks has
//! nothing to recover, and the message is what its author reads.

// Test support: a failed set-up step is a failed test.
#![allow(clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use iothub_auth::{DeviceConnectionString, ServiceConnectionString};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

use crate::{
    Emulator, EmulatorConfig, PartitionInfo, RunningEmulator, StartPosition, StoredEvent,
    TelemetryMessage,
};

/// The `api-version` query parameter the official SDKs send (without `?` or `&`).
pub const API_VERSION_QUERY: &str = "api-version=2021-04-12";

/// The shared access policies every emulator has.
pub const POLICIES: [&str; 5] = [
    "iothubowner",
    "service",
    "registryRead",
    "registryReadWrite",
    "device",
];

/// How long one REST call of the helpers may take: generous, for loaded CI machines.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the helpers' SAS tokens stay valid.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Installs rustls' ring provider as the process default, once; later calls do nothing.
///
/// The workspace builds rustls without a default provider, so a test that makes TLS clients
/// before starting a [`TestHub`] calls this first.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already (this one, by an earlier call).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTPS client that trusts `ca_pem` (an emulator's CA) and sends `localhost` to 127.0.0.1.
///
/// For an emulator the test did not start through [`TestHub`], such as the binary in a child
/// process. Proxies from the environment are ignored: the emulator is always local.
pub fn https_client(ca_pem: &str) -> reqwest::Client {
    install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("the emulator's CA is PEM");
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        // The port of the URL is used; reqwest ignores this one.
        .resolve("localhost", SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTPS client builds")
}

/// An in-memory emulator on ephemeral 127.0.0.1 ports, its CA in a temporary directory, and an
/// HTTPS client that trusts it. Dropping it stops the emulator and removes the directory;
/// [`TestHub::shutdown`] also waits for the emulator to finish.
#[derive(Debug)]
pub struct TestHub {
    // Declared first so it is dropped first, before the directory holding its CA.
    emulator: RunningEmulator,
    http: reqwest::Client,
    /// Devices registered through this hub: their keys are among [`TestHub::secrets`].
    devices: Mutex<Vec<String>>,
    _dir: TempDir,
}

impl TestHub {
    /// An emulator with no devices.
    pub async fn start() -> TestHub {
        TestHub::with_devices(&[]).await
    }

    /// An emulator with `ids` registered before it accepts connections.
    pub async fn with_devices(ids: &[&str]) -> TestHub {
        install_crypto_provider();
        let dir = tempfile::tempdir().expect("temporary directory for the emulator's CA");
        let devices: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        let mut config = EmulatorConfig::for_tests(dir.path());
        config.devices = devices.clone();
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let http = https_client(emulator.ca_pem());
        TestHub {
            emulator,
            http,
            devices: Mutex::new(devices),
            _dir: dir,
        }
    }

    /// An in-memory emulator like [`TestHub::start`], with `configure` applied to its
    /// configuration first (connection limits, query lag, …).
    pub async fn configured(configure: impl FnOnce(&mut EmulatorConfig)) -> TestHub {
        install_crypto_provider();
        let dir = tempfile::tempdir().expect("temporary directory for the emulator's CA");
        let mut config = EmulatorConfig::for_tests(dir.path());
        configure(&mut config);
        let devices = config.devices.clone();
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let http = https_client(emulator.ca_pem());
        TestHub {
            emulator,
            http,
            devices: Mutex::new(devices),
            _dir: dir,
        }
    }

    /// A durable emulator (SQLite state, CA and keys in `data_dir`, which outlives it, so a
    /// second one started on it restarts the same hub); devices are added as with
    /// [`TestHub::start`].
    pub async fn durable_in(data_dir: &std::path::Path) -> TestHub {
        TestHub::durable_configured(data_dir, |_| {}).await
    }

    /// A durable emulator like [`TestHub::durable_in`], with `configure` applied to its
    /// configuration first (partitions, event retention, …).
    pub async fn durable_configured(
        data_dir: &std::path::Path,
        configure: impl FnOnce(&mut EmulatorConfig),
    ) -> TestHub {
        install_crypto_provider();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = EmulatorConfig::for_tests(data_dir);
        config.in_memory = false;
        configure(&mut config);
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let http = https_client(emulator.ca_pem());
        TestHub {
            emulator,
            http,
            devices: Mutex::new(Vec::new()),
            _dir: dir,
        }
    }

    /// The emulator itself: ports, CA, connection strings, fault injection.
    pub fn emulator(&self) -> &RunningEmulator {
        &self.emulator
    }

    /// The HTTPS client the REST helpers use (trusts the emulator's CA).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The `iothubowner` connection string, parsed.
    pub fn service_connection(&self) -> ServiceConnectionString {
        self.policy_connection("iothubowner")
    }

    /// The connection string of one of [`POLICIES`], parsed.
    pub fn policy_connection(&self, policy: &str) -> ServiceConnectionString {
        self.emulator
            .policy_connection_string(policy)
            .unwrap_or_else(|| panic!("the emulator has no policy {policy:?}"))
            .parse()
            .expect("the emulator's policy connection string parses")
    }

    /// Registers `id` (keeping its keys if it exists) and returns its connection string for
    /// A REST call as `iothubowner`: `PATCH` and `DELETE` are unconditional (`If-Match: "*"`),
    /// a `PUT` without `If-Match` creates. Returns the status and the JSON body (`null` if none).
    pub async fn owner_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let conditional = method == Method::PATCH || method == Method::DELETE;
        let mut request = self.request(method, path, "iothubowner");
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

    /// Registers module `module` on the registered device `device`; returns its connection
    /// string for `host_name` (`…;DeviceId=…;ModuleId=…;SharedAccessKey=…`).
    pub async fn add_module(&self, device: &str, module: &str, host_name: &str) -> String {
        let (status, identity) = self
            .owner_call(
                Method::PUT,
                &format!("/devices/{device}/modules/{module}"),
                Some(serde_json::json!({"deviceId": device, "moduleId": module})),
            )
            .await;
        assert_eq!(status, 200, "create module: {identity}");
        let key = identity["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .expect("the hub generated a module key");
        format!("HostName={host_name};DeviceId={device};ModuleId={module};SharedAccessKey={key}")
    }

    /// MQTT over TLS.
    pub async fn add_device(&self, id: &str) -> DeviceConnectionString {
        self.register(id)
            .await
            .parse()
            .expect("the emulator's device connection string parses")
    }

    /// Registers every id in `ids`, including ids no connection string can carry (such as
    /// ones with `;`), which the REST API accepts.
    pub async fn add_devices<I, S>(&self, ids: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for id in ids {
            self.register(id.as_ref()).await;
        }
    }

    /// The connection string of a registered device for MQTT over TLS.
    pub fn device_connection(&self, id: &str) -> DeviceConnectionString {
        self.emulator
            .device_connection_string(id)
            .unwrap_or_else(|| panic!("device {id:?} is not registered"))
            .parse()
            .expect("the emulator's device connection string parses")
    }

    /// The connection string of a registered device for MQTT over WebSockets (its `HostName`
    /// carries the HTTPS port).
    pub fn device_connection_ws(&self, id: &str) -> DeviceConnectionString {
        self.emulator
            .device_connection_string_ws(id)
            .unwrap_or_else(|| panic!("device {id:?} is not registered"))
            .parse()
            .expect("the emulator's device connection string parses")
    }

    /// Every key no output may show: the primary key of each policy and of each device
    /// registered through this hub, base64 as in connection strings.
    pub fn secrets(&self) -> Vec<String> {
        let policies = POLICIES
            .iter()
            .filter_map(|policy| self.emulator.policy_connection_string(policy));
        let devices: Vec<String> = self
            .devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter_map(|id| self.emulator.device_connection_string(id))
            .collect();
        // The key is the last field, so an id with `;` in it cannot be mistaken for one.
        policies
            .chain(devices)
            .map(|text| {
                let (_, key) = text
                    .rsplit_once(";SharedAccessKey=")
                    .expect("emulator connection strings end with the key");
                key.to_owned()
            })
            .collect()
    }

    /// `https://{host}:{https port}{path}` with the `api-version` parameter appended.
    pub fn url(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!(
            "https://{}:{}{path}{separator}{API_VERSION_QUERY}",
            self.emulator.hostname(),
            self.emulator.https_port()
        )
    }

    /// An `Authorization` value for `policy`, valid for an hour.
    pub fn service_token(&self, policy: &str) -> String {
        self.policy_connection(policy)
            .sas_token(TOKEN_TTL)
            .as_str()
            .to_owned()
    }

    /// A request to `path` (see [`TestHub::url`]) signed for `policy`, ready to send.
    pub fn request(&self, method: Method, path: &str, policy: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("authorization", self.service_token(policy))
    }

    /// `GET /twins/{id}`: the twin as the service API shows it.
    pub async fn twin(&self, id: &str) -> Value {
        let path = format!("/twins/{}", iothub_auth::encode_component(id));
        self.call("GET twin", self.request(Method::GET, &path, "iothubowner"))
            .await
    }

    /// `GET /devices/{id}`: the device identity with its connection state.
    pub async fn device_identity(&self, id: &str) -> Value {
        let path = format!("/devices/{}", iothub_auth::encode_component(id));
        self.call(
            "GET device",
            self.request(Method::GET, &path, "iothubowner"),
        )
        .await
    }

    /// `PATCH /twins/{id}` with desired properties, unconditionally, as the service SDKs send
    /// it; returns the updated twin.
    pub async fn patch_desired(&self, id: &str, desired: Value) -> Value {
        let path = format!("/twins/{}", iothub_auth::encode_component(id));
        let body = serde_json::json!({ "properties": { "desired": desired } });
        let request = self
            .request(Method::PATCH, &path, "iothubowner")
            .header("if-match", "\"*\"")
            .header("content-type", "application/json")
            .body(body.to_string());
        self.call("PATCH twin", request).await
    }

    /// `DELETE /devices/{id}`, unconditionally.
    pub async fn delete_device(&self, id: &str) {
        let path = format!("/devices/{}", iothub_auth::encode_component(id));
        let response = self
            .request(Method::DELETE, &path, "iothubowner")
            .header("if-match", "\"*\"")
            .send()
            .await
            .expect("DELETE device completes");
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "DELETE device {id:?}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Applies a reported-properties patch as if the device had sent it, without a device
    /// connection; returns the new reported `$version`.
    pub async fn patch_reported(&self, id: &str, reported: Value) -> u64 {
        self.emulator
            .hub()
            .patch_reported(id, reported)
            .await
            .unwrap_or_else(|e| panic!("reported patch of {id:?}: {e}"))
    }

    /// The device-to-cloud messages the hub keeps, oldest first (numbered from 1 in arrival
    /// order).
    pub fn telemetry(&self) -> Vec<TelemetryMessage> {
        self.emulator.hub().telemetry().since(0)
    }

    /// Waits (at most 30 s, on the hub's signal, without polling) until the hub has received
    /// at least `count` device-to-cloud messages, and returns the kept ones, oldest first.
    pub async fn wait_for_telemetry(&self, count: u64) -> Vec<TelemetryMessage> {
        let mut newest = self.emulator.hub().telemetry().subscribe();
        tokio::time::timeout(REQUEST_TIMEOUT, newest.wait_for(|n| *n >= count))
            .await
            .unwrap_or_else(|_| panic!("{count} telemetry messages within {REQUEST_TIMEOUT:?}"))
            .expect("the hub's telemetry buffer lives as long as the hub");
        self.telemetry()
    }

    /// The partition count of the built-in Event Hub-compatible endpoint.
    pub fn partition_count(&self) -> u32 {
        self.emulator.hub().events().partition_count()
    }

    /// The partition that holds `device_id`'s events.
    pub fn partition_for(&self, device_id: &str) -> u32 {
        self.emulator.hub().events().partition_for(device_id)
    }

    /// The events of `partition` at `from`, oldest first (at most 100,000), as the built-in
    /// endpoint would deliver them.
    pub fn events(&self, partition: u32, from: StartPosition) -> Vec<StoredEvent> {
        self.emulator.hub().events().read(partition, from, 100_000)
    }

    /// What the endpoint's `$management` node reports about `partition`.
    pub fn partition_info(&self, partition: u32) -> PartitionInfo {
        self.emulator
            .hub()
            .events()
            .partition_info(partition)
            .unwrap_or_else(|| panic!("partition {partition} exists"))
    }

    /// Waits (at most 30 s, on the log's signal, without polling) until `partition`'s last
    /// sequence number is at least `sequence_number`, and returns all its retained events.
    pub async fn wait_for_events(&self, partition: u32, sequence_number: i64) -> Vec<StoredEvent> {
        let mut newest = self
            .emulator
            .hub()
            .events()
            .subscribe(partition)
            .unwrap_or_else(|| panic!("partition {partition} exists"));
        tokio::time::timeout(REQUEST_TIMEOUT, newest.wait_for(|n| *n >= sequence_number))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "event {sequence_number} in partition {partition} within {REQUEST_TIMEOUT:?}"
                )
            })
            .expect("the event log lives as long as the hub");
        self.events(partition, StartPosition::Earliest)
    }

    /// `POST /devices/{id}/messages/deviceBound` with `body` and `headers` (properties as
    /// `iothub-*` headers), as IoT Explorer sends a cloud-to-device message; returns the status
    /// and the body.
    pub async fn send_c2d(
        &self,
        id: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let path = format!(
            "/devices/{}/messages/deviceBound",
            iothub_auth::encode_component(id)
        );
        let mut request = self
            .request(Method::POST, &path, "service")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("C2D send completes");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    /// Moves the hub's cloud-to-device clock forward by `by`, so that messages expire without
    /// the test waiting for them to.
    pub fn advance_c2d_clock(&self, by: Duration) {
        self.emulator.hub().c2d().advance_clock(by);
    }

    /// Makes cloud-to-device deliveries lock for `lock` instead of a minute, so that a test
    /// sees an unacknowledged message sent again on the same connection without waiting a
    /// minute.
    pub fn set_c2d_lock(&self, lock: Duration) {
        self.emulator.hub().c2d().set_lock_duration(lock);
    }

    /// Stops the emulator, waits for every session and request to end, then removes the
    /// directory.
    pub async fn shutdown(self) {
        let TestHub { emulator, _dir, .. } = self;
        emulator.shutdown().await;
    }

    /// Sends `request`, expects 200 and returns the JSON body.
    async fn call(&self, what: &str, request: RequestBuilder) -> Value {
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what} completes: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "{what}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what} answers JSON ({e}): {text}"))
    }

    /// Registers `id` and returns its connection string, unparsed.
    async fn register(&self, id: &str) -> String {
        let text = self
            .emulator
            .add_device(id)
            .await
            .unwrap_or_else(|e| panic!("registering device {id:?}: {e}"));
        let mut devices = self
            .devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !devices.iter().any(|known| known == id) {
            devices.push(id.to_owned());
        }
        text
    }
}

/// A 127.0.0.1 port that refuses every connection for as long as this value lives.
///
/// The socket is bound but never listens, so a connection attempt gets `ECONNREFUSED` at once;
/// and because the port stays bound (without `SO_REUSEADDR`), no parallel test can be handed it
/// as an ephemeral port. Binding a listener and dropping it frees the port for anyone, so a
/// test using such a port may end up talking to another test's server.
#[derive(Debug)]
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl RefusedPort {
    /// Reserves a fresh port.
    pub fn reserve() -> RefusedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("TCP socket");
        socket
            .set_reuseaddr(false)
            .expect("SO_REUSEADDR can be cleared");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind 127.0.0.1:0");
        let port = socket.local_addr().expect("bound address").port();
        RefusedPort {
            _socket: socket,
            port,
        }
    }

    /// The reserved port.
    pub fn port(&self) -> u16 {
        self.port
    }
}
