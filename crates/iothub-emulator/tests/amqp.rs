//! The AMQP front door: the built-in Event Hub-compatible endpoint read with the `fe2o3-amqp`
//! client. CBS put-token (accepted, refused), `$management` reads, telemetry from MQTT devices
//! on every partition in order with its annotations and properties, the selector filters, the
//! `messages/events` redirect, and links closing when their token expires.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use fe2o3_amqp::link::{LinkStateError, Receiver, RecvError};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp_types::definitions::{self, AmqpError, ErrorCondition, LinkError};
use fe2o3_amqp_types::messaging::annotations::OwnedKey;
use fe2o3_amqp_types::messaging::{Body, Message};
use fe2o3_amqp_types::primitives::{SimpleValue, Value};
use iothub_auth::{unix_now, SasToken};
use iothub_emulator::test_support::TestHub;
use rumqttc::QoS;

use crate::support::amqp::{eventhub_token, AmqpClient};
use crate::support::mqtt::{MqttHub, WAIT};

/// The hub name of the test hub (host `localhost`), which is the Event Hub name.
const ENTITY: &str = "localhost";

fn partition_address(group: &str, partition: u32) -> String {
    format!("{ENTITY}/ConsumerGroups/{group}/Partitions/{partition}")
}

/// A client holding an owner token for the whole entity, as the Python consumer sends it.
async fn authorized_client(hub: &TestHub) -> AmqpClient {
    let mut client = AmqpClient::anonymous(hub).await;
    let audience = format!("sb://localhost/{ENTITY}");
    let token = eventhub_token(hub, "iothubowner", &audience, unix_now() + 3600);
    assert_eq!(client.put_token(&token, &audience).await, 200);
    client
}

/// The error the server closed `receiver` with.
async fn closed_with(receiver: &mut Receiver) -> definitions::Error {
    match tokio::time::timeout(WAIT, receiver.recv::<Body<Value>>()).await {
        Ok(Err(RecvError::LinkStateError(LinkStateError::RemoteClosedWithError(error)))) => error,
        Ok(other) => panic!("expected the link closed with an error, got {other:?}"),
        Err(_) => panic!("the link stayed open"),
    }
}

async fn next_event(receiver: &mut Receiver) -> Message<Body<Value>> {
    let delivery = tokio::time::timeout(WAIT, receiver.recv::<Body<Value>>())
        .await
        .expect("an event in time")
        .expect("an event");
    receiver.accept(&delivery).await.expect("settled");
    delivery.into_message()
}

fn annotation<'a>(message: &'a Message<Body<Value>>, name: &str) -> Option<&'a Value> {
    message
        .message_annotations
        .as_ref()?
        .0
        .iter()
        .find(|(key, _)| matches!(key, OwnedKey::Symbol(s) if s.as_str() == name))
        .map(|(_, value)| value)
}

fn string_annotation(message: &Message<Body<Value>>, name: &str) -> String {
    match annotation(message, name) {
        Some(Value::String(s)) => s.clone(),
        other => panic!("{name} must be a string, got {other:?}"),
    }
}

fn sequence_number(message: &Message<Body<Value>>) -> i64 {
    match annotation(message, "x-opt-sequence-number") {
        Some(Value::Long(n)) => *n,
        other => panic!("x-opt-sequence-number must be a long, got {other:?}"),
    }
}

fn enqueued_millis(message: &Message<Body<Value>>) -> i64 {
    match annotation(message, "x-opt-enqueued-time") {
        Some(Value::Timestamp(t)) => t.milliseconds(),
        other => panic!("x-opt-enqueued-time must be a timestamp, got {other:?}"),
    }
}

fn body(message: &Message<Body<Value>>) -> Vec<u8> {
    match &message.body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.to_vec()).collect(),
        other => panic!("telemetry travels as data sections, got {other:?}"),
    }
}

fn map_entry<'a>(map: &'a Value, key: &str) -> &'a Value {
    let Value::Map(map) = map else {
        panic!("a map body, got {map:?}")
    };
    map.get(&Value::String(key.into()))
        .unwrap_or_else(|| panic!("{key} in {map:?}"))
}

#[tokio::test]
async fn cbs_refuses_bad_and_under_privileged_tokens_and_no_link_attaches_without_one() {
    let hub = TestHub::start().await;
    let mut client = AmqpClient::anonymous(&hub).await;
    let audience = format!("sb://localhost/{ENTITY}");

    // No token yet: the partition link is closed at once with unauthorized-access.
    let mut receiver = client
        .receiver(&partition_address("$Default", 0), None)
        .await
        .expect("the attach is answered");
    let error = closed_with(&mut receiver).await;
    assert_eq!(
        error.condition,
        ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess)
    );

    // A token signed with a wrong key, an expired one, and one of a policy without
    // ServiceConnect are all refused with 401.
    let forged = SasToken::generate(
        &audience,
        &iothub_auth::SharedAccessKey::generate(),
        Some("iothubowner"),
        unix_now() + 3600,
    );
    assert_eq!(client.put_token(forged.as_str(), &audience).await, 401);
    let expired = eventhub_token(&hub, "iothubowner", &audience, unix_now() - 10);
    assert_eq!(client.put_token(&expired, &audience).await, 401);
    let read_only = eventhub_token(&hub, "registryRead", &audience, unix_now() + 3600);
    assert_eq!(client.put_token(&read_only, &audience).await, 401);

    let mut receiver = client
        .receiver(&partition_address("$Default", 0), None)
        .await
        .expect("the attach is answered");
    let error = closed_with(&mut receiver).await;
    assert_eq!(
        error.condition,
        ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess)
    );

    // The `service` policy (ServiceConnect) may read; both signing forms are accepted: the Event
    // Hubs one (key text) and the IoT Hub one (decoded key, `sr` = the hub host).
    let service = eventhub_token(&hub, "service", &audience, unix_now() + 3600);
    assert_eq!(client.put_token(&service, &audience).await, 200);
    let iothub_style = hub.service_token("service");
    assert_eq!(
        client.put_token(&iothub_style, "https://localhost").await,
        200
    );
    let (status, _) = client.read(ENTITY, "com.microsoft:eventhub", None).await;
    assert_eq!(status, 200);
    client.close().await;
}

#[tokio::test]
async fn management_reads_describe_the_entity_and_its_partitions() {
    let hub = TestHub::start().await;
    let mut client = authorized_client(&hub).await;

    let (status, entity) = client.read(ENTITY, "com.microsoft:eventhub", None).await;
    assert_eq!(status, 200);
    assert_eq!(map_entry(&entity, "name"), &Value::String(ENTITY.into()));
    assert_eq!(map_entry(&entity, "partition_count"), &Value::Int(4));
    let Value::Array(ids) = map_entry(&entity, "partition_ids") else {
        panic!("partition_ids is an array")
    };
    let ids: Vec<&Value> = ids.0.iter().collect();
    assert_eq!(
        ids,
        ["0", "1", "2", "3"]
            .iter()
            .map(|s| Value::String((*s).into()))
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );
    let Value::Timestamp(created) = map_entry(&entity, "created_at") else {
        panic!("created_at is a timestamp")
    };
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    assert!(created.milliseconds() <= now_ms);

    let (status, partition) = client
        .read(ENTITY, "com.microsoft:partition", Some("2"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        map_entry(&partition, "partition"),
        &Value::String("2".into())
    );
    assert_eq!(
        map_entry(&partition, "is_partition_empty"),
        &Value::Bool(true)
    );
    assert_eq!(
        map_entry(&partition, "last_enqueued_sequence_number"),
        &Value::Long(-1)
    );
    assert_eq!(
        map_entry(&partition, "last_enqueued_offset"),
        &Value::String("-1".into())
    );
    assert!(matches!(
        map_entry(&partition, "begin_sequence_number"),
        Value::Long(_)
    ));
    assert!(matches!(
        map_entry(&partition, "last_enqueued_time_utc"),
        Value::Timestamp(_)
    ));

    let (status, _) = client
        .read(ENTITY, "com.microsoft:partition", Some("9"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = client.read("other", "com.microsoft:eventhub", None).await;
    assert_eq!(status, 404);
    client.close().await;
}

#[tokio::test]
async fn telemetry_from_mqtt_devices_is_read_from_every_partition_in_order() {
    let hub = TestHub::start().await;
    const DEVICES: usize = 12;
    const PER_DEVICE: usize = 3;
    let mut clients = Vec::new();
    for d in 0..DEVICES {
        let device = hub.device(&format!("amqp-dev-{d}")).await;
        clients.push((device.id.clone(), hub.connect(&device).await));
    }
    for n in 0..PER_DEVICE {
        for (id, client) in &clients {
            client
                .client
                .publish(
                    format!("devices/{id}/messages/events/%24.mid={id}-{n}&%24.ct=application%2Fjson&%24.ce=utf-8&seq={n}"),
                    QoS::AtLeastOnce,
                    false,
                    format!("{{\"n\":{n}}}"),
                )
                .await
                .unwrap();
        }
    }
    hub.wait_for_telemetry((DEVICES * PER_DEVICE) as u64).await;

    let mut client = authorized_client(&hub).await;
    let mut partition_of: BTreeMap<String, u32> = BTreeMap::new();
    let mut next_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut non_empty = 0;
    let mut total = 0;
    for partition in 0..4u32 {
        let (status, info) = client
            .read(
                ENTITY,
                "com.microsoft:partition",
                Some(&partition.to_string()),
            )
            .await;
        assert_eq!(status, 200);
        let Value::Long(last) = map_entry(&info, "last_enqueued_sequence_number") else {
            panic!("a long")
        };
        let count = usize::try_from(last + 1).unwrap();
        if count > 0 {
            non_empty += 1;
        }
        let mut receiver = client
            .receiver(
                &format!(
                    "amqps://localhost/{}",
                    partition_address("$Default", partition)
                ),
                Some("amqp.annotation.x-opt-offset > '-1'"),
            )
            .await
            .unwrap();
        let mut previous: Option<(i64, i64)> = None;
        for _ in 0..count {
            let event = next_event(&mut receiver).await;
            let device = string_annotation(&event, "iothub-connection-device-id");
            assert_eq!(
                *partition_of.entry(device.clone()).or_insert(partition),
                partition,
                "one device, one partition"
            );
            let n = next_of.entry(device.clone()).or_insert(0);
            assert_eq!(
                body(&event),
                format!("{{\"n\":{n}}}").into_bytes(),
                "{device} in order"
            );
            let properties = event.properties.as_ref().expect("properties");
            assert_eq!(
                properties.message_id,
                Some(fe2o3_amqp_types::messaging::MessageId::String(format!(
                    "{device}-{n}"
                )))
            );
            assert_eq!(
                properties.content_type.as_ref().map(|s| s.as_str()),
                Some("application/json")
            );
            assert_eq!(
                properties.content_encoding.as_ref().map(|s| s.as_str()),
                Some("utf-8")
            );
            assert_eq!(
                event
                    .application_properties
                    .as_ref()
                    .and_then(|p| p.0.get("seq")),
                Some(&SimpleValue::String(n.to_string()))
            );
            assert_eq!(
                string_annotation(&event, "iothub-message-source"),
                "Telemetry"
            );
            let offset: i64 = string_annotation(&event, "x-opt-offset").parse().unwrap();
            let sequence = sequence_number(&event);
            if let Some((previous_sequence, previous_offset)) = previous {
                assert_eq!(sequence, previous_sequence + 1);
                assert!(offset > previous_offset);
            }
            previous = Some((sequence, offset));
            *n += 1;
            total += 1;
        }
    }
    assert_eq!(total, DEVICES * PER_DEVICE);
    assert!(next_of.values().all(|n| *n == PER_DEVICE));
    assert!(
        non_empty >= 2,
        "{DEVICES} devices spread over the partitions"
    );
    client.close().await;
}

/// Sends `count` messages from one device and returns its partition's events (all of them).
async fn one_device_events(
    hub: &TestHub,
    client: &mut AmqpClient,
    count: usize,
) -> (u32, Vec<Message<Body<Value>>>) {
    let device = hub.device("filtered").await;
    let mqtt = hub.connect(&device).await;
    for n in 0..count {
        mqtt.client
            .publish(
                "devices/filtered/messages/events/",
                QoS::AtLeastOnce,
                false,
                format!("m{n}"),
            )
            .await
            .unwrap();
    }
    hub.wait_for_telemetry(count as u64).await;
    let mut found = None;
    for partition in 0..4u32 {
        let (_, info) = client
            .read(
                ENTITY,
                "com.microsoft:partition",
                Some(&partition.to_string()),
            )
            .await;
        if map_entry(&info, "is_partition_empty") == &Value::Bool(false) {
            found = Some(partition);
        }
    }
    let partition = found.expect("the device's partition");
    let mut receiver = client
        .receiver(&partition_address("$Default", partition), None)
        .await
        .unwrap();
    let mut events = Vec::new();
    for _ in 0..count {
        events.push(next_event(&mut receiver).await);
    }
    (partition, events)
}

#[tokio::test]
async fn selector_filters_start_at_a_sequence_number_an_offset_a_time_or_the_end() {
    let hub = TestHub::start().await;
    let mut client = authorized_client(&hub).await;
    let (partition, events) = one_device_events(&hub, &mut client, 5).await;
    let address = partition_address("$Default", partition);
    let bodies =
        |events: &[Message<Body<Value>>]| -> Vec<Vec<u8>> { events.iter().map(body).collect() };
    assert_eq!(
        bodies(&events),
        (0..5)
            .map(|n| format!("m{n}").into_bytes())
            .collect::<Vec<_>>()
    );

    let first = |filter: String| {
        let address = address.clone();
        async move { (address, filter) }
    };
    let cases = [
        (
            format!(
                "amqp.annotation.x-opt-sequence-number > '{}'",
                sequence_number(&events[1])
            ),
            2,
        ),
        (
            format!(
                "amqp.annotation.x-opt-sequence-number >= '{}'",
                sequence_number(&events[1])
            ),
            1,
        ),
        (
            format!(
                "amqp.annotation.x-opt-offset > '{}'",
                string_annotation(&events[2], "x-opt-offset")
            ),
            3,
        ),
        (
            format!(
                "amqp.annotation.x-opt-offset >= '{}'",
                string_annotation(&events[2], "x-opt-offset")
            ),
            2,
        ),
    ];
    for (filter, expected_first) in cases {
        let (address, filter) = first(filter).await;
        let mut receiver = client.receiver(&address, Some(&filter)).await.unwrap();
        let event = next_event(&mut receiver).await;
        assert_eq!(
            body(&event),
            format!("m{expected_first}").into_bytes(),
            "{filter}"
        );
        let _ = receiver.close().await;
    }

    // After the newest event's time and at the end: only what is sent afterwards arrives.
    let after_all = enqueued_millis(&events[4]);
    let mut by_time = client
        .receiver(
            &address,
            Some(&format!(
                "amqp.annotation.x-opt-enqueued-time > '{after_all}'"
            )),
        )
        .await
        .unwrap();
    let mut latest = client
        .receiver(&address, Some("amqp.annotation.x-opt-offset > '@latest'"))
        .await
        .unwrap();
    // Enqueued times have millisecond resolution on the wire: make the next event later.
    while SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        <= u128::try_from(after_all).unwrap()
    {
        tokio::task::yield_now().await;
    }
    let device = hub.device("filtered").await;
    let mqtt = hub.connect(&device).await;
    mqtt.client
        .publish(
            "devices/filtered/messages/events/",
            QoS::AtLeastOnce,
            false,
            "new",
        )
        .await
        .unwrap();
    assert_eq!(body(&next_event(&mut by_time).await), b"new");
    assert_eq!(body(&next_event(&mut latest).await), b"new");

    // A filter the endpoint does not understand closes the link with the reason.
    let mut bad = client
        .receiver(&address, Some("amqp.annotation.x-opt-offset < '3'"))
        .await
        .unwrap();
    let error = closed_with(&mut bad).await;
    assert_eq!(
        error.condition,
        ErrorCondition::AmqpError(AmqpError::InvalidField)
    );
    client.close().await;
}

#[tokio::test]
async fn messages_events_redirects_to_the_event_hub_endpoint_which_serves_the_same_events() {
    let hub = TestHub::start().await;
    let device = hub.device("redirected").await;
    let mqtt = hub.connect(&device).await;
    mqtt.client
        .publish(
            "devices/redirected/messages/events/",
            QoS::AtLeastOnce,
            false,
            "hello",
        )
        .await
        .unwrap();
    hub.wait_for_telemetry(1).await;

    // As the Azure CLI connects: SASL PLAIN with an IoT Hub service token.
    let mut client = AmqpClient::connect(
        &hub,
        SaslProfile::Plain {
            username: format!("iothubowner@sas.root.{ENTITY}"),
            password: hub.service_token("iothubowner"),
        },
    )
    .await;
    let port = hub.emulator().amqp_port();
    let mut addresses = Vec::new();
    for suffix in ["ConsumerGroups/$Default/Partitions/0", "$management"] {
        let mut receiver = client
            .receiver(&format!("amqps://localhost/messages/events/{suffix}"), None)
            .await
            .expect("the attach is answered");
        let error = closed_with(&mut receiver).await;
        assert_eq!(
            error.condition,
            ErrorCondition::LinkError(LinkError::Redirect)
        );
        let info = error.info.expect("redirect info");
        let get = |key: &str| {
            info.iter()
                .find(|(k, _)| k.as_str() == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{key} in the redirect"))
        };
        assert_eq!(get("hostname"), Value::String("localhost".into()));
        assert_eq!(get("network-host"), Value::String("localhost".into()));
        assert_eq!(get("port"), Value::Int(i32::from(port)));
        let Value::String(address) = get("address") else {
            panic!("address is a string")
        };
        assert_eq!(
            address,
            format!("amqps://localhost:{port}/{ENTITY}/{suffix}")
        );
        addresses.push(address);
    }

    // Following the redirect: the same hub's events, from whichever partition holds them.
    let mut found = false;
    let mut reader = authorized_client(&hub).await;
    for partition in 0..4u32 {
        let (_, info) = reader
            .read(
                ENTITY,
                "com.microsoft:partition",
                Some(&partition.to_string()),
            )
            .await;
        if map_entry(&info, "is_partition_empty") == &Value::Bool(false) {
            let address = addresses[0].replace("Partitions/0", &format!("Partitions/{partition}"));
            let mut receiver = reader.receiver(&address, None).await.unwrap();
            let event = next_event(&mut receiver).await;
            assert_eq!(body(&event), b"hello");
            assert_eq!(
                string_annotation(&event, "iothub-connection-device-id"),
                "redirected"
            );
            found = true;
        }
    }
    assert!(found);
    reader.close().await;
    client.close().await;
}

#[tokio::test]
async fn a_link_closes_when_its_token_expires() {
    let hub = TestHub::start().await;
    let mut client = AmqpClient::anonymous(&hub).await;
    let audience = format!("sb://localhost/{ENTITY}/ConsumerGroups/$Default");
    let token = eventhub_token(&hub, "iothubowner", &audience, unix_now() + 2);
    assert_eq!(client.put_token(&token, &audience).await, 200);
    let mut receiver = client
        .receiver(&partition_address("$Default", 1), None)
        .await
        .unwrap();
    let error = closed_with(&mut receiver).await;
    assert_eq!(
        error.condition,
        ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess)
    );
    client.close().await;
}
