//! The `report-connectivity` binary against an in-process emulator: exit codes, output, and
//! the twin as seen through the service REST API.

use std::process::Stdio;
use std::time::{Duration, Instant};

use iothub_auth::{DeviceConnectionString, ServiceConnectionString, SharedAccessKey};
use iothub_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_report-connectivity");

struct Hub {
    emulator: RunningEmulator,
    http: reqwest::Client,
    service: ServiceConnectionString,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start() -> Hub {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let emulator = Emulator::start(EmulatorConfig::for_tests(dir.path()))
            .await
            .expect("emulator starts");
        let ca = reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).expect("CA");
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let service = emulator
            .service_connection_string()
            .parse()
            .expect("service string");
        Hub {
            emulator,
            http,
            service,
            _dir: dir,
        }
    }

    /// A command for the binary with the emulator's CA and a clean environment.
    fn command(&self, connection_string: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("IOTHUB_CA_FILE", self.emulator.ca_file())
            .env("IOTHUB_DEVICE_CONNECTION_STRING", connection_string)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    fn url(&self, id: &str) -> String {
        format!(
            "https://{}:{}/twins/{id}?api-version=2021-04-12",
            self.emulator.hostname(),
            self.emulator.https_port()
        )
    }

    fn auth(&self) -> String {
        self.service
            .sas_token(Duration::from_secs(600))
            .as_str()
            .to_owned()
    }

    async fn rest_twin(&self, id: &str) -> Value {
        let response = self
            .http
            .get(self.url(id))
            .header("Authorization", self.auth())
            .send()
            .await
            .expect("GET twin");
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.expect("twin JSON")
    }

    async fn patch_desired(&self, id: &str, desired: Value) {
        let response = self
            .http
            .patch(self.url(id))
            .header("Authorization", self.auth())
            .json(&json!({ "properties": { "desired": desired } }))
            .send()
            .await
            .expect("PATCH twin");
        assert!(response.status().is_success(), "{}", response.status());
    }
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

async fn run(mut cmd: Command, limit: Duration) -> Output {
    let started = Instant::now();
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .expect("the binary finishes in time")
        .expect("the binary runs");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A device connection string for a local port with nothing listening on it.
fn unreachable_connection_string() -> String {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    DeviceConnectionString::with_key(
        format!("localhost:{port}"),
        "nobody",
        SharedAccessKey::generate(),
    )
    .expose_connection_string()
}

/// Reads stdout lines of a long-running child.
struct Running {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().expect("spawn");
        let stdout = child.stdout.take().expect("piped stdout");
        Running {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    async fn next_line(&mut self, limit: Duration) -> String {
        tokio::time::timeout(limit, self.lines.next_line())
            .await
            .expect("a line in time")
            .expect("read stdout")
            .expect("stdout still open")
    }

    /// Next JSON line whose `event` is `name`.
    async fn next_event(&mut self, name: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let line = self
                .next_line(deadline.saturating_duration_since(Instant::now()))
                .await;
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if value["event"] == name {
                return value;
            }
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        // The shell's built-in `kill`: no extra crate, and no reliance on a kill binary.
        let status = std::process::Command::new("sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "sh", name, &pid])
            .status()
            .expect("sh runs");
        assert!(status.success());
    }

    async fn wait(&mut self, limit: Duration) -> Option<i32> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait")
            .code()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn once_sets_the_reported_connectivity() {
    let hub = Hub::start().await;
    let conn = hub.emulator.add_device("cli-once").await.expect("device");
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

    let twin = hub.rest_twin("cli-once").await;
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
    let hub = Hub::start().await;
    let conn = hub.emulator.add_device("cli-json").await.expect("device");
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
    let twin = hub.rest_twin("cli-json").await;
    assert_eq!(twin["properties"]["reported"]["firmware"], "1.2.3");
    assert_eq!(twin["properties"]["reported"]["$version"], doc["version"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn once_over_websockets() {
    let hub = Hub::start().await;
    hub.emulator.add_device("cli-ws").await.expect("device");
    let conn = hub
        .emulator
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
    let twin = hub.rest_twin("cli-ws").await;
    assert_eq!(
        twin["properties"]["reported"]["connectivity"]["type"],
        "wifi"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn long_running_mode_prints_desired_patches_within_a_second() {
    let hub = Hub::start().await;
    let conn = hub.emulator.add_device("cli-listen").await.expect("device");
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
        let desired = child.next_event("desired", Duration::from_secs(1)).await;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "patch {i} took {:?}",
            sent.elapsed()
        );
        assert_eq!(desired["kind"], "patch");
        assert_eq!(desired["properties"]["telemetryInterval"], interval);
        assert!(desired["version"].is_u64());
    }

    // A lost connection is reported, recovered, and desired patches keep coming.
    hub.emulator.faults().drop_device_connection("cli-listen");
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
    let desired = child.next_event("desired", Duration::from_secs(2)).await;
    assert_eq!(desired["properties"]["telemetryInterval"], 20);

    child.signal("INT");
    let stopped = child.next_event("stopped", Duration::from_secs(10)).await;
    assert_eq!(stopped["reason"], "ctrl-c");
    assert_eq!(child.wait(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_mode_follows_the_tutorial_and_stops_after_the_duration() {
    let hub = Hub::start().await;
    let conn = hub.emulator.add_device("cli-text").await.expect("device");
    let mut cmd = hub.command(&conn);
    cmd.args(["--duration", "3s"]);
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
        let line = child.next_line(Duration::from_secs(10)).await;
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
async fn bad_credentials_exit_3_at_once() {
    let hub = Hub::start().await;
    let conn: DeviceConnectionString = hub
        .emulator
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
    cmd.args(["--timeout", "20s"]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(3), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(5),
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
    let hub = Hub::start().await;
    let conn = unreachable_connection_string();
    let mut cmd = hub.command(&conn);
    cmd.args(["--once", "--timeout", "2s"]);
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(5), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed >= Duration::from_secs(2) && out.elapsed < Duration::from_secs(6),
        "took {:?}",
        out.elapsed
    );
    assert!(out.stderr.contains("could not connect"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_connection_string_is_invalid_input_with_a_hint() {
    let hub = Hub::start().await;
    let service = hub.emulator.service_connection_string();
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
async fn help_does_not_show_the_connection_string_from_the_environment() {
    let hub = Hub::start().await;
    let conn = hub.emulator.add_device("cli-help").await.expect("device");
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
async fn a_patch_the_hub_rejects_is_invalid_input() {
    let hub = Hub::start().await;
    let conn = hub
        .emulator
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
async fn ctrl_c_while_still_connecting_stops_promptly() {
    let hub = Hub::start().await;
    let conn = unreachable_connection_string();
    let mut cmd = hub.command(&conn);
    cmd.args(["--timeout", "30s"]);
    let mut child = Running::spawn(cmd);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    child.signal("INT");
    assert_eq!(child.wait(Duration::from_secs(5)).await, Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
