//! IoT Edge registry fields: the generated `deviceScope` of an Edge device, children attached
//! through it, `parentScopes`, the rules the registry enforces, and the system modules.

use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::rest::{assert_error, RestHub};

async fn put_device(
    hub: &TestHub,
    id: &str,
    body: Value,
    if_match: Option<&str>,
) -> reqwest::Response {
    let headers: Vec<(&str, &str)> = if_match.map(|m| ("if-match", m)).into_iter().collect();
    hub.send_with(
        Method::PUT,
        &format!("/devices/{id}"),
        &hub.service_token("iothubowner"),
        Some(&body),
        &headers,
    )
    .await
}

async fn create_edge(hub: &TestHub, id: &str) -> Value {
    let res = put_device(
        hub,
        id,
        json!({"deviceId": id, "capabilities": {"iotEdge": true}}),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn an_edge_device_gets_its_scope_and_system_modules() {
    let hub = TestHub::start().await;
    let edge = create_edge(&hub, "gw-1").await;
    let generation = edge["generationId"].as_str().unwrap();
    assert_eq!(
        edge["deviceScope"],
        format!("ms-azure-iot-edge://gw-1-{generation}")
    );
    assert_eq!(edge["parentScopes"], json!([]));
    assert_eq!(edge["capabilities"]["iotEdge"], true);

    let res = hub
        .send(Method::GET, "/devices/gw-1/modules", "iothubowner", None)
        .await;
    let modules: Value = res.json().await.unwrap();
    let ids: Vec<&str> = modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["moduleId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["$edgeAgent", "$edgeHub"]);
    assert!(modules
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["authentication"]["type"] == "none"));
    let twin = hub.twin("gw-1").await;
    assert_eq!(twin["deviceScope"], edge["deviceScope"]);

    // The scope cannot be changed; sending it back unchanged (as SDK updates do) is fine.
    let res = put_device(
        &hub,
        "gw-1",
        json!({"deviceId": "gw-1", "capabilities": {"iotEdge": true}, "deviceScope": "ms-azure-iot-edge://gw-1-1"}),
        Some("*"),
    )
    .await;
    assert_error(res, 400, "InvalidDeviceScope").await;
    let res = put_device(
        &hub,
        "gw-1",
        json!({"deviceId": "gw-1", "capabilities": {"iotEdge": true}, "deviceScope": edge["deviceScope"], "status": "enabled"}),
        Some("*"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["deviceScope"], edge["deviceScope"]);
    // An update that leaves the scope out keeps it.
    let res = put_device(
        &hub,
        "gw-1",
        json!({"deviceId": "gw-1", "capabilities": {"iotEdge": true}}),
        Some("*"),
    )
    .await;
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["deviceScope"], edge["deviceScope"]);
    hub.shutdown().await;
}

#[tokio::test]
async fn children_attach_through_the_parents_scope_and_the_rules_hold() {
    let hub = TestHub::start().await;
    let edge = create_edge(&hub, "gw").await;
    let scope = edge["deviceScope"].as_str().unwrap().to_string();
    hub.create_device("plain").await;

    // A leaf device created with the parent's scope has it mirrored in parentScopes.
    let res = put_device(
        &hub,
        "leaf",
        json!({"deviceId": "leaf", "deviceScope": scope}),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let leaf: Value = res.json().await.unwrap();
    assert_eq!(leaf["deviceScope"], scope);
    assert_eq!(leaf["parentScopes"], json!([scope]));
    assert_eq!(hub.twin("leaf").await["parentScopes"], json!([scope]));

    // A nested Edge device names its parent in parentScopes.
    let res = put_device(
        &hub,
        "gw-child",
        json!({"deviceId": "gw-child", "capabilities": {"iotEdge": true}, "parentScopes": [scope]}),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let nested: Value = res.json().await.unwrap();
    assert_eq!(nested["parentScopes"], json!([scope]));
    assert_ne!(nested["deviceScope"], scope);

    // The parent's children, as the CLI lists them.
    let res = hub
        .send(
            Method::POST,
            "/devices/query",
            "iothubowner",
            Some(&json!({"query": format!("SELECT deviceId FROM devices WHERE array_contains(parentScopes, '{scope}')")})),
        )
        .await;
    let rows: Value = res.json().await.unwrap();
    assert_eq!(
        rows,
        json!([{"deviceId": "gw-child"}, {"deviceId": "leaf"}])
    );

    // A scope that names no Edge device, a non-Edge device's "scope", two parents.
    for body in [
        json!({"deviceScope": "ms-azure-iot-edge://nobody-1"}),
        json!({"deviceScope": "ms-azure-iot-edge://plain-1"}),
        json!({"deviceScope": "not a scope"}),
        json!({"capabilities": {"iotEdge": true}, "parentScopes": [scope, "ms-azure-iot-edge://x-1"]}),
        json!({"capabilities": {"iotEdge": true}, "parentScopes": ["ms-azure-iot-edge://nobody-1"]}),
    ] {
        assert_error(
            put_device(&hub, "bad", body, None).await,
            400,
            "InvalidDeviceScope",
        )
        .await;
    }
    assert_error(
        hub.send(Method::GET, "/devices/bad", "iothubowner", None)
            .await,
        404,
        "DeviceNotFound",
    )
    .await;

    // Detaching: an update without deviceScope leaves the leaf without a parent.
    let res = put_device(&hub, "leaf", json!({"deviceId": "leaf"}), Some("*")).await;
    let leaf: Value = res.json().await.unwrap();
    assert_eq!(leaf["deviceScope"], Value::Null);
    assert_eq!(leaf["parentScopes"], json!([]));
    hub.shutdown().await;
}

/// 100 children is the parent's edgeHub default for connected clients, not a registry rule.
#[tokio::test]
async fn the_registry_does_not_cap_the_children_of_a_parent() {
    let hub = TestHub::start().await;
    let edge = create_edge(&hub, "gw").await;
    let scope = edge["deviceScope"].as_str().unwrap().to_string();
    for i in 0..101 {
        let id = format!("c{i:03}");
        let res = put_device(&hub, &id, json!({"deviceScope": scope}), None).await;
        assert_eq!(res.status(), 200, "{id}");
    }
    assert_eq!(hub.twin("c100").await["parentScopes"], json!([scope]));
    hub.shutdown().await;
}
