//! Twin GET/PATCH/PUT over REST: merge semantics, counters, etags, limits.

use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::rest::{assert_error, RestHub};

async fn patch(hub: &TestHub, id: &str, body: Value, if_match: Option<&str>) -> reqwest::Response {
    let headers: Vec<(&str, &str)> = if_match.map(|e| ("if-match", e)).into_iter().collect();
    hub.send_with(
        Method::PATCH,
        &format!("/twins/{id}"),
        &hub.service_token("service"),
        Some(&body),
        &headers,
    )
    .await
}

#[tokio::test]
async fn twin_versions_etags_and_metadata_evolve_with_each_write() {
    let hub = TestHub::start().await;
    hub.create_device("t1").await;
    let res = hub.send(Method::GET, "/twins/t1", "service", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let t0: Value = res.json().await.unwrap();
    assert_eq!(t0["deviceId"], "t1");
    assert_eq!(t0["etag"], "AAAAAAAAAAE=");
    assert_eq!(t0["version"], 2);
    assert_eq!(t0["status"], "enabled");
    assert_eq!(t0["connectionState"], "Disconnected");
    assert!(t0.get("tags").is_none(), "empty tags are omitted");
    assert_eq!(t0["properties"]["desired"]["$version"], 1);
    assert_eq!(t0["properties"]["reported"]["$version"], 1);
    assert!(t0["properties"]["desired"]["$metadata"]["$lastUpdated"].is_string());

    // Tags with the etag.
    let res = patch(
        &hub,
        "t1",
        json!({"tags": {"location": {"region": "US", "plant": "Redmond43"}}}),
        Some("\"AAAAAAAAAAE=\""),
    )
    .await;
    assert_eq!(res.status(), 200);
    let t1: Value = res.json().await.unwrap();
    assert_eq!(t1["etag"], "AAAAAAAAAAI=");
    assert_eq!(t1["version"], 3);
    assert_eq!(t1["tags"]["location"]["plant"], "Redmond43");
    assert_eq!(t1["properties"]["desired"]["$version"], 1);

    // Stale etag.
    let res = patch(
        &hub,
        "t1",
        json!({"tags": {"x": 1}}),
        Some("\"AAAAAAAAAAE=\""),
    )
    .await;
    assert_error(res, 412, "PreconditionFailed").await;

    // Desired merge, with read-only members echoed by SDKs (ignored).
    let body = json!({
        "deviceId": "t1", "etag": "whatever", "version": 99, "status": "disabled",
        "properties": {
            "desired": {"cfg": {"a": 1, "b": 2}, "$metadata": {"x": 1}, "$version": 42},
            "reported": {"ignored": true}
        }
    });
    let t2: Value = patch(&hub, "t1", body, Some("\"*\""))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t2["version"], 4);
    assert_eq!(t2["etag"], "AAAAAAAAAAM=");
    assert_eq!(t2["status"], "enabled");
    let desired = &t2["properties"]["desired"];
    assert_eq!(desired["$version"], 2);
    assert_eq!(desired["cfg"], json!({"a": 1, "b": 2}));
    assert_eq!(desired["$metadata"]["cfg"]["a"]["$lastUpdatedVersion"], 2);
    assert!(t2["properties"]["reported"].get("ignored").is_none());

    // null deletes; untouched metadata keeps its version.
    let t3: Value = patch(
        &hub,
        "t1",
        json!({"properties": {"desired": {"cfg": {"b": null}}}}),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let desired = &t3["properties"]["desired"];
    assert_eq!(desired["cfg"], json!({"a": 1}));
    assert_eq!(desired["$version"], 3);
    assert_eq!(desired["$metadata"]["cfg"]["$lastUpdatedVersion"], 3);
    assert_eq!(desired["$metadata"]["cfg"]["a"]["$lastUpdatedVersion"], 2);
    assert!(desired["$metadata"]["cfg"].get("b").is_none());
    assert_eq!(t3["tags"]["location"]["region"], "US", "tags untouched");

    // PUT replaces tags and desired.
    let res = hub
        .send(
            Method::PUT,
            "/twins/t1",
            "iothubowner",
            Some(&json!({"tags": {"only": "this"}, "properties": {"desired": {"d": true}}})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let t4: Value = res.json().await.unwrap();
    assert_eq!(t4["tags"], json!({"only": "this"}));
    assert_eq!(t4["properties"]["desired"]["d"], true);
    assert!(t4["properties"]["desired"].get("cfg").is_none());
    assert_eq!(t4["properties"]["desired"]["$version"], 4);

    // GET agrees with the last write.
    let got: Value = hub
        .send(Method::GET, "/twins/t1", "service", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, t4);
}

#[tokio::test]
async fn twin_errors() {
    let hub = TestHub::start().await;
    hub.create_device("t2").await;
    let res = hub
        .send(Method::GET, "/twins/nobody", "service", None)
        .await;
    assert_error(res, 404, "DeviceNotFound").await;
    let res = patch(&hub, "nobody", json!({"tags": {"a": 1}}), None).await;
    assert_error(res, 404, "DeviceNotFound").await;

    let res = hub
        .http()
        .patch(hub.url("/twins/t2"))
        .header("authorization", hub.service_token("service"))
        .header("content-type", "application/json")
        .body("{\"tags\": {\"a\": }")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "IotHubFormatError").await;

    for bad in ["a.b", "$x", "a b"] {
        let res = patch(&hub, "t2", json!({"tags": {bad: 1}}), None).await;
        let msg = assert_error(res, 400, "ArgumentInvalid").await;
        assert!(msg.contains("property name"), "{msg}");
    }
    let res = patch(&hub, "t2", json!({"tags": 5}), None).await;
    assert_error(res, 400, "ArgumentInvalid").await;

    // Depth: 10 levels are fine, 11 are not.
    let nest = |levels: usize| {
        let mut v = json!("leaf");
        for i in (0..levels).rev() {
            v = json!({ format!("l{i}"): v });
        }
        v
    };
    let res = patch(
        &hub,
        "t2",
        json!({"properties": {"desired": nest(10)}}),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = patch(
        &hub,
        "t2",
        json!({"properties": {"desired": {"deep": nest(10)}}}),
        None,
    )
    .await;
    let msg = assert_error(res, 400, "ArgumentInvalid").await;
    assert!(msg.contains("maximum depth is 10"), "{msg}");

    // Size: tags 8 KB, desired 32 KB.
    let chunk = "x".repeat(3000);
    let res = patch(
        &hub,
        "t2",
        json!({"tags": {"a": chunk, "b": chunk, "c": chunk}}),
        None,
    )
    .await;
    let msg = assert_error(res, 400, "ArgumentInvalid").await;
    assert!(msg.contains("8192"), "{msg}");
    let mut big = serde_json::Map::new();
    for i in 0..11 {
        big.insert(format!("k{i}"), json!(chunk));
    }
    let res = patch(&hub, "t2", json!({"properties": {"desired": big}}), None).await;
    let msg = assert_error(res, 400, "ArgumentInvalid").await;
    assert!(msg.contains("32768"), "{msg}");
    // Nothing of the rejected writes was applied.
    let twin: Value = hub
        .send(Method::GET, "/twins/t2", "service", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(twin.get("tags").is_none());
    assert_eq!(twin["properties"]["desired"]["$version"], 2);
}
