//! Direct methods: `--method-response` values refused as usage errors before any connection;
//! calls invoked over the service REST API answered with the canned answers (or 501), and each
//! printed, over TLS and WebSockets.

use std::time::Duration;

use iothub_emulator::test_support::{RefusedPort, TestHub};
use serde_json::{json, Value};

use crate::support::{rest, run, unreachable_connection_string, CliHub, Running, PROMPTLY};

#[tokio::test(flavor = "multi_thread")]
async fn bad_method_responses_are_usage_errors_naming_the_value() {
    let hub = TestHub::start().await;
    // Nothing listens there: a run that got past validation would end with exit 5 instead.
    let refused = RefusedPort::reserve();
    let conn = unreachable_connection_string(&refused);
    for (value, needle) in [
        ("reboot", "'reboot': no '='"),
        ("reboot=ok", "the status is not an integer"),
        ("reboot=200:{bad", "invalid JSON"),
        (
            "reboot=200:@/nonexistent/answer.json",
            "/nonexistent/answer.json",
        ),
    ] {
        let mut cmd = hub.command(&conn);
        cmd.args(["--timeout", "2s", "--method-response", value]);
        let out = run(cmd, Duration::from_secs(30)).await;
        assert_eq!(out.code, Some(2), "{value}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with("report-connectivity: error: --method-response"),
            "{value}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(needle), "{value}: {}", out.stderr);
    }
    let mut cmd = hub.command(&conn);
    cmd.args(["--once", "--method-response", "reboot=200"]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(2), "--once conflicts: {}", out.stderr);
}

/// `POST /twins/{device}/methods` with `body`: the status and the JSON answer.
pub async fn invoke(
    hub: &TestHub,
    device: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let path = format!("/twins/{device}/methods");
    tokio::time::timeout(
        Duration::from_secs(60),
        rest(hub, reqwest::Method::POST, &path, Some(body)),
    )
    .await
    .expect("the hub answers the call in time")
}

#[tokio::test(flavor = "multi_thread")]
async fn canned_answers_unknown_methods_and_the_printed_events() {
    let hub = TestHub::start().await;
    let conn = hub
        .emulator()
        .add_device("cli-methods")
        .await
        .expect("device");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("status.json");
    std::fs::write(&file, r#"{"uptime": 42}"#).unwrap();
    let mut cmd = hub.command(&conn);
    cmd.args([
        "-o",
        "json",
        "--duration",
        "120s",
        "--method-response",
        r#"reboot=200:{"rebooting":true}"#,
        "--method-response",
        &format!("status=201:@{}", file.display()),
        "--method-response",
        "busy=503",
    ]);
    let mut child = Running::spawn(cmd);
    child.next_event("reported", Duration::from_secs(20)).await;

    let (status, answer) = invoke(
        &hub,
        "cli-methods",
        json!({"methodName": "reboot", "payload": {"delay": 5}, "responseTimeoutInSeconds": 30}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"status": 200, "payload": {"rebooting": true}})
    );
    let event = child.next_event("method", PROMPTLY).await;
    assert_eq!(event["name"], "reboot");
    assert_eq!(event["payload"], json!({"delay": 5}));
    assert_eq!(event["status"], 200);
    assert_eq!(event["response"], json!({"rebooting": true}));
    assert!(event["latencyMs"].is_u64(), "{event}");
    assert!(event.get("error").is_none(), "{event}");

    let (_, answer) = invoke(&hub, "cli-methods", json!({"methodName": "status"})).await;
    assert_eq!(answer, json!({"status": 201, "payload": {"uptime": 42}}));
    let event = child.next_event("method", PROMPTLY).await;
    assert_eq!(
        (event["name"].clone(), event["payload"].clone()),
        (json!("status"), Value::Null)
    );

    let (_, answer) = invoke(
        &hub,
        "cli-methods",
        json!({"methodName": "busy", "payload": "x"}),
    )
    .await;
    assert_eq!(answer, json!({"status": 503, "payload": null}));
    child.next_event("method", PROMPTLY).await;

    let (status, answer) = invoke(&hub, "cli-methods", json!({"methodName": "selfDestruct"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 501);
    assert_eq!(answer["payload"]["methodName"], "selfDestruct");
    assert!(
        answer["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("'selfDestruct'"),
        "{answer}"
    );
    let event = child.next_event("method", PROMPTLY).await;
    assert_eq!(
        (event["name"].clone(), event["status"].clone()),
        (json!("selfDestruct"), json!(501))
    );

    child.signal("INT");
    assert_eq!(child.wait(Duration::from_secs(20)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_mode_prints_each_call_over_websockets() {
    let hub = TestHub::start().await;
    hub.add_device("cli-methods-ws").await;
    let conn = hub
        .device_connection_ws("cli-methods-ws")
        .expose_connection_string();
    let mut cmd = hub.command(&conn);
    cmd.args([
        "--transport",
        "mqtt-ws",
        "--duration",
        "120s",
        "--method-response",
        "ping=200:\"pong\"",
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
    let (_, answer) = invoke(
        &hub,
        "cli-methods-ws",
        json!({"methodName": "ping", "payload": [1]}),
    )
    .await;
    assert_eq!(answer, json!({"status": 200, "payload": "pong"}));
    let line = child.next_line(PROMPTLY).await;
    assert!(
        line.starts_with("Method 'ping' called with payload [1]: answered 200 in "),
        "{line}"
    );
    child.signal("TERM");
    assert_eq!(child.wait(Duration::from_secs(20)).await, Some(0));
}
