//! The fixture fleet queries are evaluated over: a few twins covering every JSON type the
//! evaluator distinguishes (numbers whole, fractional, negative and beyond 2^53; strings,
//! including non-ASCII and keyword-named properties; booleans, nulls, arrays, objects,
//! missing sections).

use std::sync::OnceLock;

use iothub_query::Collection;
use serde_json::{json, Value};

/// Device twins in the stable order a hub scans them, keyed as the hub keys its rows.
pub(crate) fn devices() -> &'static [(String, Value)] {
    static DEVICES: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    DEVICES.get_or_init(|| keyed(device_twins()))
}

/// Module twins, keyed the same way.
pub(crate) fn modules() -> &'static [(String, Value)] {
    static MODULES: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    MODULES.get_or_init(|| keyed(module_twins()))
}

/// The rows a query over `collection` reads.
pub(crate) fn rows(collection: Collection) -> &'static [(String, Value)] {
    match collection {
        Collection::Devices => devices(),
        Collection::DevicesModules => modules(),
    }
}

fn keyed(twins: Vec<Value>) -> Vec<(String, Value)> {
    let mut rows: Vec<(String, Value)> = twins
        .into_iter()
        .map(|twin| {
            let device = twin["deviceId"].as_str().unwrap_or_default();
            let key = match twin["moduleId"].as_str() {
                Some(module) => format!("{device}/{module}"),
                None => device.to_owned(),
            };
            (key, twin)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn device_twins() -> Vec<Value> {
    vec![
        json!({
            "deviceId": "myDeviceId", "etag": "AAAAAAAAAAc=", "status": "enabled",
            "connectionState": "Connected", "version": 2, "cloudToDeviceMessageCount": 0,
            "x509Thumbprint": {"primaryThumbprint": null, "secondaryThumbprint": null},
            "tags": {"location": {"region": "US", "plant": "Redmond43"}, "floor": 3,
                     "group": {"name": "a b"}, "list": [1, "two", null, [3]]},
            "properties": {
                "desired": {"telemetryConfig": {"configId": "db00ebf5", "sendFrequencyInSecs": 300},
                            "$metadata": {}, "$version": 4},
                "reported": {"connectivity": {"type": "cellular"},
                             "telemetryConfig": {"sendFrequencyInSecs": 300, "status": "Success"},
                             "temperature": 21.5, "$metadata": {}, "$version": 7}
            },
            "capabilities": {"iotEdge": false}
        }),
        json!({
            "deviceId": "AZ3166Device", "status": "enabled", "connectionState": "Disconnected",
            "version": 5,
            "tags": {"location": {"region": "EU", "plant": "Dublin07"}, "floor": -1,
                     "big": 9007199254740993_i64, "huge": 1e300, "tiny": -0.0001},
            "properties": {
                "desired": {"$metadata": {}, "$version": 1},
                "reported": {"connectivity": {"type": "wifi"},
                             "telemetryConfig": {"sendFrequencyInSecs": 30, "status": "Pending"},
                             "temperature": -3, "$metadata": {}, "$version": 3}
            },
            "capabilities": {"iotEdge": false}
        }),
        json!({
            "deviceId": "edgeGateway1", "status": "disabled", "connectionState": "Connected",
            "version": 8,
            "tags": {"location": {"region": "US", "plant": "Redmond43"}, "floor": 3.0,
                     "ünïcode": "välue", "SELECT": true, "z": null},
            "properties": {
                "desired": {"mode": null, "$metadata": {}, "$version": 2},
                "reported": {"connectivity": "wired", "telemetryConfig": {"status": "Error"},
                             "$metadata": {}, "$version": 9}
            },
            "capabilities": {"iotEdge": true}
        }),
        json!({
            "deviceId": "sensor-04", "status": "enabled", "connectionState": "Disconnected",
            "version": 1, "tags": {},
            "properties": {"desired": {"$metadata": {}, "$version": 1},
                           "reported": {"$metadata": {}, "$version": 1}}
        }),
        json!({"deviceId": "bare", "version": 1}),
    ]
}

fn module_twins() -> Vec<Value> {
    let module = |device: &str, module: &str, status: Value| {
        json!({
            "deviceId": device, "moduleId": module, "status": "enabled", "version": 2,
            "properties": {"desired": {"$metadata": {}, "$version": 1},
                           "reported": {"status": status, "$metadata": {}, "$version": 2}}
        })
    };
    vec![
        module("myDeviceId", "scanner", json!("scanning")),
        module("myDeviceId", "logger", json!(null)),
        module("edgeGateway1", "$edgeAgent", json!(["a", 1])),
    ]
}
