use serde_json::{json, Value};

use crate::fleet::{compile, devices, modules, run};

#[test]
fn projections_omit_missing_properties_and_keep_values_whole() {
    let rows = run(
        "SELECT deviceId, tags.location.plant FROM devices",
        &devices(),
    );
    assert_eq!(
        rows[0],
        json!({"deviceId": "myDeviceId", "plant": "Redmond43"})
    );
    assert_eq!(rows[4], json!({"deviceId": "testSensor02"}));
    let rows = run(
        "SELECT deviceId AS id, tags.location AS loc, properties.desired.$version FROM devices WHERE deviceId = 'myDeviceId'",
        &devices(),
    );
    assert_eq!(
        rows,
        vec![
            json!({"id": "myDeviceId", "loc": {"region": "US", "plant": "Redmond43"}, "$version": 4})
        ]
    );
    let rows = run(
        "SELECT tags.[[group]].name AS g FROM devices WHERE IS_DEFINED(tags.[[group]])",
        &devices(),
    );
    assert_eq!(rows, vec![json!({"g": "some_value"})]);
}

#[test]
fn unnamed_aggregates_are_numbered() {
    assert_eq!(
        run("SELECT COUNT(), SUM(version) FROM devices", &devices()),
        vec![json!({"$1": 6, "$2": 28})]
    );
    assert_eq!(
        run("SELECT COUNT() AS n, MAX(version) FROM devices", &devices()),
        vec![json!({"n": 6, "$1": 8})]
    );
}

#[test]
fn numeric_aggregates_skip_missing_and_reject_other_types() {
    let freq = "properties.reported.telemetryConfig.sendFrequencyInSecs";
    // testSensor02 reports "fast": SUM and AVG become undefined and are left out.
    assert_eq!(
        run(
            &format!("SELECT SUM({freq}) AS s, AVG({freq}) AS a, COUNT() AS n FROM devices"),
            &devices()
        ),
        vec![json!({"n": 6})]
    );
    assert_eq!(
        run(
            &format!("SELECT SUM({freq}) AS s, AVG({freq}) AS a, MIN({freq}) AS lo, MAX({freq}) AS hi FROM devices WHERE IS_NUMBER({freq})"),
            &devices()
        ),
        vec![json!({"s": 540, "a": 108.0, "lo": 30, "hi": 300})]
    );
    // MIN/MAX order across types: numbers before strings.
    assert_eq!(
        run(
            &format!("SELECT MIN({freq}) AS lo, MAX({freq}) AS hi FROM devices"),
            &devices()
        ),
        vec![json!({"lo": 30, "hi": "fast"})]
    );
    assert_eq!(
        run(
            "SELECT MIN(deviceId) AS lo, MAX(deviceId) AS hi FROM devices",
            &devices()
        ),
        vec![json!({"lo": "AZ3166Device", "hi": "thermostat9"})]
    );
    // Objects make MIN/MAX undefined.
    assert_eq!(
        run(
            "SELECT MIN(tags) AS m, COUNT() AS n FROM devices",
            &devices()
        ),
        vec![json!({"n": 6})]
    );
}

#[test]
fn sums_mix_integers_and_floats() {
    let rows = [
        json!({"tags": {"v": 2.5}}),
        json!({"tags": {"v": 1}}),
        json!({"tags": {}}),
    ];
    assert_eq!(
        run(
            "SELECT SUM(tags.v) AS s, AVG(tags.v) AS a FROM devices",
            &rows
        ),
        vec![json!({"s": 3.5, "a": 1.75})]
    );
    let big = [json!({"tags": {"v": i64::MAX}}), json!({"tags": {"v": 1}})];
    let sum = run("SELECT SUM(tags.v) AS s FROM devices", &big);
    assert_eq!(sum[0]["s"].as_f64(), Some(i64::MAX as f64 + 1.0));
}

#[test]
fn aggregates_over_no_rows() {
    assert_eq!(
        run("SELECT COUNT() AS n, SUM(version) AS s, AVG(version) AS a, MIN(version) AS m FROM devices WHERE false", &devices()),
        vec![json!({"n": 0, "s": 0})]
    );
    assert_eq!(
        run(
            "SELECT status, COUNT() AS n FROM devices WHERE false GROUP BY status",
            &devices()
        ),
        Vec::<Value>::new()
    );
}

#[test]
fn group_by_keeps_an_undefined_group_and_first_seen_order() {
    assert_eq!(
        run(
            "SELECT tags.location.region AS region, COUNT() AS n FROM devices GROUP BY tags.location.region",
            &devices()
        ),
        vec![json!({"region": "US", "n": 4}), json!({"region": "EU", "n": 1}), json!({"n": 1})]
    );
}

#[test]
fn group_by_without_aggregates_lists_distinct_values() {
    assert_eq!(
        run("SELECT status FROM devices GROUP BY status", &devices()),
        vec![json!({"status": "enabled"}), json!({"status": "disabled"})]
    );
    let q = compile("SELECT status FROM devices GROUP BY status");
    assert!(q.is_aggregate());
    assert_eq!(q.result_item_type().as_header(), "Raw");
}

#[test]
fn group_by_top_level_is_case_insensitive_and_named_as_the_twin_spells_it() {
    assert_eq!(
        run(
            "SELECT Status, COUNT() AS n FROM devices GROUP BY STATUS",
            &devices()
        ),
        vec![
            json!({"status": "enabled", "n": 3}),
            json!({"status": "disabled", "n": 3})
        ]
    );
}

#[test]
fn group_by_numbers_by_value() {
    let rows = [
        json!({"tags": {"v": 1}}),
        json!({"tags": {"v": 1.0}}),
        json!({"tags": {"v": "1"}}),
        json!({"tags": {"v": {"x": 1}}}),
        json!({"tags": {"v": {"x": 1}}}),
        json!({"tags": {"v": null}}),
    ];
    assert_eq!(
        run(
            "SELECT tags.v AS v, COUNT() AS n FROM devices GROUP BY tags.v",
            &rows
        ),
        vec![
            json!({"v": 1, "n": 2}),
            json!({"v": "1", "n": 1}),
            json!({"v": {"x": 1}, "n": 2}),
            json!({"v": null, "n": 1}),
        ]
    );
}

#[test]
fn top_applies_after_where_and_to_groups() {
    let rows = run(
        "SELECT TOP 2 deviceId FROM devices WHERE status = 'disabled'",
        &devices(),
    );
    assert_eq!(
        rows,
        vec![
            json!({"deviceId": "testSensor01"}),
            json!({"deviceId": "testSensor02"})
        ]
    );
    let rows = run(
        "SELECT TOP 1 status, COUNT() AS n FROM devices GROUP BY status",
        &devices(),
    );
    assert_eq!(rows, vec![json!({"status": "enabled", "n": 3})]);
    assert!(run("SELECT TOP 0 * FROM devices", &devices()).is_empty());
}

#[test]
fn aggregates_on_module_twins() {
    assert_eq!(
        run(
            "SELECT COUNT() AS n FROM devices.modules WHERE properties.reported.status = 'scanning'",
            &modules()
        ),
        vec![json!({"n": 3})]
    );
    assert_eq!(
        run(
            "SELECT moduleId, COUNT() AS n FROM devices.modules GROUP BY moduleId",
            &modules()
        ),
        vec![
            json!({"moduleId": "scanner", "n": 3}),
            json!({"moduleId": "logger", "n": 1})
        ]
    );
}

#[test]
fn aggregate_runs_plain_queries_too() {
    let fleet = devices();
    let q = compile("SELECT TOP 2 deviceId FROM devices WHERE tags.location.region = 'US'");
    assert_eq!(
        q.aggregate(fleet.iter()),
        vec![
            json!({"deviceId": "myDeviceId"}),
            json!({"deviceId": "edgeGateway1"})
        ]
    );
    assert_eq!(q.top(), Some(2));
}

#[test]
fn project_on_an_aggregate_query_gives_the_group_property() {
    let q = compile("SELECT status AS s, COUNT() AS n FROM devices GROUP BY status");
    assert_eq!(q.project(&devices()[0]), json!({"s": "enabled"}));
}

#[test]
fn canonical_printing() {
    let q = compile("select top 3 deviceid as [[id]] from DEVICES.Modules where not a.b in [1,-2,0x1F] and (x or y) and [[group]].[[a b]] <> \"it's\"");
    assert_eq!(
        q.to_string(),
        "SELECT TOP 3 deviceid AS id FROM devices.modules WHERE NOT a.b IN [1, -2, 31] AND (x OR y) AND [[group]].[[a b]] != 'it\\'s'"
    );
    assert_eq!(compile(&q.to_string()).ast(), q.ast());
}
