//! Device twin over MQTT with a plain rumqttc client: GET / reported PATCH with `$version`,
//! 400s with the hub's JSON error body, injected 429 / 503, desired-property pushes after a
//! service PATCH (live and after a reconnect), and IoT Hub's topic and QoS rules for MQTT
//! devices (QoS 0 and 1 only, documented topics only; see
//! <https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>).

use iothub_emulator::test_support::TestHub;
use rumqttc::{Packet, QoS, SubscribeReasonCode};
use serde_json::{json, Value};

use crate::support::mqtt::{Client, MqttHub, RawClient};

#[tokio::test]
async fn get_and_patch_round_trips_carry_versions() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;

    let (status, twin) = client.get_twin("1").await;
    assert_eq!(status, 200);
    let reported_before = twin["reported"]["$version"]
        .as_u64()
        .expect("reported $version");
    assert!(twin["desired"]["$version"].is_u64(), "{twin}");
    assert!(twin.get("tags").is_none(), "device GET has no tags");

    let (status, version, body) = client
        .patch_reported("2", r#"{"firmware":"v1.1","battery":55}"#)
        .await;
    assert_eq!(status, 204);
    assert!(body.is_empty());
    assert_eq!(version, Some(reported_before + 1));

    let (status, version, _) = client
        .patch_reported("3", r#"{"battery":null,"nested":{"a":1}}"#)
        .await;
    assert_eq!(status, 204);
    assert_eq!(version, Some(reported_before + 2));

    let (_, twin) = client.get_twin("4").await;
    assert_eq!(twin["reported"]["firmware"], "v1.1");
    assert!(twin["reported"].get("battery").is_none(), "null deletes");
    assert_eq!(twin["reported"]["nested"]["a"], 1);
    assert_eq!(twin["reported"]["$version"], reported_before + 2);

    // The service sees the same reported properties.
    let service_view = hub.twin("d1").await;
    assert_eq!(service_view["properties"]["reported"]["firmware"], "v1.1");
}

#[tokio::test]
async fn invalid_patches_get_400_with_the_json_error_body() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;

    let (status, version, body) = client.patch_reported("bad-json", "{not json").await;
    assert_eq!((status, version), (400, None));
    let body: Value = serde_json::from_slice(&body).expect("error body is JSON");
    assert_eq!(body["errorCode"], 400004);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body["trackingId"].is_string() && body["timestampUtc"].is_string());

    let mut deep = json!(1);
    for _ in 0..11 {
        deep = json!({ "x": deep });
    }
    let (status, _, body) = client.patch_reported("too-deep", &deep.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("JSON")["errorCode"],
        400004
    );

    let (status, _, _) = client.patch_reported("bad-name", r#"{"a.b":1}"#).await;
    assert_eq!(status, 400);

    // Nothing was applied.
    let (_, twin) = client.get_twin("check").await;
    assert!(twin["reported"].get("x").is_none());
}

#[tokio::test]
async fn injected_twin_failures_answer_429_and_503() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;

    hub.emulator().faults().fail_next_twin_operations(1, 429);
    let (status, body) = client.get_twin("throttled").await;
    assert_eq!(status, 429);
    assert_eq!(body["errorCode"], 429001);

    hub.emulator().faults().fail_next_twin_operations(1, 503);
    let (status, _, _) = client.patch_reported("unavailable", r#"{"a":1}"#).await;
    assert_eq!(status, 503);

    let (status, twin) = client.get_twin("ok-again").await;
    assert_eq!(status, 200);
    assert!(
        twin["reported"].get("a").is_none(),
        "the failed PATCH was not applied"
    );
}

#[tokio::test]
async fn desired_changes_are_pushed_to_subscribed_sessions() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;
    let (_, twin) = client.get_twin("before").await;
    let desired_before = twin["desired"]["$version"]
        .as_u64()
        .expect("desired $version");

    hub.patch_desired("d1", json!({"telemetrySendFrequency": "5m", "route": null}))
        .await;
    let push = client
        .expect_publish("$iothub/twin/PATCH/properties/desired/")
        .await;
    let expected_version = desired_before + 1;
    assert_eq!(
        push.topic,
        format!("$iothub/twin/PATCH/properties/desired/?$version={expected_version}")
    );
    let body: Value = serde_json::from_slice(&push.payload).expect("JSON patch");
    assert_eq!(body["telemetrySendFrequency"], "5m");
    assert_eq!(body["$version"], expected_version);
}

#[tokio::test]
async fn desired_changes_made_while_offline_arrive_after_reconnect() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;
    client.client.disconnect().await.expect("disconnect");
    client.expect_error().await;

    hub.patch_desired("d1", json!({"mode": "eco"})).await;
    hub.patch_desired("d1", json!({"mode": "boost"})).await;

    let again = Client::start(hub.options("d1", &hub.device_token(&device)));
    assert!(
        again.expect_connack().await,
        "clean session 0 reports session_present"
    );
    let first = again
        .expect_publish("$iothub/twin/PATCH/properties/desired/")
        .await;
    let second = again
        .expect_publish("$iothub/twin/PATCH/properties/desired/")
        .await;
    let first: Value = serde_json::from_slice(&first.payload).expect("JSON");
    let second: Value = serde_json::from_slice(&second.payload).expect("JSON");
    assert_eq!(first["mode"], "eco");
    assert_eq!(second["mode"], "boost");
    assert_eq!(
        second["$version"].as_u64(),
        first["$version"].as_u64().map(|v| v + 1)
    );

    // The subscriptions came back too: a GET is answered without resubscribing.
    let (status, twin) = again.get_twin("after").await;
    assert_eq!(status, 200);
    assert_eq!(twin["desired"]["mode"], "boost");
}

#[tokio::test]
async fn clean_session_1_starts_without_the_old_session() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;
    client.client.disconnect().await.expect("disconnect");
    client.expect_error().await;

    let mut options = hub.options("d1", &hub.device_token(&device));
    options.set_clean_session(true);
    let clean = Client::start(options);
    assert!(
        !clean.expect_connack().await,
        "clean session 1: no session present"
    );
}

#[tokio::test]
async fn telemetry_is_acknowledged_and_qos2_subscriptions_are_granted_qos1() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let mut raw = RawClient::connect(&hub).await;
    raw.handshake(&hub, &device, 60).await;

    let mut subscribe = rumqttc::Subscribe::new("$iothub/twin/res/#", QoS::ExactlyOnce);
    subscribe.add("devices/d1/messages/devicebound/#".into(), QoS::AtLeastOnce);
    subscribe.pkid = 1;
    raw.send(Packet::Subscribe(subscribe)).await;
    match raw.recv().await {
        Some(Packet::SubAck(ack)) => assert_eq!(
            ack.return_codes,
            vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Success(QoS::AtLeastOnce)
            ]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }

    let mut telemetry = rumqttc::Publish::new(
        "devices/d1/messages/events/%24.ct=application%2Fjson",
        QoS::AtLeastOnce,
        "{\"t\":21}",
    );
    telemetry.pkid = 2;
    raw.send(Packet::Publish(telemetry)).await;
    assert_eq!(
        raw.recv().await,
        Some(Packet::PubAck(rumqttc::PubAck::new(2)))
    );
}

async fn closes_after(hub: &TestHub, packet: Packet) {
    let device = hub.device(&format!("dev-{}", uuid_like())).await;
    let mut raw = RawClient::connect(hub).await;
    let ack = raw.handshake(hub, &device, 60).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    let packet = match packet {
        Packet::Publish(mut p) => {
            p.topic = p.topic.replace("{me}", &device.id);
            Packet::Publish(p)
        }
        other => other,
    };
    raw.send(packet).await;
    raw.expect_closed().await;
}

fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn qos2_publishes_unknown_topics_and_foreign_topics_close_the_connection() {
    let hub = TestHub::start().await;
    let mut qos2 = rumqttc::Publish::new("devices/{me}/messages/events/", QoS::ExactlyOnce, "x");
    qos2.pkid = 1;
    closes_after(&hub, Packet::Publish(qos2)).await;

    closes_after(
        &hub,
        Packet::Publish(rumqttc::Publish::new(
            "some/other/topic",
            QoS::AtMostOnce,
            "x",
        )),
    )
    .await;

    closes_after(
        &hub,
        Packet::Publish(rumqttc::Publish::new(
            "devices/someone-else/messages/events/",
            QoS::AtMostOnce,
            "x",
        )),
    )
    .await;

    let mut wildcard = rumqttc::Subscribe::new("#", QoS::AtMostOnce);
    wildcard.pkid = 3;
    closes_after(&hub, Packet::Subscribe(wildcard)).await;
}
