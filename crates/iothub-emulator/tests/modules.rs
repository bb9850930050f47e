//! Module identities and module twins: REST CRUD with etags and errors, the per-device bound,
//! statistics, cascade delete, MQTT connections as `{device}/{module}` with the module's own
//! keys (twin GET, reported PATCH, desired pushes routed to the module twin), module telemetry,
//! durability and rollback, and `SELECT * FROM devices.modules` with paging.

use iothub_auth::{SasToken, SharedAccessKey};
use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use rumqttc::{Packet, QoS};
use serde_json::{json, Value};

use crate::support::mqtt::{Client, MqttHub};
use crate::support::rest::{assert_error, RestHub};

async fn put_module(hub: &TestHub, device: &str, module: &str, body: Value) -> reqwest::Response {
    hub.send(
        Method::PUT,
        &format!("/devices/{device}/modules/{module}"),
        "iothubowner",
        Some(&body),
    )
    .await
}

/// Creates `device/module` as the Python SDK's `create_module_with_sas` does; returns the
/// identity JSON.
async fn create_module(hub: &TestHub, device: &str, module: &str) -> Value {
    let res = put_module(
        hub,
        device,
        module,
        json!({"deviceId": device, "moduleId": module, "managedBy": null,
               "authentication": {"type": "sas", "symmetricKey": {"primaryKey": null, "secondaryKey": null}}}),
    )
    .await;
    assert_eq!(res.status(), 200, "create module {device}/{module}");
    res.json().await.unwrap()
}

async fn get_json(hub: &TestHub, path: &str) -> (u16, Value) {
    let res = hub.send(Method::GET, path, "iothubowner", None).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn primary_key(identity: &Value) -> SharedAccessKey {
    SharedAccessKey::from_base64(
        identity["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

fn module_token(hub: &TestHub, device: &str, module: &str, key: &SharedAccessKey) -> String {
    let resource = format!(
        "{}/devices/{device}/modules/{module}",
        hub.emulator().hostname()
    );
    SasToken::generate(&resource, key, None, iothub_auth::unix_now() + 3600)
        .as_str()
        .to_string()
}

async fn connect_module(
    hub: &TestHub,
    device: &str,
    module: &str,
    key: &SharedAccessKey,
) -> Client {
    let client_id = format!("{device}/{module}");
    let client = Client::start(hub.options(&client_id, &module_token(hub, device, module, key)));
    client.expect_connack().await;
    client
}

async fn statistics(hub: &TestHub) -> Value {
    get_json(hub, "/statistics/devices").await.1
}

#[tokio::test]
async fn module_crud_with_etags_errors_and_statistics() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;

    let created = create_module(&hub, "d1", "m1").await;
    assert_eq!(created["moduleId"], "m1");
    assert_eq!(created["deviceId"], "d1");
    assert_eq!(created["managedBy"], Value::Null);
    assert_eq!(created["connectionState"], "Disconnected");
    assert_eq!(created["connectionStateUpdatedTime"], "0001-01-01T00:00:00");
    assert_eq!(created["cloudToDeviceMessageCount"], 0);
    assert_eq!(created["authentication"]["type"], "sas");
    assert_eq!(created["generationId"].as_str().unwrap().len(), 18);
    assert!(created.get("status").is_none(), "modules have no status");
    assert!(created.get("capabilities").is_none());
    let key = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap();
    assert_eq!(key.len(), 44, "generated keys are 32 bytes");

    let (status, got) = get_json(&hub, "/devices/d1/modules/m1").await;
    assert_eq!(status, 200);
    assert_eq!(got, created);
    create_module(&hub, "d1", "m0").await;
    let (status, list) = get_json(&hub, "/devices/d1/modules").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["moduleId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m0", "m1"]);

    // Modules are not devices.
    assert_eq!(
        statistics(&hub).await,
        json!({"totalDeviceCount": 1, "enabledDeviceCount": 1, "disabledDeviceCount": 0})
    );

    assert_error(
        put_module(&hub, "d1", "m1", json!({})).await,
        409,
        "ModuleAlreadyExistsOnDevice",
    )
    .await;
    assert_error(
        hub.send(Method::GET, "/devices/d1/modules/nope", "iothubowner", None)
            .await,
        404,
        "ModuleNotFound",
    )
    .await;
    assert_error(
        put_module(&hub, "ghost", "m1", json!({})).await,
        404,
        "DeviceNotFound",
    )
    .await;
    assert_error(
        hub.send(Method::GET, "/devices/ghost/modules", "iothubowner", None)
            .await,
        404,
        "DeviceNotFound",
    )
    .await;
    assert_error(
        put_module(&hub, "d1", "m 2", json!({})).await,
        400,
        "ArgumentInvalid",
    )
    .await;
    assert_error(
        put_module(&hub, "d1", "m2", json!({"moduleId": "other"})).await,
        400,
        "ArgumentInvalid",
    )
    .await;
    assert_error(
        hub.send(
            Method::PUT,
            "/devices/d1/modules/m9",
            "registryRead",
            Some(&json!({})),
        )
        .await,
        401,
        "IotHubUnauthorizedAccess",
    )
    .await;

    // Update: a stale etag is refused, the current one (or `*`) replaces the identity.
    let etag = created["etag"].as_str().unwrap().to_string();
    let update = json!({"moduleId": "m1", "managedBy": "me"});
    let res = hub
        .send_with(
            Method::PUT,
            "/devices/d1/modules/m1",
            &hub.service_token("iothubowner"),
            Some(&update),
            &[("if-match", "\"bm9wZQ==\"")],
        )
        .await;
    assert_error(res, 412, "PreconditionFailed").await;
    let res = hub
        .send_with(
            Method::PUT,
            "/devices/d1/modules/m1",
            &hub.service_token("iothubowner"),
            Some(&update),
            &[("if-match", &format!("\"{etag}\""))],
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["managedBy"], "me");
    assert_ne!(updated["etag"], created["etag"]);
    assert_eq!(updated["generationId"], created["generationId"]);
    let res = hub
        .send_with(
            Method::PUT,
            "/devices/d1/modules/zz",
            &hub.service_token("iothubowner"),
            Some(&json!({})),
            &[("if-match", "\"*\"")],
        )
        .await;
    assert_error(res, 404, "ModuleNotFound").await;

    // Delete: 412 on a stale etag, then 204, then 404.
    let res = hub
        .send_with(
            Method::DELETE,
            "/devices/d1/modules/m1",
            &hub.service_token("iothubowner"),
            None,
            &[("if-match", &format!("\"{etag}\""))],
        )
        .await;
    assert_error(res, 412, "PreconditionFailed").await;
    let res = hub
        .send_with(
            Method::DELETE,
            "/devices/d1/modules/m1",
            &hub.service_token("iothubowner"),
            None,
            &[("if-match", "\"*\"")],
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_error(
        hub.send(
            Method::DELETE,
            "/devices/d1/modules/m1",
            "iothubowner",
            None,
        )
        .await,
        404,
        "ModuleNotFound",
    )
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_device_holds_at_most_fifty_modules() {
    let hub = TestHub::start().await;
    hub.create_device("d").await;
    hub.create_device("other").await;
    for i in 0..50 {
        create_module(&hub, "d", &format!("m{i:02}")).await;
    }
    assert_error(
        put_module(&hub, "d", "m50", json!({})).await,
        413,
        "TooManyModulesOnDevice",
    )
    .await;
    // The bound is per device.
    create_module(&hub, "other", "m50").await;
    let res = hub
        .send(
            Method::DELETE,
            "/devices/d/modules/m00",
            "iothubowner",
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    create_module(&hub, "d", "m50").await;
    hub.shutdown().await;
}

#[tokio::test]
async fn module_twin_has_the_device_twin_rules() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    create_module(&hub, "d1", "m1").await;

    let (status, twin) = get_json(&hub, "/twins/d1/modules/m1").await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = twin
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(&keys[..3], ["deviceId", "moduleId", "etag"]);
    assert_eq!(twin["moduleId"], "m1");
    assert_eq!(twin["etag"], "AAAAAAAAAAE=");
    assert_eq!(twin["version"], 2);
    assert_eq!(twin["authenticationType"], "sas");
    assert_eq!(twin["properties"]["desired"]["$version"], 1);
    assert!(twin.get("capabilities").is_none());

    let res = hub
        .send(
            Method::PATCH,
            "/twins/d1/modules/m1",
            "service",
            Some(&json!({"tags": {"t": 1}, "properties": {"desired": {"rate": 5}}})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["etag"], "AAAAAAAAAAI=");
    assert_eq!(patched["version"], 3);
    assert_eq!(patched["tags"], json!({"t": 1}));
    assert_eq!(patched["properties"]["desired"]["rate"], 5);
    assert_eq!(patched["properties"]["desired"]["$version"], 2);
    assert_eq!(
        patched["properties"]["desired"]["$metadata"]["rate"]["$lastUpdatedVersion"],
        2
    );
    // The device twin is a different twin.
    let (_, device_twin) = get_json(&hub, "/twins/d1").await;
    assert!(device_twin.get("tags").is_none());
    assert_eq!(device_twin["properties"]["desired"]["$version"], 1);

    let res = hub
        .send_with(
            Method::PATCH,
            "/twins/d1/modules/m1",
            &hub.service_token("iothubowner"),
            Some(&json!({"tags": {"t": 2}})),
            &[("if-match", "\"AAAAAAAAAAE=\"")],
        )
        .await;
    assert_error(res, 412, "PreconditionFailed").await;
    let res = hub
        .send(
            Method::PATCH,
            "/twins/d1/modules/m1",
            "iothubowner",
            Some(&json!({"tags": {"bad key": 1}})),
        )
        .await;
    assert_error(res, 400, "ArgumentInvalid").await;
    let res = hub
        .send(
            Method::PUT,
            "/twins/d1/modules/m1",
            "iothubowner",
            Some(&json!({"properties": {"desired": {"only": true}}})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let replaced: Value = res.json().await.unwrap();
    assert!(replaced.get("tags").is_none(), "PUT replaced the tags");
    assert_eq!(replaced["properties"]["desired"]["only"], true);
    assert!(replaced["properties"]["desired"].get("rate").is_none());

    assert_error(
        hub.send(Method::GET, "/twins/d1/modules/nope", "iothubowner", None)
            .await,
        404,
        "ModuleNotFound",
    )
    .await;
    assert_error(
        hub.send(
            Method::PATCH,
            "/twins/ghost/modules/m1",
            "iothubowner",
            Some(&json!({"tags": {}})),
        )
        .await,
        404,
        "DeviceNotFound",
    )
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_module_connects_with_its_own_keys_and_works_on_its_own_twin() {
    let hub = TestHub::start().await;
    let device = hub.device("d1").await;
    let module = create_module(&hub, "d1", "m1").await;
    let key = primary_key(&module);

    // The device's key does not open the module, nor the module's the device.
    let wrong = Client::start(hub.options("d1/m1", &module_token(&hub, "d1", "m1", &device.key)));
    wrong.expect_error().await;
    let device_client = hub.connect(&device).await;
    device_client.subscribe_twin().await;

    let client = connect_module(&hub, "d1", "m1", &key).await;
    client.subscribe_twin().await;
    let (status, _) = get_json(&hub, "/devices/d1/modules/m1").await;
    assert_eq!(status, 200);
    let (_, identity) = get_json(&hub, "/devices/d1/modules/m1").await;
    assert_eq!(identity["connectionState"], "Connected");

    let (status, doc) = client.get_twin("1").await;
    assert_eq!(status, 200);
    assert_eq!(doc["desired"]["$version"], 1);
    let (status, version, _) = client.patch_reported("2", r#"{"fw":"1.0"}"#).await;
    assert_eq!((status, version), (204, Some(2)));
    let (_, twin) = get_json(&hub, "/twins/d1/modules/m1").await;
    assert_eq!(twin["properties"]["reported"]["fw"], "1.0");
    let (_, device_twin) = get_json(&hub, "/twins/d1").await;
    assert!(device_twin["properties"]["reported"].get("fw").is_none());

    // A desired change of the module twin reaches the module's session, not the device's.
    let res = hub
        .send(
            Method::PATCH,
            "/twins/d1/modules/m1",
            "iothubowner",
            Some(&json!({"properties": {"desired": {"rate": 7}}})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let push = client
        .expect_publish("$iothub/twin/PATCH/properties/desired/")
        .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&push.payload).unwrap(),
        json!({"rate": 7, "$version": 2})
    );
    hub.patch_desired("d1", json!({"device": true})).await;
    let device_push = device_client
        .expect_publish("$iothub/twin/PATCH/properties/desired/")
        .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&device_push.payload).unwrap(),
        json!({"device": true, "$version": 2})
    );

    // Module telemetry on the module's own topic is acknowledged.
    client
        .client
        .publish(
            "devices/d1/modules/m1/messages/events/a=b",
            QoS::AtLeastOnce,
            false,
            "{}",
        )
        .await
        .unwrap();
    loop {
        match client.next().await {
            Some(Ok(Packet::PubAck(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("expected PUBACK for module telemetry, got {other:?}"),
        }
    }

    // A policy token with DeviceConnect opens the module too.
    let policy = hub.policy_connection("device");
    let resource = format!("{}/devices/d1/modules/m1", hub.emulator().hostname());
    let token = SasToken::generate(
        &resource,
        &policy.shared_access_key,
        Some("device"),
        iothub_auth::unix_now() + 3600,
    )
    .as_str()
    .to_string();
    drop(client);
    let by_policy = Client::start(hub.options("d1/m1", &token));
    by_policy.expect_connack().await;
    by_policy.subscribe_twin().await;
    let (status, doc) = by_policy.get_twin("3").await;
    assert_eq!(status, 200);
    assert_eq!(doc["reported"]["fw"], "1.0");
    hub.shutdown().await;
}

#[tokio::test]
async fn deleting_a_device_deletes_its_modules_and_closes_their_connections() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    hub.create_device("d10").await;
    let module = create_module(&hub, "d1", "m1").await;
    create_module(&hub, "d1", "m2").await;
    create_module(&hub, "d10", "m1").await;
    let client = connect_module(&hub, "d1", "m1", &primary_key(&module)).await;

    hub.delete_device("d1").await;
    client.expect_error().await;
    assert_error(
        hub.send(Method::GET, "/devices/d1/modules/m1", "iothubowner", None)
            .await,
        404,
        "DeviceNotFound",
    )
    .await;
    // Another device whose id starts the same keeps its modules.
    let (status, list) = get_json(&hub, "/devices/d10/modules").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // A device re-created under the same id starts without modules, and the old module's
    // credentials are refused.
    hub.create_device("d1").await;
    let (_, list) = get_json(&hub, "/devices/d1/modules").await;
    assert_eq!(list, json!([]));
    let again = Client::start(hub.options(
        "d1/m1",
        &module_token(&hub, "d1", "m1", &primary_key(&module)),
    ));
    again.expect_error().await;
    let res = hub
        .send(
            Method::POST,
            "/devices/query",
            "iothubowner",
            Some(&json!({"query": "SELECT * FROM devices.modules"})),
        )
        .await;
    let rows: Value = res.json().await.unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    hub.shutdown().await;
}

#[tokio::test]
async fn modules_survive_a_restart_and_a_failed_commit_leaves_no_trace() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let hub = TestHub::durable_in(&data_dir).await;
    hub.create_device("d1").await;
    let module = create_module(&hub, "d1", "m1").await;
    let res = hub
        .send(
            Method::PATCH,
            "/twins/d1/modules/m1",
            "iothubowner",
            Some(&json!({"properties": {"desired": {"rate": 5}}})),
        )
        .await;
    assert_eq!(res.status(), 200);

    // A failed module create, twin write and cascade delete change nothing.
    hub.emulator().fail_next_commit();
    assert_eq!(put_module(&hub, "d1", "m2", json!({})).await.status(), 500);
    hub.shutdown().await;
    let hub = TestHub::durable_in(&data_dir).await;
    hub.emulator().fail_next_commit();
    let res = hub
        .send(
            Method::PATCH,
            "/twins/d1/modules/m1",
            "iothubowner",
            Some(&json!({"properties": {"desired": {"rate": 6}}})),
        )
        .await;
    assert_eq!(res.status(), 500);
    let (_, twin) = get_json(&hub, "/twins/d1/modules/m1").await;
    assert_eq!(twin["properties"]["desired"]["rate"], 5);
    hub.shutdown().await;
    let hub = TestHub::durable_in(&data_dir).await;
    hub.emulator().fail_next_commit();
    let res = hub
        .send(Method::DELETE, "/devices/d1", "iothubowner", None)
        .await;
    assert_eq!(res.status(), 500);
    let (status, _) = get_json(&hub, "/devices/d1/modules/m1").await;
    assert_eq!(status, 200, "the rolled-back delete kept the module");
    hub.shutdown().await;

    let hub = TestHub::durable_in(&data_dir).await;
    let (status, restored) = get_json(&hub, "/devices/d1/modules/m1").await;
    assert_eq!(status, 200);
    assert_eq!(restored["etag"], module["etag"]);
    assert_eq!(restored["authentication"], module["authentication"]);
    let (_, list) = get_json(&hub, "/devices/d1/modules").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "m2 was never stored");
    let (_, twin) = get_json(&hub, "/twins/d1/modules/m1").await;
    assert_eq!(twin["properties"]["desired"]["rate"], 5);
    assert_eq!(twin["properties"]["desired"]["$version"], 2);
    // The restored keys open the module.
    let client = connect_module(&hub, "d1", "m1", &primary_key(&module)).await;
    client.subscribe_twin().await;
    let (status, doc) = client.get_twin("1").await;
    assert_eq!(status, 200);
    assert_eq!(doc["desired"]["rate"], 5);
    drop(client);

    // A committed cascade delete is durable.
    hub.delete_device("d1").await;
    hub.shutdown().await;
    let hub = TestHub::durable_in(&data_dir).await;
    hub.create_device("d1").await;
    let (_, list) = get_json(&hub, "/devices/d1/modules").await;
    assert_eq!(list, json!([]));
    hub.shutdown().await;
}

/// Every row of `query`, page by page with `page` rows at most; returns the pages' sizes too.
async fn query_all(hub: &TestHub, query: &str, page: usize) -> (Vec<Value>, Vec<usize>) {
    let mut rows = Vec::new();
    let mut sizes = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let page_header = page.to_string();
        let mut headers = vec![("x-ms-max-item-count", page_header.as_str())];
        if let Some(c) = &continuation {
            headers.push(("x-ms-continuation", c.as_str()));
        }
        let res = hub
            .send_with(
                Method::POST,
                "/devices/query",
                &hub.service_token("service"),
                Some(&json!({"query": query})),
                &headers,
            )
            .await;
        assert_eq!(res.status(), 200);
        continuation = res
            .headers()
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = res.json().await.unwrap();
        let page_rows = body.as_array().unwrap().clone();
        sizes.push(page_rows.len());
        rows.extend(page_rows);
        if continuation.is_none() {
            return (rows, sizes);
        }
    }
}

#[tokio::test]
async fn devices_modules_queries_return_module_twins_page_by_page() {
    let hub = TestHub::start().await;
    for d in ["a", "b", "c"] {
        hub.create_device(d).await;
        for m in ["m1", "m2", "m3"] {
            create_module(&hub, d, m).await;
        }
    }
    let res = hub
        .send(
            Method::PATCH,
            "/twins/b/modules/m2",
            "iothubowner",
            Some(&json!({"tags": {"site": "x"}})),
        )
        .await;
    assert_eq!(res.status(), 200);
    hub.patch_reported("b/m3", json!({"temp": 30})).await;

    let (rows, sizes) = query_all(&hub, "SELECT * FROM devices.modules", 4).await;
    assert_eq!(sizes, [4, 4, 1]);
    let ids: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["deviceId"].as_str().unwrap(),
                r["moduleId"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ids,
        ["a/m1", "a/m2", "a/m3", "b/m1", "b/m2", "b/m3", "c/m1", "c/m2", "c/m3"]
    );
    let (_, twin) = get_json(&hub, "/twins/b/modules/m2").await;
    assert_eq!(
        rows[4], twin,
        "rows are the module twins as GET returns them"
    );

    let (rows, _) = query_all(
        &hub,
        "SELECT * FROM devices.modules WHERE moduleId = 'm2' AND deviceId != 'a'",
        100,
    )
    .await;
    assert_eq!(rows.len(), 2);
    let (rows, _) = query_all(
        &hub,
        "SELECT deviceId, moduleId FROM devices.modules WHERE properties.reported.temp > 20",
        100,
    )
    .await;
    assert_eq!(rows, [json!({"deviceId": "b", "moduleId": "m3"})]);
    let (rows, _) = query_all(
        &hub,
        "SELECT COUNT() AS n FROM devices.modules WHERE tags.site = 'x'",
        100,
    )
    .await;
    assert_eq!(rows, [json!({"n": 1})]);
    // `FROM devices` still reads device twins only.
    let (rows, _) = query_all(&hub, "SELECT * FROM devices", 100).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.get("moduleId").is_none()));
    hub.shutdown().await;
}
