//! Dropped and refused connections: the client reconnects and no acknowledged patch is lost.

use std::time::{Duration, Instant};

use iothub_device::{ConnectionEvent, DeviceClient, DisconnectReason};
use iothub_emulator::test_support::TestHub;
use serde_json::json;

use crate::support::{wait_for, DeviceHub};

#[tokio::test(flavor = "multi_thread")]
async fn patches_sent_while_the_connection_drops_are_all_acknowledged() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-drops").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    let faults = hub.emulator().faults();

    // 100 patches, one every 15 ms, each awaited in its own task. The sleeps pace the traffic so
    // the drops below land in the middle of it; nothing waits on them.
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for i in 0..100u32 {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let key = format!("p{i}");
                    client.update_reported(&json!({ key: i })).await
                }));
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            tasks
        })
    };

    // Meanwhile drop the connection five times, each time once the client is back.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        faults.drop_device_connection("dev-drops");
        wait_for(&mut events, |e| {
            matches!(
                e,
                ConnectionEvent::Disconnected {
                    reason: DisconnectReason::ConnectionLost(_)
                }
            )
        })
        .await;
        wait_for(&mut events, |e| {
            matches!(e, ConnectionEvent::Connected { .. })
        })
        .await;
    }

    let mut acknowledged = 0;
    for task in sender.await.expect("sender") {
        task.await.expect("task").expect("every patch acknowledged");
        acknowledged += 1;
    }
    assert_eq!(acknowledged, 100);

    let twin = hub.twin("dev-drops").await;
    let reported = &twin["properties"]["reported"];
    for i in 0..100u32 {
        assert_eq!(
            reported[format!("p{i}")],
            i,
            "patch {i} missing: {reported}"
        );
    }
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_retries_while_the_hub_refuses_connections() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-refused").await;
    // The clock starts before the refusal does, so the bound below cannot be a hair short.
    let started = Instant::now();
    hub.emulator()
        .faults()
        .refuse_connections_for(Duration::from_millis(1500));
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connects once the hub accepts again");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    client.get_twin().await.expect("usable");
    client.disconnect().await;
}
