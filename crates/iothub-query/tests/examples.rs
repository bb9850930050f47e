use iothub_query::{Collection, CompiledQuery, ErrorKind, ItemType};
use serde_json::json;

use crate::fleet::{compile, devices, ids, modules, run};

#[test]
fn select_star_returns_every_twin_unchanged() {
    let fleet = devices();
    let q = compile("SELECT * FROM devices");
    assert_eq!(q.collection(), Collection::Devices);
    assert_eq!(q.result_item_type(), ItemType::Twin);
    assert_eq!(q.result_item_type().as_header(), "Twin");
    assert!(!q.is_aggregate());
    assert_eq!(run("SELECT * FROM devices", &fleet), fleet);
}

#[test]
fn count_with_alias_is_one_row() {
    let q = compile("SELECT COUNT() as totalNumberOfDevices FROM devices");
    assert!(q.is_aggregate());
    assert_eq!(q.result_item_type().as_header(), "Raw");
    assert_eq!(
        run(
            "SELECT COUNT() as totalNumberOfDevices FROM devices",
            &devices()
        ),
        vec![json!({"totalNumberOfDevices": 6})]
    );
}

#[test]
fn tag_equality() {
    let rows = run(
        "SELECT * FROM devices WHERE tags.location.region = 'US'",
        &devices(),
    );
    assert_eq!(
        ids(&rows),
        ["myDeviceId", "edgeGateway1", "testSensor01", "thermostat9"]
    );
}

#[test]
fn tag_and_numeric_comparison() {
    let rows = run(
        "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60",
        &devices(),
    );
    assert_eq!(ids(&rows), ["myDeviceId", "edgeGateway1", "testSensor01"]);
}

#[test]
fn in_with_array_constant() {
    // AZ3166Device's connectivity is an object: comparing it is undefined, so it is not
    // selected even though its type is "wifi".
    let rows = run(
        "SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']",
        &devices(),
    );
    assert_eq!(ids(&rows), ["testSensor01", "testSensor02"]);
}

#[test]
fn is_defined_lower_case() {
    let rows = run(
        "SELECT * FROM devices WHERE is_defined(properties.reported.connectivity)",
        &devices(),
    );
    assert_eq!(
        ids(&rows),
        ["myDeviceId", "AZ3166Device", "testSensor01", "testSensor02"]
    );
}

#[test]
fn group_by_with_count() {
    let q =
        "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices \
             FROM devices GROUP BY properties.reported.telemetryConfig.status";
    assert_eq!(
        run(q, &devices()),
        vec![
            json!({"numberOfDevices": 3, "status": "Success"}),
            json!({"numberOfDevices": 2, "status": "Pending"}),
            json!({"numberOfDevices": 1, "status": "Error"}),
        ]
    );
    // Keys follow the SELECT order.
    let first = run(q, &devices()).remove(0);
    let keys: Vec<&String> = first
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["status", "numberOfDevices"]);
}

#[test]
fn pascal_case_projection_returns_twin_spelling() {
    let rows = run(
        "SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
        &devices(),
    );
    assert_eq!(
        rows,
        vec![
            json!({"deviceId": "AZ3166Device", "lastActivityTime": "2021-05-07T00:50:38.0543092Z"})
        ]
    );
}

#[test]
fn single_projection() {
    let rows = run(
        "SELECT LastActivityTime FROM devices WHERE status = 'enabled'",
        &devices(),
    );
    assert_eq!(
        rows,
        vec![
            json!({"lastActivityTime": "0001-01-01T00:00:00"}),
            json!({"lastActivityTime": "2021-05-07T00:50:38.0543092Z"}),
            json!({"lastActivityTime": "2023-01-02T21:42:14.7050295Z"}),
        ]
    );
}

#[test]
fn all_module_twins() {
    let q = compile("SELECT * FROM devices.modules");
    assert_eq!(q.collection(), Collection::DevicesModules);
    assert_eq!(q.result_item_type(), ItemType::Twin);
    assert_eq!(run("SELECT * FROM devices.modules", &modules()), modules());
}

#[test]
fn module_twins_by_reported_status() {
    let rows = run(
        "Select * from devices.modules where properties.reported.status = 'scanning'",
        &modules(),
    );
    let m = modules();
    assert_eq!(rows, vec![m[0].clone(), m[2].clone(), m[3].clone()]);
}

#[test]
fn module_twins_by_status_and_device_list() {
    let rows = run(
        "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['device1', 'device2']",
        &modules(),
    );
    let m = modules();
    assert_eq!(rows, vec![m[0].clone(), m[2].clone()]);
}

#[test]
fn job_queries_are_not_supported_with_a_clear_error() {
    for q in [
        "SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'myDeviceId'",
        "SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'myDeviceId' AND devices.jobs.jobType = 'scheduleTwinUpdate' AND devices.jobs.status = 'completed' AND devices.jobs.createdTimeUtc > '2016-09-01'",
        "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'myJobId'",
    ] {
        let err = match CompiledQuery::compile(q) {
            Ok(_) => panic!("{q} must be rejected"),
            Err(e) => e,
        };
        assert_eq!((err.line, err.column), (1, 15), "{q}");
        assert_eq!(err.kind, ErrorKind::UnsupportedCollection("devices.jobs".into()));
        assert_eq!(
            err.to_string(),
            "line 1, column 15: FROM devices.jobs is not supported; use devices or devices.modules"
        );
    }
}

#[test]
fn reserved_word_escape() {
    let rows = run(
        "SELECT * FROM devices WHERE tags.[[group]].name = 'some_value'",
        &devices(),
    );
    assert_eq!(ids(&rows), ["edgeGateway1"]);
}

#[test]
fn startswith() {
    let rows = run(
        "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'test')",
        &devices(),
    );
    assert_eq!(ids(&rows), ["testSensor01", "testSensor02"]);
}

#[test]
fn edge_capability() {
    let rows = run(
        "SELECT * FROM devices WHERE capabilities.iotEdge = true",
        &devices(),
    );
    assert_eq!(ids(&rows), ["edgeGateway1"]);
}

#[test]
fn tutorial_queries() {
    // The two queries of the device-twins tutorial.
    let rows = run(
        "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'",
        &devices(),
    );
    assert_eq!(ids(&rows), ["myDeviceId", "edgeGateway1"]);
    let rows = run(
        "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' AND properties.reported.connectivity.type = 'cellular'",
        &devices(),
    );
    assert_eq!(ids(&rows), ["myDeviceId"]);
}
