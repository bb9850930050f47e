//! The tutorial's two-condition WHERE over 100,000 realistic twins (10% match).
//!
//! `compiled` is the engine as the emulator uses it (compile once, `matches` per twin).
//! The other functions are measured in the same run for scale:
//! - `handwritten_linear`: the two lookups hard-coded, walking each object's entries the
//!   way the engine does: the floor for evaluating over `serde_json::Value` twins;
//! - `handwritten_index`: hard-coded with `twin["tags"]["location"]…` (serde_json's hashed
//!   lookup), what a quick hand-written filter would do;
//! - `clone_per_row`: the engine, cloning each twin before matching;
//! - `reparse_per_row`: the engine, compiling the query again for every twin.

// criterion_group! defines a public `benches` fn it gives no doc; a bench binary has no API.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use iothub_query::CompiledQuery;
use serde_json::{json, Value};

const QUERY: &str = "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' \
                     AND properties.reported.connectivity.type = 'cellular'";
const FLEET: usize = 100_000;

/// SplitMix64: a deterministic spread of values without a dependency.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A twin shaped like GET /twins/{id} (ARCHITECTURE.md#service-rest-api): identity fields,
/// tags, desired and reported properties with `$metadata` at every level.
fn twin(i: usize) -> Value {
    let h = mix(i as u64);
    let plants = ["Redmond43", "Redmond44", "Seattle01", "Dublin07", "Tokyo12"];
    let plant = plants[(h % 5) as usize];
    let conn = match (h >> 8) % 4 {
        0 | 1 => "cellular",
        2 => "wifi",
        _ => "wired",
    };
    let ts = "2024-05-07T00:50:38.0543092Z";
    let md = |v: u64| json!({"$lastUpdated": ts, "$lastUpdatedVersion": v});
    json!({
        "deviceId": format!("device-{i:06}"),
        "etag": "AAAAAAAAAAc=",
        "deviceEtag": "ODQ4NDk5Mzk=",
        "status": "enabled",
        "statusUpdateTime": "0001-01-01T00:00:00Z",
        "connectionState": if h.is_multiple_of(3) { "Connected" } else { "Disconnected" },
        "lastActivityTime": ts,
        "cloudToDeviceMessageCount": 0,
        "authenticationType": "sas",
        "x509Thumbprint": {"primaryThumbprint": null, "secondaryThumbprint": null},
        "modelId": "",
        "version": 9 + (h % 40),
        "tags": {
            "location": {"region": if h % 5 < 2 { "US" } else { "EU" }, "plant": plant},
            "owner": "ops",
        },
        "properties": {
            "desired": {
                "telemetryConfig": {"configId": "db00ebf5-eeeb-42be-86a1-458cccb69e57", "sendFrequencyInSecs": 300},
                "$metadata": {
                    "$lastUpdated": ts, "$lastUpdatedVersion": 4,
                    "telemetryConfig": {
                        "$lastUpdated": ts, "$lastUpdatedVersion": 4,
                        "configId": md(4), "sendFrequencyInSecs": md(4),
                    },
                },
                "$version": 4,
            },
            "reported": {
                "connectivity": {"type": conn, "signalStrength": -(((h >> 16) % 90) as i64)},
                "telemetryConfig": {
                    "configId": "db00ebf5-eeeb-42be-86a1-458cccb69e57",
                    "sendFrequencyInSecs": 300,
                    "status": "Success",
                },
                "$metadata": {
                    "$lastUpdated": ts,
                    "connectivity": {"$lastUpdated": ts, "type": {"$lastUpdated": ts}, "signalStrength": {"$lastUpdated": ts}},
                    "telemetryConfig": {
                        "$lastUpdated": ts,
                        "configId": {"$lastUpdated": ts},
                        "sendFrequencyInSecs": {"$lastUpdated": ts},
                        "status": {"$lastUpdated": ts},
                    },
                },
                "$version": 7,
            },
        },
        "capabilities": {"iotEdge": false},
    })
}

fn handwritten_index(t: &Value) -> bool {
    t["tags"]["location"]["plant"] == "Redmond43"
        && t["properties"]["reported"]["connectivity"]["type"] == "cellular"
}

fn field<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.as_str() == key)
        .map(|(_, v)| v)
}

fn handwritten_linear(t: &Value) -> bool {
    let get = |path: &[&str]| path.iter().try_fold(t, |v, k| field(v, k));
    get(&["tags", "location", "plant"]).and_then(Value::as_str) == Some("Redmond43")
        && get(&["properties", "reported", "connectivity", "type"]).and_then(Value::as_str)
            == Some("cellular")
}

fn scan(c: &mut Criterion) {
    let fleet: Vec<Value> = (0..FLEET).map(twin).collect();
    let query = match CompiledQuery::compile(QUERY) {
        Ok(q) => q,
        Err(e) => panic!("benchmark query must compile: {e}"),
    };
    let matching = fleet.iter().filter(|t| query.matches(t)).count();
    assert_eq!(
        matching,
        fleet.iter().filter(|t| handwritten_index(t)).count()
    );
    assert_eq!(
        matching,
        fleet.iter().filter(|t| handwritten_linear(t)).count()
    );
    eprintln!(
        "fleet: {FLEET} twins, {matching} match ({:.1}%)",
        100.0 * matching as f64 / FLEET as f64
    );

    let mut group = c.benchmark_group("query_scan_100k");
    group.sample_size(20);
    group.bench_function("compiled", |b| {
        b.iter(|| fleet.iter().filter(|t| query.matches(black_box(t))).count())
    });
    group.bench_function("handwritten_linear", |b| {
        b.iter(|| {
            fleet
                .iter()
                .filter(|t| handwritten_linear(black_box(t)))
                .count()
        })
    });
    group.bench_function("handwritten_index", |b| {
        b.iter(|| {
            fleet
                .iter()
                .filter(|t| handwritten_index(black_box(t)))
                .count()
        })
    });
    group.bench_function("clone_per_row", |b| {
        b.iter(|| {
            fleet
                .iter()
                .filter(|t| query.matches(&black_box(*t).clone()))
                .count()
        })
    });
    group.sample_size(10);
    group.bench_function("reparse_per_row", |b| {
        b.iter(|| {
            fleet
                .iter()
                .filter(|t| CompiledQuery::compile(black_box(QUERY)).is_ok_and(|q| q.matches(t)))
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
