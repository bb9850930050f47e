//! The event log behind the built-in Event Hub-compatible endpoint, fed through the front doors:
//! MQTT telemetry lands in its device's partition with the annotations and properties the real
//! endpoint sets, in order per device, spread over the partitions.

use iothub_emulator::test_support::TestHub;
use iothub_emulator::{EventValue, StartPosition, StoredEvent};
use rumqttc::QoS;

use crate::support::mqtt::MqttHub;

fn annotation<'a>(event: &'a StoredEvent, key: &str) -> Option<&'a EventValue> {
    event
        .message_annotations
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn text(value: &str) -> Option<EventValue> {
    Some(EventValue::String(value.to_string()))
}

#[tokio::test]
async fn telemetry_becomes_an_event_with_the_endpoint_annotations() {
    let hub = TestHub::start().await;
    let device = hub.device("sensor-1").await;
    let generation_id = hub.device_identity("sensor-1").await["generationId"]
        .as_str()
        .unwrap()
        .to_string();
    let client = hub.connect(&device).await;
    client
        .client
        .publish(
            "devices/sensor-1/messages/events/%24.mid=m1&%24.cid=c1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&flag",
            QoS::AtLeastOnce,
            false,
            "{\"t\":21.5}",
        )
        .await
        .unwrap();
    let partition = hub.partition_for("sensor-1");
    let events = hub.wait_for_events(partition, 0).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        (event.partition, event.sequence_number, event.offset),
        (partition, 0, 0)
    );
    assert_eq!(&event.body[..], b"{\"t\":21.5}");
    assert_eq!(
        annotation(event, "iothub-connection-device-id"),
        text("sensor-1").as_ref()
    );
    assert_eq!(annotation(event, "iothub-connection-module-id"), None);
    assert_eq!(
        annotation(event, "iothub-connection-auth-method"),
        text(r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#)
            .as_ref()
    );
    assert_eq!(
        annotation(event, "iothub-connection-auth-generation-id"),
        text(&generation_id).as_ref()
    );
    assert_eq!(
        annotation(event, "iothub-message-source"),
        text("Telemetry").as_ref()
    );
    assert_eq!(
        annotation(event, "iothub-enqueuedtime"),
        Some(&EventValue::Timestamp(event.enqueued_time))
    );
    assert_eq!(event.properties.message_id.as_deref(), Some("m1"));
    assert_eq!(event.properties.correlation_id.as_deref(), Some("c1"));
    assert_eq!(
        event.properties.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(event.properties.content_encoding.as_deref(), Some("utf-8"));
    assert_eq!(
        event.application_properties,
        vec![
            ("alert".to_string(), EventValue::String("high temp".into())),
            ("flag".to_string(), EventValue::Null),
        ]
    );
    let info = hub.partition_info(partition);
    assert_eq!(info.last_enqueued_sequence_number, 0);
    assert!(!info.is_empty);
    hub.shutdown().await;
}

#[tokio::test]
async fn each_device_keeps_its_order_and_devices_spread_over_partitions() {
    let hub = TestHub::configured(|config| config.events.partitions = 3).await;
    assert_eq!(hub.partition_count(), 3);
    const DEVICES: usize = 12;
    const MESSAGES: usize = 20;
    let mut clients = Vec::new();
    for i in 0..DEVICES {
        let device = hub.device(&format!("spread-{i}")).await;
        clients.push(hub.connect(&device).await);
    }
    for n in 0..MESSAGES {
        for (i, client) in clients.iter().enumerate() {
            client
                .client
                .publish(
                    format!("devices/spread-{i}/messages/events/n={n}"),
                    QoS::AtLeastOnce,
                    false,
                    format!("{i}:{n}"),
                )
                .await
                .unwrap();
        }
    }
    let mut total = 0;
    let mut used = std::collections::BTreeSet::new();
    let per_partition = |p: u32| {
        (0..DEVICES)
            .filter(|i| hub.partition_for(&format!("spread-{i}")) == p)
            .count()
    };
    for partition in 0..3 {
        let devices = per_partition(partition);
        if devices == 0 {
            continue;
        }
        used.insert(partition);
        let last = i64::try_from(devices * MESSAGES).unwrap() - 1;
        let events = hub.wait_for_events(partition, last).await;
        assert_eq!(events.len(), devices * MESSAGES);
        for (expected, event) in events.iter().enumerate() {
            assert_eq!(event.sequence_number, i64::try_from(expected).unwrap());
        }
        assert!(events.windows(2).all(|w| w[0].offset < w[1].offset));
        for i in 0..DEVICES {
            let id = format!("spread-{i}");
            let mine: Vec<String> = events
                .iter()
                .filter(|e| annotation(e, "iothub-connection-device-id") == text(&id).as_ref())
                .map(|e| String::from_utf8_lossy(&e.body).into_owned())
                .collect();
            if hub.partition_for(&id) == partition {
                let expected: Vec<String> = (0..MESSAGES).map(|n| format!("{i}:{n}")).collect();
                assert_eq!(mine, expected, "{id} in order");
            } else {
                assert!(mine.is_empty(), "{id} only in its own partition");
            }
        }
        total += events.len();
    }
    assert_eq!(total, DEVICES * MESSAGES);
    assert!(
        used.len() >= 2,
        "12 devices use more than one of 3 partitions"
    );
    // Reading from a sequence number returns the rest.
    let p = *used.iter().next().unwrap();
    let rest = hub.events(
        p,
        StartPosition::Sequence {
            value: 4,
            inclusive: false,
        },
    );
    assert_eq!(rest.first().map(|e| e.sequence_number), Some(5));
    hub.shutdown().await;
}

/// Publishes `count` QoS 1 messages `{first}..` and waits for every PUBACK; with a durable
/// store, each event is readable (committed) by the time its PUBACK arrives.
async fn publish_acknowledged(
    hub: &TestHub,
    client: &crate::support::mqtt::Client,
    device: &str,
    first: usize,
    count: usize,
) {
    let partition = hub.partition_for(device);
    let base = hub.partition_info(partition).last_enqueued_sequence_number;
    for n in first..first + count {
        client
            .client
            .publish(
                format!("devices/{device}/messages/events/n={n}"),
                QoS::AtLeastOnce,
                false,
                format!("m{n}"),
            )
            .await
            .unwrap();
    }
    let mut acked = 0;
    while acked < count {
        match client.next().await {
            Some(Ok(rumqttc::Packet::PubAck(_))) => {
                acked += 1;
                let readable = hub.partition_info(partition).last_enqueued_sequence_number;
                let expected = base + i64::try_from(acked).unwrap();
                assert!(
                    readable >= expected,
                    "message {acked} is stored (readable through {readable}) before its PUBACK"
                );
            }
            Some(Ok(_)) => {}
            other => panic!("expected PUBACKs, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn durable_events_survive_a_restart_and_numbering_continues() {
    let data = tempfile::tempdir().unwrap();
    let hub = TestHub::durable_in(data.path()).await;
    let device = hub.device("keeper").await;
    let partition = hub.partition_for("keeper");
    let client = hub.connect(&device).await;
    publish_acknowledged(&hub, &client, "keeper", 0, 5).await;
    let before = hub.events(partition, StartPosition::Earliest);
    assert_eq!(before.len(), 5);
    drop(client);
    hub.shutdown().await;

    let hub = TestHub::durable_in(data.path()).await;
    let after = hub.events(partition, StartPosition::Earliest);
    assert_eq!(
        after, before,
        "numbers, offsets, times, annotations and bodies restored"
    );
    // A consumer resumes from a checkpointed offset.
    let resumed = hub.events(
        partition,
        StartPosition::Offset {
            value: before[2].offset,
            inclusive: false,
        },
    );
    assert_eq!(resumed, before[3..].to_vec());
    let device = crate::support::mqtt::Device {
        id: "keeper".into(),
        key: device.key,
    };
    let client = hub.connect(&device).await;
    publish_acknowledged(&hub, &client, "keeper", 5, 1).await;
    let next = hub.events(
        partition,
        StartPosition::Sequence {
            value: 4,
            inclusive: false,
        },
    );
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].sequence_number, 5);
    assert!(next[0].offset > before[4].offset);
    drop(client);
    hub.shutdown().await;

    // The partition count is fixed when the hub is created.
    let mut config = iothub_emulator::EmulatorConfig::for_tests(data.path());
    config.in_memory = false;
    config.events.partitions = 7;
    let refused = iothub_emulator::Emulator::start(config).await.unwrap_err();
    assert!(refused.to_string().contains("--partitions 4"), "{refused}");
}

#[tokio::test]
async fn retention_bounds_each_partition_and_pruned_numbering_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    // Room for a handful of small events per partition.
    let configure = |config: &mut iothub_emulator::EmulatorConfig| {
        config.events.partitions = 1;
        config.events.retention_bytes = 2048;
    };
    let hub = TestHub::durable_configured(data.path(), configure).await;
    let device = hub.device("chatty").await;
    let client = hub.connect(&device).await;
    publish_acknowledged(&hub, &client, "chatty", 0, 600).await;
    let kept = hub.events(0, StartPosition::Earliest);
    let footprint: usize = kept.iter().map(StoredEvent::footprint).sum();
    assert!(footprint <= 2048, "{footprint} bytes kept");
    assert!(kept.len() >= 5, "{} events kept", kept.len());
    assert_eq!(kept.last().unwrap().sequence_number, 599);
    let info = hub.partition_info(0);
    assert_eq!(info.begin_sequence_number, kept[0].sequence_number);
    assert_eq!(info.last_enqueued_sequence_number, 599);
    drop(client);
    hub.shutdown().await;

    let hub = TestHub::durable_configured(data.path(), configure).await;
    assert_eq!(hub.events(0, StartPosition::Earliest), kept);
    hub.shutdown().await;

    // An age of zero expires everything: the partition is empty, its numbering goes on.
    let expire = |config: &mut iothub_emulator::EmulatorConfig| {
        configure(config);
        config.events.retention = std::time::Duration::ZERO;
    };
    let hub = TestHub::durable_configured(data.path(), expire).await;
    let info = hub.partition_info(0);
    assert!(info.is_empty);
    assert_eq!(info.begin_sequence_number, 600);
    assert_eq!(info.last_enqueued_sequence_number, 599);
    hub.shutdown().await;
    let hub = TestHub::durable_configured(data.path(), configure).await;
    let device = crate::support::mqtt::Device {
        id: "chatty".into(),
        key: device.key,
    };
    let client = hub.connect(&device).await;
    client
        .client
        .publish(
            "devices/chatty/messages/events/",
            QoS::AtLeastOnce,
            false,
            "late",
        )
        .await
        .unwrap();
    let events = hub.wait_for_events(0, 600).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].sequence_number, 600);
    drop(client);
    hub.shutdown().await;
}
