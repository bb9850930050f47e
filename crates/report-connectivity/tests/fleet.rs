//! `--fleet`: devices created in bulk and cleaned up, a mass drop survived with spread-out
//! reconnects, injected throttling honoured, and `--devices-file` errors.

use std::time::Duration;

use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::Value;

use crate::support::{rest, run, CliHub, Running};

/// Room for a loaded 2-core machine; how fast a fleet really is belongs in the benchmarks.
const FLEET_LIMIT: Duration = Duration::from_secs(120);

async fn device_count(hub: &TestHub) -> u64 {
    let (status, stats) = rest(hub, Method::GET, "/statistics/devices", None).await;
    assert_eq!(status, 200, "{stats}");
    stats["totalDeviceCount"].as_u64().expect("a count")
}

fn summary_of(stdout: &str) -> Value {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"))
}

fn service_string(hub: &TestHub) -> String {
    hub.service_connection().expose_connection_string()
}

/// The emulator's MQTT `HostName` for the created devices (its HTTPS port differs).
fn device_host(hub: &TestHub) -> String {
    format!(
        "{}:{}",
        hub.emulator().hostname(),
        hub.emulator().mqtt_port()
    )
}

#[tokio::test]
async fn two_hundred_devices_are_created_run_and_cleaned_up() {
    let hub = TestHub::start().await;
    let before = device_count(&hub).await;
    let mut cmd = hub.command(&service_string(&hub));
    cmd.args([
        "--fleet",
        "200",
        "--create-devices",
        "fleet200",
        "--device-host",
        &device_host(&hub),
        "--cleanup",
        "--once",
        "-o",
        "json",
    ]);
    let out = run(cmd, FLEET_LIMIT).await;
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let summary = summary_of(&out.stdout);
    assert_eq!(summary["devices"]["target"], 200, "{summary}");
    assert_eq!(summary["devices"]["failed"], 0, "{summary}");
    assert_eq!(summary["connects"], 200, "{summary}");
    assert_eq!(summary["twinGets"], 200, "{summary}");
    assert_eq!(summary["reportedAcked"], 200, "{summary}");
    assert_eq!(summary["latencyMs"]["reportedPatch"]["count"], 200);
    assert!(summary["latencyMs"]["connect"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["cleanup"]["deleted"], 200, "{summary}");
    assert_eq!(summary["stopped"], "once");
    let created = out
        .stdout
        .lines()
        .find(|l| l.contains("\"created\""))
        .expect("a created event");
    assert!(created.contains("\"devices\":200"), "{created}");
    // No key of the created devices or the service policy is printed.
    for secret in hub.secrets() {
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret));
    }
    assert_eq!(
        device_count(&hub).await,
        before,
        "cleanup restores the count"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn after_a_mass_drop_every_device_reconnects_spread_over_the_backoff() {
    const N: u64 = 100;
    // The first reconnect delay is drawn from [1 s, 2 s]: the reconnects must spread over a good
    // part of that second rather than arrive together.
    const BACKOFF_MS: u64 = 2000;
    let hub = TestHub::start().await;
    let before = device_count(&hub).await;
    let mut cmd = hub.command(&service_string(&hub));
    cmd.args([
        "--fleet",
        &N.to_string(),
        "--create-devices",
        "drop",
        "--device-host",
        &device_host(&hub),
        "--cleanup",
        "--reconnect-backoff",
        &format!("{BACKOFF_MS}ms"),
        "--max-connecting",
        "20",
        "--metrics-listen",
        "127.0.0.1:0",
        "-o",
        "json",
    ]);
    let mut fleet = Running::spawn(cmd);
    let listening = fleet.next_event("metrics_listening", FLEET_LIMIT).await;
    let metrics_url = format!("http://{}/metrics", listening["address"].as_str().unwrap());
    let first = fleet.next_event("all_connected", FLEET_LIMIT).await;
    assert_eq!(first["reconnects"], 0, "{first}");
    for i in 0..N {
        let path = format!("/$emulator/faults/drop-connection/drop-{i:05}");
        let (status, body) = rest(&hub, Method::POST, &path, None).await;
        assert!(status < 300, "{path}: {status} {body}");
    }
    // Connected again, every one of them.
    loop {
        let event = fleet.next_event("all_connected", FLEET_LIMIT).await;
        if event["reconnects"].as_u64().unwrap() >= N {
            break;
        }
    }
    // The Prometheus endpoint shows the same counters while the fleet runs.
    let text = reqwest::get(&metrics_url)
        .await
        .expect("metrics endpoint answers")
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!("report_connectivity_devices_connected {N}\n")),
        "{text}"
    );
    let reconnects: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("report_connectivity_reconnects_total "))
        .expect("a reconnect counter")
        .parse()
        .unwrap();
    assert!(reconnects >= N, "{text}");
    fleet.signal("TERM");
    let summary = fleet.next_event("summary", FLEET_LIMIT).await;
    assert_eq!(fleet.wait(FLEET_LIMIT).await, Some(0));
    assert!(summary["reconnects"].as_u64().unwrap() >= N, "{summary}");
    assert_eq!(summary["devices"]["connected"], N, "{summary}");
    assert_eq!(summary["devices"]["failed"], 0, "{summary}");
    assert_eq!(summary["stopped"], "sigterm");
    let window = &summary["reconnectWindow"];
    let spread = window["lastMs"].as_u64().unwrap() - window["firstMs"].as_u64().unwrap();
    assert!(
        spread >= BACKOFF_MS / 8,
        "reconnects within {spread} ms of each other: {summary}"
    );
    assert_eq!(device_count(&hub).await, before);
    hub.shutdown().await;
}

#[tokio::test]
async fn injected_throttling_is_backed_off_and_every_device_finishes() {
    const N: usize = 20;
    const THROTTLED: u32 = 30;
    let hub = TestHub::start().await;
    let ids: Vec<String> = (0..N).map(|i| format!("throttled-{i}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devices.txt");
    let mut lines = vec!["# one device connection string a line".to_owned()];
    for id in &ids {
        lines.push(hub.add_device(id).await.expose_connection_string());
        lines.push(String::new());
    }
    std::fs::write(&file, lines.join("\n")).unwrap();
    hub.emulator()
        .faults()
        .fail_next_twin_operations(THROTTLED, 429);
    let mut cmd = hub.command("");
    cmd.env_remove("IOTHUB_DEVICE_CONNECTION_STRING").args([
        "--fleet",
        &N.to_string(),
        "--devices-file",
        file.to_str().unwrap(),
        "--once",
        "-o",
        "json",
    ]);
    let out = run(cmd, FLEET_LIMIT).await;
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let summary = summary_of(&out.stdout);
    assert_eq!(summary["reportedAcked"], N, "{summary}");
    assert_eq!(summary["devices"]["failed"], 0, "{summary}");
    let throttled = summary["errors"]["throttled"].as_u64().unwrap_or(0);
    assert_eq!(throttled, u64::from(THROTTLED), "{summary}");
    // A throttled request waits before it is retried (at least half a second).
    let slowest = [
        &summary["latencyMs"]["twinGet"],
        &summary["latencyMs"]["reportedPatch"],
    ]
    .iter()
    .map(|l| l["max"].as_f64().unwrap())
    .fold(0.0, f64::max);
    assert!(slowest >= 450.0, "{summary}");
    for id in &ids {
        assert_eq!(
            hub.twin(id).await["properties"]["reported"]["connectivity"]["type"],
            "cellular"
        );
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_bad_devices_file_line_is_named_without_echoing_it() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devices.txt");
    let good = hub.add_device("good").await.expose_connection_string();
    let secret = "bm90LWEtcmVhbC1rZXktYnV0LXNlY3JldA==";
    std::fs::write(
        &file,
        format!("{good}\n\nHostName=h;DeviceId=x;SharedAccessKey={secret};Bogus=1\n"),
    )
    .unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let mut cmd = hub.command("");
    cmd.args(["--fleet", "2", "--devices-file", &file_arg]);
    let out = run(cmd, FLEET_LIMIT).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("line 3"), "{}", out.stderr);
    assert!(!out.stderr.contains(secret), "{}", out.stderr);

    std::fs::write(&file, format!("{good}\n")).unwrap();
    let mut cmd = hub.command("");
    cmd.args(["--fleet", "2", "--devices-file", &file_arg]);
    let out = run(cmd, FLEET_LIMIT).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("holds 1 device connection strings"),
        "{}",
        out.stderr
    );

    let mut cmd = hub.command("");
    cmd.args(["--fleet", "2"]);
    let out = run(cmd, FLEET_LIMIT).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--devices-file"), "{}", out.stderr);
    hub.shutdown().await;
}
