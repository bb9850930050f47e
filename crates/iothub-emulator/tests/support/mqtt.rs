//! MQTT test clients: plain rumqttc device clients (TLS or WebSockets) whose events arrive on
//! a channel, and a raw TLS client for what rumqttc will not do (stay silent, send odd
//! packets). [`MqttHub`] adds device credentials and client options to the shared test hub.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use iothub_auth::{DeviceCredential, SasToken, SharedAccessKey};
use iothub_emulator::test_support::TestHub;
use rumqttc::{
    AsyncClient, ConnectionError, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration,
    Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The api-version the Node SDK and the docs use.
pub const USERNAME_QUERY: &str = "?api-version=2021-04-12";
/// Packets up to IoT Hub's limit (rumqttc's default is 10 KiB).
pub const MAX_PACKET: usize = 256 * 1024 + 16 * 1024;
/// How long a test waits for something that should happen at once (generous, for loaded CI
/// machines).
pub const WAIT: Duration = Duration::from_secs(10);

/// A registered device and its primary key.
pub struct Device {
    pub id: String,
    pub key: SharedAccessKey,
}

/// Device credentials and MQTT client options for the hub's devices.
pub trait MqttHub {
    /// Registers `id` and returns it with its key.
    async fn device(&self, id: &str) -> Device;
    /// `{host}/devices/{id}` SAS signed with `key`, expiring at `se`.
    fn token(&self, device_id: &str, key: &SharedAccessKey, se: u64) -> String;
    /// A device token valid for an hour.
    fn device_token(&self, device: &Device) -> String;
    /// A rustls client configuration trusting the emulator's CA.
    fn tls(&self) -> TlsConfiguration;
    /// MQTT over TLS to the MQTT port, as `client_id` with `password`.
    fn options(&self, client_id: &str, password: &str) -> MqttOptions;
    /// MQTT over WebSockets to `wss://localhost:{https}/$iothub/websocket`.
    fn ws_options(&self, client_id: &str, password: &str) -> MqttOptions;
    /// A connected client (CONNACK received) for `device`, over TLS.
    async fn connect(&self, device: &Device) -> Client;
}

impl MqttHub for TestHub {
    async fn device(&self, id: &str) -> Device {
        let cs = self.add_device(id).await;
        let DeviceCredential::SharedAccessKey(key) = cs.credential else {
            panic!("emulator devices have SAS keys");
        };
        Device {
            id: id.to_string(),
            key,
        }
    }

    fn token(&self, device_id: &str, key: &SharedAccessKey, se: u64) -> String {
        let resource = format!("{}/devices/{device_id}", self.emulator().hostname());
        SasToken::generate(&resource, key, None, se)
            .as_str()
            .to_string()
    }

    fn device_token(&self, device: &Device) -> String {
        self.token(&device.id, &device.key, iothub_auth::unix_now() + 3600)
    }

    fn tls(&self) -> TlsConfiguration {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.emulator().ca_pem().as_bytes()) {
            roots
                .add(cert.expect("CA certificate"))
                .expect("CA accepted");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConfiguration::Rustls(Arc::new(config))
    }

    fn options(&self, client_id: &str, password: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, "localhost", self.emulator().mqtt_port());
        configure(self, &mut options, client_id, password);
        options.set_transport(Transport::tls_with_config(self.tls()));
        options
    }

    fn ws_options(&self, client_id: &str, password: &str) -> MqttOptions {
        let port = self.emulator().https_port();
        let url = format!("wss://localhost:{port}/$iothub/websocket");
        let mut options = MqttOptions::new(client_id, url, port);
        configure(self, &mut options, client_id, password);
        options.set_transport(Transport::wss_with_config(self.tls()));
        options
    }

    async fn connect(&self, device: &Device) -> Client {
        let client = Client::start(self.options(&device.id, &self.device_token(device)));
        client.expect_connack().await;
        client
    }
}

fn configure(hub: &TestHub, options: &mut MqttOptions, client_id: &str, password: &str) {
    let username = format!("{}/{client_id}/{USERNAME_QUERY}", hub.emulator().hostname());
    options
        .set_credentials(username, password)
        .set_clean_session(false)
        .set_keep_alive(Duration::from_secs(60))
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
}

/// A rumqttc client whose event loop runs in its own task and stops at the first error
/// (no automatic reconnect), reporting packets and the error on a channel.
pub struct Client {
    pub client: AsyncClient,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Result<Packet, ConnectionError>>>,
}

impl Client {
    pub fn start(options: MqttOptions) -> Client {
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        if tx.send(Ok(packet)).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(error) => {
                        let _ = tx.send(Err(error));
                        return;
                    }
                }
            }
        });
        Client {
            client,
            events: tokio::sync::Mutex::new(rx),
        }
    }

    /// The next event, or `None` when the event loop has ended. Panics after [`WAIT`].
    pub async fn next(&self) -> Option<Result<Packet, ConnectionError>> {
        tokio::time::timeout(WAIT, self.events.lock().await.recv())
            .await
            .expect("an MQTT event within the wait time")
    }

    /// Waits for CONNACK and returns its `session_present`.
    pub async fn expect_connack(&self) -> bool {
        match self.next().await {
            Some(Ok(Packet::ConnAck(ack))) => {
                assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                ack.session_present
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Waits for the connection to fail and returns the error.
    pub async fn expect_error(&self) -> ConnectionError {
        loop {
            match self.next().await {
                Some(Ok(_)) => continue,
                Some(Err(error)) => return error,
                None => panic!("event loop ended without an error"),
            }
        }
    }

    /// Skips other packets until a PUBLISH whose topic starts with `prefix`.
    pub async fn expect_publish(&self, prefix: &str) -> Publish {
        loop {
            match self.next().await {
                Some(Ok(Packet::Publish(publish))) if publish.topic.starts_with(prefix) => {
                    return publish
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a PUBLISH on {prefix}…, got {other:?}"),
            }
        }
    }

    /// Subscribes to the twin response and desired-patch topics and waits for the SUBACK.
    pub async fn subscribe_twin(&self) {
        self.client
            .subscribe("$iothub/twin/res/#", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        self.client
            .subscribe("$iothub/twin/PATCH/properties/desired/#", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let mut acks = 0;
        while acks < 2 {
            match self.next().await {
                Some(Ok(Packet::SubAck(_))) => acks += 1,
                Some(Ok(_)) => {}
                other => panic!("expected SUBACK, got {other:?}"),
            }
        }
    }

    /// Publishes a twin GET and returns the response's status and JSON body.
    pub async fn get_twin(&self, rid: &str) -> (u16, Value) {
        self.client
            .publish(
                format!("$iothub/twin/GET/?$rid={rid}"),
                QoS::AtLeastOnce,
                false,
                " ",
            )
            .await
            .expect("publish GET");
        let response = self.expect_publish("$iothub/twin/res/").await;
        let (status, query) = parse_response_topic(&response.topic);
        assert_eq!(
            query_value(&query, "$rid"),
            Some(rid.to_string()),
            "{}",
            response.topic
        );
        (
            status,
            serde_json::from_slice(&response.payload).expect("JSON body"),
        )
    }

    /// Publishes a reported PATCH; returns the status, the `$version` of a 204, and the body.
    pub async fn patch_reported(&self, rid: &str, body: &str) -> (u16, Option<u64>, Vec<u8>) {
        self.client
            .publish(
                format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}"),
                QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .await
            .expect("publish PATCH");
        let response = self.expect_publish("$iothub/twin/res/").await;
        let (status, query) = parse_response_topic(&response.topic);
        assert_eq!(
            query_value(&query, "$rid"),
            Some(rid.to_string()),
            "{}",
            response.topic
        );
        let version = query_value(&query, "$version").map(|v| v.parse().expect("numeric $version"));
        (status, version, response.payload.to_vec())
    }
}

/// `$iothub/twin/res/{status}/?{query}` → (status, query).
pub fn parse_response_topic(topic: &str) -> (u16, String) {
    let rest = topic
        .strip_prefix("$iothub/twin/res/")
        .expect("twin response topic");
    let (status, query) = rest.split_once("/?").expect("status and query");
    (status.parse().expect("numeric status"), query.to_string())
}

pub fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// A bare TLS connection speaking MQTT through rumqttc's codec, for behaviour a well-behaved
/// client library never shows (silence past keep-alive, QoS 2, odd topics).
pub struct RawClient {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    buf: BytesMut,
}

impl RawClient {
    pub async fn connect(hub: &TestHub) -> RawClient {
        let TlsConfiguration::Rustls(config) = hub.tls() else {
            unreachable!("rustls config")
        };
        let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, hub.emulator().mqtt_port()))
            .await
            .expect("TCP connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        RawClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// The TLS stream itself, for tests that write bytes no encoder would produce.
    pub fn into_stream(self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        self.stream
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.write(&mut out, MAX_PACKET).expect("encode");
        self.stream.write_all(&out).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// The next packet, or `None` once the server closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.buf, MAX_PACKET) {
                Ok(packet) => return Some(packet),
                Err(rumqttc::Error::InsufficientBytes(_)) => {}
                Err(error) => panic!("server sent garbage: {error}"),
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// CONNECT as `device` (clean session 0) with `keep_alive` seconds; returns the CONNACK.
    pub async fn handshake(
        &mut self,
        hub: &TestHub,
        device: &Device,
        keep_alive: u16,
    ) -> rumqttc::ConnAck {
        let mut connect = rumqttc::Connect::new(device.id.clone());
        connect.clean_session = false;
        connect.keep_alive = keep_alive;
        let username = format!(
            "{}/{}/{USERNAME_QUERY}",
            hub.emulator().hostname(),
            device.id
        );
        connect.set_login(username, hub.device_token(device));
        self.send(Packet::Connect(connect)).await;
        match self.recv().await {
            Some(Packet::ConnAck(ack)) => ack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Waits (at most [`WAIT`]) for the server to close the connection, skipping packets.
    pub async fn expect_closed(&mut self) {
        tokio::time::timeout(WAIT, async { while self.recv().await.is_some() {} })
            .await
            .expect("server closes the connection");
    }
}
