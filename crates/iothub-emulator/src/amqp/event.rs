//! One stored event as the built-in endpoint sends it: a single `data` section with the body,
//! the event's message annotations followed by `x-opt-sequence-number` (long), `x-opt-offset`
//! (string) and `x-opt-enqueued-time` (timestamp), its properties and application properties.
//!
//! `x-opt-partition-key` is left out: telemetry read from a real hub carries none (the
//! partition is chosen from the device id, which `iothub-connection-device-id` carries).

use fe2o3_amqp_types::messaging::{
    annotations::OwnedKey, ApplicationProperties, Data, Message, MessageAnnotations, MessageId,
    Properties,
};
use fe2o3_amqp_types::primitives::{Binary, SimpleValue, Symbol, Value};

use super::requests::timestamp;
use crate::events::{EventValue, StoredEvent};

/// The AMQP message for `event`.
pub(crate) fn message(event: &StoredEvent) -> Message<Data> {
    let mut annotations = MessageAnnotations::default();
    for (key, value) in &event.message_annotations {
        annotations.0.insert(
            OwnedKey::Symbol(Symbol::from(key.as_str())),
            value_of(value),
        );
    }
    let mut put = |key: &str, value: Value| {
        annotations
            .0
            .insert(OwnedKey::Symbol(Symbol::from(key)), value);
    };
    put("x-opt-sequence-number", Value::Long(event.sequence_number));
    put("x-opt-offset", Value::String(event.offset.to_string()));
    put(
        "x-opt-enqueued-time",
        Value::Timestamp(timestamp(event.enqueued_time)),
    );
    let mut application = ApplicationProperties::default();
    for (key, value) in &event.application_properties {
        application.0.insert(key.clone(), simple_of(value));
    }
    let p = &event.properties;
    let properties = Properties {
        message_id: p.message_id.clone().map(MessageId::String),
        correlation_id: p.correlation_id.clone().map(MessageId::String),
        content_type: p.content_type.as_deref().map(Symbol::from),
        content_encoding: p.content_encoding.as_deref().map(Symbol::from),
        user_id: p
            .user_id
            .as_ref()
            .map(|u| Binary::from(u.as_bytes().to_vec())),
        ..Properties::default()
    };
    let has_properties = properties != Properties::default();
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: Some(annotations),
        properties: has_properties.then_some(properties),
        application_properties: (!application.0.is_empty()).then_some(application),
        body: Data(Binary::from(event.body.to_vec())),
        footer: None,
    }
}

fn value_of(value: &EventValue) -> Value {
    match value {
        EventValue::String(s) => Value::String(s.clone()),
        EventValue::Long(n) => Value::Long(*n),
        EventValue::Timestamp(t) => Value::Timestamp(timestamp(*t)),
        EventValue::Bool(b) => Value::Bool(*b),
        EventValue::Null => Value::Null,
    }
}

fn simple_of(value: &EventValue) -> SimpleValue {
    match value {
        EventValue::String(s) => SimpleValue::String(s.clone()),
        EventValue::Long(n) => SimpleValue::Long(*n),
        EventValue::Timestamp(t) => SimpleValue::Timestamp(timestamp(*t)),
        EventValue::Bool(b) => SimpleValue::Bool(*b),
        EventValue::Null => SimpleValue::Null,
    }
}
