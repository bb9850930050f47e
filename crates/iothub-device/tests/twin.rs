//! The twin through the client: reported patches read back over REST (TLS and WebSockets),
//! large twins, patches refused locally, throttling, the gateway address.

use std::time::Duration;

use iothub_device::{DeviceClient, Error};
use iothub_emulator::test_support::TestHub;
use serde_json::json;

use crate::support::{key_of, DeviceHub};

#[tokio::test(flavor = "multi_thread")]
async fn reports_and_reads_back_through_the_service_api() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-report").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");

    let before = client.get_twin().await.expect("get twin");
    let base = before.reported_version().expect("reported $version");
    let patch = json!({"connectivity": {"type": "cellular"}});
    let version = client.update_reported(&patch).await.expect("patch");
    assert!(version > base, "new version {version} after {base}");

    let twin = hub.twin("dev-report").await;
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        "cellular"
    );
    assert_eq!(twin["properties"]["reported"]["$version"], version);

    let after = client.get_twin().await.expect("get twin");
    assert_eq!(after.reported["connectivity"]["type"], "cellular");
    assert_eq!(after.reported_version(), Some(version));
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_transport_reports_too() {
    let hub = TestHub::start().await;
    hub.add_device("dev-ws").await;
    let client = DeviceClient::connect(hub.device_connection_ws("dev-ws"), hub.ws_options())
        .await
        .expect("connect over wss");
    let version = client
        .update_reported(&json!({"connectivity": {"type": "wifi"}}))
        .await
        .expect("patch");
    let twin = hub.twin("dev-ws").await;
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        "wifi"
    );
    assert_eq!(twin["properties"]["reported"]["$version"], version);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn twins_larger_than_rumqttcs_default_packet_limit_round_trip() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-large").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    // ~28 KB of reported properties: within the hub's 32 KB section limit, far above the
    // 10 KiB rumqttc allows by default in each direction.
    let value = "x".repeat(4000);
    let patch: serde_json::Map<String, serde_json::Value> =
        (0..7).map(|i| (format!("blob{i}"), json!(value))).collect();
    let version = client
        .update_reported(&serde_json::Value::Object(patch))
        .await
        .expect("large patch");
    let twin = client.get_twin().await.expect("large twin GET");
    assert_eq!(twin.reported_version(), Some(version));
    assert_eq!(twin.reported["blob6"].as_str().map(str::len), Some(4000));
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn impossible_patches_are_refused_locally_and_the_connection_survives() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-huge").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    let huge = json!({ "blob": "x".repeat(40 * 1024) });
    let err = client.update_reported(&huge).await.expect_err("over 32 KB");
    assert!(matches!(err, Error::InvalidPatch(_)), "{err}");
    let err = client
        .update_reported(&json!([1, 2]))
        .await
        .expect_err("not an object");
    assert!(matches!(err, Error::InvalidPatch(_)), "{err}");
    client
        .update_reported(&json!({"still": "fine"}))
        .await
        .expect("connection unaffected");
    let quiet = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
    assert!(quiet.is_err(), "no connection event expected: {quiet:?}");
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_twin_operations_are_retried() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-throttle").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    client.get_twin().await.expect("get twin");
    hub.emulator().faults().fail_next_twin_operations(2, 429);
    let version = client
        .update_reported(&json!({"after": "throttling"}))
        .await
        .expect("retried until accepted");
    let twin = hub.twin("dev-throttle").await;
    assert_eq!(twin["properties"]["reported"]["$version"], version);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_host_name_is_dialled_while_host_name_stays_the_identity() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-gw").await;
    // Identity `localhost` (the hub's name), TCP/TLS to 127.0.0.1 (a SAN of the emulator's cert).
    let text = format!(
        "HostName={};DeviceId=dev-gw;GatewayHostName=127.0.0.1:{};SharedAccessKey={}",
        conn.host(),
        hub.emulator().mqtt_port(),
        key_of(&conn).expose_base64()
    );
    let client = DeviceClient::connect(text.parse().expect("gateway string"), hub.options())
        .await
        .expect("connect through the gateway address");
    assert!(
        client.endpoint().starts_with("127.0.0.1:"),
        "{}",
        client.endpoint()
    );
    client
        .update_reported(&json!({"via": "gateway"}))
        .await
        .expect("patch");
    assert_eq!(
        hub.twin("dev-gw").await["properties"]["reported"]["via"],
        "gateway"
    );
    client.disconnect().await;
}
