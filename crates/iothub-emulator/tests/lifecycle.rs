//! The emulator's lifetime: shutdown ends every kind of session (MQTT over WebSockets included)
//! before it closes the store, and a start renews a server certificate near its end.

use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use iothub_auth::{DeviceConnectionString, DeviceCredential, SasToken, SharedAccessKey};
use iothub_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(20);

const DEVICE: &str = "lifecycle-device";

fn durable_config(dir: &Path) -> EmulatorConfig {
    let mut config = EmulatorConfig::for_tests(dir);
    config.in_memory = false;
    config
}

async fn start(config: EmulatorConfig) -> RunningEmulator {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Emulator::start(config).await.expect("emulator starts")
}

fn device_key(connection_string: &str) -> SharedAccessKey {
    let cs = DeviceConnectionString::from_str(connection_string).expect("connection string");
    match cs.credential {
        DeviceCredential::SharedAccessKey(key) => key,
        _ => panic!("emulator devices have SAS keys"),
    }
}

fn client_tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA accepted");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to the HTTPS port, trusting only the emulator's CA.
async fn tls_to_https_port(emulator: &RunningEmulator) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, emulator.https_port()))
        .await
        .expect("TCP connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio_rustls::TlsConnector::from(client_tls(emulator.ca_pem()))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with a certificate the CA signed")
}

/// An MQTT-over-WebSocket connection that never sends CONNECT: its session waits for one.
async fn silent_websocket(
    emulator: &RunningEmulator,
) -> tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>> {
    let url = format!(
        "wss://localhost:{}/$iothub/websocket",
        emulator.https_port()
    );
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
    let (socket, _) = tokio_tungstenite::client_async(request, tls_to_https_port(emulator).await)
        .await
        .expect("WebSocket upgrade");
    socket
}

/// A device over MQTT over WebSockets (rumqttc) that keeps reported PATCHes in flight and
/// reports each response's status and `$version` until its connection ends.
async fn patching_device(
    emulator: &RunningEmulator,
    key: &SharedAccessKey,
) -> mpsc::UnboundedReceiver<(u16, Option<u64>)> {
    let port = emulator.https_port();
    let url = format!("wss://localhost:{port}/$iothub/websocket");
    let mut options = rumqttc::MqttOptions::new(DEVICE, url, port);
    let token = SasToken::generate(
        &format!("localhost/devices/{DEVICE}"),
        key,
        None,
        iothub_auth::unix_now() + 3600,
    );
    options
        .set_credentials(
            format!("localhost/{DEVICE}/?api-version=2021-04-12"),
            token.as_str(),
        )
        .set_clean_session(false)
        .set_keep_alive(Duration::from_secs(60))
        .set_transport(rumqttc::Transport::wss_with_config(
            rumqttc::TlsConfiguration::Rustls(client_tls(emulator.ca_pem())),
        ));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    let (responses_tx, responses) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) => {
                    let _ = responses_tx.send(parse_response(&publish.topic));
                }
                _ => {}
            }
        }
        // The connection ended: dropping the sender tells the test.
    });
    client
        .subscribe("$iothub/twin/res/#", rumqttc::QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    tokio::time::timeout(WAIT, subscribed)
        .await
        .expect("SUBACK within the wait")
        .expect("SUBACK");
    tokio::spawn(async move {
        for rid in 0u64.. {
            let topic = format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}");
            let body = json!({"counter": rid}).to_string();
            if client
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, body)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    responses
}

/// `$iothub/twin/res/{status}/?$rid=…&$version=…` → (status, version).
fn parse_response(topic: &str) -> (u16, Option<u64>) {
    let rest = topic
        .strip_prefix("$iothub/twin/res/")
        .expect("a twin response");
    let (status, query) = rest.split_once("/?").expect("status and query");
    let version = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("$version="))
        .map(|v| v.parse().expect("numeric $version"));
    (status.parse().expect("numeric status"), version)
}

#[tokio::test]
async fn shutdown_ends_websocket_sessions_before_it_closes_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = start(durable_config(dir.path())).await;
    let key = device_key(&emulator.add_device(DEVICE).await.expect("device"));

    let mut silent = silent_websocket(&emulator).await;
    // A device writing its reported properties as fast as it can while the emulator stops.
    let mut responses = patching_device(&emulator, &key).await;
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 5 {
        let response = tokio::time::timeout(WAIT, responses.recv())
            .await
            .expect("PATCH responses within the wait")
            .expect("the device is connected");
        acknowledged.push(response);
    }

    let hub = emulator.hub().clone();
    tokio::time::timeout(WAIT, emulator.shutdown())
        .await
        .expect("shutdown does not wait for the silent connection's CONNECT timeout");

    // Both sessions had ended when shutdown returned...
    assert_eq!(
        hub.device_json(DEVICE).expect("device")["connectionState"],
        "Disconnected",
        "the device's session had recorded its disconnect"
    );
    let closed = tokio::time::timeout(WAIT, silent.next())
        .await
        .expect("the silent connection is closed");
    assert!(
        matches!(
            closed,
            None | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | Some(Err(_))
        ),
        "{closed:?}"
    );
    while let Some(response) = tokio::time::timeout(WAIT, responses.recv())
        .await
        .expect("the device's connection ends")
    {
        acknowledged.push(response);
    }
    // ...and the store was closed after them: no PATCH met a closed store, and later writes do.
    assert!(
        acknowledged.iter().all(|(status, _)| *status == 204),
        "{acknowledged:?}"
    );
    let late = hub
        .patch_reported(DEVICE, json!({"late": true}))
        .await
        .expect_err("the store is closed");
    assert!(late.to_string().contains("the store is closed"), "{late}");

    // Every acknowledged version is durable.
    let newest = acknowledged
        .iter()
        .filter_map(|(_, version)| *version)
        .max()
        .expect("acknowledged versions");
    let restarted = start(durable_config(dir.path())).await;
    let twin = restarted.hub().twin_json(DEVICE).expect("twin");
    let stored = twin["properties"]["reported"]["$version"]
        .as_u64()
        .expect("$version");
    assert!(stored >= newest, "stored {stored}, acknowledged {newest}");
    restarted.shutdown().await;
}

/// Replaces the stored server certificate with one signed by the stored CA that is valid from
/// `from` to `until` days from now.
fn store_server_certificate(dir: &Path, from: i64, until: i64) {
    let ca_key = std::fs::read_to_string(dir.join("ca-key.pem")).expect("ca-key.pem");
    let ca_key = rcgen::KeyPair::from_pem(&ca_key).expect("CA key");
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "iothub-emulator local CA");
    ca.distinguished_name
        .push(rcgen::DnType::OrganizationName, "iothub-twins");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("SANs");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(until);
    let cert = params.signed_by(&key, &issuer).expect("signed");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("server.pem");
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).expect("server-key.pem");
}

/// Days from now until the certificate the HTTPS port presents expires.
async fn served_certificate_days_left(emulator: &RunningEmulator) -> i64 {
    let tls = tls_to_https_port(emulator).await;
    let chain = tls.get_ref().1.peer_certificates().expect("server chain");
    let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).expect("X.509");
    let seconds =
        cert.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    seconds / 86_400
}

#[tokio::test]
async fn a_server_certificate_near_its_end_is_renewed_at_start_and_the_ca_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start(EmulatorConfig::for_tests(dir.path())).await;
    let ca = first.ca_pem().to_string();
    first.shutdown().await;

    for (from, until) in [(-300, 2), (-400, -1)] {
        store_server_certificate(dir.path(), from, until);
        let emulator = start(EmulatorConfig::for_tests(dir.path())).await;
        assert_eq!(
            emulator.ca_pem(),
            ca,
            "clients that trust ca.pem keep working"
        );
        let days = served_certificate_days_left(&emulator).await;
        assert!(days > 300, "served certificate expires in {days} days");
        emulator.shutdown().await;
    }
}
