//! Terminal failures: rejected or revoked credentials, an unreachable hub, an untrusted
//! certificate; each ends at once with its own error, without a retry loop.

use std::time::{Duration, Instant};

use iothub_device::{ClientOptions, ConnectionEvent, DeviceClient, Error};
use iothub_emulator::test_support::{install_crypto_provider, RefusedPort, TestHub};

use crate::support::{with_wrong_key, DeviceHub};

#[tokio::test(flavor = "multi_thread")]
async fn rejected_credentials_fail_at_once() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-badkey").await;
    // A client that retried a refusal would only give up at the connect timeout.
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(60),
        ..hub.options()
    };
    let started = Instant::now();
    let err = DeviceClient::connect(with_wrong_key(&conn), options)
        .await
        .expect_err("wrong key must fail");
    assert!(matches!(err, Error::AuthenticationRejected(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_hub_times_out_with_the_last_error() {
    install_crypto_provider();
    let refused = RefusedPort::reserve();
    let conn = iothub_device::DeviceConnectionString::with_key(
        format!("localhost:{}", refused.port()),
        "dev",
        iothub_auth::SharedAccessKey::generate(),
    );
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    let started = Instant::now();
    let err = DeviceClient::connect(conn, options)
        .await
        .expect_err("nothing listens");
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    assert!(
        err.to_string().contains("refused") || err.to_string().contains("I/O"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificates_are_not_accepted() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-untrusted").await;
    // Another emulator's CA: a valid CA that did not sign this hub's certificate (and the test
    // does not depend on what the machine's system store holds).
    let other = TestHub::start().await;
    let options = ClientOptions {
        ca_pem: Some(other.emulator().ca_pem().as_bytes().to_vec()),
        connect_timeout: Duration::from_secs(60),
        ..hub.options()
    };
    let started = std::time::Instant::now();
    let err = DeviceClient::connect(conn, options)
        .await
        .expect_err("wrong CA, no trust");
    // Terminal at once: retrying cannot make the certificate trusted.
    assert!(matches!(err, Error::UntrustedCertificate(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_revoked_while_connected_stop_the_client_without_a_retry_loop() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-revoked").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    hub.delete_device("dev-revoked").await;
    hub.emulator()
        .faults()
        .drop_device_connection("dev-revoked");

    let mut attempts = 0;
    let error = loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("closed in time")
            .expect("stream ends only after Closed");
        match event {
            ConnectionEvent::Reconnecting { .. } => attempts += 1,
            ConnectionEvent::Closed { error } => break error,
            _ => {}
        }
    };
    assert!(attempts <= 1, "{attempts} reconnect attempts");
    assert!(
        matches!(error, Some(Error::AuthenticationRejected(_))),
        "{error:?}"
    );
    let later = client.get_twin().await.expect_err("client is closed");
    assert!(matches!(later, Error::AuthenticationRejected(_)), "{later}");
    assert!(events.next().await.is_none(), "stream ends after Closed");
}
