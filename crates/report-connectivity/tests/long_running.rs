//! Long runs: desired patches printed as they arrive, reconnects reported, and the three ways
//! a run ends (SIGINT, `--duration`, Ctrl-C while still connecting).

use std::time::{Duration, Instant};

use iothub_emulator::test_support::{RefusedPort, TestHub};
use serde_json::json;

use crate::support::{unreachable_connection_string, CliHub, Running, ATTEMPT_FAILED, PROMPTLY};

#[tokio::test(flavor = "multi_thread")]
async fn long_running_mode_prints_desired_patches_promptly() {
    let hub = TestHub::start().await;
    let conn = hub
        .emulator()
        .add_device("cli-listen")
        .await
        .expect("device");
    let mut cmd = hub.command(&conn);
    cmd.args(["-o", "json", "--duration", "60s"]);
    let mut child = Running::spawn(cmd);

    let connected = child.next_event("connected", Duration::from_secs(20)).await;
    assert_eq!(connected["deviceId"], "cli-listen");
    assert_eq!(connected["transport"], "mqtt");
    assert!(connected["sessionPresent"].is_boolean(), "{connected}");
    let twin = child.next_event("twin", Duration::from_secs(20)).await;
    assert!(twin["desiredVersion"].is_u64(), "{twin}");
    let reported = child.next_event("reported", Duration::from_secs(20)).await;
    assert_eq!(reported["status"], 204);

    for (i, interval) in [5, 10, 15].into_iter().enumerate() {
        let sent = Instant::now();
        hub.patch_desired("cli-listen", json!({ "telemetryInterval": interval }))
            .await;
        let desired = child.next_event("desired", PROMPTLY).await;
        assert!(
            sent.elapsed() < PROMPTLY,
            "patch {i} took {:?}",
            sent.elapsed()
        );
        assert_eq!(desired["kind"], "patch");
        assert_eq!(desired["properties"]["telemetryInterval"], interval);
        assert!(desired["version"].is_u64());
    }

    // A lost connection is reported, recovered, and desired patches keep coming.
    hub.emulator().faults().drop_device_connection("cli-listen");
    let lost = child
        .next_event("disconnected", Duration::from_secs(10))
        .await;
    assert_eq!(lost["reason"], "connection_lost");
    assert!(lost["detail"].is_string(), "{lost}");
    let retry = child
        .next_event("reconnecting", Duration::from_secs(10))
        .await;
    assert_eq!(retry["attempt"], 1);
    assert!(retry["delayMs"].is_u64(), "{retry}");
    let back = child
        .next_event("reconnected", Duration::from_secs(10))
        .await;
    assert!(back["sessionPresent"].is_boolean(), "{back}");
    assert!(back["tokenExpiresAt"].is_u64(), "{back}");
    hub.patch_desired("cli-listen", json!({ "telemetryInterval": 20 }))
        .await;
    let desired = child.next_event("desired", PROMPTLY).await;
    assert_eq!(desired["properties"]["telemetryInterval"], 20);

    child.signal("INT");
    let stopped = child.next_event("stopped", Duration::from_secs(10)).await;
    assert_eq!(stopped["reason"], "ctrl-c");
    assert_eq!(child.wait(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_mode_follows_the_tutorial_and_stops_after_the_duration() {
    let hub = TestHub::start().await;
    let conn = hub.emulator().add_device("cli-text").await.expect("device");
    let mut cmd = hub.command(&conn);
    // Long enough for the desired patch below to arrive first on a loaded machine.
    cmd.args(["--duration", "10s"]);
    let mut child = Running::spawn(cmd);
    let mut transcript = String::new();
    loop {
        let line = child.next_line(Duration::from_secs(20)).await;
        transcript.push_str(&line);
        transcript.push('\n');
        if line == "Press Ctrl-C to exit" {
            break;
        }
    }
    hub.patch_desired("cli-text", json!({"location": "Redmond"}))
        .await;
    while !transcript.contains("IoTHubClient sample stopped") {
        let line = child.next_line(Duration::from_secs(30)).await;
        transcript.push_str(&line);
        transcript.push('\n');
    }
    assert_eq!(child.wait(Duration::from_secs(10)).await, Some(0));
    for expected in [
        "Twin callback called with:\n    updateStatus: COMPLETE\n    payload: {",
        "Sending data as reported property...",
        "Confirmation for reported state called with:\n    status_code: 204\n    version: ",
        "Twin callback called with:\n    updateStatus: PARTIAL\n    payload: {\"location\":\"Redmond\",\"$version\":",
    ] {
        assert!(transcript.contains(expected), "missing {expected:?} in:\n{transcript}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_still_connecting_stops_promptly() {
    let hub = TestHub::start().await;
    let refused = RefusedPort::reserve();
    let conn = unreachable_connection_string(&refused);
    let mut cmd = hub.command(&conn);
    // -vv logs every failed connection attempt; the timeout is far beyond the bound below.
    cmd.args(["--timeout", "60s", "-vv"]);
    let mut child = Running::spawn(cmd);
    // The Ctrl-C handler is installed as the first attempt starts; the second failure comes a
    // back-off (100 ms or more) later, so by then SIGINT is the handler's, not the default.
    for _ in 0..2 {
        child
            .stderr_line_containing(ATTEMPT_FAILED, Duration::from_secs(30))
            .await;
    }
    let started = Instant::now();
    child.signal("INT");
    assert_eq!(child.wait(Duration::from_secs(30)).await, Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
