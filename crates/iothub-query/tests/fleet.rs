use iothub_query::CompiledQuery;
use serde_json::{json, Value};

/// Six device twins shaped like GET /twins responses, chosen so every documented example query
/// (the `examples` module) selects a distinct, non-trivial subset. Order is the "stable order" a hub would scan in.
pub fn devices() -> Vec<Value> {
    vec![
        json!({
            "deviceId": "myDeviceId", "etag": "AAAAAAAAAAc=", "status": "enabled",
            "statusUpdateTime": "0001-01-01T00:00:00", "connectionState": "Connected",
            "lastActivityTime": "0001-01-01T00:00:00", "cloudToDeviceMessageCount": 0,
            "authenticationType": "sas",
            "x509Thumbprint": {"primaryThumbprint": null, "secondaryThumbprint": null},
            "version": 2,
            "tags": {"location": {"region": "US", "plant": "Redmond43"}},
            "properties": {
                "desired": {"telemetryConfig": {"configId": "db00ebf5", "sendFrequencyInSecs": 300},
                            "$metadata": {}, "$version": 4},
                "reported": {"connectivity": {"type": "cellular"},
                             "telemetryConfig": {"configId": "db00ebf5", "sendFrequencyInSecs": 300, "status": "Success"},
                             "$metadata": {}, "$version": 7}
            },
            "capabilities": {"iotEdge": false}
        }),
        json!({
            "deviceId": "AZ3166Device", "status": "enabled", "connectionState": "Disconnected",
            "lastActivityTime": "2021-05-07T00:50:38.0543092Z", "version": 5,
            "tags": {"location": {"region": "EU", "plant": "Dublin07"}},
            "properties": {
                "desired": {"$metadata": {}, "$version": 1},
                "reported": {"connectivity": {"type": "wifi"},
                             "telemetryConfig": {"sendFrequencyInSecs": 30, "status": "Pending"},
                             "$metadata": {}, "$version": 3}
            },
            "capabilities": {"iotEdge": false}
        }),
        json!({
            "deviceId": "edgeGateway1", "status": "enabled", "connectionState": "Connected",
            "lastActivityTime": "2023-01-02T21:42:14.7050295Z", "version": 8,
            "tags": {"location": {"region": "US", "plant": "Redmond43"}, "group": {"name": "some_value"}},
            "properties": {
                "desired": {"$metadata": {}, "$version": 2},
                "reported": {"telemetryConfig": {"sendFrequencyInSecs": 60, "status": "Success"},
                             "$metadata": {}, "$version": 9}
            },
            "capabilities": {"iotEdge": true}
        }),
        json!({
            "deviceId": "testSensor01", "status": "disabled", "connectionState": "Disconnected",
            "lastActivityTime": "2022-10-18T19:49:51.1552214Z", "version": 4,
            "tags": {"location": {"region": "US", "plant": "Seattle01"}},
            "properties": {
                "desired": {"$metadata": {}, "$version": 1},
                "reported": {"connectivity": "wired",
                             "telemetryConfig": {"sendFrequencyInSecs": 120, "status": "Pending"},
                             "$metadata": {}, "$version": 2}
            },
            "capabilities": {"iotEdge": false}
        }),
        json!({
            "deviceId": "testSensor02", "status": "disabled", "connectionState": "Connected",
            "lastActivityTime": "2022-10-19T12:10:35.7728649Z", "version": 3,
            "properties": {
                "desired": {"$metadata": {}, "$version": 1},
                "reported": {"connectivity": "wifi",
                             "telemetryConfig": {"sendFrequencyInSecs": "fast", "status": "Success"},
                             "$metadata": {}, "$version": 2}
            },
            "capabilities": {"iotEdge": false}
        }),
        json!({
            "deviceId": "thermostat9", "status": "disabled", "connectionState": "Disconnected",
            "lastActivityTime": "2020-01-01T00:00:00Z", "version": 6,
            "tags": {"location": {"region": "US", "plant": "Redmond44"}},
            "properties": {
                "desired": {"$metadata": {}, "$version": 1},
                "reported": {"telemetryConfig": {"sendFrequencyInSecs": 30, "status": "Error"},
                             "$metadata": {}, "$version": 2}
            },
            "capabilities": {"iotEdge": false}
        }),
    ]
}

/// Four module twins over three devices.
pub fn modules() -> Vec<Value> {
    let module = |device: &str, module: &str, status: &str| {
        json!({
            "deviceId": device, "moduleId": module, "status": "enabled",
            "connectionState": "Disconnected", "version": 2,
            "properties": {"desired": {"$metadata": {}, "$version": 1},
                           "reported": {"status": status, "$metadata": {}, "$version": 2}}
        })
    };
    vec![
        module("device1", "scanner", "scanning"),
        module("device1", "logger", "idle"),
        module("device2", "scanner", "scanning"),
        module("device3", "scanner", "scanning"),
    ]
}

/// Compiles `query`, failing the test with the error text if it does not compile.
pub fn compile(query: &str) -> CompiledQuery {
    match CompiledQuery::compile(query) {
        Ok(q) => q,
        Err(e) => panic!("{query:?} should compile: {e}"),
    }
}

/// Runs `query` over `rows` the way the emulator does: aggregates in one go, everything
/// else page by page (page size 2, to exercise resumption).
pub fn run(query: &str, rows: &[Value]) -> Vec<Value> {
    let q = compile(query);
    if q.is_aggregate() {
        return q.aggregate(rows.iter());
    }
    let keyed: Vec<(String, &Value)> = rows
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{i:04}"), v))
        .collect();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..=rows.len() {
        let rest = keyed
            .iter()
            .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
            .map(|(k, v)| (k.as_str(), *v));
        let page = q.page(rest, out.len() as u64, 2);
        out.extend(page.items);
        if page.done {
            return out;
        }
        after = page.last_key;
    }
    panic!("{query:?}: paging did not finish");
}

/// The device ids of result rows.
pub fn ids(rows: &[Value]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["deviceId"].as_str().unwrap_or("<no deviceId>"))
        .collect()
}
