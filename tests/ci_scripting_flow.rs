//! The flow a CI job scripts against a hub: the device reports once, then the back end waits
//! until the device shows up in both queries; both steps' JSON output is parsed.

use crate::support::{device_connection_string, run, stderr, stdout, tutorial_hub, DEVICE_ID};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn report_once_then_wait_for_the_device_in_json() {
    let hub = tutorial_hub().await;
    let service = hub.emulator().service_connection_string();
    let device = device_connection_string(&hub);
    let ca = hub.emulator().ca_file().to_string_lossy().into_owned();

    // The device's step: one JSON document once the hub acknowledged the patch.
    let report = run(
        "report-connectivity",
        &["--once", "--output", "json"],
        &[
            ("IOTHUB_DEVICE_CONNECTION_STRING", device.as_str()),
            ("IOTHUB_CA_FILE", ca.as_str()),
        ],
    )
    .await;
    assert!(report.status.success(), "{}", stderr(&report));
    let acknowledged: Value =
        serde_json::from_str(stdout(&report).trim()).expect("report-connectivity prints JSON");
    assert_eq!(acknowledged["event"], "reported");
    assert_eq!(acknowledged["status"], 204);
    assert!(acknowledged["version"].as_u64().is_some_and(|v| v >= 2));
    assert_eq!(acknowledged["patch"]["connectivity"]["type"], "cellular");

    // The back end's step: tag, then poll both queries until the device is in each.
    let tagged = run(
        "add-tags-and-query",
        &[
            "--wait",
            "30s",
            "--expect-device",
            DEVICE_ID,
            "--output",
            "json",
        ],
        &[
            ("IOTHUB_CONNECTION_STRING", service.as_str()),
            ("IOTHUB_CA_FILE", ca.as_str()),
        ],
    )
    .await;
    assert!(tagged.status.success(), "{}", stderr(&tagged));
    let document: Value = serde_json::from_str(&stdout(&tagged))
        .expect("add-tags-and-query prints one JSON document");
    assert_eq!(document["statistics"]["totalDeviceCount"], 1);
    assert_eq!(document["twinUpdate"]["deviceId"], DEVICE_ID);
    assert_eq!(
        document["twinUpdate"]["tags"]["location"]["plant"],
        "Redmond43"
    );
    let queries = document["queries"].as_array().expect("queries array");
    assert_eq!(queries.len(), 2);
    for query in queries {
        assert_eq!(query["itemType"], "Twin");
        assert_eq!(
            query["deviceIds"],
            serde_json::json!([DEVICE_ID]),
            "{query}"
        );
    }
    assert_eq!(document["wait"]["expectDevice"], DEVICE_ID);

    for output in [&report, &tagged] {
        let text = format!("{}{}", stdout(output), stderr(output));
        for secret in hub.secrets() {
            assert!(!text.contains(&secret), "a key leaked into:\n{text}");
        }
    }
}
