//! Issue 12's MQTT cases, end to end: revocation reaches live sessions (2), bounded offline
//! queues (7a), sessions die with their device (7b), `$rid` validation and a CONNACK for every
//! accepted CONNECT (8), CONNACK 1 for MQTT 3.1 (9c).

use iothub_auth::SharedAccessKey;
use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use rumqttc::{ConnectReturnCode, ConnectionError, Packet, QoS, Subscribe};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::mqtt::{Client, Device, MqttHub, RawClient, USERNAME_QUERY, WAIT};
use crate::support::rest::RestHub;

/// Waits until the server has closed `client`'s connection (an error other than a refusal).
async fn expect_closed_by_hub(client: &Client, what: &str) {
    match client.expect_error().await {
        ConnectionError::ConnectionRefused(code) => panic!("{what}: refused with {code:?}"),
        _closed => {}
    }
}

async fn refused_with(hub: &TestHub, client_id: &str, password: &str) -> ConnectReturnCode {
    let client = Client::start(hub.options(client_id, password));
    match client.expect_error().await {
        ConnectionError::ConnectionRefused(code) => code,
        other => panic!("expected a refused CONNACK, got {other}"),
    }
}

/// `PUT /devices/{id}` with `If-Match: *` as iothubowner.
async fn put_device(hub: &TestHub, id: &str, body: serde_json::Value) {
    let res = hub
        .send_with(
            Method::PUT,
            &format!("/devices/{id}"),
            &hub.service_token("iothubowner"),
            Some(&body),
            &[("if-match", "\"*\"")],
        )
        .await;
    assert_eq!(res.status(), 200, "PUT /devices/{id}");
}

#[tokio::test]
async fn case2_rotating_keys_closes_live_sessions_and_the_old_key_stops_working() {
    let hub = TestHub::start().await;
    let tls_device = hub.device("rot-tls").await;
    let ws_device = hub.device("rot-ws").await;
    let tls = hub.connect(&tls_device).await;
    let ws = Client::start(hub.ws_options(&ws_device.id, &hub.device_token(&ws_device)));
    ws.expect_connack().await;
    let old_tls_token = hub.device_token(&tls_device);

    for device in [&tls_device, &ws_device] {
        let primary = SharedAccessKey::generate();
        let secondary = SharedAccessKey::generate();
        put_device(
            &hub,
            &device.id,
            json!({"deviceId": device.id, "authentication": {"type": "sas", "symmetricKey": {
                "primaryKey": primary.expose_base64(), "secondaryKey": secondary.expose_base64()}}}),
        )
        .await;
    }
    expect_closed_by_hub(&tls, "TLS session after key rotation").await;
    expect_closed_by_hub(&ws, "WebSocket session after key rotation").await;

    assert_eq!(
        refused_with(&hub, "rot-tls", &old_tls_token).await,
        ConnectReturnCode::NotAuthorized,
        "a token signed with the old key is refused on MQTT"
    );
    let res = hub
        .send_with(Method::GET, "/devices/rot-tls", &old_tls_token, None, &[])
        .await;
    assert_eq!(res.status(), 401, "and on REST");
}

#[tokio::test]
async fn case2_disabling_a_device_closes_its_live_sessions() {
    let hub = TestHub::start().await;
    let device = hub.device("off").await;
    let tls = hub.connect(&device).await;
    put_device(
        &hub,
        "off",
        json!({"deviceId": "off", "status": "disabled"}),
    )
    .await;
    expect_closed_by_hub(&tls, "session after disable").await;
    assert_eq!(
        refused_with(&hub, "off", &hub.device_token(&device)).await,
        ConnectReturnCode::NotAuthorized
    );

    let ws_device = hub.device("off-ws").await;
    let ws = Client::start(hub.ws_options("off-ws", &hub.device_token(&ws_device)));
    ws.expect_connack().await;
    put_device(
        &hub,
        "off-ws",
        json!({"deviceId": "off-ws", "status": "disabled"}),
    )
    .await;
    expect_closed_by_hub(&ws, "WebSocket session after disable").await;
}

#[tokio::test]
async fn case2_an_unrelated_update_keeps_the_session() {
    let hub = TestHub::start().await;
    let device = hub.device("keep").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;
    let identity = hub.device_identity("keep").await;
    put_device(
        &hub,
        "keep",
        json!({"deviceId": "keep", "status": "enabled", "statusReason": "still fine",
            "authentication": identity["authentication"]}),
    )
    .await;
    let (status, _) = client.get_twin("still-here").await;
    assert_eq!(status, 200);
}

/// A persistent session subscribed to desired patches, then disconnected.
async fn offline_subscriber(hub: &TestHub, device: &Device) {
    let client = hub.connect(device).await;
    client.subscribe_twin().await;
    client.client.disconnect().await.expect("disconnect");
    client.expect_error().await;
}

#[tokio::test]
async fn case7a_an_offline_queue_over_its_byte_cap_is_dropped_and_not_resumed() {
    let hub = TestHub::start().await;
    let small = hub.device("q-small").await;
    let big = hub.device("q-big").await;
    offline_subscriber(&hub, &small).await;
    offline_subscriber(&hub, &big).await;

    // About 28 KB per patch (string values are limited to 4 KB each).
    let chunk = "x".repeat(4000);
    let blob: serde_json::Map<String, serde_json::Value> =
        (0..7).map(|k| (format!("k{k}"), json!(chunk))).collect();
    for n in 0..3 {
        hub.patch_desired("q-small", json!({"n": n})).await;
    }
    // 12 × 28 KB is beyond the 256 KiB a session may queue.
    for n in 0..12 {
        hub.patch_desired("q-big", json!({"blob": blob, "n": n}))
            .await;
    }

    let again = Client::start(hub.options("q-small", &hub.device_token(&small)));
    assert!(again.expect_connack().await, "a small queue is resumed");
    for n in 0..3 {
        let push = again
            .expect_publish("$iothub/twin/PATCH/properties/desired/")
            .await;
        let body: serde_json::Value = serde_json::from_slice(&push.payload).expect("JSON");
        assert_eq!(body["n"], n);
    }

    let again = Client::start(hub.options("q-big", &hub.device_token(&big)));
    assert!(
        !again.expect_connack().await,
        "an overflowed session is not resumed: session_present = 0 tells the device to re-read"
    );
    again.subscribe_twin().await;
    let (status, twin) = again.get_twin("reread").await;
    assert_eq!(status, 200);
    assert_eq!(twin["desired"]["n"], 11);
}

#[tokio::test]
async fn case7b_a_deleted_and_recreated_device_starts_without_the_old_session() {
    let hub = TestHub::start().await;
    let old = hub.device("phoenix").await;
    offline_subscriber(&hub, &old).await;
    hub.patch_desired("phoenix", json!({"secret": "old device's"}))
        .await;
    hub.delete_device("phoenix").await;

    let new = hub.device("phoenix").await;
    let client = Client::start(hub.options("phoenix", &hub.device_token(&new)));
    assert!(
        !client.expect_connack().await,
        "session_present = 0 for the new device"
    );
    client.subscribe_twin().await;
    // A replayed patch would arrive before the answer to this GET.
    client
        .client
        .publish("$iothub/twin/GET/?$rid=1", QoS::AtLeastOnce, false, " ")
        .await
        .expect("publish GET");
    let first = client.expect_publish("$iothub/").await;
    assert!(
        first.topic.starts_with("$iothub/twin/res/200/"),
        "no old patch before the GET response: {}",
        first.topic
    );
}

/// Sends `publish` on a raw, subscribed connection and returns what the hub sent back before
/// closing (`None`: it closed without answering).
async fn raw_twin_get(hub: &TestHub, device: &Device, topic: String) -> Option<Packet> {
    let mut raw = RawClient::connect(hub).await;
    let ack = raw.handshake(hub, device, 60).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    raw.send(Packet::Subscribe(Subscribe::new(
        "$iothub/twin/res/#",
        QoS::AtMostOnce,
    )))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let mut publish = rumqttc::Publish::new(topic, QoS::AtMostOnce, " ");
    publish.pkid = 0;
    raw.send(Packet::Publish(publish)).await;
    tokio::time::timeout(WAIT, raw.recv())
        .await
        .expect("an answer or a close")
}

#[tokio::test]
async fn case8_a_rid_that_cannot_be_echoed_is_refused_like_an_undocumented_topic() {
    let hub = TestHub::start().await;
    let device = hub.device("rid").await;
    let long = "9".repeat(65_510);
    for rid in ["a#b", "a+b", "a/b", "a\0b", long.as_str()] {
        let answer = raw_twin_get(&hub, &device, format!("$iothub/twin/GET/?$rid={rid}")).await;
        assert!(
            answer.is_none(),
            "a $rid of {} bytes is refused by closing the connection, got {answer:?}",
            rid.len()
        );
    }
    let fine = "f".repeat(128);
    match raw_twin_get(&hub, &device, format!("$iothub/twin/GET/?$rid={fine}")).await {
        Some(Packet::Publish(response)) => {
            assert_eq!(response.topic, format!("$iothub/twin/res/200/?$rid={fine}"));
        }
        other => panic!("a 128-byte $rid is answered, got {other:?}"),
    }
}

// Several worker threads, so that a takeover can run while the connection it replaces is
// between its registration and its CONNACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn case8_every_concurrent_connect_for_one_client_id_gets_a_connack() {
    let hub = TestHub::start().await;
    let device = hub.device("herd").await;
    let hub = std::sync::Arc::new(hub);
    let device = std::sync::Arc::new(device);
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let hub = hub.clone();
            let device = device.clone();
            tokio::spawn(async move {
                let mut raw = RawClient::connect(&hub).await;
                let mut connect = rumqttc::Connect::new(device.id.clone());
                connect.clean_session = false;
                connect.keep_alive = 60;
                let username = format!(
                    "{}/{}/{USERNAME_QUERY}",
                    hub.emulator().hostname(),
                    device.id
                );
                connect.set_login(username, hub.device_token(&device));
                raw.send(Packet::Connect(connect)).await;
                tokio::time::timeout(WAIT * 3, raw.recv())
                    .await
                    .expect("an answer within the wait time")
            })
        })
        .collect();
    let mut missing = 0;
    for task in tasks {
        match task.await.expect("client task") {
            Some(Packet::ConnAck(ack)) => assert_eq!(ack.code, ConnectReturnCode::Success),
            _ => missing += 1,
        }
    }
    assert_eq!(missing, 0, "accepted sockets closed without a CONNACK");
}

/// A TLS connection to the MQTT port that writes `bytes` and returns everything read until the
/// hub closes it.
async fn raw_exchange(hub: &TestHub, bytes: &[u8]) -> Vec<u8> {
    let mut stream = RawClient::connect(hub).await.into_stream();
    stream.write_all(bytes).await.expect("write");
    stream.flush().await.expect("flush");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the hub closes the connection");
    answer
}

/// A CONNECT packet with the given protocol name and level, client id `d`, no credentials.
fn connect_bytes(name: &str, level: u8) -> Vec<u8> {
    let mut variable = Vec::new();
    variable.extend_from_slice(&u16::try_from(name.len()).expect("short").to_be_bytes());
    variable.extend_from_slice(name.as_bytes());
    variable.push(level);
    variable.push(0b0000_0010); // clean session
    variable.extend_from_slice(&60u16.to_be_bytes());
    variable.extend_from_slice(&1u16.to_be_bytes());
    variable.push(b'd');
    let mut packet = vec![0x10, u8::try_from(variable.len()).expect("short")];
    packet.extend(variable);
    packet
}

#[tokio::test]
async fn case9c_mqtt_3_1_gets_connack_1_like_mqtt_5() {
    let hub = TestHub::start().await;
    const CONNACK_1: [u8; 4] = [0x20, 0x02, 0x00, 0x01];
    for (name, level) in [("MQIsdp", 3), ("MQTT", 3), ("MQTT", 5)] {
        assert_eq!(
            raw_exchange(&hub, &connect_bytes(name, level)).await,
            CONNACK_1,
            "{name} level {level}"
        );
    }
}
