//! Cloud-to-device messages sent over the service REST API: printed (a `c2d` event with body
//! and properties, or the text block) and completed, over TLS and WebSockets.

use std::time::Duration;

use iothub_emulator::test_support::TestHub;
use serde_json::json;

use crate::methods::invoke;
use crate::support::{CliHub, Running, PROMPTLY};

async fn send(hub: &TestHub, device: &str, body: &str, headers: &[(&str, &str)]) {
    let mut request = hub
        .request(
            reqwest::Method::POST,
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

async fn queued(hub: &TestHub, device: &str) -> u64 {
    hub.device_identity(device).await["cloudToDeviceMessageCount"]
        .as_u64()
        .expect("cloudToDeviceMessageCount")
}

/// A method call answered by the device: its PUBACKs sent before the answer have been
/// processed by the hub once the answer is back (one connection, packets in order).
async fn sync(hub: &TestHub, device: &str) {
    let (_, answer) = invoke(hub, device, json!({"methodName": "sync"})).await;
    assert_eq!(answer["status"], 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_are_printed_with_their_properties_and_completed() {
    let hub = TestHub::start().await;
    let conn = hub.emulator().add_device("cli-c2d").await.expect("device");
    let mut cmd = hub.command(&conn);
    cmd.args([
        "-o",
        "json",
        "--duration",
        "120s",
        "--method-response",
        "sync=200",
    ]);
    let mut child = Running::spawn(cmd);
    child.next_event("reported", Duration::from_secs(20)).await;

    send(
        &hub,
        "cli-c2d",
        "turn the fan on",
        &[
            ("iothub-messageid", "c2d-1"),
            ("iothub-correlationid", "req 7"),
            ("iothub-app-priority", "high & urgent"),
            ("content-type", "text/plain"),
        ],
    )
    .await;
    let event = child.next_event("c2d", PROMPTLY).await;
    assert_eq!(event["body"], "turn the fan on");
    let system = &event["properties"]["system"];
    assert_eq!(system["messageId"], "c2d-1");
    assert_eq!(system["correlationId"], "req 7");
    assert_eq!(system["contentType"], "text/plain");
    assert_eq!(
        event["properties"]["application"],
        json!({"priority": "high & urgent"})
    );
    assert_eq!(event["redelivered"], false);

    sync(&hub, "cli-c2d").await;
    assert_eq!(queued(&hub, "cli-c2d").await, 0, "completed");
    child.signal("INT");
    assert_eq!(child.wait(Duration::from_secs(20)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_mode_prints_messages_over_websockets() {
    let hub = TestHub::start().await;
    hub.add_device("cli-c2d-ws").await;
    let conn = hub
        .device_connection_ws("cli-c2d-ws")
        .expose_connection_string();
    let mut cmd = hub.command(&conn);
    cmd.args([
        "--transport",
        "mqtt-ws",
        "--duration",
        "120s",
        "--method-response",
        "sync=200",
    ]);
    let mut child = Running::spawn(cmd);
    loop {
        if child
            .next_line(Duration::from_secs(20))
            .await
            .contains("Press Ctrl-C to exit")
        {
            break;
        }
    }
    send(&hub, "cli-c2d-ws", "hello", &[("iothub-app-k", "v")]).await;
    let mut lines = Vec::new();
    loop {
        let line = child.next_line(PROMPTLY).await;
        let done = line.starts_with("    properties:");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(
        text.contains("C2D message received:\n    body: hello\n"),
        "{text}"
    );
    assert!(text.contains(r#""application":{"k":"v"}"#), "{text}");
    sync(&hub, "cli-c2d-ws").await;
    assert_eq!(queued(&hub, "cli-c2d-ws").await, 0, "completed");
    child.signal("TERM");
    assert_eq!(child.wait(Duration::from_secs(20)).await, Some(0));
}
