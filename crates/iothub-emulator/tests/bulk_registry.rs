//! The bulk registry operation `POST /devices`: import modes as the SDKs spell them, per-entry
//! errors with the 200/400 split, atomicity per device, request-level refusals, permissions.

use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::rest::{assert_error, RestHub};

async fn bulk(hub: &TestHub, policy: &str, body: &Value) -> (u16, Value) {
    let res = hub.send(Method::POST, "/devices", policy, Some(body)).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn identity(hub: &TestHub, id: &str) -> Option<Value> {
    let res = hub
        .send(Method::GET, &format!("/devices/{id}"), "iothubowner", None)
        .await;
    if res.status() != 200 {
        return None;
    }
    Some(res.json().await.unwrap())
}

#[tokio::test]
async fn create_update_and_delete_as_the_node_registry_sends_them() {
    let hub = TestHub::start().await;
    // Node `addDevices`: `deviceId` renamed to `id`, `importMode: "create"`, keys left empty.
    let add: Vec<Value> = (0..3)
        .map(|i| {
            json!({"id": format!("b{i}"), "importMode": "create", "status": "enabled",
                   "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "", "secondaryKey": ""}}})
        })
        .collect();
    let (status, result) = bulk(&hub, "registryReadWrite", &json!(add)).await;
    assert_eq!(status, 200);
    assert_eq!(
        result,
        json!({"isSuccessful": true, "errors": [], "warnings": []})
    );
    let b1 = identity(&hub, "b1").await.expect("b1 created");
    assert_eq!(
        b1["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap()
            .len(),
        44
    );

    // Node `updateDevices` sends `Update`; `UpdateIfMatchETag` compares `eTag`.
    let etag = b1["etag"].as_str().unwrap();
    let (status, result) = bulk(
        &hub,
        "iothubowner",
        &json!([
            {"id": "b0", "importMode": "Update", "status": "disabled"},
            {"id": "b1", "importMode": "UpdateIfMatchETag", "eTag": etag, "status": "disabled", "statusReason": "bulk"},
        ]),
    )
    .await;
    assert_eq!((status, result["isSuccessful"].clone()), (200, json!(true)));
    assert_eq!(identity(&hub, "b0").await.unwrap()["status"], "disabled");
    let b1 = identity(&hub, "b1").await.unwrap();
    assert_eq!(b1["statusReason"], "bulk");
    let stats = hub
        .send(Method::GET, "/statistics/devices", "iothubowner", None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(stats["disabledDeviceCount"], 2);

    // Node `removeDevices` sends `Delete`; Explorer `deleteIfMatchEtag` with `"etag": "*"`.
    let (status, result) = bulk(
        &hub,
        "iothubowner",
        &json!([
            {"id": "b0", "importMode": "Delete"},
            {"id": "b1", "importMode": "deleteIfMatchEtag", "etag": "*"},
        ]),
    )
    .await;
    assert_eq!((status, result["isSuccessful"].clone()), (200, json!(true)));
    assert!(identity(&hub, "b0").await.is_none());
    assert!(identity(&hub, "b1").await.is_none());
    assert!(identity(&hub, "b2").await.is_some());
    hub.shutdown().await;
}

#[tokio::test]
async fn failed_entries_are_reported_one_by_one_and_the_others_apply() {
    let hub = TestHub::start().await;
    hub.create_device("exists").await;
    hub.create_device("kept").await;
    let stale = "\"bm90IHRoZSBldGFn\"";
    let (status, result) = bulk(
        &hub,
        "iothubowner",
        &json!([
            {"id": "new-1", "importMode": "create"},
            {"id": "exists", "importMode": "create"},
            {"id": "missing", "importMode": "update"},
            {"id": "exists", "moduleId": "m1", "importMode": "create"},
            {"id": "new-2", "importMode": "create", "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "not base64!", "secondaryKey": ""}}},
            {"id": "gone", "importMode": "delete"},
            {"id": "kept", "importMode": "deleteIfMatchETag", "eTag": stale},
        ]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(result["isSuccessful"], false);
    assert_eq!(result["warnings"], json!([]));
    let errors: Vec<(String, String)> = result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(
                e["errorStatus"].as_str().is_some_and(|s| !s.is_empty()),
                "{e}"
            );
            (
                e["deviceId"].as_str().unwrap().to_string(),
                e["errorCode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("exists", "DeviceAlreadyExists"),
        ("missing", "DeviceNotFound"),
        ("new-2", "ArgumentInvalid"),
        ("gone", "DeviceNotFound"),
        ("kept", "PreconditionFailed"),
    ];
    assert_eq!(
        errors,
        expected.map(|(d, c)| (d.to_string(), c.to_string()))
    );
    // Every other entry was applied: the new device and the module.
    assert!(identity(&hub, "new-1").await.is_some());
    assert!(identity(&hub, "new-2").await.is_none());
    assert!(identity(&hub, "exists").await.is_some());
    assert!(identity(&hub, "kept").await.is_some());
    let res = hub
        .send(
            Method::GET,
            "/devices/exists/modules/m1",
            "iothubowner",
            None,
        )
        .await;
    assert_eq!(res.status(), 200);

    // A module entry's error names the module.
    let (status, result) = bulk(
        &hub,
        "iothubowner",
        &json!([{"id": "exists", "moduleId": "m1", "importMode": "create"}]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        result["errors"][0]["errorCode"],
        "ModuleAlreadyExistsOnDevice"
    );
    assert_eq!(result["errors"][0]["moduleId"], "m1");
    hub.shutdown().await;
}

#[tokio::test]
async fn update_twin_modes_patch_tags_and_desired() {
    let hub = TestHub::start().await;
    hub.create_device("t").await;
    let (status, _) = bulk(
        &hub,
        "iothubowner",
        &json!([{"id": "t", "importMode": "updateTwin", "tags": {"site": "a"}, "properties": {"desired": {"rate": 1}}}]),
    )
    .await;
    assert_eq!(status, 200);
    let twin = hub.twin("t").await;
    assert_eq!(twin["tags"], json!({"site": "a"}));
    assert_eq!(twin["properties"]["desired"]["rate"], 1);
    let (status, result) = bulk(
        &hub,
        "iothubowner",
        &json!([{"id": "t", "importMode": "updateTwinIfMatchETag", "twinETag": "AAAAAAAAAAE=", "tags": {"site": "b"}}]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(result["errors"][0]["errorCode"], "PreconditionFailed");
    let (status, _) = bulk(
        &hub,
        "iothubowner",
        &json!([{"id": "t", "importMode": "updateTwinIfMatchETag", "twinETag": twin["etag"], "tags": {"site": "b"}}]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(hub.twin("t").await["tags"], json!({"site": "b"}));
    hub.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_are_refused_before_anything_is_written() {
    let hub = TestHub::start().await;
    let hundred_and_one: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("x{i}"), "importMode": "create"}))
        .collect();
    let cases = [
        (json!([]), "ArgumentInvalid"),
        (json!(hundred_and_one), "ArgumentInvalid"),
        (
            json!({"id": "a", "importMode": "create"}),
            "ArgumentInvalid",
        ),
        (
            json!([{"id": "a", "importMode": "create"}, {"importMode": "create"}]),
            "ArgumentInvalid",
        ),
        (
            json!([{"id": "a", "importMode": "create"}, {"id": "b", "importMode": "upsert"}]),
            "ArgumentInvalid",
        ),
        (
            json!([{"id": "a", "importMode": "create"}, {"id": "a", "importMode": "delete"}]),
            "DeviceDefinedMultipleTimes",
        ),
    ];
    for (body, code) in cases {
        let res = hub
            .send(Method::POST, "/devices", "iothubowner", Some(&body))
            .await;
        assert_error(res, 400, code).await;
    }
    let exactly_hundred: Vec<Value> = (0..100)
        .map(|i| json!({"id": format!("x{i:03}"), "importMode": "create"}))
        .collect();
    assert!(identity(&hub, "a").await.is_none());
    assert!(identity(&hub, "x0").await.is_none());
    let (status, _) = bulk(&hub, "iothubowner", &json!(exactly_hundred)).await;
    assert_eq!(status, 200);
    assert!(identity(&hub, "x099").await.is_some());

    // RegistryWrite is needed.
    for policy in ["registryRead", "service"] {
        let res = hub
            .send(
                Method::POST,
                "/devices",
                policy,
                Some(&json!([{"id": "p", "importMode": "create"}])),
            )
            .await;
        assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    }
    assert!(identity(&hub, "p").await.is_none());
    hub.shutdown().await;
}

#[tokio::test]
async fn each_entry_commits_on_its_own() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let hub = TestHub::durable_in(&data_dir).await;
    // The first entry's commit fails (and the store then refuses writes until a restart, so
    // the second fails too); neither leaves a trace, in memory or on disk.
    hub.emulator().fail_next_commit();
    let (status, result) = bulk(
        &hub,
        "iothubowner",
        &json!([{"id": "a1", "importMode": "create"}, {"id": "a2", "importMode": "create"}]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(result["errors"][0]["errorCode"], "ServerError");
    assert!(identity(&hub, "a1").await.is_none());
    hub.shutdown().await;

    let hub = TestHub::durable_in(&data_dir).await;
    assert!(identity(&hub, "a1").await.is_none());
    let (status, _) = bulk(
        &hub,
        "iothubowner",
        &json!([{"id": "a1", "importMode": "create"}, {"id": "a2", "importMode": "create"}]),
    )
    .await;
    assert_eq!(status, 200);
    hub.shutdown().await;
    let hub = TestHub::durable_in(&data_dir).await;
    assert!(identity(&hub, "a1").await.is_some());
    assert!(identity(&hub, "a2").await.is_some());
    hub.shutdown().await;
}

#[tokio::test]
async fn create_entries_carry_twin_content_and_a_refused_twin_is_a_warning() {
    let hub = TestHub::start().await;
    let (status, result) = bulk(
        &hub,
        "iothubowner",
        &json!([
            {"id": "with-twin", "importMode": "create", "tags": {"site": "a"}, "properties": {"desired": {"rate": 2}}},
            {"id": "bad-twin", "importMode": "create", "tags": {"bad key": 1}},
        ]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(result["isSuccessful"], true);
    assert_eq!(result["errors"], json!([]));
    let warnings = result["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0]["deviceId"], "bad-twin");
    assert_eq!(warnings[0]["warningCode"], "DeviceRegisteredWithoutTwin");
    let twin = hub.twin("with-twin").await;
    assert_eq!(twin["tags"], json!({"site": "a"}));
    assert_eq!(twin["properties"]["desired"]["rate"], 2);
    assert!(identity(&hub, "bad-twin").await.is_some());
    assert!(hub.twin("bad-twin").await.get("tags").is_none());
    hub.shutdown().await;
}
