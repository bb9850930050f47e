//! Device-to-cloud telemetry lands in the hub's telemetry buffer: parsed property bags (system
//! and application properties), the body unchanged, the sender, arrival order.

use iothub_auth::{SasToken, SharedAccessKey};
use iothub_emulator::test_support::TestHub;
use reqwest::Method;
use rumqttc::QoS;
use serde_json::{json, Value};

use crate::support::mqtt::{Client, MqttHub};
use crate::support::rest::RestHub;

#[tokio::test]
async fn telemetry_with_properties_lands_in_the_buffer_in_order() {
    let hub = TestHub::start().await;
    let first = hub.device("sensor-1").await;
    let second = hub.device("sensor-2").await;
    let one = hub.connect(&first).await;
    let two = hub.connect(&second).await;

    one.client
        .publish(
            "devices/sensor-1/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&%24.cid=c%2F1&alert=high%20temp&flag",
            QoS::AtLeastOnce,
            false,
            "{\"t\":21.5}",
        )
        .await
        .unwrap();
    let telemetry = hub.wait_for_telemetry(1).await;
    two.client
        .publish(
            "devices/sensor-2/messages/events/",
            QoS::AtMostOnce,
            false,
            "raw bytes",
        )
        .await
        .unwrap();
    // Two connections' messages are ordered by arrival; wait for this one before the next.
    hub.wait_for_telemetry(2).await;
    one.client
        .publish(
            "devices/sensor-1/messages/events/%24.mid=m3",
            QoS::AtLeastOnce,
            false,
            "",
        )
        .await
        .unwrap();
    let later = hub.wait_for_telemetry(3).await;
    assert_eq!(later.len(), 3);
    assert_eq!(later[0], telemetry[0]);

    let m = &later[0];
    assert_eq!(m.sequence_number, 1);
    assert_eq!(m.device_id, "sensor-1");
    assert_eq!(m.module_id, None);
    assert_eq!(m.system.message_id.as_deref(), Some("m1"));
    assert_eq!(m.system.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.system.content_encoding.as_deref(), Some("utf-8"));
    assert_eq!(m.system.correlation_id.as_deref(), Some("c/1"));
    assert_eq!(
        m.properties,
        vec![
            ("alert".to_string(), Some("high temp".to_string())),
            ("flag".to_string(), None)
        ]
    );
    assert_eq!(&m.body[..], b"{\"t\":21.5}");

    assert_eq!(
        (later[1].sequence_number, later[1].device_id.as_str()),
        (2, "sensor-2")
    );
    assert!(later[1].properties.is_empty());
    assert_eq!(&later[1].body[..], b"raw bytes");
    assert_eq!(later[2].sequence_number, 3);
    assert_eq!(later[2].system.message_id.as_deref(), Some("m3"));
    assert!(later[0].enqueued_time <= later[1].enqueued_time);
    assert!(later[1].enqueued_time <= later[2].enqueued_time);
    hub.shutdown().await;
}

#[tokio::test]
async fn module_telemetry_carries_the_module_id() {
    let hub = TestHub::start().await;
    hub.add_device("edge-1").await;
    let res = hub
        .send(
            Method::PUT,
            "/devices/edge-1/modules/filter",
            "iothubowner",
            Some(&json!({"deviceId": "edge-1", "moduleId": "filter"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let identity: Value = res.json().await.unwrap();
    let key = SharedAccessKey::from_base64(
        identity["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let resource = format!(
        "{}/devices/edge-1/modules/filter",
        hub.emulator().hostname()
    );
    let token = SasToken::generate(&resource, &key, None, iothub_auth::unix_now() + 3600);
    let client = Client::start(hub.options("edge-1/filter", token.as_str()));
    client.expect_connack().await;
    client
        .client
        .publish(
            // Node adds a trailing `/` to module output events.
            "devices/edge-1/modules/filter/messages/events/%24.on=out1&%24.mid=mm&level=3/",
            QoS::AtLeastOnce,
            false,
            "42",
        )
        .await
        .unwrap();
    let telemetry = hub.wait_for_telemetry(1).await;
    let m = &telemetry[0];
    assert_eq!(m.device_id, "edge-1");
    assert_eq!(m.module_id.as_deref(), Some("filter"));
    assert_eq!(m.system.message_id.as_deref(), Some("mm"));
    assert_eq!(
        m.system.other,
        vec![("on".to_string(), Some("out1".to_string()))]
    );
    assert_eq!(
        m.properties,
        vec![("level".to_string(), Some("3".to_string()))]
    );
    assert_eq!(&m.body[..], b"42");
    hub.shutdown().await;
}
