use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use iothub_emulator::test_support::TestHub;
use iothub_service::{ErrorKind, IfMatch, RetryPolicy, ServiceClient, TwinPatch};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::support::ServiceHub;

#[tokio::test]
async fn twin_patch_survives_two_429s() {
    let hub = TestHub::start().await;
    hub.add_devices(["myDeviceId".to_owned()]).await;
    let client = hub.client();
    hub.emulator().faults().fail_next_twin_operations(2, 429);
    let before = client.requests_sent();
    let patch = TwinPatch::from_json(Some(json!({"a": 1})), None).unwrap();
    let twin = client
        .update_twin("myDeviceId", &patch, &IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(twin.pointer("tags.a"), Some(json!(1)));
    assert_eq!(
        client.requests_sent() - before,
        3,
        "two throttled attempts + one success"
    );
}

#[tokio::test]
async fn twin_get_survives_503() {
    let hub = TestHub::start().await;
    hub.add_devices(["d".to_owned()]).await;
    let client = hub.client();
    hub.emulator().faults().fail_next_twin_operations(1, 503);
    client.get_twin("d").await.unwrap();
    assert_eq!(client.requests_sent(), 2);
}

#[tokio::test]
async fn throttling_beyond_the_budget_fails_with_attempt_count() {
    let hub = TestHub::start().await;
    hub.add_devices(["d".to_owned()]).await;
    let client = ServiceClient::builder(hub.service_connection())
        .extra_ca_pem(hub.emulator().ca_pem())
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(10),
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        })
        .build()
        .unwrap();
    hub.emulator().faults().fail_next_twin_operations(10, 429);
    let err = client.get_twin("d").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
    assert_eq!(err.attempts(), 3);
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

/// A TCP forwarder to `target` that closes the first `drop_first` connections at once.
async fn flaky_forwarder(target: u16, drop_first: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut downstream, _)) = listener.accept().await {
            if counter.fetch_add(1, Ordering::SeqCst) < drop_first {
                drop(downstream);
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target)).await {
                    let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let hub = TestHub::start().await;
    hub.add_devices(["d".to_owned()]).await;
    let (port, accepted) = flaky_forwarder(hub.emulator().https_port(), 2).await;
    let client = hub.client_for(hub.connection_on_port(port));
    let stats = client.registry_statistics().await.unwrap();
    assert_eq!(stats.total_device_count, 1);
    assert!(accepted.load(Ordering::SeqCst) >= 3);
    assert_eq!(client.requests_sent(), 3);
}
