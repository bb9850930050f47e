//! Cloud-to-device messages through the client, sent over the service REST API
//! (`POST /devices/{id}/messages/deviceBound`): body, system and application properties over
//! TLS and WebSockets, completion (PUBACK) seen as an emptied queue and positive feedback, and
//! redelivery of a message that was not completed.

use iothub_device::{C2dMessage, C2dMessages, ConnectionEvent, DeviceClient};
use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::Value;

use crate::support::{rest, wait_for, DeviceHub, PROMPTLY};

async fn send(hub: &TestHub, device: &str, body: &str, headers: &[(&str, &str)]) {
    let mut request = hub
        .request(
            Method::POST,
            &format!("/devices/{device}/messages/deviceBound"),
            "service",
        )
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("C2D send completes");
    assert_eq!(response.status().as_u16(), 204, "C2D send");
}

async fn next_message(messages: &mut C2dMessages) -> C2dMessage {
    tokio::time::timeout(PROMPTLY, messages.next())
        .await
        .expect("a C2D message in time")
        .expect("stream open")
}

async fn queued(hub: &TestHub, device: &str) -> u64 {
    hub.device_identity(device).await["cloudToDeviceMessageCount"]
        .as_u64()
        .expect("cloudToDeviceMessageCount")
}

/// `GET /messages/serviceBound/feedback`: the records of the next batch, settled.
async fn feedback(hub: &TestHub) -> Vec<Value> {
    let response = hub
        .request(Method::GET, "/messages/serviceBound/feedback", "service")
        .send()
        .await
        .expect("feedback GET");
    assert_eq!(response.status().as_u16(), 200, "a feedback batch");
    let lock = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_owned())
        .expect("lock token");
    let records: Vec<Value> = response.json().await.expect("records");
    let (status, _) = rest(
        hub,
        Method::DELETE,
        &format!("/messages/serviceBound/feedback/{lock}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_arrive_with_their_properties_and_complete_over_tls_and_websockets() {
    let hub = TestHub::start().await;
    hub.add_device("dev-c2d").await;
    for (i, (conn, options)) in [
        (hub.device_connection("dev-c2d"), hub.options()),
        (hub.device_connection_ws("dev-c2d"), hub.ws_options()),
    ]
    .into_iter()
    .enumerate()
    {
        let client = DeviceClient::connect(conn, options).await.expect("connect");
        let mut messages = client.c2d_messages().await.expect("subscribed");
        let id = format!("msg {i}");
        send(
            &hub,
            "dev-c2d",
            r#"{"led":"on"}"#,
            &[
                ("iothub-messageid", id.as_str()),
                ("iothub-correlationid", "corr/1"),
                ("iothub-ack", "positive"),
                ("iothub-app-color", "dark blue"),
                ("iothub-app-expr", "a&b=c"),
                ("content-type", "application/json"),
                ("content-encoding", "utf-8"),
            ],
        )
        .await;
        let message = next_message(&mut messages).await;
        assert_eq!(message.body_text(), Some(r#"{"led":"on"}"#));
        assert_eq!(message.system.message_id.as_deref(), Some(id.as_str()));
        assert_eq!(message.system.correlation_id.as_deref(), Some("corr/1"));
        assert_eq!(
            message.system.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(message.system.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(message.system.ack.as_deref(), Some("positive"));
        assert!(
            message
                .system
                .to
                .as_deref()
                .is_some_and(|to| to.eq_ignore_ascii_case("/devices/dev-c2d/messages/devicebound")),
            "{:?}",
            message.system.to
        );
        assert_eq!(
            message.properties,
            [
                ("color".to_owned(), "dark blue".to_owned()),
                ("expr".to_owned(), "a&b=c".to_owned())
            ]
        );
        assert!(!message.redelivered);
        assert_eq!(queued(&hub, "dev-c2d").await, 1, "not completed yet");

        message.complete().await.expect("completed");
        // The hub handles a connection's packets in order: once the twin GET is answered, the
        // PUBACK before it has been processed.
        client.get_twin().await.expect("twin");
        assert_eq!(queued(&hub, "dev-c2d").await, 0);
        let records = feedback(&hub).await;
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["originalMessageId"], id);
        assert_eq!(records[0]["statusCode"], "Success");
        client.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_not_completed_comes_again_after_a_reconnect() {
    let hub = TestHub::start().await;
    let conn = hub.add_device("dev-redeliver").await;
    let client = DeviceClient::connect(conn, hub.options())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    let mut messages = client.c2d_messages().await.expect("subscribed");
    send(
        &hub,
        "dev-redeliver",
        "first",
        &[("iothub-messageid", "m1")],
    )
    .await;
    let first = next_message(&mut messages).await;
    assert_eq!(first.body, b"first");

    hub.emulator()
        .faults()
        .drop_device_connection("dev-redeliver");
    wait_for(&mut events, |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await;
    // The old delivery's packet id means nothing on the new connection.
    assert!(first.complete().await.is_err(), "stale completion refused");

    let again = next_message(&mut messages).await;
    assert_eq!(again.body, b"first");
    assert_eq!(again.system.message_id.as_deref(), Some("m1"));
    assert!(again.redelivered, "DUP is set on the redelivery");
    again.complete().await.expect("completed");
    client.get_twin().await.expect("twin");
    assert_eq!(queued(&hub, "dev-redeliver").await, 0);
    client.disconnect().await;
}
