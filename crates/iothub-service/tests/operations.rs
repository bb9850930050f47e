use iothub_emulator::test_support::TestHub;
use iothub_service::{ErrorKind, IfMatch, TwinPatch};
use serde_json::json;

use crate::support::ServiceHub;

#[tokio::test]
async fn statistics_count_devices() {
    let hub = TestHub::start().await;
    hub.add_devices(["a", "b", "c"].map(String::from)).await;
    let stats = hub.client().registry_statistics().await.unwrap();
    assert_eq!(stats.total_device_count, 3);
    assert_eq!(stats.enabled_device_count, 3);
    assert_eq!(stats.disabled_device_count, 0);
}

#[tokio::test]
async fn device_get_has_no_keys_and_odd_ids_round_trip() {
    let hub = TestHub::start().await;
    let odd = "dev#1?x%y+z;a:b$c'd";
    hub.add_devices([odd.to_owned(), "plain".to_owned()]).await;
    let client = hub.client();
    let device = client.get_device(odd).await.unwrap();
    assert_eq!(device.device_id, odd);
    assert_eq!(device.status.as_deref(), Some("enabled"));
    assert_eq!(device.authentication_type.as_deref(), Some("sas"));
    let twin = client.get_twin(odd).await.unwrap();
    assert_eq!(twin.device_id, odd);
}

#[tokio::test]
async fn patch_merges_and_replace_replaces() {
    let hub = TestHub::start().await;
    hub.add_devices(["myDeviceId".to_owned()]).await;
    let client = hub.client();
    let before = client.get_twin("myDeviceId").await.unwrap();

    let patch = TwinPatch::from_json(
        Some(json!({"location": {"region": "US", "plant": "Redmond43"}})),
        Some(json!({"power": 1})),
    )
    .unwrap();
    let after = client
        .update_twin("myDeviceId", &patch, &IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(
        after.pointer("tags.location.plant"),
        Some(json!("Redmond43"))
    );
    assert_eq!(after.properties.desired.get("power"), Some(&json!(1)));
    assert_ne!(after.etag, before.etag);

    // merge: a second tag patch keeps the first's keys
    let patch = TwinPatch::from_json(Some(json!({"owner": "ops"})), None).unwrap();
    let etag = IfMatch::Etag(after.etag.clone().unwrap());
    let merged = client
        .update_twin("myDeviceId", &patch, &etag)
        .await
        .unwrap();
    assert_eq!(merged.pointer("tags.location.region"), Some(json!("US")));
    assert_eq!(merged.pointer("tags.owner"), Some(json!("ops")));

    // replace: only the new tags remain
    let replacement = TwinPatch::from_json(Some(json!({"only": true})), Some(json!({}))).unwrap();
    let replaced = client
        .replace_twin("myDeviceId", &replacement, &IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(replaced.tags, *json!({"only": true}).as_object().unwrap());
    assert_eq!(replaced.properties.desired.get("power"), None);
}

#[tokio::test]
async fn stale_etag_is_a_conflict_with_the_hub_code() {
    let hub = TestHub::start().await;
    hub.add_devices(["d1".to_owned()]).await;
    let client = hub.client();
    let original = client.get_twin("d1").await.unwrap();
    let patch = TwinPatch::from_json(Some(json!({"n": 1})), None).unwrap();
    client
        .update_twin("d1", &patch, &IfMatch::Any)
        .await
        .unwrap();

    let stale = IfMatch::Etag(original.etag.unwrap());
    let err = client.update_twin("d1", &patch, &stale).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(err.hub_code(), Some("PreconditionFailed"));
    assert_eq!(err.hub_error().map(|e| e.status), Some(412));
    assert_eq!(err.attempts(), 1, "412 is not retried");
}
