use std::time::{Duration, Instant};

use iothub_auth::{ServiceConnectionString, SharedAccessKey};
use iothub_emulator::test_support::{RefusedPort, TestHub};
use iothub_service::{ErrorKind, RetryPolicy, ServiceClient, ServiceError};

use crate::support::{fast_retries, ServiceHub};

#[tokio::test]
async fn unknown_device_is_not_found_with_code() {
    let hub = TestHub::start().await;
    let client = hub.client();
    let err = client.get_twin("nope").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.hub_code(), Some("DeviceNotFound"));
    assert!(
        err.to_string()
            .starts_with("get twin 'nope': hub answered 404"),
        "{err}"
    );
    let err = client.get_device("nope").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn wrong_key_is_unauthorized_and_never_printed() {
    let hub = TestHub::start().await;
    let key = SharedAccessKey::generate();
    let key_text = key.expose_base64().to_owned();
    let cs = ServiceConnectionString::new(
        hub.service_connection().host_name,
        "iothubowner".to_owned(),
        key,
    );
    let client = hub.client_for(cs);
    let err = client.registry_statistics().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert_eq!(err.hub_code(), Some("IotHubUnauthorizedAccess"));
    assert!(!err.to_string().contains(&key_text));
    assert!(!format!("{err:?}").contains(&key_text));
    assert!(!format!("{client:?}").contains(&key_text));
}

#[tokio::test]
async fn policy_without_rights_is_unauthorized() {
    let hub = TestHub::start().await;
    let cs = hub
        .emulator()
        .policy_connection_string("device")
        .expect("device policy");
    let client = hub.client_for(cs.parse().unwrap());
    let err = client.registry_statistics().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
}

#[tokio::test]
async fn malformed_query_is_bad_request_with_position() {
    let hub = TestHub::start().await;
    let client = hub.client();
    let mut pager = client.query("SELECT * FROM devices WHERE");
    let err = pager.next_page().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("query 'SELECT * FROM devices WHERE': hub answered 400"),
        "{msg}"
    );
    assert!(msg.contains("column"), "position missing: {msg}");
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error_not_retried() {
    let hub = TestHub::start().await;
    let client = ServiceClient::builder(hub.service_connection())
        .retry_policy(fast_retries())
        .build()
        .unwrap();
    let err = client.registry_statistics().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(matches!(err, ServiceError::Tls { .. }));
    assert_eq!(client.requests_sent(), 1);
}

#[tokio::test]
async fn closed_port_is_unreachable_in_bounded_time() {
    let hub = TestHub::start().await;
    let refused = RefusedPort::reserve();
    let port = refused.port();
    let client = ServiceClient::builder(hub.connection_on_port(port))
        .extra_ca_pem(hub.emulator().ca_pem())
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(5),
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(100),
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.registry_statistics().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
    assert_eq!(err.attempts(), 3, "connection refused is retried");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.to_string().contains(&format!("localhost:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn silent_server_times_out_in_bounded_time() {
    // Accepts TCP connections and never answers: the TLS handshake cannot complete, so
    // only the connect timeout ends each attempt, and timeouts are not retried.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let hub = TestHub::start().await;
    let client = ServiceClient::builder(hub.connection_on_port(port))
        .extra_ca_pem(hub.emulator().ca_pem())
        .connect_timeout(Duration::from_millis(300))
        // Far from the connect timeout, so the bound below shows which of the two ended it.
        .request_timeout(Duration::from_secs(60))
        .retry_policy(fast_retries())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.registry_statistics().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.attempts(), 1, "timeouts are not retried: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("no answer from"), "{err}");
}
