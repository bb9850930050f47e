//! Cloud-to-device messages end to end: sent over REST as IoT Explorer sends them, received by a
//! raw MQTT device (exact topic bytes, QoS, DUP), completed by PUBACK, redelivered after a
//! reconnect, bounded, expired, purged, dropped with the device, durable across restarts, and
//! their feedback received and settled over REST.

use std::time::Duration;

use iothub_emulator::test_support::TestHub;
use reqwest::{Method, StatusCode};
use rumqttc::mqttbytes::v4::{PubAck, Subscribe};
use rumqttc::{Packet, Publish, QoS};
use serde_json::{json, Value};

use crate::support::mqtt::{Device, MqttHub, RawClient, WAIT};
use crate::support::rest::{assert_error, RestHub};

/// A raw device connection (clean session 0), subscribed to its cloud-to-device topic unless
/// the hub resumed its session.
async fn connect(hub: &TestHub, device: &Device) -> RawClient {
    let mut raw = RawClient::connect(hub).await;
    let ack = raw.handshake(hub, device, 60).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    if !ack.session_present {
        let mut subscribe = Subscribe::new(
            format!("devices/{}/messages/devicebound/#", device.id),
            QoS::AtLeastOnce,
        );
        subscribe.pkid = 1;
        raw.send(Packet::Subscribe(subscribe)).await;
        match next(&mut raw).await {
            Packet::SubAck(ack) => assert_eq!(ack.pkid, 1),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
    raw
}

async fn next(raw: &mut RawClient) -> Packet {
    tokio::time::timeout(WAIT, raw.recv())
        .await
        .expect("a packet within the wait time")
        .expect("the hub keeps the connection open")
}

async fn expect_c2d(raw: &mut RawClient) -> Publish {
    match next(raw).await {
        Packet::Publish(publish) => publish,
        other => panic!("expected a cloud-to-device PUBLISH, got {other:?}"),
    }
}

/// PINGREQ, then everything the hub sent before its PINGRESP. The hub handles a connection's
/// packets in order, so a PUBACK sent before is settled once this returns, and anything it had
/// to deliver at that point has arrived.
async fn sync(raw: &mut RawClient) -> Vec<Packet> {
    raw.send(Packet::PingReq).await;
    let mut before = Vec::new();
    loop {
        match next(raw).await {
            Packet::PingResp => return before,
            other => before.push(other),
        }
    }
}

async fn puback(raw: &mut RawClient, publish: &Publish) {
    raw.send(Packet::PubAck(PubAck::new(publish.pkid))).await;
}

async fn send(hub: &TestHub, id: &str, body: &str, headers: &[(&str, &str)]) {
    let (status, text) = hub.send_c2d(id, body, headers).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "send to {id}: {text}");
    assert!(text.is_empty(), "204 has no body: {text}");
}

/// `GET /messages/serviceBound/feedback`: `None` for 204, else the lock token and the records.
async fn receive_feedback(hub: &TestHub) -> Option<(String, Vec<Value>)> {
    let res = hub
        .send(
            Method::GET,
            "/messages/serviceBound/feedback",
            "service",
            None,
        )
        .await;
    if res.status() == StatusCode::NO_CONTENT {
        return None;
    }
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.microsoft.iothub.feedback.json"
    );
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let lock = etag
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .expect("quoted ETag")
        .to_string();
    let records: Value = res.json().await.unwrap();
    Some((lock, records.as_array().unwrap().clone()))
}

async fn settle_feedback(hub: &TestHub, lock: &str, abandon: bool) -> reqwest::Response {
    let (method, path) = if abandon {
        (
            Method::POST,
            format!("/messages/serviceBound/feedback/{lock}/abandon"),
        )
    } else {
        (
            Method::DELETE,
            format!("/messages/serviceBound/feedback/{lock}"),
        )
    };
    hub.send(method, &path, "service", None).await
}

fn statuses(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            assert_eq!(r["statusCode"], r["description"], "same word in both: {r}");
            (
                r["originalMessageId"].as_str().unwrap().to_string(),
                r["statusCode"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn message_count(hub: &TestHub, id: &str) -> u64 {
    hub.device_identity(id).await["cloudToDeviceMessageCount"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_message_reaches_the_subscribed_device_at_once_with_the_hubs_property_bag() {
    let hub = TestHub::start().await;
    let device = hub.device("c2d-dev").await;
    let mut raw = connect(&hub, &device).await;

    send(
        &hub,
        "c2d-dev",
        "{\"led\":\"on\"}",
        &[
            ("iothub-messageid", "msg 1"),
            ("iothub-correlationid", "corr/1"),
            ("iothub-ack", "full"),
            ("iothub-app-temperature", "high alert"),
            ("iothub-app-x", "a&b=c"),
            ("content-type", "application/json"),
            ("content-encoding", "utf-8"),
        ],
    )
    .await;
    let publish = expect_c2d(&mut raw).await;
    assert_eq!(
        publish.topic,
        "devices/c2d-dev/messages/devicebound/%24.mid=msg%201&%24.to=%2Fdevices%2Fc2d-dev%2Fmessages%2FdeviceBound&%24.cid=corr%2F1&%24.ct=application%2Fjson&%24.ce=utf-8&iothub-ack=full&temperature=high%20alert&x=a%26b%3Dc"
    );
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    assert!(!publish.dup);
    assert_eq!(&publish.payload[..], b"{\"led\":\"on\"}");
    assert_eq!(message_count(&hub, "c2d-dev").await, 1);

    assert!(
        receive_feedback(&hub).await.is_none(),
        "nothing before the PUBACK"
    );
    puback(&mut raw, &publish).await;
    assert!(sync(&mut raw).await.is_empty());
    assert_eq!(message_count(&hub, "c2d-dev").await, 0);

    let (lock, records) = receive_feedback(&hub).await.expect("positive feedback");
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(statuses(&records), [("msg 1".into(), "Success".into())]);
    assert_eq!(record["deviceId"], "c2d-dev");
    assert_eq!(
        record["deviceGenerationId"],
        hub.device_identity("c2d-dev").await["generationId"]
    );
    let enqueued = record["enqueuedTimeUtc"].as_str().unwrap();
    assert!(
        enqueued.len() == 28 && enqueued.ends_with('Z'),
        "{enqueued}"
    );
    assert_eq!(
        settle_feedback(&hub, &lock, false).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(receive_feedback(&hub).await.is_none());
    hub.shutdown().await;
}

#[tokio::test]
async fn a_message_without_properties_gets_an_id_and_the_default_to() {
    let hub = TestHub::start().await;
    let device = hub.device("plain").await;
    let mut raw = connect(&hub, &device).await;
    send(&hub, "plain", "hello", &[]).await;
    let publish = expect_c2d(&mut raw).await;
    let bag = publish
        .topic
        .strip_prefix("devices/plain/messages/devicebound/%24.mid=")
        .expect("the bag starts with $.mid");
    let (mid, rest) = bag.split_once('&').unwrap();
    assert_eq!(mid.len(), 36, "a UUID message id: {mid}");
    assert_eq!(rest, "%24.to=%2Fdevices%2Fplain%2Fmessages%2FdeviceBound");
    hub.shutdown().await;
}

#[tokio::test]
async fn feedback_follows_each_messages_ack() {
    let hub = TestHub::start().await;
    let device = hub.device("acks").await;
    let mut raw = connect(&hub, &device).await;
    for (id, ack) in [
        ("p", "positive"),
        ("n", "negative"),
        ("f", "full"),
        ("x", "none"),
    ] {
        send(
            &hub,
            "acks",
            id,
            &[("iothub-messageid", id), ("iothub-ack", ack)],
        )
        .await;
    }
    send(&hub, "acks", "y", &[("iothub-messageid", "y")]).await;
    for _ in 0..5 {
        let publish = expect_c2d(&mut raw).await;
        puback(&mut raw, &publish).await;
    }
    assert!(sync(&mut raw).await.is_empty());
    let (lock, records) = receive_feedback(&hub).await.unwrap();
    assert_eq!(
        statuses(&records),
        [
            ("p".into(), "Success".into()),
            ("f".into(), "Success".into())
        ]
    );
    assert_eq!(
        settle_feedback(&hub, &lock, false).await.status(),
        StatusCode::NO_CONTENT
    );

    // Negative feedback comes from a purge (and from expiry and delivery counts, below).
    drop(raw);
    for (id, ack) in [("n2", "negative"), ("p2", "positive"), ("f2", "Full")] {
        send(
            &hub,
            "acks",
            id,
            &[("iothub-messageid", id), ("iothub-ack", ack)],
        )
        .await;
    }
    let res = hub
        .send(Method::DELETE, "/devices/acks/commands", "service", None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"totalMessagesPurged": 3, "deviceId": "acks"})
    );
    let (_, records) = receive_feedback(&hub).await.unwrap();
    assert_eq!(
        statuses(&records),
        [
            ("n2".into(), "Purged".into()),
            ("f2".into(), "Purged".into())
        ]
    );

    let (status, text) = hub.send_c2d("acks", "z", &[("iothub-ack", "maybe")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("ErrorCode:ArgumentInvalid;"), "{text}");
    hub.shutdown().await;
}

#[tokio::test]
async fn an_unacknowledged_message_is_redelivered_with_dup_after_a_reconnect() {
    let hub = TestHub::start().await;
    let device = hub.device("flaky").await;
    let mut raw = connect(&hub, &device).await;
    send(&hub, "flaky", "one", &[("iothub-messageid", "one")]).await;
    send(&hub, "flaky", "two", &[("iothub-messageid", "two")]).await;
    let first = expect_c2d(&mut raw).await;
    let second = expect_c2d(&mut raw).await;
    assert!(first.topic.contains("%24.mid=one") && second.topic.contains("%24.mid=two"));
    puback(&mut raw, &first).await;
    assert!(sync(&mut raw).await.is_empty());
    drop(raw);

    // The session is resumed (clean session 0), so the subscription holds and the message
    // not acknowledged arrives again at once, marked as a duplicate.
    let mut raw = connect(&hub, &device).await;
    let again = expect_c2d(&mut raw).await;
    assert_eq!(again.topic, second.topic);
    assert_eq!(&again.payload[..], b"two");
    assert!(again.dup, "a redelivery carries DUP");
    puback(&mut raw, &again).await;
    assert!(sync(&mut raw).await.is_empty());
    drop(raw);

    let mut raw = connect(&hub, &device).await;
    assert!(
        sync(&mut raw).await.is_empty(),
        "a completed message is gone"
    );
    assert_eq!(message_count(&hub, "flaky").await, 0);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_message_delivered_ten_times_without_a_puback_is_dead_lettered() {
    let hub = TestHub::start().await;
    let device = hub.device("poison").await;
    send(
        &hub,
        "poison",
        "boom",
        &[("iothub-messageid", "poison-1"), ("iothub-ack", "negative")],
    )
    .await;
    for delivery in 1..=10 {
        let mut raw = connect(&hub, &device).await;
        let publish = expect_c2d(&mut raw).await;
        assert_eq!(publish.dup, delivery > 1, "delivery {delivery}");
        drop(raw);
    }
    let mut raw = connect(&hub, &device).await;
    assert!(
        sync(&mut raw).await.is_empty(),
        "not delivered an 11th time"
    );
    let (_, records) = receive_feedback(&hub).await.unwrap();
    assert_eq!(
        statuses(&records),
        [("poison-1".into(), "DeliveryCountExceeded".into())]
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn the_51st_queued_message_is_refused_with_403004_and_purge_empties_the_queue() {
    let hub = TestHub::start().await;
    hub.add_device("full").await;
    for n in 0..50 {
        send(&hub, "full", &n.to_string(), &[]).await;
    }
    assert_eq!(message_count(&hub, "full").await, 50);
    let listed: Value = hub
        .send(Method::GET, "/devices", "iothubowner", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["cloudToDeviceMessageCount"], 50);
    let res = hub
        .send_with(
            Method::POST,
            "/devices/full/messages/deviceBound",
            &hub.service_token("service"),
            None,
            &[],
        )
        .await;
    let message = assert_error(res, 403, "DeviceMaximumQueueDepthExceeded").await;
    assert!(message.contains("queue limit of 50"), "{message}");

    let res = hub
        .send(Method::DELETE, "/devices/full/commands", "service", None)
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"totalMessagesPurged": 50, "deviceId": "full"})
    );
    assert_eq!(message_count(&hub, "full").await, 0);
    send(&hub, "full", "after the purge", &[]).await;

    let res = hub
        .send(Method::DELETE, "/devices/nobody/commands", "service", None)
        .await;
    assert_error(res, 404, "DeviceNotFound").await;
    let (status, _) = hub.send_c2d("nobody", "x", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let big = "x".repeat(64 * 1024 + 1);
    let (status, text) = hub.send_c2d("full", &big, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("ErrorCode:MessageTooLarge;"), "{text}");
    hub.shutdown().await;
}

#[tokio::test]
async fn the_operations_need_service_connect() {
    let hub = TestHub::start().await;
    hub.add_device("perm").await;
    for policy in ["registryRead", "registryReadWrite", "device"] {
        let res = hub
            .send(
                Method::POST,
                "/devices/perm/messages/deviceBound",
                policy,
                None,
            )
            .await;
        assert_error(res, 401, "IotHubUnauthorizedAccess").await;
        let res = hub
            .send(Method::GET, "/messages/serviceBound/feedback", policy, None)
            .await;
        assert_error(res, 401, "IotHubUnauthorizedAccess").await;
        let res = hub
            .send(Method::DELETE, "/devices/perm/commands", policy, None)
            .await;
        assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn expired_messages_are_not_delivered_and_feedback_can_be_abandoned() {
    let hub = TestHub::start().await;
    let device = hub.device("late").await;
    send(
        &hub,
        "late",
        "stale",
        &[("iothub-messageid", "stale"), ("iothub-ack", "negative")],
    )
    .await;
    let expiry = "2999-01-01T00:00:00Z";
    send(
        &hub,
        "late",
        "capped",
        &[
            ("iothub-messageid", "capped"),
            ("iothub-ack", "full"),
            ("iothub-expiry", expiry),
        ],
    )
    .await;
    // The default time to live is one hour; an expiry beyond two days is cut to two days.
    hub.advance_c2d_clock(Duration::from_secs(3600));
    let (lock, records) = receive_feedback(&hub).await.unwrap();
    assert_eq!(statuses(&records), [("stale".into(), "Expired".into())]);
    assert_eq!(
        settle_feedback(&hub, &lock, true).await.status(),
        StatusCode::NO_CONTENT
    );
    let (lock, again) = receive_feedback(&hub).await.expect("abandoned comes back");
    assert_eq!(again, records);
    let stale = settle_feedback(&hub, "not-a-lock", false).await;
    assert_error(stale, 412, "DeviceMessageLockLost").await;
    assert_eq!(
        settle_feedback(&hub, &lock, false).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        settle_feedback(&hub, &lock, false).await,
        412,
        "DeviceMessageLockLost",
    )
    .await;

    let mut raw = connect(&hub, &device).await;
    let publish = expect_c2d(&mut raw).await;
    assert!(
        publish.topic.contains("%24.mid=capped"),
        "{}",
        publish.topic
    );
    assert!(
        publish.topic.contains("&%24.exp="),
        "an explicit expiry is shown: {}",
        publish.topic
    );
    drop(raw);
    hub.advance_c2d_clock(Duration::from_secs(2 * 24 * 3600));
    let mut raw = connect(&hub, &device).await;
    assert!(sync(&mut raw).await.is_empty(), "expired after two days");
    let (_, records) = receive_feedback(&hub).await.unwrap();
    assert_eq!(statuses(&records), [("capped".into(), "Expired".into())]);
    hub.shutdown().await;
}

#[tokio::test]
async fn deleting_a_device_drops_its_queue() {
    let hub = TestHub::start().await;
    hub.add_device("gone").await;
    send(&hub, "gone", "a", &[("iothub-ack", "full")]).await;
    hub.delete_device("gone").await;
    let device = hub.device("gone").await;
    assert_eq!(message_count(&hub, "gone").await, 0);
    let mut raw = connect(&hub, &device).await;
    assert!(sync(&mut raw).await.is_empty());
    assert!(
        receive_feedback(&hub).await.is_none(),
        "a deleted queue gives no feedback"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn accepted_messages_survive_restarts_until_completed() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let hub = TestHub::durable_in(&data_dir).await;
    hub.add_device("durable").await;
    hub.add_device("other").await;
    send(
        &hub,
        "durable",
        "first",
        &[("iothub-messageid", "m1"), ("iothub-app-k", "v")],
    )
    .await;
    send(&hub, "durable", "second", &[("iothub-messageid", "m2")]).await;
    send(&hub, "other", "x", &[]).await;
    hub.delete_device("other").await;
    hub.shutdown().await;

    let hub = TestHub::durable_in(&data_dir).await;
    assert_eq!(message_count(&hub, "durable").await, 2);
    let device = hub.device("durable").await;
    let mut raw = connect(&hub, &device).await;
    let first = expect_c2d(&mut raw).await;
    let second = expect_c2d(&mut raw).await;
    assert_eq!(
        first.topic,
        "devices/durable/messages/devicebound/%24.mid=m1&%24.to=%2Fdevices%2Fdurable%2Fmessages%2FdeviceBound&k=v"
    );
    assert_eq!(&first.payload[..], b"first");
    assert!(second.topic.contains("%24.mid=m2"));
    puback(&mut raw, &first).await;
    assert!(sync(&mut raw).await.is_empty());
    drop(raw);
    hub.shutdown().await;

    let hub = TestHub::durable_in(&data_dir).await;
    let device = hub.device("durable").await;
    let mut raw = connect(&hub, &device).await;
    let again = expect_c2d(&mut raw).await;
    assert!(again.topic.contains("%24.mid=m2"), "{}", again.topic);
    assert!(again.dup, "its delivery count survived the restart as well");
    assert!(sync(&mut raw).await.is_empty(), "m1 stayed completed");
    hub.add_device("other").await;
    assert_eq!(
        message_count(&hub, "other").await,
        0,
        "a deleted device's queue is gone from the disk too"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn iot_explorer_system_property_rows_become_system_properties() {
    let hub = TestHub::start().await;
    let expiry_ms = (iothub_auth::unix_now() + 3600) * 1000;
    let device = hub.device("explorer").await;
    let mut raw = connect(&hub, &device).await;
    send(
        &hub,
        "explorer",
        "from explorer",
        &[
            ("iothub-app-messageId", "e1"),
            ("iothub-app-correlationId", "c1"),
            ("iothub-app-contentType", "text/plain"),
            ("iothub-app-contentEncoding", "utf-8"),
            ("iothub-app-ack", "positive"),
            // Milliseconds since 1970, as JavaScript's Date.getTime() writes it: an hour from now.
            ("iothub-app-expiryTimeUtc", &expiry_ms.to_string()),
            ("iothub-app-Color", "blue"),
        ],
    )
    .await;
    let publish = expect_c2d(&mut raw).await;
    let (head, tail) = publish
        .topic
        .split_once("&%24.exp=")
        .expect("$.exp is present");
    assert_eq!(
        head,
        "devices/explorer/messages/devicebound/%24.mid=e1&%24.to=%2Fdevices%2Fexplorer%2Fmessages%2FdeviceBound&%24.cid=c1&%24.ct=text%2Fplain&%24.ce=utf-8"
    );
    let (expiry, rest) = tail.split_once('&').unwrap();
    let expiry = percent_encoding::percent_decode_str(expiry)
        .decode_utf8()
        .unwrap();
    // ISO 8601 UTC with seven fractional digits, the hub's timestamp format.
    assert_eq!(expiry.len(), 28, "{expiry}");
    assert!(expiry.ends_with(".0000000Z"), "whole seconds: {expiry}");
    assert_eq!(rest, "iothub-ack=positive&color=blue");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_websocket_device_receives_and_its_automatic_puback_completes() {
    let hub = TestHub::start().await;
    let device = hub.device("ws-c2d").await;
    let client =
        crate::support::mqtt::Client::start(hub.ws_options(&device.id, &hub.device_token(&device)));
    client.expect_connack().await;
    client
        .client
        .subscribe("devices/ws-c2d/messages/devicebound/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    match client.next().await {
        Some(Ok(Packet::SubAck(_))) => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
    send(
        &hub,
        "ws-c2d",
        "over websockets",
        &[("iothub-messageid", "w1"), ("iothub-ack", "positive")],
    )
    .await;
    let publish = client
        .expect_publish("devices/ws-c2d/messages/devicebound/")
        .await;
    assert_eq!(&publish.payload[..], b"over websockets");
    // rumqttc acknowledges on its own, as paho and mqtt.js do, before it sends anything
    // later; a twin round trip on the same connection is therefore answered after the hub has
    // handled the PUBACK.
    client.subscribe_twin().await;
    let (status, _) = client.get_twin("sync").await;
    assert_eq!(status, 200);
    let (_, records) = receive_feedback(&hub).await.expect("positive feedback");
    assert_eq!(statuses(&records), [("w1".into(), "Success".into())]);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_message_not_acknowledged_within_its_lock_is_sent_again_on_the_same_connection() {
    let hub = TestHub::start().await;
    // The hub's lock is a minute; the test hook shortens it so the test need not wait one.
    hub.set_c2d_lock(Duration::from_millis(300));
    let device = hub.device("slow").await;
    let mut raw = connect(&hub, &device).await;
    send(
        &hub,
        "slow",
        "take your time",
        &[("iothub-ack", "positive")],
    )
    .await;
    let first = expect_c2d(&mut raw).await;
    assert!(!first.dup);
    let again = expect_c2d(&mut raw).await;
    assert_eq!(
        (again.pkid, again.dup, &again.topic, &again.payload),
        (first.pkid, true, &first.topic, &first.payload),
        "the same publish again, marked as a duplicate"
    );
    puback(&mut raw, &again).await;
    assert!(sync(&mut raw).await.is_empty());
    let (_, records) = receive_feedback(&hub).await.expect("completed once");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["statusCode"], "Success");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_send_whose_commit_fails_is_answered_500_and_never_delivered() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let hub = TestHub::durable_in(&data_dir).await;
    let device = hub.device("disk-full").await;
    let mut raw = connect(&hub, &device).await;
    hub.emulator().fail_next_commit();
    let (status, text) = hub
        .send_c2d("disk-full", "lost", &[("iothub-messageid", "lost")])
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
    assert!(text.contains("ErrorCode:ServerError;"), "{text}");
    assert!(
        sync(&mut raw).await.is_empty(),
        "an uncommitted message is not delivered"
    );
    assert_eq!(message_count(&hub, "disk-full").await, 0);
    drop(raw);
    hub.shutdown().await;

    let hub = TestHub::durable_in(&data_dir).await;
    assert_eq!(message_count(&hub, "disk-full").await, 0, "nor stored");
    hub.shutdown().await;
}
