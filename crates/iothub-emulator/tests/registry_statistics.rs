//! `GET /statistics/devices` follows every registry write, including a write whose commit fails
//! and is rolled back, and reads the same after a restart of a durable hub.

use iothub_emulator::test_support::TestHub;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn statistics(hub: &TestHub) -> Value {
    let response = hub
        .request(Method::GET, "/statistics/devices", "registryRead")
        .send()
        .await
        .expect("GET statistics completes");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("statistics are JSON")
}

fn counts(total: u64, enabled: u64, disabled: u64) -> Value {
    json!({
        "totalDeviceCount": total,
        "enabledDeviceCount": enabled,
        "disabledDeviceCount": disabled,
    })
}

/// `PUT /devices/{id}` with `If-Match: *` setting `status`; returns the response status.
async fn set_status(hub: &TestHub, id: &str, status: &str) -> StatusCode {
    hub.request(Method::PUT, &format!("/devices/{id}"), "iothubowner")
        .header("if-match", "\"*\"")
        .header("content-type", "application/json")
        .body(json!({"deviceId": id, "status": status}).to_string())
        .send()
        .await
        .expect("PUT device completes")
        .status()
}

async fn delete(hub: &TestHub, id: &str) -> StatusCode {
    hub.request(Method::DELETE, &format!("/devices/{id}"), "iothubowner")
        .header("if-match", "\"*\"")
        .send()
        .await
        .expect("DELETE device completes")
        .status()
}

#[tokio::test]
async fn counts_follow_create_disable_enable_and_delete() {
    let hub = TestHub::start().await;
    assert_eq!(statistics(&hub).await, counts(0, 0, 0));
    hub.add_devices(["a", "b", "c"]).await;
    assert_eq!(statistics(&hub).await, counts(3, 3, 0));
    assert_eq!(set_status(&hub, "b", "disabled").await, StatusCode::OK);
    assert_eq!(set_status(&hub, "c", "disabled").await, StatusCode::OK);
    // Disabling a disabled device changes nothing.
    assert_eq!(set_status(&hub, "c", "disabled").await, StatusCode::OK);
    assert_eq!(statistics(&hub).await, counts(3, 1, 2));
    assert_eq!(set_status(&hub, "c", "enabled").await, StatusCode::OK);
    assert_eq!(statistics(&hub).await, counts(3, 2, 1));
    assert_eq!(delete(&hub, "b").await, StatusCode::NO_CONTENT);
    assert_eq!(delete(&hub, "a").await, StatusCode::NO_CONTENT);
    assert_eq!(statistics(&hub).await, counts(1, 1, 0));
    // A refused write (unknown device) counts nothing.
    assert_eq!(delete(&hub, "a").await, StatusCode::NOT_FOUND);
    assert_eq!(statistics(&hub).await, counts(1, 1, 0));
}

/// A delete and a disable whose commits fail are rolled back, counts included; a restarted hub
/// counts what is on disk.
#[tokio::test]
async fn counts_survive_a_rolled_back_delete_and_a_restart() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let hub = TestHub::durable_in(&data_dir).await;
    hub.add_devices(["a", "b", "c"]).await;
    assert_eq!(set_status(&hub, "c", "disabled").await, StatusCode::OK);
    assert_eq!(statistics(&hub).await, counts(3, 2, 1));

    hub.emulator().fail_next_commit();
    assert_eq!(delete(&hub, "a").await, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(statistics(&hub).await, counts(3, 2, 1));
    hub.shutdown().await;

    let restarted = TestHub::durable_in(&data_dir).await;
    assert_eq!(statistics(&restarted).await, counts(3, 2, 1));
    assert_eq!(
        set_status(&restarted, "a", "disabled").await,
        StatusCode::OK
    );
    assert_eq!(delete(&restarted, "b").await, StatusCode::NO_CONTENT);
    assert_eq!(statistics(&restarted).await, counts(2, 0, 2));
    restarted.shutdown().await;

    let again = TestHub::durable_in(&data_dir).await;
    assert_eq!(statistics(&again).await, counts(2, 0, 2));
    again.shutdown().await;
}

#[tokio::test]
async fn counts_survive_a_rolled_back_disable() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let hub = TestHub::durable_in(&data_dir).await;
    hub.add_devices(["a", "b"]).await;
    hub.emulator().fail_next_commit();
    assert_eq!(
        set_status(&hub, "a", "disabled").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(statistics(&hub).await, counts(2, 2, 0));
    hub.shutdown().await;

    let restarted = TestHub::durable_in(&data_dir).await;
    assert_eq!(statistics(&restarted).await, counts(2, 2, 0));
    restarted.shutdown().await;
}
