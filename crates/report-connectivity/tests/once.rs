//! `--once`: report the connectivity, print the acknowledgement (text or JSON), exit 0;
//! over MQTT/TLS and WebSockets, checked through the service API.

use std::time::Duration;

use iothub_emulator::test_support::TestHub;
use serde_json::{json, Value};

use crate::support::{run, CliHub};

#[tokio::test(flavor = "multi_thread")]
async fn once_sets_the_reported_connectivity() {
    let hub = TestHub::start().await;
    let conn = hub.emulator().add_device("cli-once").await.expect("device");
    let mut cmd = hub.command(&conn);
    cmd.arg("--once");
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(
        out.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("Sending data as reported property..."),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Confirmation for reported state called with:\n    status_code: 204"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Twin callback called with:"),
        "{}",
        out.stdout
    );

    let twin = hub.twin("cli-once").await;
    let reported = &twin["properties"]["reported"];
    assert_eq!(reported["connectivity"]["type"], "cellular");
    let version = reported["$version"].as_u64().expect("$version");
    assert!(
        out.stdout.contains(&format!("    version: {version}")),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn once_with_json_prints_one_document() {
    let hub = TestHub::start().await;
    let conn = hub.emulator().add_device("cli-json").await.expect("device");
    let mut cmd = hub.command(&conn);
    cmd.args([
        "--once",
        "-o",
        "json",
        "--reported",
        r#"{"firmware":"1.2.3"}"#,
    ]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let doc: Value = serde_json::from_str(out.stdout.trim()).expect("exactly one JSON document");
    assert_eq!(doc["event"], "reported");
    assert_eq!(doc["status"], 204);
    assert_eq!(doc["deviceId"], "cli-json");
    assert_eq!(doc["patch"], json!({"firmware": "1.2.3"}));
    let twin = hub.twin("cli-json").await;
    assert_eq!(twin["properties"]["reported"]["firmware"], "1.2.3");
    assert_eq!(twin["properties"]["reported"]["$version"], doc["version"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn once_over_websockets() {
    let hub = TestHub::start().await;
    hub.emulator().add_device("cli-ws").await.expect("device");
    let conn = hub
        .emulator()
        .device_connection_string_ws("cli-ws")
        .expect("ws string");
    let mut cmd = hub.command(&conn);
    cmd.args(["--once", "--transport", "mqtt-ws", "--connectivity", "wifi"]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(
        out.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("(mqtt-ws)"), "{}", out.stdout);
    let twin = hub.twin("cli-ws").await;
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        "wifi"
    );
}
