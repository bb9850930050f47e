//! A module connection string: the tool reports to the module's twin and answers the module's
//! methods, over TLS and WebSockets.

use std::time::Duration;

use iothub_emulator::test_support::TestHub;
use reqwest::Method;

use crate::support::{add_module, rest, run, CliHub, Running};

#[tokio::test(flavor = "multi_thread")]
async fn a_module_connection_string_reports_to_the_module_twin() {
    let hub = TestHub::start().await;
    hub.add_device("cli-mod").await;
    let tls_host = hub.device_connection("cli-mod").host_name;
    let conn = add_module(&hub, "cli-mod", "telemetry-mod", &tls_host).await;

    let mut cmd = hub.command(&conn);
    cmd.args(["--once", "--connectivity", "wired"]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("as module cli-mod/telemetry-mod"),
        "{}",
        out.stdout
    );
    let (status, twin) = rest(
        &hub,
        Method::GET,
        "/twins/cli-mod/modules/telemetry-mod",
        None,
    )
    .await;
    assert_eq!(status, 200, "{twin}");
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        "wired"
    );
    assert!(
        hub.twin("cli-mod").await["properties"]["reported"]["connectivity"].is_null(),
        "the device twin is not the module's"
    );

    // Over WebSockets, in JSON mode, the module is named in the `connected` event.
    let ws_host = hub.device_connection_ws("cli-mod").host_name;
    let conn = add_module(&hub, "cli-mod", "ws-mod", &ws_host).await;
    let mut cmd = hub.command(&conn);
    cmd.args([
        "--transport",
        "mqtt-ws",
        "-o",
        "json",
        "--duration",
        "60s",
        "--method-response",
        "ping=200:\"pong\"",
    ]);
    let mut child = Running::spawn(cmd);
    let connected = child.next_event("connected", Duration::from_secs(20)).await;
    assert_eq!(connected["deviceId"], "cli-mod");
    assert_eq!(connected["moduleId"], "ws-mod");
    assert_eq!(connected["transport"], "mqtt-ws");
    let reported = child.next_event("reported", Duration::from_secs(20)).await;
    assert_eq!(reported["status"], 204);
    let (_, twin) = rest(&hub, Method::GET, "/twins/cli-mod/modules/ws-mod", None).await;
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        "cellular"
    );
    // The module answers its own methods.
    let (status, answer) = tokio::time::timeout(
        Duration::from_secs(60),
        rest(
            &hub,
            Method::POST,
            "/twins/cli-mod/modules/ws-mod/methods",
            Some(serde_json::json!({"methodName": "ping"})),
        ),
    )
    .await
    .expect("the hub answers in time");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({"status": 200, "payload": "pong"})
    );
    let event = child.next_event("method", Duration::from_secs(10)).await;
    assert_eq!(event["name"], "ping");
    child.signal("INT");
    assert_eq!(child.wait(Duration::from_secs(20)).await, Some(0));
}
