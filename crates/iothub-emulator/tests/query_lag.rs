//! `--query-lag` (`EmulatorConfig::query_lag`): query results trail writes by the lag, as the
//! real hub's query index does, while `GET /twins` and `GET /devices` stay current.

use std::time::Duration;

use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::support::rest::RestHub;

async fn query(hub: &TestHub, text: &str) -> Value {
    let response = hub
        .send(
            Method::POST,
            "/devices/query",
            "service",
            Some(&json!({ "query": text })),
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("query page")
}

async fn ids(hub: &TestHub) -> Vec<String> {
    let page = query(hub, "SELECT deviceId FROM devices").await;
    page.as_array()
        .expect("a JSON array")
        .iter()
        .map(|row| row["deviceId"].as_str().expect("deviceId").to_string())
        .collect()
}

async fn patch_tags(hub: &TestHub, id: &str, tags: Value) {
    let response = hub
        .send(
            Method::PATCH,
            &format!("/twins/{id}"),
            "service",
            Some(&json!({ "tags": tags })),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn queries_see_the_index_as_it_was_a_lag_ago_while_gets_are_current() {
    let hub = TestHub::configured(|config| {
        config.query_lag = Duration::from_secs(3600);
        config.devices = vec!["at-start".into()];
    })
    .await;
    assert_eq!(
        ids(&hub).await,
        ["at-start"],
        "what exists at start is indexed"
    );

    hub.create_device("new").await;
    let module = hub
        .send(
            Method::PUT,
            "/devices/new/modules/m1",
            "iothubowner",
            Some(&json!({"deviceId": "new", "moduleId": "m1"})),
        )
        .await;
    assert_eq!(module.status(), 200);
    patch_tags(&hub, "at-start", json!({"site": "redmond"})).await;
    hub.delete_device("at-start").await;
    let response = hub.send(Method::GET, "/twins/new", "service", None).await;
    assert_eq!(response.status(), 200, "GET sees the new device at once");

    let response = hub
        .send(Method::GET, "/twins/new/modules/m1", "service", None)
        .await;
    assert_eq!(response.status(), 200, "GET sees the new module at once");

    // None of the writes has reached the index yet.
    assert_eq!(ids(&hub).await, ["at-start"]);
    assert_eq!(
        query(&hub, "SELECT * FROM devices.modules").await,
        json!([])
    );
    let tagged = query(&hub, "SELECT * FROM devices WHERE tags.site = 'redmond'").await;
    assert_eq!(tagged, json!([]));
    let count = query(&hub, "SELECT COUNT() AS n FROM devices").await;
    assert_eq!(count, json!([{"n": 1}]));
}

#[tokio::test]
async fn a_write_shows_in_queries_once_the_lag_has_passed() {
    let lag = Duration::from_secs(2);
    let hub = TestHub::configured(|config| config.query_lag = lag).await;
    hub.create_device("d1").await;

    let before = Instant::now();
    patch_tags(&hub, "d1", json!({"site": "redmond"})).await;
    let written = Instant::now();
    let text = "SELECT deviceId, tags.site FROM devices WHERE tags.site = 'redmond'";
    let early = query(&hub, text).await;
    if Instant::now() < before + lag {
        // The query ran before the write could be due.
        assert_eq!(early, json!([]), "visible before the lag passed");
    }

    // The write was due at most `lag` after its answer.
    tokio::time::sleep_until(written + lag).await;
    assert_eq!(
        query(&hub, text).await,
        json!([{"deviceId": "d1", "site": "redmond"}])
    );
    let count = query(&hub, "SELECT COUNT() AS n FROM devices").await;
    assert_eq!(count, json!([{"n": 1}]));
}

#[tokio::test]
async fn without_a_lag_queries_are_current() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    patch_tags(&hub, "d1", json!({"site": "redmond"})).await;
    let page = query(
        &hub,
        "SELECT deviceId FROM devices WHERE tags.site = 'redmond'",
    )
    .await;
    assert_eq!(page, json!([{"deviceId": "d1"}]));
}
