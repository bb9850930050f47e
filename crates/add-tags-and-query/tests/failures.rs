use std::time::Duration;

use iothub_auth::SharedAccessKey;

use iothub_emulator::test_support::RefusedPort;

use crate::support::{run, tutorial_hub, CliHub};

#[tokio::test]
async fn stale_etag_fails_naming_the_conflict() {
    let hub = tutorial_hub().await;
    let first = run(hub.cmd().args(["-o", "json"]), &hub.secrets()).await;
    first.assert_code(0);
    let old_etag = first.json()["twinUpdate"]["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    // change the twin so the etag moves on
    let second = run(
        hub.cmd().args(["-o", "json", "--tags", r#"{"x":1}"#]),
        &hub.secrets(),
    )
    .await;
    second.assert_code(0);
    let current = second.json()["twinUpdate"]["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old_etag, current);

    let stale = run(hub.cmd().args(["--etag", &old_etag]), &hub.secrets()).await;
    stale.assert_code(1);
    let line = stale.error_line();
    assert!(line.contains("conflict"), "{line}");
    assert!(
        line.contains(&format!("--etag \"{old_etag}\" is stale")),
        "{line}"
    );
    assert!(line.contains("412 PreconditionFailed"), "{line}");

    let fresh = run(hub.cmd().args(["--etag", &current]), &hub.secrets()).await;
    fresh.assert_code(0);
}

#[tokio::test]
async fn unknown_device_exits_4() {
    let hub = tutorial_hub().await;
    let out = run(
        hub.cmd().args(["--device-id", "noSuchDevice"]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(4);
    let line = out.error_line();
    assert!(
        line.contains("update twin 'noSuchDevice': hub answered 404 DeviceNotFound"),
        "{line}"
    );
}

#[tokio::test]
async fn wrong_key_exits_3() {
    let hub = tutorial_hub().await;
    let wrong = SharedAccessKey::generate();
    let cs = format!(
        "HostName=localhost:{};SharedAccessKeyName=iothubowner;SharedAccessKey={}",
        hub.emulator().https_port(),
        wrong.expose_base64()
    );
    let mut secrets = hub.secrets();
    secrets.push(wrong.expose_base64().to_owned());
    let out = run(hub.cmd().args(["-c", &cs]), &secrets).await;
    out.assert_code(3);
    let line = out.error_line();
    assert!(line.contains("authentication rejected"), "{line}");
    assert!(line.contains("401 IotHubUnauthorizedAccess"), "{line}");
}

#[tokio::test]
async fn unreachable_host_exits_5_in_bounded_time() {
    let hub = tutorial_hub().await;
    let refused = RefusedPort::reserve();
    let port = refused.port();
    let key = SharedAccessKey::generate();
    let cs = format!(
        "HostName=127.0.0.1:{port};SharedAccessKeyName=iothubowner;SharedAccessKey={}",
        key.expose_base64()
    );
    let out = run(
        hub.cmd().args(["-c", &cs]),
        &[key.expose_base64().to_owned()],
    )
    .await;
    out.assert_code(5);
    let line = out.error_line();
    assert!(
        line.contains(&format!("cannot reach 127.0.0.1:{port}")),
        "{line}"
    );
    assert!(line.contains("after 5 attempts"), "{line}");
    // default budget: 5 attempts with backoff of at most 0.25+0.5+1+2 s
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn malformed_connection_string_exits_2() {
    let hub = tutorial_hub().await;
    let out = run(
        hub.cmd()
            .args(["-c", "HostName=localhost;SharedAccessKeyName=iothubowner"]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(2);
    let line = out.error_line();
    assert!(line.contains("--connection-string: "), "{line}");
    assert!(
        line.contains("SharedAccessKey"),
        "names the missing field: {line}"
    );
}

#[tokio::test]
async fn device_connection_string_exits_2_with_hint() {
    let hub = tutorial_hub().await;
    let device_cs = hub
        .emulator()
        .device_connection_string("myDeviceId")
        .expect("device exists");
    let device_key = device_cs
        .split(';')
        .find_map(|p| p.strip_prefix("SharedAccessKey="))
        .unwrap()
        .to_owned();
    let mut secrets = hub.secrets();
    secrets.push(device_key);
    let out = run(hub.cmd().args(["-c", &device_cs]), &secrets).await;
    out.assert_code(2);
    let line = out.error_line();
    assert!(line.contains("device connection string"), "{line}");
    assert!(
        line.contains("service connection string"),
        "hint names what is needed: {line}"
    );
}

#[tokio::test]
async fn malformed_json_exits_2_with_position() {
    let hub = tutorial_hub().await;
    let out = run(
        hub.cmd().args(["--tags", r#"{"location": {"plant" "x"}}"#]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(2);
    let line = out.error_line();
    assert!(line.contains("--tags: invalid JSON"), "{line}");
    assert!(line.contains("line 1 column 23"), "{line}");
    assert!(out.stdout.is_empty(), "nothing sent, nothing printed");

    let out = run(hub.cmd().args(["--desired", "[1,2]"]), &hub.secrets()).await;
    out.assert_code(2);
    assert!(out.error_line().contains("must be a JSON object"));
}

#[tokio::test]
async fn malformed_query_exits_2_showing_the_position() {
    let hub = tutorial_hub().await;
    let out = run(
        hub.cmd().args([
            "--no-update",
            "--query",
            "SELECT * FROM devices WHERE tags.x = ",
        ]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(2);
    let line = out.error_line();
    assert!(
        line.contains("query 'SELECT * FROM devices WHERE tags.x ='"),
        "{line}"
    );
    assert!(line.contains("400 ArgumentInvalid"), "{line}");
    assert!(line.contains("column"), "position shown: {line}");
}

#[tokio::test]
async fn wait_times_out_with_exit_5() {
    let hub = tutorial_hub().await;
    let out = run(
        hub.cmd()
            .args(["--wait", "2s", "--expect-device", "neverThere"]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(5);
    let line = out.error_line();
    assert!(line.contains("waiting for device 'neverThere'"), "{line}");
    assert!(line.contains("Devices in Redmond43"), "{line}");
    // Room for a loaded machine: the bound only shows the wait gave up after its 2 s.
    assert!(out.elapsed < Duration::from_secs(20), "{:?}", out.elapsed);
}

#[tokio::test]
async fn untrusted_ca_exits_1_with_hint() {
    let hub = tutorial_hub().await;
    let out = run(hub.cmd().env_remove("IOTHUB_CA_FILE"), &hub.secrets()).await;
    out.assert_code(1);
    let line = out.error_line();
    assert!(line.contains("TLS handshake"), "{line}");
    assert!(line.contains("CA"), "{line}");
}

#[tokio::test]
async fn bad_ca_file_exits_2() {
    let hub = tutorial_hub().await;
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = run(hub.cmd().arg("--ca-file").arg(&not_pem), &hub.secrets()).await;
    out.assert_code(2);
    assert!(out.error_line().contains("invalid CA certificate"));
    let out = run(
        hub.cmd().args(["--ca-file", "/nonexistent/ca.pem"]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(2);
    assert!(out.error_line().contains("--ca-file: cannot read"));
}

#[tokio::test]
async fn missing_connection_string_is_a_usage_error() {
    let hub = tutorial_hub().await;
    let out = run(
        hub.cmd().env_remove("IOTHUB_CONNECTION_STRING"),
        &hub.secrets(),
    )
    .await;
    out.assert_code(2);
    assert!(out.stderr.contains("--connection-string"), "{}", out.stderr);
}

/// `--tags @FILE` reads at most 1 MiB: an endless source fails at once with exit 2, naming the
/// file and the limit, instead of growing memory without bound.
#[tokio::test]
async fn an_endless_tags_file_is_refused_with_the_limit() {
    let hub = tutorial_hub().await;
    let started = std::time::Instant::now();
    let out = run(hub.cmd().args(["--tags", "@/dev/zero"]), &hub.secrets()).await;
    out.assert_code(2);
    let line = out.error_line();
    assert!(
        line.contains("'/dev/zero' is larger than 1 MiB"),
        "the error names the file and the limit: {line}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "refused without reading the whole source"
    );
}
