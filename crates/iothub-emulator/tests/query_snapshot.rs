//! Queries read a snapshot of the twins taken when each page starts: paging across concurrent
//! writes returns no twin twice and skips no unchanged twin, a scan sees one state, and
//! aggregates count what was there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use serde_json::{json, Value};

/// One page of `text`: rows and the next continuation.
async fn page(
    hub: &TestHub,
    text: &str,
    size: usize,
    continuation: Option<&str>,
) -> (Vec<Value>, Option<String>) {
    let mut request = hub
        .request(Method::POST, "/devices/query", "service")
        .header("content-type", "application/json")
        .header("x-ms-max-item-count", size.to_string())
        .body(json!({ "query": text }).to_string());
    if let Some(token) = continuation {
        request = request.header("x-ms-continuation", token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "query {text:?}");
    let next = response
        .headers()
        .get("x-ms-continuation")
        .map(|v| v.to_str().unwrap().to_string());
    (response.json().await.unwrap(), next)
}

/// Every row of `text`, page by page, running `between` after each page.
async fn all_pages<F, Fut>(hub: &TestHub, text: &str, size: usize, mut between: F) -> Vec<Value>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut rows = Vec::new();
    let mut token = None;
    for k in 0.. {
        let (items, next) = page(hub, text, size, token.as_deref()).await;
        rows.extend(items);
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
        between(k).await;
        assert!(k < 1_000, "paging ends");
    }
    rows
}

async fn patch_tags(hub: &TestHub, id: &str, tags: Value) {
    let path = format!("/twins/{id}");
    let response = hub
        .request(Method::PATCH, &path, "iothubowner")
        .header("content-type", "application/json")
        .body(json!({ "tags": tags }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "PATCH tags of {id}");
}

fn device_ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|row| row["deviceId"].as_str().unwrap().to_string())
        .collect()
}

/// A writer task that PATCHes the desired properties of `ids` in a loop until stopped.
fn churn(
    hub: &Arc<TestHub>,
    ids: Vec<String>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let (hub, stop) = (Arc::clone(hub), Arc::clone(stop));
    tokio::spawn(async move {
        let mut writes = 0;
        while !stop.load(Ordering::Relaxed) {
            for id in &ids {
                hub.patch_desired(id, json!({ "n": writes })).await;
                writes += 1;
            }
        }
        writes
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_across_concurrent_writes_returns_each_twin_once_and_skips_no_unchanged_twin() {
    let hub = Arc::new(TestHub::start().await);
    let ids: Vec<String> = (0..300).map(|n| format!("dev{n:03}")).collect();
    hub.add_devices(&ids).await;
    for id in &ids {
        patch_tags(&hub, id, json!({ "plant": "Redmond43" })).await;
    }
    // Every tenth twin changes all the time; the others never change.
    let changing: Vec<String> = ids.iter().step_by(10).cloned().collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = churn(&hub, changing.clone(), &stop);

    let query = "SELECT * FROM devices WHERE tags.plant = 'Redmond43'";
    let deleted = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let between = |k: usize| {
        let (hub, deleted) = (Arc::clone(&hub), Arc::clone(&deleted));
        async move {
            // Between pages: a new matching twin (before or after the position) and a deleted
            // one (ahead of the position on early pages, behind it later).
            let new = format!("dev{:03}-new", k * 37 % 300);
            hub.add_device(&new).await;
            patch_tags(&hub, &new, json!({ "plant": "Redmond43" })).await;
            let n = 299 - k * 7;
            if !n.is_multiple_of(10) {
                let id = format!("dev{n:03}");
                hub.delete_device(&id).await;
                deleted.lock().unwrap().insert(id);
            }
        }
    };
    let rows = all_pages(&hub, query, 20, between).await;
    stop.store(true, Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0, "the writer ran while paging");

    let returned = device_ids(&rows);
    let unique: BTreeSet<&String> = returned.iter().collect();
    assert_eq!(unique.len(), returned.len(), "no twin twice: {returned:?}");
    let deleted = deleted.lock().unwrap().clone();
    assert!(!deleted.is_empty());
    for id in &ids {
        let unchanged = !changing.contains(id) && !deleted.contains(id);
        if unchanged {
            assert!(unique.contains(id), "unchanged twin {id} was skipped");
        }
    }
    // Rows are whole twins of one moment each, and in device-id order.
    let mut sorted = returned.clone();
    sorted.sort();
    assert_eq!(sorted, returned);
    for row in &rows {
        assert_eq!(row["tags"]["plant"], "Redmond43");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_paging_across_concurrent_writes_returns_each_module_twin_once() {
    let hub = Arc::new(TestHub::start().await);
    hub.add_devices(["a", "b", "c"]).await;
    let mut modules = Vec::new();
    for device in ["a", "b", "c"] {
        for m in 0..40 {
            let module = format!("m{m:02}");
            let path = format!("/devices/{device}/modules/{module}");
            let response = hub
                .request(Method::PUT, &path, "iothubowner")
                .header("content-type", "application/json")
                .body(json!({ "deviceId": device, "moduleId": module }).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "PUT module {device}/{module}");
            modules.push((device.to_string(), module));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (hub, stop) = (Arc::clone(&hub), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("/twins/b/modules/m{:02}", n % 40);
                let response = hub
                    .request(Method::PATCH, &path, "iothubowner")
                    .header("content-type", "application/json")
                    .body(json!({ "properties": { "desired": { "n": n } } }).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                n += 1;
            }
            n
        })
    };
    let rows = all_pages(&hub, "SELECT * FROM devices.modules", 7, |_| async {}).await;
    stop.store(true, Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0);
    let returned: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["deviceId"].as_str().unwrap().to_string(),
                r["moduleId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Nothing is deleted or added, so every module twin is there exactly once, in order.
    assert_eq!(returned, modules);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_sees_one_state_of_the_hub() {
    let hub = Arc::new(TestHub::start().await);
    // "a" and "z" are written in turn, "a" first; 2,000 twins lie between them in the scan.
    let mut ids = vec!["a".to_string(), "z".to_string()];
    ids.extend((0..2_000).map(|n| format!("m{n:04}")));
    hub.add_devices(&ids).await;
    patch_tags(&hub, "a", json!({ "round": 0 })).await;
    patch_tags(&hub, "z", json!({ "round": 0 })).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (hub, stop) = (Arc::clone(&hub), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                patch_tags(&hub, "a", json!({ "round": round })).await;
                patch_tags(&hub, "z", json!({ "round": round })).await;
            }
            round
        })
    };
    let query = "SELECT deviceId, tags.round AS round FROM devices WHERE IS_DEFINED(tags.round)";
    let aggregate = "SELECT tags.round AS round, COUNT() AS n FROM devices \
                     WHERE IS_DEFINED(tags.round) GROUP BY tags.round";
    for _ in 0..40 {
        let (rows, next) = page(&hub, query, 100, None).await;
        assert!(next.is_none());
        let rounds: BTreeMap<&str, u64> = rows
            .iter()
            .map(|r| {
                (
                    r["deviceId"].as_str().unwrap(),
                    r["round"].as_u64().unwrap(),
                )
            })
            .collect();
        let (a, z) = (rounds["a"], rounds["z"]);
        // In every state of the hub, "a" is "z"'s round or one ahead of it.
        assert!(a == z || a == z + 1, "a mixed state: a={a} z={z}");

        let (groups, _) = page(&hub, aggregate, 100, None).await;
        let total: u64 = groups.iter().map(|g| g["n"].as_u64().unwrap()).sum();
        assert_eq!(total, 2, "{groups:?}");
        if let [one, two] = &groups[..] {
            let (r1, r2) = (
                one["round"].as_u64().unwrap(),
                two["round"].as_u64().unwrap(),
            );
            assert_eq!(r1.abs_diff(r2), 1, "{groups:?}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_over_the_fleet_count_what_is_there_while_twins_change() {
    let hub = Arc::new(TestHub::start().await);
    let ids: Vec<String> = (0..500).map(|n| format!("d{n:03}")).collect();
    hub.add_devices(&ids).await;
    for (n, id) in ids.iter().enumerate() {
        let plant = ["Redmond43", "Redmond44", "Bellevue1"][n % 3];
        patch_tags(
            &hub,
            id,
            json!({ "location": { "plant": plant }, "weight": n % 7 }),
        )
        .await;
    }
    // Desired writes change twins but nothing the aggregates look at.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = churn(&hub, ids.iter().step_by(5).cloned().collect(), &stop);
    let expected_sum: u64 = (0..500u64).map(|n| n % 7).sum();
    for _ in 0..10 {
        let (rows, next) = page(&hub, "SELECT COUNT() AS total FROM devices", 100, None).await;
        assert!(next.is_none());
        assert_eq!(rows, [json!({ "total": 500 })]);
        let (rows, _) = page(
            &hub,
            "SELECT tags.location.plant AS plant, COUNT() AS n, SUM(tags.weight) AS w \
             FROM devices GROUP BY tags.location.plant",
            100,
            None,
        )
        .await;
        let counts: BTreeMap<&str, u64> = rows
            .iter()
            .map(|r| (r["plant"].as_str().unwrap(), r["n"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            counts,
            BTreeMap::from([("Bellevue1", 166), ("Redmond43", 167), ("Redmond44", 167)])
        );
        let sum: u64 = rows.iter().map(|r| r["w"].as_u64().unwrap()).sum();
        assert_eq!(sum, expected_sum);
        let (rows, _) = page(
            &hub,
            "SELECT COUNT() AS n FROM devices WHERE tags.location.plant = 'Redmond43'",
            100,
            None,
        )
        .await;
        assert_eq!(rows, [json!({ "n": 167 })]);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0);
}
