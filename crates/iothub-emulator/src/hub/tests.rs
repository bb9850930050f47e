//! Hub state transitions without sockets or disk.

use serde_json::{json, Map, Value};

use super::policy::default_policies;
use super::*;
use crate::persist::Loaded;

/// Sessions that keep what the hub tells them.
#[derive(Default)]
struct Recorded {
    desired: Mutex<Vec<DesiredPatch>>,
    closed: Mutex<Vec<String>>,
}

impl DeviceSessions for Recorded {
    fn desired_changed(&self, change: DesiredPatch) {
        self.desired.lock().unwrap().push(change);
    }
    fn disconnect(&self, device_id: &str) {
        self.closed
            .lock()
            .unwrap()
            .push(format!("disconnect {device_id}"));
    }
    fn device_deleted(&self, device_id: &str) {
        self.closed
            .lock()
            .unwrap()
            .push(format!("deleted {device_id}"));
    }
}

async fn hub_with(sessions: Arc<Recorded>) -> Hub {
    Hub::open(
        "localhost".into(),
        None,
        Loaded::default(),
        sessions,
        crate::events::EventsConfig::default(),
    )
    .await
    .expect("in-memory hub opens")
}

async fn hub() -> Hub {
    hub_with(Arc::default()).await
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[tokio::test]
async fn default_policies_exist_with_their_permissions() {
    let hub = hub().await;
    for (name, perms) in default_policies() {
        let p = hub.policy(name).expect("policy exists");
        assert_eq!(p.permissions, perms);
    }
    assert!(hub.policy("nope").is_none());
}

#[tokio::test]
async fn create_conflict_and_etag_update() {
    let hub = hub().await;
    let d = hub
        .create_device("d1", DeviceSpec::default())
        .await
        .unwrap();
    assert_eq!(d["status"], "enabled");
    assert!(matches!(
        hub.create_device("d1", DeviceSpec::default()).await,
        Err(HubError::DeviceAlreadyExists(_))
    ));
    let etag = d["etag"].as_str().unwrap().to_string();
    let stale = IfMatch::Etag("bm9wZQ==".into());
    assert!(matches!(
        hub.update_device("d1", DeviceSpec::default(), &stale).await,
        Err(HubError::PreconditionFailed(_))
    ));
    let updated = hub
        .update_device("d1", DeviceSpec::default(), &IfMatch::Etag(etag.clone()))
        .await
        .unwrap();
    assert_ne!(updated["etag"], etag);
    assert!(matches!(
        hub.update_device("zz", DeviceSpec::default(), &IfMatch::Any)
            .await,
        Err(HubError::DeviceNotFound(_))
    ));
}

#[tokio::test]
async fn twin_counters_evolve_as_the_hub_counts_them() {
    let sessions = Arc::new(Recorded::default());
    let hub = hub_with(Arc::clone(&sessions)).await;
    hub.create_device("d1", DeviceSpec::default())
        .await
        .unwrap();
    let t0 = hub.twin_json("d1").unwrap();
    assert_eq!(t0["etag"], "AAAAAAAAAAE=");
    assert_eq!(t0["version"], 2);
    assert!(t0.get("tags").is_none());

    let write = |tags: Option<Value>, desired: Option<Value>| TwinWrite {
        mode: TwinWriteMode::Patch,
        tags: tags.map(obj),
        desired: desired.map(obj),
    };
    let t1 = hub
        .update_twin("d1", write(Some(json!({"loc": "US"})), None), None)
        .await
        .unwrap();
    assert_eq!(t1["etag"], "AAAAAAAAAAI=");
    assert_eq!(t1["version"], 3);
    assert_eq!(t1["properties"]["desired"]["$version"], 1);

    let t2 = hub
        .update_twin(
            "d1",
            write(None, Some(json!({"cfg": {"a": 1}, "$version": 99}))),
            Some(&IfMatch::Etag("AAAAAAAAAAI=".into())),
        )
        .await
        .unwrap();
    assert_eq!(t2["version"], 4);
    assert_eq!(t2["properties"]["desired"]["$version"], 2);
    assert_eq!(t2["properties"]["desired"]["cfg"]["a"], 1);
    let push = sessions.desired.lock().unwrap().remove(0);
    assert_eq!(push.version, 2);
    assert_eq!(push.patch, json!({"cfg": {"a": 1}, "$version": 2}));

    let stale = hub
        .update_twin(
            "d1",
            write(Some(json!({"x": 1})), None),
            Some(&IfMatch::Etag("AAAAAAAAAAI=".into())),
        )
        .await;
    assert!(matches!(stale, Err(HubError::PreconditionFailed(_))));

    let v = hub
        .patch_reported("d1", json!({"rssi": -40}))
        .await
        .unwrap();
    assert_eq!(v, 2);
    let t3 = hub.twin_json("d1").unwrap();
    assert_eq!(t3["etag"], t2["etag"], "reported writes keep the twin etag");
    assert_eq!(t3["version"], 5);
    let props = hub.device_twin_properties("d1").unwrap();
    assert_eq!(
        props,
        json!({"desired": {"cfg": {"a": 1}, "$version": 2}, "reported": {"rssi": -40, "$version": 2}})
    );
}

#[tokio::test]
async fn twin_put_replaces_and_limits_reject() {
    let hub = hub().await;
    hub.create_device("d1", DeviceSpec::default())
        .await
        .unwrap();
    hub.update_twin(
        "d1",
        TwinWrite {
            mode: TwinWriteMode::Patch,
            tags: Some(obj(json!({"a": 1, "b": 2}))),
            desired: None,
        },
        None,
    )
    .await
    .unwrap();
    let t = hub
        .update_twin(
            "d1",
            TwinWrite {
                mode: TwinWriteMode::Replace,
                tags: Some(obj(json!({"c": 3}))),
                desired: None,
            },
            Some(&IfMatch::Any),
        )
        .await
        .unwrap();
    assert_eq!(t["tags"], json!({"c": 3}));
    let big = "x".repeat(4000);
    let err = hub
        .update_twin(
            "d1",
            TwinWrite {
                mode: TwinWriteMode::Patch,
                tags: Some(obj(json!({"a": big, "b": big, "c": big}))),
                desired: None,
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(hub
        .patch_reported("d1", json!({"$version": 1}))
        .await
        .is_err());
    assert!(hub.patch_reported("d1", json!([1])).await.is_err());
}

#[tokio::test]
async fn connection_state_is_visible() {
    let hub = hub().await;
    hub.create_device("d1", DeviceSpec::default())
        .await
        .unwrap();
    hub.set_connected("d1", true, 1);
    assert_eq!(hub.connected_device_count(), 1);
    assert_eq!(hub.twin_json("d1").unwrap()["connectionState"], "Connected");
    hub.set_connected("d1", false, 2);
    assert_eq!(
        hub.device_json("d1").unwrap()["connectionState"],
        "Disconnected"
    );
}

#[tokio::test]
async fn a_late_connection_state_report_is_ignored() {
    let hub = hub().await;
    hub.create_device("d1", DeviceSpec::default())
        .await
        .unwrap();
    // The disconnect was numbered after the connect but is recorded first.
    hub.set_connected("d1", false, 8);
    hub.set_connected("d1", true, 7);
    assert_eq!(hub.connected_device_count(), 0);
    assert_eq!(
        hub.device_json("d1").unwrap()["connectionState"],
        "Disconnected"
    );
}

#[tokio::test]
async fn desired_changes_reach_the_sessions_in_version_order_and_deletes_close_them() {
    let sessions = Arc::new(Recorded::default());
    let hub = hub_with(Arc::clone(&sessions)).await;
    hub.create_device("d1", DeviceSpec::default())
        .await
        .unwrap();
    for n in 0..5 {
        let write = TwinWrite {
            mode: TwinWriteMode::Patch,
            tags: Some(obj(json!({"n": n}))),
            desired: (n % 2 == 0).then(|| obj(json!({"n": n}))),
        };
        hub.update_twin("d1", write, None).await.unwrap();
    }
    let versions: Vec<u64> = sessions
        .desired
        .lock()
        .unwrap()
        .iter()
        .map(|change| change.version)
        .collect();
    assert_eq!(
        versions,
        [2, 3, 4],
        "one change per desired write, tags alone notify nothing"
    );

    hub.disconnect_device("d1");
    hub.delete_device("d1", None).await.unwrap();
    assert_eq!(
        *sessions.closed.lock().unwrap(),
        ["disconnect d1", "deleted d1"]
    );
}

/// Issue 12, case 5: `"tags": null` and `"properties": {"desired": null}` in a PATCH clear the
/// whole section, advance the versions, and tell the device `null` for every removed key.
#[tokio::test]
async fn a_patch_with_null_sections_clears_them_and_tells_the_device() {
    let sessions = Arc::new(Recorded::default());
    let hub = hub_with(Arc::clone(&sessions)).await;
    hub.create_device("d1", DeviceSpec::default())
        .await
        .unwrap();
    let write = |tags: Option<Value>, desired: Option<Value>| TwinWrite {
        mode: TwinWriteMode::Patch,
        tags: tags.map(obj),
        desired: desired.map(obj),
    };
    let before = hub
        .update_twin(
            "d1",
            write(
                Some(json!({"site": "x"})),
                Some(json!({"a": 1, "b": {"c": 2}})),
            ),
            None,
        )
        .await
        .unwrap();
    let both = ClearedSections {
        tags: true,
        desired: true,
    };
    let after = hub
        .update_twin_clearing(
            crate::hub::TwinId::Device("d1"),
            write(None, None),
            both,
            None,
        )
        .await
        .unwrap();
    assert!(
        after.get("tags").is_none(),
        "empty tags are omitted: {after}"
    );
    let desired_version = before["properties"]["desired"]["$version"]
        .as_u64()
        .unwrap()
        + 1;
    assert_eq!(after["properties"]["desired"]["$version"], desired_version);
    assert!(after["properties"]["desired"].get("a").is_none(), "{after}");
    assert!(after["properties"]["desired"]["$metadata"]
        .get("b")
        .is_none());
    assert_eq!(after["version"], before["version"].as_u64().unwrap() + 1);
    assert_ne!(after["etag"], before["etag"]);
    let last = sessions.desired.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.version, desired_version);
    assert_eq!(
        last.patch,
        json!({"a": null, "b": null, "$version": desired_version})
    );
    assert_eq!(hub.twin_json("d1").unwrap(), after);

    // Clearing one section leaves the other to the PATCH in the same body.
    let tags_only = ClearedSections {
        tags: true,
        desired: false,
    };
    hub.update_twin("d1", write(Some(json!({"site": "y"})), None), None)
        .await
        .unwrap();
    let mixed = hub
        .update_twin_clearing(
            crate::hub::TwinId::Device("d1"),
            write(None, Some(json!({"m": 1}))),
            tags_only,
            None,
        )
        .await
        .unwrap();
    assert!(mixed.get("tags").is_none(), "{mixed}");
    assert_eq!(mixed["properties"]["desired"]["m"], 1);
    let last = sessions.desired.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.patch, json!({"m": 1, "$version": last.version}));
}
