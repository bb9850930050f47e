//! Telemetry: messages rendered from the `--telemetry` template reach the hub (read back from
//! the emulator's telemetry buffer) with their properties; `--telemetry-count` ends the run;
//! the interval follows desired `telemetryConfig` (reported back) and the built-in
//! `setTelemetryInterval` method; messages queued across a dropped connection all arrive.

use std::collections::BTreeSet;
use std::time::Duration;

use iothub_emulator::test_support::{RefusedPort, TestHub};
use iothub_emulator::TelemetryMessage;
use serde_json::{json, Value};

use crate::methods::invoke;
use crate::support::{rest, run, unreachable_connection_string, CliHub, Running, PROMPTLY};

const TEMPLATE: &str = r#"{"seq":{{seq}},"device":"{{deviceId}}","temperature":{{random:20.0:30.0}},"level":{{random:1:9}},"at":"{{now}}"}"#;

/// Generous: a loaded 2-core machine.
const RUN_LIMIT: Duration = Duration::from_secs(90);

fn events(stdout: &str, name: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["event"] == name)
        .collect()
}

fn from_device<'a>(messages: &'a [TelemetryMessage], id: &str) -> Vec<&'a TelemetryMessage> {
    messages.iter().filter(|m| m.device_id == id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_carry_the_rendered_template_and_properties_and_the_count_ends_the_run() {
    let hub = TestHub::start().await;
    let conn = hub.emulator().add_device("tele-1").await.expect("device");
    let mut cmd = hub.command(&conn);
    cmd.args([
        "-o",
        "json",
        "--telemetry",
        TEMPLATE,
        "--telemetry-interval",
        "50ms",
        "--telemetry-count",
        "3",
        "--property",
        "alert=false",
        "--property",
        "site=lab 7",
    ]);
    let out = run(cmd, RUN_LIMIT).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let acked = events(&out.stdout, "telemetry");
    let seqs: Vec<u64> = acked.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3]),
        "{}",
        out.stdout
    );
    let stopped = &events(&out.stdout, "stopped")[0];
    assert_eq!(stopped["reason"], "telemetry-count");
    assert_eq!(stopped["telemetry"]["acknowledged"], 3);
    assert_eq!(stopped["telemetry"]["lost"], 0);
    assert_eq!(stopped["telemetry"]["pending"], 0);

    // Acknowledged means the hub has them.
    let all = hub.wait_for_telemetry(3).await;
    let messages = from_device(&all, "tele-1");
    assert_eq!(messages.len(), 3);
    for (i, message) in messages.iter().enumerate() {
        let body: Value = serde_json::from_slice(&message.body).expect("the body is JSON");
        let seq = i as u64 + 1;
        assert_eq!(body["seq"], seq, "{body}");
        assert_eq!(body["device"], "tele-1");
        let t = body["temperature"].as_f64().unwrap();
        assert!((20.0..=30.0).contains(&t), "{body}");
        let level = body["level"].as_u64().unwrap();
        assert!((1..=9).contains(&level), "{body}");
        let at = body["at"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(at).is_ok(), "{body}");
        assert_eq!(
            message.system.message_id.as_deref(),
            Some(seq.to_string().as_str())
        );
        assert_eq!(
            message.system.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(message.system.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(
            message.properties,
            [
                ("alert".to_owned(), Some("false".to_owned())),
                ("site".to_owned(), Some("lab 7".to_owned())),
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_file_with_a_text_content_type() {
    let hub = TestHub::start().await;
    let conn = hub
        .emulator()
        .add_device("tele-file")
        .await
        .expect("device");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.txt");
    std::fs::write(&file, "reading {{seq}} from {{deviceId}}").unwrap();
    let mut cmd = hub.command(&conn);
    cmd.args(["--telemetry", &format!("@{}", file.display())]);
    cmd.args(["--telemetry-count", "1", "--content-type", "text/plain"]);
    cmd.args(["--content-encoding", "us-ascii"]);
    let out = run(cmd, RUN_LIMIT).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    // Text mode: one line per acknowledged message and the totals.
    assert!(
        out.stdout.contains("Telemetry message 1 acknowledged"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("1 acknowledged, 0 lost"),
        "{}",
        out.stdout
    );
    let all = hub.wait_for_telemetry(1).await;
    let message = from_device(&all, "tele-file")[0];
    assert_eq!(&message.body[..], b"reading 1 from tele-file");
    assert_eq!(message.system.content_type.as_deref(), Some("text/plain"));
    assert_eq!(message.system.content_encoding.as_deref(), Some("us-ascii"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_telemetry_flags_are_usage_errors_naming_the_problem() {
    let hub = TestHub::start().await;
    // Nothing listens there: a run that got past validation would end with exit 5 instead.
    let refused = RefusedPort::reserve();
    let conn = unreachable_connection_string(&refused);
    for (args, needle) in [
        (
            &["--telemetry", "{\"a\":{{sequence}}}"][..],
            "unknown placeholder '{{sequence}}'",
        ),
        (&["--telemetry", "{\"a\":{{seq}"], "never closed"),
        (
            &["--telemetry", "{\"a\":{{random:9:1}}}"],
            "MIN is greater than MAX",
        ),
        (
            &["--telemetry", "{\"at\":{{now}}}"],
            "does not render to JSON",
        ),
        (
            &["--telemetry", "@/nonexistent/t.json"],
            "/nonexistent/t.json",
        ),
        (
            &["--telemetry", "{}", "--property", "novalue"],
            "--property 'novalue'",
        ),
        (
            &["--telemetry", "{}", "--property", "$.ct=x"],
            "--property '$.ct=x'",
        ),
        (
            &["--telemetry", "{}", "--telemetry-interval", "25h"],
            "--telemetry-interval",
        ),
        (
            &["--telemetry", "{}", "--telemetry-count", "0"],
            "--telemetry-count",
        ),
        (&["--telemetry-interval", "5s"], "--telemetry"),
        (&["--telemetry", "{}", "--once"], "--once"),
    ] {
        let mut cmd = hub.command(&conn);
        cmd.args(["--timeout", "2s"]).args(args);
        let out = run(cmd, Duration::from_secs(30)).await;
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
}

/// Starts a device sending every hour, so a second message within the test's bounds can only
/// come from an interval change; returns it once the first message is acknowledged.
async fn hourly_device(hub: &TestHub, id: &str, extra: &[&str]) -> Running {
    let conn = hub.emulator().add_device(id).await.expect("device");
    let mut cmd = hub.command(&conn);
    cmd.args(["-o", "json", "--duration", "300s", "--telemetry", TEMPLATE]);
    cmd.args(["--telemetry-interval", "1h"]).args(extra);
    let mut device = Running::spawn(cmd);
    let first = device.next_event("telemetry", PROMPTLY * 3).await;
    assert_eq!(first["seq"], 1);
    device
}

#[tokio::test(flavor = "multi_thread")]
async fn desired_telemetry_config_changes_the_interval_and_is_reported_back() {
    let hub = TestHub::start().await;
    let mut device = hourly_device(&hub, "tele-desired", &[]).await;

    let twin = hub
        .patch_desired(
            "tele-desired",
            json!({"telemetryConfig": {"sendFrequency": "100ms", "configId": "cfg-1"}}),
        )
        .await;
    let version = twin["properties"]["desired"]["$version"].as_u64().unwrap();
    let applied = device.next_event("telemetryConfig", PROMPTLY).await;
    assert_eq!(applied["status"], "Success", "{applied}");
    assert_eq!(applied["source"], "desired");
    assert_eq!(applied["sendFrequency"], "100ms");
    assert_eq!(applied["desiredVersion"], version);
    // Only the new interval brings message 2 within the bound.
    let second = device.next_event("telemetry", PROMPTLY).await;
    assert_eq!(second["seq"], 2);

    // The event is printed once the hub acknowledged the reported patch.
    let (status, twin) = rest(&hub, reqwest::Method::GET, "/twins/tele-desired", None).await;
    assert_eq!(status, 200);
    let reported = &twin["properties"]["reported"]["telemetryConfig"];
    assert_eq!(reported["status"], "Success", "{twin}");
    assert_eq!(reported["sendFrequency"], "100ms");
    assert_eq!(reported["desiredVersion"], version);
    assert_eq!(reported["configId"], "cfg-1");
    assert!(reported.get("error").is_none(), "{reported}");

    // A value the device cannot use is reported Failed and the interval stays.
    let twin = hub
        .patch_desired(
            "tele-desired",
            json!({"telemetryConfig": {"sendFrequency": "whenever"}}),
        )
        .await;
    let version = twin["properties"]["desired"]["$version"].as_u64().unwrap();
    let refused = device.next_event("telemetryConfig", PROMPTLY).await;
    assert_eq!(refused["status"], "Failed", "{refused}");
    assert_eq!(refused["sendFrequency"], "100ms");
    assert!(
        refused["error"].as_str().unwrap().contains("whenever"),
        "{refused}"
    );
    let (_, twin) = rest(&hub, reqwest::Method::GET, "/twins/tele-desired", None).await;
    let reported = &twin["properties"]["reported"]["telemetryConfig"];
    assert_eq!(reported["status"], "Failed", "{twin}");
    assert_eq!(reported["sendFrequency"], "100ms");
    assert_eq!(reported["desiredVersion"], version);
    assert!(reported["error"].as_str().unwrap().contains("whenever"));
    // Still every 100 ms, not back to the hour.
    let next = device.next_event("telemetry", PROMPTLY).await;
    assert!(next["seq"].as_u64().unwrap() > 2);

    device.signal("INT");
    assert_eq!(device.wait(PROMPTLY).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_desired_telemetry_config_in_the_twin_at_start_is_applied() {
    let hub = TestHub::start().await;
    let conn = hub
        .emulator()
        .add_device("tele-start")
        .await
        .expect("device");
    let twin = hub
        .patch_desired(
            "tele-start",
            json!({"telemetryConfig": {"sendFrequency": 0.05}}),
        )
        .await;
    let version = twin["properties"]["desired"]["$version"].as_u64().unwrap();
    let mut cmd = hub.command(&conn);
    cmd.args([
        "-o",
        "json",
        "--telemetry",
        TEMPLATE,
        "--telemetry-interval",
        "1h",
    ]);
    cmd.args(["--telemetry-count", "2"]);
    let out = run(cmd, RUN_LIMIT).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let config = &events(&out.stdout, "telemetryConfig")[0];
    assert_eq!(config["sendFrequency"], "50ms");
    assert_eq!(config["desiredVersion"], version);
    let (_, twin) = rest(&hub, reqwest::Method::GET, "/twins/tele-start", None).await;
    assert_eq!(
        twin["properties"]["reported"]["telemetryConfig"]["status"],
        "Success"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn set_telemetry_interval_is_built_in_and_can_be_overridden() {
    let hub = TestHub::start().await;
    let mut device = hourly_device(&hub, "tele-method", &[]).await;
    let call = |payload: Value| json!({"methodName": "setTelemetryInterval", "payload": payload, "responseTimeoutInSeconds": 30});

    let (status, answer) = invoke(&hub, "tele-method", call(json!("soon"))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 400, "{answer}");
    assert!(answer["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("number of seconds"));

    let (status, answer) = invoke(&hub, "tele-method", call(json!(0.1))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["payload"]["telemetryInterval"], "100ms");
    let changed = device.next_event("telemetryConfig", PROMPTLY).await;
    assert_eq!(changed["source"], "method");
    assert_eq!(changed["sendFrequency"], "100ms");
    let second = device.next_event("telemetry", PROMPTLY).await;
    assert_eq!(second["seq"], 2);
    device.signal("TERM");
    assert_eq!(device.wait(PROMPTLY).await, Some(0));

    // A canned answer for the same name replaces the built-in one.
    let mut device = hourly_device(
        &hub,
        "tele-canned",
        &[
            "--method-response",
            r#"setTelemetryInterval=202:{"canned":true}"#,
        ],
    )
    .await;
    let (_, answer) = invoke(&hub, "tele-canned", call(json!(0.1))).await;
    assert_eq!(answer["status"], 202, "{answer}");
    assert_eq!(answer["payload"], json!({"canned": true}));
    let method = device.next_event("method", PROMPTLY).await;
    assert_eq!(method["status"], 202);
    device.signal("INT");
    assert_eq!(device.wait(PROMPTLY).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_produced_while_the_connection_is_down_arrive_after_the_reconnect() {
    let hub = TestHub::start().await;
    let conn = hub
        .emulator()
        .add_device("tele-drop")
        .await
        .expect("device");
    const COUNT: u64 = 30;
    let mut cmd = hub.command(&conn);
    cmd.args([
        "-o",
        "json",
        "--telemetry",
        TEMPLATE,
        "--telemetry-interval",
        "100ms",
    ]);
    cmd.args(["--telemetry-count", &COUNT.to_string()]);
    let mut device = Running::spawn(cmd);
    let third = loop {
        let event = device.next_event("telemetry", PROMPTLY).await;
        if event["seq"].as_u64().unwrap() >= 3 {
            break event;
        }
    };
    assert!(third["seq"].as_u64().unwrap() < COUNT / 2);
    // Down for two seconds: about twenty messages are produced meanwhile.
    let faults = hub.emulator().faults();
    faults.refuse_connections_for(Duration::from_secs(2));
    faults.drop_device_connection("tele-drop");
    device.next_event("disconnected", PROMPTLY).await;
    device.next_event("reconnected", PROMPTLY * 2).await;
    let stopped = device.next_event("stopped", PROMPTLY * 3).await;
    assert_eq!(device.wait(PROMPTLY).await, Some(0));
    assert_eq!(stopped["reason"], "telemetry-count");
    assert_eq!(stopped["telemetry"]["acknowledged"], COUNT, "{stopped}");
    assert_eq!(stopped["telemetry"]["lost"], 0, "{stopped}");

    // Every message arrived; a resent one may arrive twice (at least once), never missing.
    let all = hub.wait_for_telemetry(COUNT).await;
    let ids: BTreeSet<u64> = from_device(&all, "tele-drop")
        .iter()
        .map(|m| m.system.message_id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=COUNT).collect::<BTreeSet<_>>());
}
