use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::{assert_no_secrets, run, tutorial_hub, CliHub, Run};

const STATS_2: [&str; 3] = [
    "Total device count                       : 2",
    "Enabled device count                     : 2",
    "Disabled device count                    : 0",
];

#[tokio::test]
async fn tutorial_transcript_before_and_after_connectivity() {
    let hub = tutorial_hub().await;

    let first = run(hub.cmd(), &hub.secrets()).await;
    first.assert_code(0);
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(
        lines[..4],
        [STATS_2[0], STATS_2[1], STATS_2[2], ""],
        "{}",
        first.stdout
    );
    assert_eq!(
        first.section("Device list"),
        [
            "myDeviceId                               : enabled, Disconnected",
            "otherDevice                              : enabled, Disconnected",
        ]
    );
    assert!(
        first
            .stdout
            .contains("\nUpdated twin of myDeviceId               : etag "),
        "{}",
        first.stdout
    );
    assert_eq!(first.section("Devices in Redmond43"), ["myDeviceId"]);
    assert!(first
        .section("Devices in Redmond43 using cellular network")
        .is_empty());
    assert!(first.stderr.is_empty(), "{}", first.stderr);

    hub.report_cellular("myDeviceId").await;

    let second = run(hub.cmd(), &hub.secrets()).await;
    second.assert_code(0);
    assert_eq!(second.section("Devices in Redmond43"), ["myDeviceId"]);
    assert_eq!(
        second.section("Devices in Redmond43 using cellular network"),
        ["myDeviceId"]
    );
}

#[tokio::test]
async fn json_output_is_one_document_with_documented_fields() {
    let hub = tutorial_hub().await;
    hub.report_cellular("myDeviceId").await;
    let out = run(hub.cmd().args(["-o", "json"]), &hub.secrets()).await;
    out.assert_code(0);
    let doc = out.json();
    assert_eq!(doc["schemaVersion"], 1);
    assert_eq!(
        doc["hub"],
        format!("localhost:{}", hub.emulator().https_port())
    );
    assert_eq!(
        doc["statistics"],
        json!({"totalDeviceCount": 2, "enabledDeviceCount": 2, "disabledDeviceCount": 0})
    );
    let ids: Vec<&str> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["myDeviceId", "otherDevice"]);
    assert_eq!(doc["devices"][0]["status"], "enabled");
    assert_eq!(doc["devices"][0]["connectionState"], "Disconnected");
    let update = &doc["twinUpdate"];
    assert_eq!(update["deviceId"], "myDeviceId");
    assert_eq!(
        update["tags"],
        json!({"location": {"region": "US", "plant": "Redmond43"}})
    );
    assert!(update["etag"].is_string() && update["version"].is_u64());
    let queries = doc["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0]["heading"], "Devices in Redmond43");
    assert_eq!(
        queries[0]["query"],
        "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'"
    );
    assert_eq!(
        queries[1]["heading"],
        "Devices in Redmond43 using cellular network"
    );
    for q in queries {
        assert_eq!(q["itemType"], "Twin");
        assert_eq!(q["deviceIds"], json!(["myDeviceId"]));
        assert_eq!(q["rowCount"], 1);
        assert_eq!(q["rows"], Value::Null);
        assert_eq!(q["pages"], 1);
        assert_eq!(q["requests"], 1);
    }
    assert_eq!(doc["wait"], Value::Null);
}

#[tokio::test]
async fn tags_and_desired_from_file_and_inline() {
    let hub = tutorial_hub().await;
    let dir = tempfile::tempdir().unwrap();
    let tags = dir.path().join("tags.json");
    std::fs::write(
        &tags,
        r#"{"location": {"region": "EU", "plant": "Delft7"}}"#,
    )
    .unwrap();
    let out = run(
        hub.cmd()
            .args([
                "-o",
                "json",
                "--device-id",
                "otherDevice",
                "--desired",
                r#"{"power": 3}"#,
            ])
            .arg("--tags")
            .arg(format!("@{}", tags.display())),
        &hub.secrets(),
    )
    .await;
    out.assert_code(0);
    let doc = out.json();
    assert_eq!(doc["twinUpdate"]["tags"]["location"]["plant"], "Delft7");
    assert_eq!(doc["twinUpdate"]["desiredVersion"], 2);
    // otherDevice is not in Redmond43
    assert_eq!(doc["queries"][0]["deviceIds"], json!([]));
}

#[tokio::test]
async fn aggregates_print_as_tables() {
    let hub = tutorial_hub().await;
    let out = run(
        hub.cmd().args([
            "--no-update",
            "--no-list",
            "--query",
            "SELECT COUNT() AS total FROM devices",
            "--query",
            "SELECT status, COUNT() AS n FROM devices GROUP BY status",
        ]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(0);
    assert_eq!(
        out.section("Results of SELECT COUNT() AS total FROM devices"),
        ["total", "-----", "2"]
    );
    assert_eq!(
        out.section("Results of SELECT status, COUNT() AS n FROM devices GROUP BY status"),
        ["status   n", "-------  -", "enabled  2"]
    );
    assert!(!out.stdout.contains("Device list:"));
    assert!(!out.stdout.contains("Updated twin"));
}

#[tokio::test]
async fn thousand_matches_in_ten_requests_through_the_cli() {
    let hub = tutorial_hub().await;
    for i in 0..998 {
        hub.emulator()
            .add_device(&format!("bulk-{i:04}"))
            .await
            .unwrap();
    }
    let out = run(
        hub.cmd().args([
            "-o",
            "json",
            "--no-update",
            "--no-list",
            "--page-size",
            "100",
            "--query",
            "SELECT * FROM devices",
        ]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(0);
    let doc = out.json();
    let q = &doc["queries"][0];
    assert_eq!(q["rowCount"], 1000);
    assert_eq!(q["pages"], 10);
    assert_eq!(q["requests"], 10);
    let ids: BTreeSet<&str> = q["deviceIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1000, "each device exactly once");
    assert_eq!(doc["statistics"]["totalDeviceCount"], 1000);
}

#[tokio::test]
async fn top_caps_queries_and_the_device_list() {
    let hub = tutorial_hub().await;
    let out = run(
        hub.cmd().args([
            "-o",
            "json",
            "--no-update",
            "--top",
            "1",
            "--query",
            "SELECT * FROM devices",
        ]),
        &hub.secrets(),
    )
    .await;
    out.assert_code(0);
    let doc = out.json();
    assert_eq!(doc["devices"].as_array().unwrap().len(), 1);
    assert_eq!(doc["queries"][0]["rowCount"], 1);
    assert_eq!(doc["queries"][0]["requests"], 1);
}

#[tokio::test]
async fn survives_two_throttled_twin_calls() {
    let hub = tutorial_hub().await;
    hub.emulator().faults().fail_next_twin_operations(2, 429);
    let out = run(hub.cmd().arg("-v"), &hub.secrets()).await;
    out.assert_code(0);
    assert_eq!(out.section("Devices in Redmond43"), ["myDeviceId"]);
    assert!(
        out.stderr.contains("retrying"),
        "retries are logged with -v:\n{}",
        out.stderr
    );
}

#[tokio::test]
async fn wait_polls_until_the_device_reports() {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

    let hub = tutorial_hub().await;
    let mut child = hub
        .tokio_cmd()
        .args(["-v", "-o", "json", "--wait", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut stdout = child.stdout.take().expect("stdout piped");
    let stdout_task = tokio::spawn(async move {
        let mut text = String::new();
        stdout.read_to_string(&mut text).await.map(|_| text)
    });
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let mut log = String::new();
    // Report connectivity only once the command has seen the device missing, so the run
    // necessarily polls more than once.
    let mut reported = false;
    while let Some(line) = stderr.next_line().await.expect("stderr readable") {
        log.push_str(&line);
        log.push('\n');
        if !reported && line.contains("polling again") {
            hub.report_cellular("myDeviceId").await;
            reported = true;
        }
    }
    let status = child.wait().await.expect("binary exits");
    let out = Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout_task.await.expect("join").expect("stdout readable"),
        stderr: log,
        elapsed: std::time::Duration::ZERO,
    };
    assert_no_secrets(&out, &hub.secrets());
    out.assert_code(0);
    let doc = out.json();
    assert_eq!(doc["wait"]["expectDevice"], "myDeviceId");
    assert!(
        doc["wait"]["attempts"].as_u64().unwrap() >= 2,
        "{}",
        doc["wait"]
    );
    assert_eq!(doc["queries"][0]["deviceIds"], json!(["myDeviceId"]));
    assert_eq!(doc["queries"][1]["deviceIds"], json!(["myDeviceId"]));
}

#[tokio::test]
async fn help_documents_the_json_schema_and_exit_codes() {
    let hub = tutorial_hub().await;
    let out = run(hub.cmd().arg("--help"), &hub.secrets()).await;
    out.assert_code(0);
    for needle in [
        "schemaVersion",
        "deviceIds",
        "EXIT CODES",
        "--expect-device",
        "IOTHUB_CA_FILE",
    ] {
        assert!(out.stdout.contains(needle), "{needle} missing from --help");
    }
}

#[tokio::test]
async fn verbose_logs_never_show_secrets() {
    let hub = tutorial_hub().await;
    let out = run(hub.cmd().arg("-vv"), &hub.secrets()).await;
    out.assert_code(0);
    assert!(
        out.stderr.contains("request"),
        "-vv logs requests:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("SharedAccessSignature"));
}

/// A minimal HTTP CONNECT proxy on 127.0.0.1 that tunnels to `target` and counts tunnels.
async fn connect_proxy(target: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&tunnels);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                if !head.starts_with(b"CONNECT ") {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (port, tunnels)
}

#[tokio::test]
async fn https_proxy_environment_is_honoured() {
    let hub = tutorial_hub().await;
    let (proxy_port, tunnels) = connect_proxy(hub.emulator().https_port()).await;
    let out = run(
        hub.cmd()
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("HTTPS_PROXY", &format!("http://127.0.0.1:{proxy_port}")),
        &hub.secrets(),
    )
    .await;
    out.assert_code(0);
    assert_eq!(out.section("Devices in Redmond43"), ["myDeviceId"]);
    assert!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "requests went through the proxy"
    );
}
