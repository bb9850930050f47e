use std::cell::Cell;

use iothub_query::Page;
use serde_json::{json, Value};

use crate::fleet::{compile, devices};

/// Rows keyed and sorted by device id, like a hub's BTreeMap.
fn keyed(rows: &[Value]) -> Vec<(String, &Value)> {
    let mut keyed: Vec<(String, &Value)> = rows
        .iter()
        .map(|v| (v["deviceId"].as_str().unwrap_or("").to_owned(), v))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed
}

fn page_after(
    query: &str,
    rows: &[(String, &Value)],
    after: Option<&str>,
    returned: u64,
    size: usize,
) -> Page {
    let q = compile(query);
    let rest = rows
        .iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
        .map(|(k, v)| (k.as_str(), *v));
    q.page(rest, returned, size)
}

#[test]
fn pages_resume_strictly_after_the_last_key() {
    let fleet = devices();
    let rows = keyed(&fleet);
    let q = "SELECT deviceId FROM devices";
    let p1 = page_after(q, &rows, None, 0, 4);
    assert_eq!(p1.items.len(), 4);
    assert!(!p1.done);
    assert_eq!(p1.last_key.as_deref(), Some("testSensor01"));
    let p2 = page_after(q, &rows, p1.last_key.as_deref(), 4, 4);
    assert_eq!(
        p2.items,
        vec![
            json!({"deviceId": "testSensor02"}),
            json!({"deviceId": "thermostat9"})
        ]
    );
    assert!(p2.done);
    assert_eq!(p2.last_key.as_deref(), Some("thermostat9"));
}

#[test]
fn a_page_that_ends_exactly_at_the_last_match_is_done() {
    let fleet = devices();
    let rows = keyed(&fleet);
    let p = page_after(
        "SELECT * FROM devices WHERE tags.location.region = 'US'",
        &rows,
        None,
        0,
        4,
    );
    assert_eq!(p.items.len(), 4);
    assert!(p.done, "no continuation when nothing else matches");
}

#[test]
fn top_holds_across_pages() {
    let fleet = devices();
    let rows = keyed(&fleet);
    let q = "SELECT TOP 3 deviceId FROM devices";
    let p1 = page_after(q, &rows, None, 0, 2);
    assert_eq!((p1.items.len(), p1.done), (2, false));
    let p2 = page_after(q, &rows, p1.last_key.as_deref(), 2, 2);
    assert_eq!((p2.items.len(), p2.done), (1, true));
    assert_eq!(p2.items, vec![json!({"deviceId": "myDeviceId"})]);
    let p3 = page_after(q, &rows, p2.last_key.as_deref(), 3, 2);
    assert_eq!((p3.items.len(), p3.done, p3.last_key), (0, true, None));
}

#[test]
fn a_page_reads_only_up_to_the_next_match() {
    let fleet = devices();
    let rows = keyed(&fleet);
    let consumed = Cell::new(0);
    let q = compile("SELECT * FROM devices");
    let page = q.page(
        rows.iter().map(|(k, v)| {
            consumed.set(consumed.get() + 1);
            (k.as_str(), *v)
        }),
        0,
        1,
    );
    assert_eq!((page.items.len(), page.done), (1, false));
    assert_eq!(consumed.get(), 2, "one row returned, one row peeked");
}

#[test]
fn empty_and_zero_sized_pages() {
    let fleet = devices();
    let rows = keyed(&fleet);
    let p = page_after("SELECT * FROM devices WHERE false", &rows, None, 0, 10);
    assert_eq!(
        p,
        Page {
            items: vec![],
            last_key: None,
            done: true
        }
    );
    let p = page_after("SELECT * FROM devices", &rows, None, 0, 0);
    assert_eq!((p.items.len(), p.done), (0, false));
}

#[test]
fn aggregate_results_page_by_window() {
    let fleet = devices();
    let rows = keyed(&fleet);
    let q = "SELECT properties.reported.telemetryConfig.status AS s, COUNT() AS n FROM devices GROUP BY properties.reported.telemetryConfig.status";
    let p1 = page_after(q, &rows, None, 0, 2);
    // Groups come in first-seen order over the sorted rows: AZ3166Device is Pending.
    assert_eq!(
        p1.items,
        vec![
            json!({"s": "Pending", "n": 2}),
            json!({"s": "Success", "n": 3})
        ]
    );
    assert_eq!((p1.done, p1.last_key.clone()), (false, None));
    let p2 = page_after(q, &rows, None, 2, 2);
    assert_eq!(p2.items, vec![json!({"s": "Error", "n": 1})]);
    assert!(p2.done);
}

/// A rendered page is byte for byte the page's rows serialized as one JSON array, with the same
/// paging fields, for whole twins, projections, `TOP`, empty pages and aggregates.
#[test]
fn a_rendered_page_is_the_page_serialized() {
    let fleet = devices();
    let rows = keyed(&fleet);
    let queries = [
        "SELECT * FROM devices",
        "SELECT * FROM devices WHERE tags.location.region = 'US'",
        "SELECT deviceId, tags.location AS place FROM devices",
        "SELECT TOP 3 * FROM devices",
        "SELECT * FROM devices WHERE deviceId = 'nobody'",
        "SELECT COUNT() AS n FROM devices",
    ];
    for query in queries {
        let q = compile(query);
        for size in [1, 2, 4, 100] {
            let mut after: Option<String> = None;
            let mut returned = 0;
            loop {
                let rest = || {
                    rows.iter()
                        .filter(|(k, _)| after.as_deref().is_none_or(|a| k.as_str() > a))
                        .map(|(k, v)| (k.as_str(), *v))
                };
                let page = q.page(rest(), returned, size);
                let rendered = q.render_page(rest(), returned, size);
                assert_eq!(
                    String::from_utf8(rendered.body).unwrap(),
                    serde_json::to_string(&Value::Array(page.items.clone())).unwrap(),
                    "{query} (page size {size}, after {after:?})"
                );
                assert_eq!(rendered.rows, page.items.len(), "{query}");
                assert_eq!(rendered.last_key, page.last_key, "{query}");
                assert_eq!(rendered.done, page.done, "{query}");
                if page.done || q.is_aggregate() {
                    break;
                }
                returned += page.items.len() as u64;
                after = page.last_key;
            }
        }
    }
}
