//! Desired-property updates: pushed while connected, and caught up after being offline.

use std::time::{Duration, Instant};

use iothub_device::{ConnectionEvent, DesiredUpdateKind, DeviceClient};
use iothub_emulator::test_support::TestHub;
use serde_json::json;

use crate::support::{DeviceHub, PROMPTLY};

#[tokio::test(flavor = "multi_thread")]
async fn desired_patches_arrive_promptly() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-desired").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut updates = client.desired_updates();
    // Make sure the subscription is live before the service writes.
    client.get_twin().await.expect("get twin");

    let sent = Instant::now();
    hub.patch_desired("dev-desired", json!({"telemetryInterval": 5}))
        .await;
    let update = tokio::time::timeout(PROMPTLY, updates.next())
        .await
        .expect("desired patch arrives promptly")
        .expect("stream open");
    assert!(sent.elapsed() < PROMPTLY, "took {:?}", sent.elapsed());
    assert_eq!(update.kind, DesiredUpdateKind::Patch);
    assert_eq!(update.properties["telemetryInterval"], 5);
    assert!(update.version >= 2);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn desired_changes_made_while_offline_surface_after_reconnect() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-offline").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut updates = client.desired_updates();
    let mut events = client.connection_events();
    client.get_twin().await.expect("get twin");

    let faults = hub.emulator().faults();
    faults.refuse_connections_for(Duration::from_secs(2));
    faults.drop_device_connection("dev-offline");
    // Wait until the device noticed, then change desired while it cannot connect.
    loop {
        let event = tokio::time::timeout(PROMPTLY, events.next())
            .await
            .expect("disconnect noticed")
            .expect("stream open");
        if matches!(event, ConnectionEvent::Disconnected { .. }) {
            break;
        }
    }
    hub.patch_desired("dev-offline", json!({"mode": "eco"}))
        .await;

    let update = tokio::time::timeout(Duration::from_secs(15), updates.next())
        .await
        .expect("update after reconnect")
        .expect("stream open");
    // IoT Hub keeps no notifications for offline devices, so normally the resync GET finds the
    // change (kind Full). The emulator queues them in the clean-session-0 session instead, so
    // the notification may win the race (kind Patch). Either way it is delivered exactly once.
    assert_eq!(update.properties["mode"], "eco", "{update:?}");
    assert_eq!(update.properties["$version"], update.version);
    let again = tokio::time::timeout(Duration::from_secs(1), updates.next()).await;
    assert!(again.is_err(), "delivered twice: {again:?}");
    client.disconnect().await;
}
