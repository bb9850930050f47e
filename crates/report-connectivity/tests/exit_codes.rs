//! Exit codes and messages of the documented failures, and `--help`; no output shows a key.

use std::time::Duration;

use iothub_auth::{DeviceConnectionString, SharedAccessKey};
use iothub_emulator::test_support::{RefusedPort, TestHub};

use crate::support::{run, unreachable_connection_string, CliHub};

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_exit_3_at_once() {
    let hub = TestHub::start().await;
    let conn: DeviceConnectionString = hub
        .emulator()
        .add_device("cli-badkey")
        .await
        .expect("device")
        .parse()
        .expect("device string");
    let wrong = DeviceConnectionString::with_key(
        conn.host_name.clone(),
        conn.device_id.clone(),
        SharedAccessKey::generate(),
    );
    let wrong_text = wrong.expose_connection_string();
    let key = match &wrong.credential {
        iothub_auth::DeviceCredential::SharedAccessKey(k) => k.expose_base64().to_owned(),
        _ => unreachable!("built with a key"),
    };
    let mut cmd = hub.command(&wrong_text);
    // Far beyond the bound below: a retried refusal would only end at the timeout.
    cmd.args(["--timeout", "60s"]);
    let out = run(cmd, Duration::from_secs(90)).await;
    assert_eq!(out.code, Some(3), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(20),
        "took {:?}",
        out.elapsed
    );
    assert!(out.stderr.contains("rejected"), "{}", out.stderr);
    assert!(
        !out.stderr.contains(&key) && !out.stdout.contains(&key),
        "key leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_hub_exits_5_after_the_timeout() {
    let hub = TestHub::start().await;
    let refused = RefusedPort::reserve();
    let conn = unreachable_connection_string(&refused);
    let mut cmd = hub.command(&conn);
    cmd.args(["--once", "--timeout", "2s"]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(5), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed >= Duration::from_secs(2) && out.elapsed < Duration::from_secs(15),
        "took {:?}",
        out.elapsed
    );
    assert!(out.stderr.contains("could not connect"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_connection_string_is_invalid_input_with_a_hint() {
    let hub = TestHub::start().await;
    let service = hub.emulator().service_connection_string();
    let out = run(hub.command(&service), Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("service connection string"),
        "{}",
        out.stderr
    );
    let key = service
        .rsplit_once("SharedAccessKey=")
        .map(|(_, k)| k)
        .expect("key");
    assert!(
        !out.stderr.contains(key) && !out.stdout.contains(key),
        "key leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_the_hub_rejects_is_invalid_input() {
    let hub = TestHub::start().await;
    let conn = hub
        .emulator()
        .add_device("cli-badpatch")
        .await
        .expect("device");
    let mut cmd = hub.command(&conn);
    // '.' is not allowed in twin property names.
    cmd.args(["--once", "--reported", r#"{"a.b": 1}"#]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(
        out.code,
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stderr.contains("400"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_does_not_show_the_connection_string_from_the_environment() {
    let hub = TestHub::start().await;
    let conn = hub.emulator().add_device("cli-help").await.expect("device");
    let mut cmd = hub.command(&conn);
    cmd.arg("--help");
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("--connection-string"), "{}", out.stdout);
    let key = conn
        .rsplit_once("SharedAccessKey=")
        .map(|(_, k)| k)
        .expect("key");
    assert!(!out.stdout.contains(key), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("[env: IOTHUB_DEVICE_CONNECTION_STRING]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Exit codes"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_reported_file_is_refused_with_the_limit() {
    let hub = TestHub::start().await;
    let conn = hub
        .emulator()
        .add_device("cli-endless-file")
        .await
        .expect("device");
    let mut cmd = hub.command(&conn);
    cmd.args(["--once", "--reported", "@/dev/zero"]);
    let out = run(cmd, Duration::from_secs(60)).await;
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("'/dev/zero' is larger than 1 MiB"),
        "the error names the file and the limit: {}",
        out.stderr
    );
}
