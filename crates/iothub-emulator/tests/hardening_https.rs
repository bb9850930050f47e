//! Issue 12, case 6: idle and slow connections cannot lock others out. Each test runs its own
//! emulator with small connection limits, so that a few sockets reach the ceiling and the
//! timeouts fire within the test.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use iothub_auth::ServiceConnectionString;
use iothub_emulator::test_support::{https_client, install_crypto_provider, API_VERSION_QUERY};
use iothub_emulator::{ConnectionLimits, Emulator, EmulatorConfig, RunningEmulator};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

/// Room for a loaded 2-core machine; every timeout under test is far shorter.
const BOUND: Duration = Duration::from_secs(20);
/// Longer than any test: a limit set to this never fires.
const NEVER: Duration = Duration::from_secs(600);

async fn start(limits: ConnectionLimits) -> (RunningEmulator, tempfile::TempDir) {
    install_crypto_provider();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = EmulatorConfig::for_tests(dir.path());
    config.connection_limits = limits;
    let emulator = Emulator::start(config).await.expect("emulator starts");
    (emulator, dir)
}

fn limits(max_connections: usize, header_read: Duration, idle: Duration) -> ConnectionLimits {
    ConnectionLimits {
        max_connections_per_listener: max_connections,
        handshake_timeout: NEVER,
        header_read_timeout: header_read,
        idle_timeout: idle,
    }
}

async fn tls_connect(emulator: &RunningEmulator, port: u16) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emulator.ca_pem().as_bytes()) {
        roots
            .add(cert.expect("CA certificate"))
            .expect("CA accepted");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .expect("TCP connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

async fn silent_sockets(port: u16, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .expect("TCP connect"),
        );
    }
    sockets
}

/// Whether the server has closed `socket` (EOF or reset) within `wait`.
async fn closed_within<S: AsyncReadExt + Unpin>(socket: &mut S, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match timeout(wait, socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn count_closed(sockets: &mut [TcpStream], wait: Duration) -> usize {
    let checks = sockets.iter_mut().map(|s| closed_within(s, wait));
    futures_util::future::join_all(checks)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count()
}

/// `GET /statistics/devices` as `iothubowner`, with a fresh client (a new connection).
async fn rest_status(emulator: &RunningEmulator) -> u16 {
    let connection: ServiceConnectionString = emulator
        .service_connection_string()
        .parse()
        .expect("service connection string");
    let token = connection.sas_token(Duration::from_secs(3600));
    let url = format!(
        "https://localhost:{}/statistics/devices?{API_VERSION_QUERY}",
        emulator.https_port()
    );
    let request = https_client(emulator.ca_pem())
        .get(url)
        .header("authorization", token.as_str())
        .send();
    timeout(BOUND, request)
        .await
        .expect("a new REST client is served in time")
        .expect("request completes")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_tls_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let (emulator, _dir) = start(limits(50, NEVER, Duration::from_millis(500))).await;
    let mut tls = tls_connect(&emulator, emulator.https_port()).await;
    assert!(
        closed_within(&mut tls, BOUND).await,
        "idle connection still open"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_off() {
    let (emulator, _dir) = start(limits(50, Duration::from_millis(500), NEVER)).await;
    let tls = tls_connect(&emulator, emulator.https_port()).await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let dribble = tokio::spawn(async move {
        let head = b"GET /statistics/devices HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(
        closed_within(&mut reader, BOUND).await,
        "a slow request head keeps its connection"
    );
    dribble.abort();
    emulator.shutdown().await;
}

#[tokio::test]
async fn at_the_https_ceiling_silent_sockets_make_room_for_a_new_client() {
    let ceiling = 4;
    let (emulator, _dir) = start(limits(ceiling, NEVER, NEVER)).await;
    let mut silent = silent_sockets(emulator.https_port(), 12).await;
    // Handshakes never time out here: only the ceiling can make room.
    assert_eq!(rest_status(&emulator).await, 200);
    let closed = count_closed(&mut silent, Duration::from_secs(2)).await;
    assert!(
        closed >= silent.len() + 1 - ceiling,
        "only {closed} of {} silent sockets gave way under a ceiling of {ceiling}",
        silent.len()
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn at_the_mqtt_ceiling_silent_sockets_make_room_and_rest_is_unaffected() {
    let ceiling = 4;
    let (emulator, _dir) = start(limits(ceiling, NEVER, NEVER)).await;
    let mut silent = silent_sockets(emulator.mqtt_port(), 12).await;
    // A new MQTT client still gets its TLS handshake; REST on the other listener is served.
    let _mqtt = timeout(BOUND, tls_connect(&emulator, emulator.mqtt_port()))
        .await
        .expect("a new MQTT client completes TLS in time");
    assert_eq!(rest_status(&emulator).await, 200);
    let closed = count_closed(&mut silent, Duration::from_secs(2)).await;
    assert!(
        closed >= silent.len() + 1 - ceiling,
        "only {closed} of {} silent MQTT sockets gave way under a ceiling of {ceiling}",
        silent.len()
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_on_a_half_sent_request_or_idle_sockets() {
    let (emulator, _dir) = start(limits(50, NEVER, NEVER)).await;
    let mut half_open = tls_connect(&emulator, emulator.https_port()).await;
    // A whole request first, answered: hyper is serving this connection.
    half_open
        .write_all(b"GET /statistics/devices HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request sent");
    let mut buf = [0u8; 512];
    let n = timeout(BOUND, half_open.read(&mut buf))
        .await
        .expect("response in time")
        .expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 "), "{:?}", &buf[..n]);
    // Then a request whose body never finishes: in flight, so graceful shutdown would wait.
    half_open
        .write_all(
            b"PATCH /twins/d1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"tags\":",
        )
        .await
        .expect("half a request sent");
    half_open.flush().await.expect("flushed");
    let mut half_head = tls_connect(&emulator, emulator.https_port()).await;
    half_head
        .write_all(b"GET /statistics/devices HTTP/1.1\r\nHost: loc")
        .await
        .expect("half a request head sent");
    half_head.flush().await.expect("flushed");
    let _idle_tls = tls_connect(&emulator, emulator.https_port()).await;
    let _silent = silent_sockets(emulator.https_port(), 3).await;
    let started = tokio::time::Instant::now();
    timeout(Duration::from_secs(10), emulator.shutdown())
        .await
        .expect("shutdown does not wait on idle or half-open sockets");
    // The grace for in-flight requests is 1 s; allow for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(10));
}
