//! Hub hardening (issue 12): secrets at rest are private to the owner (case 3), and a twin PUT
//! that drops desired keys sends the device `null` for each of them (case 5).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iothub_emulator::test_support::{install_crypto_provider, TestHub};
use iothub_emulator::{Emulator, EmulatorConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::support::mqtt::{Client, MqttHub};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A durable emulator in a data directory that already exists with the usual 0755, holding a
/// database left 0644 by an older version: both are tightened, and the WAL SQLite creates for
/// new writes is 0600 too.
#[tokio::test]
async fn state_files_and_data_directory_are_private() {
    install_crypto_provider();
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    set_mode(&data_dir, 0o755);
    let mut config = EmulatorConfig::for_tests(&data_dir);
    config.in_memory = false;

    let first = Emulator::start(config.clone())
        .await
        .expect("emulator starts");
    first.add_device("d1").await.unwrap();
    first.shutdown().await;
    let db = data_dir.join("state.sqlite3");
    set_mode(&data_dir, 0o755);
    set_mode(&db, 0o644);

    let second = Emulator::start(config).await.expect("emulator restarts");
    second.add_device("d2").await.unwrap();
    assert_eq!(mode(&data_dir), 0o700, "data directory");
    assert_eq!(mode(&db), 0o600, "state.sqlite3");
    let wal = data_dir.join("state.sqlite3-wal");
    assert!(wal.exists(), "a write leaves a WAL while the store is open");
    assert_eq!(mode(&wal), 0o600, "state.sqlite3-wal");
    let shm = data_dir.join("state.sqlite3-shm");
    if shm.exists() {
        assert_eq!(mode(&shm), 0o600, "state.sqlite3-shm");
    }
    second.shutdown().await;
}

/// A fresh data directory (and its missing parents) is created 0700; the ready file, which
/// holds the service and device connection strings, is 0600.
#[test]
fn binary_creates_a_private_data_directory_and_ready_file() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("new").join("data");
    let ready_file = parent.path().join("ready.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_iothub-emulator"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args([
            "--https-port",
            "0",
            "--mqtt-port",
            "0",
            "--amqp-port",
            "0",
            "--device",
            "d1",
        ])
        .arg("--ready-file")
        .arg(&ready_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("emulator binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let modes = ready_file.exists().then(|| {
        (
            mode(&ready_file),
            mode(&data_dir),
            mode(&data_dir.join("state.sqlite3")),
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        modes,
        Some((0o600, 0o700, 0o600)),
        "(ready file, data dir, database)"
    );
}

/// RFC 7386 merge, as device SDKs apply desired patches.
fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(child) => {
                let slot = target.entry(key.clone()).or_insert_with(|| json!({}));
                if !slot.is_object() {
                    *slot = json!({});
                }
                if let Value::Object(existing) = slot {
                    merge(existing, child);
                }
            }
            leaf => {
                target.insert(key.clone(), leaf.clone());
            }
        }
    }
}

async fn put_desired(hub: &TestHub, id: &str, desired: Value) -> Value {
    let response = hub
        .request(Method::PUT, &format!("/twins/{id}"), "iothubowner")
        .header("if-match", "\"*\"")
        .header("content-type", "application/json")
        .body(json!({"properties": {"desired": desired}}).to_string())
        .send()
        .await
        .expect("PUT twin completes");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("twin JSON")
}

/// Applies the next desired push to `held`; returns the push's `$version`.
async fn apply_push(client: &Client, held: &mut Map<String, Value>) -> u64 {
    let push = client
        .expect_publish("$iothub/twin/PATCH/properties/desired/")
        .await;
    let Value::Object(mut patch) = serde_json::from_slice(&push.payload).expect("JSON patch")
    else {
        panic!("a desired patch is an object");
    };
    let version = patch
        .remove("$version")
        .and_then(|v| v.as_u64())
        .expect("$version");
    assert_eq!(
        push.topic,
        format!("$iothub/twin/PATCH/properties/desired/?$version={version}")
    );
    merge(held, &patch);
    version
}

fn desired_content(twin: &Value) -> Map<String, Value> {
    let mut desired = twin["properties"]["desired"].as_object().cloned().unwrap();
    desired.remove("$metadata");
    desired.remove("$version");
    desired
}

/// A device that merges desired patches holds exactly the desired section the service PUT,
/// also when the PUT dropped keys at the top level or inside an object, or all of them.
#[tokio::test]
async fn twin_put_with_fewer_desired_keys_pushes_nulls_for_the_removed_ones() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;
    let mut held = Map::new();

    let steps = [
        json!({"mode": "eco", "cfg": {"a": 1, "b": 2}, "gone": true}),
        json!({"cfg": {"a": 1}}),
        json!({}),
    ];
    for desired in steps {
        let twin = put_desired(&hub, "d1", desired.clone()).await;
        let version = apply_push(&client, &mut held).await;
        assert_eq!(twin["properties"]["desired"]["$version"], version);
        assert_eq!(
            Value::Object(held.clone()),
            desired,
            "device view after the push"
        );
        assert_eq!(
            desired_content(&twin),
            held,
            "service view equals device view"
        );
    }
    assert!(held.is_empty());
}

/// A service PATCH that sends a whole section as `null` clears it, as the real hub does: the
/// versions advance, and a device that merges desired patches ends with an empty desired
/// section, told by a patch that sets every removed key to `null` with the new `$version`.
#[tokio::test]
async fn a_patch_with_null_sections_clears_them_and_the_device_follows() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;
    let mut held = Map::new();

    let (status, seeded) = send(
        &hub,
        Method::PATCH,
        "/twins/d1",
        json!({"tags": {"site": "x", "deep": {"a": 1}},
               "properties": {"desired": {"mode": "eco", "cfg": {"a": 1}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{seeded}");
    apply_push(&client, &mut held).await;
    assert_eq!(
        Value::Object(held.clone()),
        json!({"mode": "eco", "cfg": {"a": 1}})
    );

    let (status, cleared) = send(
        &hub,
        Method::PATCH,
        "/twins/d1",
        json!({"tags": null, "properties": {"desired": null}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(
        cleared
            .get("tags")
            .is_none_or(|t| t.as_object().is_some_and(Map::is_empty)),
        "tags are gone: {cleared}"
    );
    assert!(desired_content(&cleared).is_empty(), "{cleared}");
    assert!(
        cleared["version"].as_u64() > seeded["version"].as_u64(),
        "the twin version advances"
    );
    let push = client
        .expect_publish("$iothub/twin/PATCH/properties/desired/")
        .await;
    let patch: Value = serde_json::from_slice(&push.payload).expect("JSON patch");
    let version = cleared["properties"]["desired"]["$version"].clone();
    assert_eq!(
        patch,
        json!({"mode": null, "cfg": null, "$version": version}),
        "every removed key is sent as null with the new $version"
    );
    let Value::Object(mut patch) = patch else {
        unreachable!()
    };
    patch.remove("$version");
    merge(&mut held, &patch);
    assert!(held.is_empty(), "the device holds an empty desired section");
    assert_eq!(desired_content(&hub.twin("d1").await), held);
}

async fn send(hub: &TestHub, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let response = hub
        .request(method, path, "iothubowner")
        .header("if-match", "\"*\"")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request completes");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn query_ids(hub: &TestHub, query: &str) -> Vec<String> {
    let (status, body) = send(
        hub,
        Method::POST,
        "/devices/query",
        json!({ "query": query }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("query result is an array")
        .iter()
        .map(|twin| twin["deviceId"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A twin PATCH whose commit fails (a full disk) is answered 500 and is never seen: GET, query,
/// the device and the restarted hub all hold the last committed twin. Later writes are refused
/// (fail-stop) rather than built on a state that memory and disk do not share.
#[tokio::test]
async fn a_write_that_fails_to_commit_is_never_seen() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let hub = TestHub::durable_in(&data_dir).await;
    let device = hub.device("d1").await;
    let client = hub.connect(&device).await;
    client.subscribe_twin().await;
    hub.patch_desired("d1", json!({"mode": "eco"})).await;
    let committed_version = apply_push(&client, &mut Map::new()).await;
    let before = hub.twin("d1").await;
    assert_eq!(
        before["properties"]["desired"]["$version"],
        committed_version
    );

    hub.emulator().fail_next_commit();
    let patch = json!({"tags": {"site": "x"}, "properties": {"desired": {"mode": "boost"}}});
    let (status, body) = send(&hub, Method::PATCH, "/twins/d1", patch.clone()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");

    let after = hub.twin("d1").await;
    for field in ["etag", "version", "tags"] {
        assert_eq!(
            after[field], before[field],
            "{field} after the failed PATCH"
        );
    }
    assert_eq!(
        after["properties"]["desired"],
        before["properties"]["desired"]
    );
    assert!(query_ids(
        &hub,
        "SELECT * FROM devices WHERE properties.desired.mode = 'boost'"
    )
    .await
    .is_empty());
    assert_eq!(
        query_ids(
            &hub,
            "SELECT * FROM devices WHERE properties.desired.mode = 'eco'"
        )
        .await,
        ["d1"]
    );
    // The device's own GET is answered after anything the hub published before it.
    client
        .client
        .publish(
            "$iothub/twin/GET/?$rid=after",
            rumqttc::QoS::AtMostOnce,
            false,
            "",
        )
        .await
        .unwrap();
    loop {
        match client.next().await {
            Some(Ok(rumqttc::Packet::Publish(p))) => {
                assert!(
                    !p.topic
                        .starts_with("$iothub/twin/PATCH/properties/desired/"),
                    "the device got an uncommitted desired patch: {p:?}"
                );
                if p.topic.starts_with("$iothub/twin/res/200/") {
                    let twin: Value = serde_json::from_slice(&p.payload).unwrap();
                    assert_eq!(twin["desired"]["mode"], "eco");
                    assert_eq!(twin["desired"]["$version"], committed_version);
                    break;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("expected the twin GET response, got {other:?}"),
        }
    }
    // Fail-stop: no later write lands on a state that memory and disk do not share.
    let (status, body) = send(&hub, Method::PATCH, "/twins/d1", patch).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.to_string().contains("restart"), "{body}");
    assert_eq!(hub.twin("d1").await["etag"], before["etag"]);
    drop(client);
    hub.shutdown().await;

    let restarted = TestHub::durable_in(&data_dir).await;
    let reloaded = restarted.twin("d1").await;
    for field in ["etag", "version", "tags"] {
        assert_eq!(reloaded[field], before[field], "{field} after the restart");
    }
    assert_eq!(
        reloaded["properties"]["desired"],
        before["properties"]["desired"]
    );
    restarted.shutdown().await;
}
