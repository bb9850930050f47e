//! `POST /devices/query`: paging, headers, projections, aggregates, errors.

use std::collections::BTreeSet;

use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::rest::{assert_error, RestHub};

async fn query(
    hub: &TestHub,
    text: &str,
    page_size: Option<&str>,
    continuation: Option<&str>,
) -> reqwest::Response {
    let mut headers = Vec::new();
    if let Some(n) = page_size {
        headers.push(("x-ms-max-item-count", n));
    }
    if let Some(c) = continuation {
        headers.push(("x-ms-continuation", c));
    }
    hub.send_with(
        Method::POST,
        "/devices/query",
        &hub.service_token("service"),
        Some(&json!({ "query": text })),
        &headers,
    )
    .await
}

#[tokio::test]
async fn query_over_250_devices_pages_by_100() {
    let hub = TestHub::start().await;
    for i in 0..250 {
        hub.emulator()
            .add_device(&format!("dev{i:03}"))
            .await
            .unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let res = query(&hub, "SELECT * FROM devices", Some("100"), token.as_deref()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-ms-item-type"], "Twin");
        token = res
            .headers()
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_string());
        let items: Vec<Value> = res.json().await.unwrap();
        pages += 1;
        for item in &items {
            let id = item["deviceId"].as_str().unwrap().to_string();
            assert!(seen.insert(id), "each device exactly once");
        }
        if token.is_none() {
            assert_eq!(items.len(), 50);
            break;
        }
        assert_eq!(items.len(), 100);
        assert!(pages < 10, "paging terminates");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);

    // Default page size is 100 and larger requests are clamped.
    let res = query(&hub, "SELECT * FROM devices", None, None).await;
    assert!(res.headers().contains_key("x-ms-continuation"));
    assert_eq!(res.json::<Vec<Value>>().await.unwrap().len(), 100);
    let res = query(&hub, "SELECT * FROM devices", Some("1000"), None).await;
    assert_eq!(res.json::<Vec<Value>>().await.unwrap().len(), 100);

    // Aggregates are Raw rows.
    let res = query(&hub, "SELECT COUNT() AS total FROM devices", None, None).await;
    assert_eq!(res.headers()["x-ms-item-type"], "Raw");
    assert!(!res.headers().contains_key("x-ms-continuation"));
    assert_eq!(res.json::<Value>().await.unwrap(), json!([{"total": 250}]));

    // TOP is honoured across pages.
    let mut total = 0;
    let mut token: Option<String> = None;
    loop {
        let res = query(
            &hub,
            "SELECT TOP 150 * FROM devices",
            Some("100"),
            token.as_deref(),
        )
        .await;
        token = res
            .headers()
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_string());
        total += res.json::<Vec<Value>>().await.unwrap().len();
        if token.is_none() {
            break;
        }
    }
    assert_eq!(total, 150);
}

#[tokio::test]
async fn tutorial_queries_and_projections() {
    let hub = TestHub::start().await;
    for (id, plant) in [("a", "Redmond43"), ("b", "Redmond43"), ("c", "Other")] {
        hub.create_device(id).await;
        hub.send(
            Method::PATCH,
            &format!("/twins/{id}"),
            "service",
            Some(&json!({"tags": {"location": {"region": "US", "plant": plant}}})),
        )
        .await;
    }
    hub.patch_reported("b", json!({"connectivity": {"type": "cellular"}}))
        .await;
    let res = query(
        &hub,
        "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'",
        None,
        None,
    )
    .await;
    let ids: Vec<String> = res
        .json::<Vec<Value>>()
        .await
        .unwrap()
        .iter()
        .map(|t| t["deviceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let res = query(
        &hub,
        "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity.type = 'cellular'",
        None,
        None,
    )
    .await;
    let rows: Vec<Value> = res.json().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["deviceId"], "b");

    let res = query(
        &hub,
        "SELECT deviceId FROM devices WHERE tags.location.plant = 'Other'",
        None,
        None,
    )
    .await;
    assert_eq!(res.headers()["x-ms-item-type"], "Raw");
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!([{"deviceId": "c"}])
    );

    // Query is allowed with RegistryRead too; a body member named "Query" works.
    let res = hub
        .send(
            Method::POST,
            "/devices/query",
            "registryRead",
            Some(&json!({"Query": "SELECT * FROM devices"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Vec<Value>>().await.unwrap().len(), 3);
}

#[tokio::test]
async fn query_errors() {
    let hub = TestHub::start().await;
    let res = query(&hub, "SELECT * FROM devices WHERE", None, None).await;
    let msg = assert_error(res, 400, "ArgumentInvalid").await;
    assert!(msg.contains("line 1, column"), "{msg}");
    let long = format!(
        "SELECT * FROM devices WHERE deviceId = '{}'",
        "x".repeat(9000)
    );
    let res = query(&hub, &long, None, None).await;
    assert_error(res, 400, "ArgumentInvalid").await;
    let res = query(&hub, "SELECT * FROM devices", Some("0"), None).await;
    assert_error(res, 400, "ArgumentInvalid").await;
    let res = query(&hub, "SELECT * FROM devices", Some("-5"), None).await;
    assert_error(res, 400, "ArgumentInvalid").await;
    let res = query(&hub, "SELECT * FROM devices", None, Some("garbage!")).await;
    assert_error(res, 400, "ArgumentInvalid").await;
    let res = hub
        .send(
            Method::POST,
            "/devices/query",
            "service",
            Some(&json!({"sql": "x"})),
        )
        .await;
    assert_error(res, 400, "ArgumentNull").await;
    let res = hub
        .send(
            Method::POST,
            "/devices/query",
            "device",
            Some(&json!({"query": "SELECT * FROM devices"})),
        )
        .await;
    assert_error(res, 401, "IotHubUnauthorizedAccess").await;
    // An empty hub: empty array, header present, no continuation.
    let res = query(&hub, "SELECT * FROM devices", None, None).await;
    assert_eq!(res.headers()["x-ms-item-type"], "Twin");
    assert!(!res.headers().contains_key("x-ms-continuation"));
    assert_eq!(res.json::<Value>().await.unwrap(), json!([]));
}
