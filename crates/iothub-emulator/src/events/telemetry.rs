//! Device-to-cloud messages as events: the annotations and properties the real endpoint sets on
//! telemetry (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-construct>).

use super::{EventProperties, EventValue, StoredEvent};
use crate::telemetry::TelemetryMessage;

/// Who sends a connection's telemetry: fixed for the connection's life (a device deleted or
/// re-created loses its connections), so it is looked up once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TelemetryOrigin {
    /// The device id.
    pub device_id: String,
    /// The module id, for a module identity.
    pub module_id: Option<String>,
    /// The identity's `generationId`.
    pub generation_id: String,
}

impl TelemetryOrigin {
    /// `iothub-connection-auth-method`: a JSON string, as the hub writes it for a SAS token
    /// (the only device authentication the emulator accepts).
    fn auth_method(&self) -> String {
        let scope = if self.module_id.is_some() {
            "module"
        } else {
            "device"
        };
        format!(
            r#"{{"scope":"{scope}","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}}"#
        )
    }

    /// `message` as an event: its payload as the body, the connection annotations,
    /// `iothub-message-source: Telemetry`, the system properties in the properties section and
    /// the application properties from the MQTT property bag (`$.ctime` as
    /// `iothub-creation-time-utc`).
    pub(crate) fn event(&self, message: &TelemetryMessage) -> StoredEvent {
        let mut event = StoredEvent::new(&self.device_id, message.body.clone());
        let annotations = &mut event.message_annotations;
        annotations.push((
            "iothub-connection-device-id".into(),
            EventValue::String(self.device_id.clone()),
        ));
        if let Some(module) = &self.module_id {
            annotations.push((
                "iothub-connection-module-id".into(),
                EventValue::String(module.clone()),
            ));
        }
        annotations.push((
            "iothub-connection-auth-method".into(),
            EventValue::String(self.auth_method()),
        ));
        annotations.push((
            "iothub-connection-auth-generation-id".into(),
            EventValue::String(self.generation_id.clone()),
        ));
        annotations.push((
            "iothub-message-source".into(),
            EventValue::String("Telemetry".into()),
        ));
        let system = &message.system;
        event.properties = EventProperties {
            message_id: system.message_id.clone(),
            correlation_id: system.correlation_id.clone(),
            content_type: system.content_type.clone(),
            content_encoding: system.content_encoding.clone(),
            user_id: system.user_id.clone(),
        };
        let mut properties: Vec<(String, EventValue)> = message
            .properties
            .iter()
            .map(|(key, value)| {
                let value = value.clone().map_or(EventValue::Null, EventValue::String);
                (key.clone(), value)
            })
            .collect();
        if let Some(created) = &system.creation_time {
            properties.push((
                "iothub-creation-time-utc".into(),
                EventValue::String(created.clone()),
            ));
        }
        event.application_properties = properties;
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn telemetry_carries_connection_annotations_and_the_bag() {
        let message = TelemetryMessage::from_mqtt(
            "d1",
            Some("m1"),
            "devices/d1/modules/m1/messages/events/%24.mid=m&%24.cid=c&%24.ct=application%2Fjson&%24.ce=utf-8&%24.uid=u&%24.ctime=2024-01-01T00%3A00%3A00Z&alert=1&flag",
            Bytes::from_static(b"{\"t\":1}"),
        );
        let origin = TelemetryOrigin {
            device_id: "d1".into(),
            module_id: Some("m1".into()),
            generation_id: "637".into(),
        };
        let event = origin.event(&message);
        assert_eq!(event.body, Bytes::from_static(b"{\"t\":1}"));
        assert_eq!(event.partition_key, "d1");
        let annotation = |key: &str| {
            event
                .message_annotations
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            annotation("iothub-connection-device-id"),
            Some(EventValue::String("d1".into()))
        );
        assert_eq!(
            annotation("iothub-connection-module-id"),
            Some(EventValue::String("m1".into()))
        );
        assert_eq!(
            annotation("iothub-connection-auth-method"),
            Some(EventValue::String(
                r#"{"scope":"module","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#
                    .into()
            ))
        );
        assert_eq!(
            annotation("iothub-connection-auth-generation-id"),
            Some(EventValue::String("637".into()))
        );
        assert_eq!(
            annotation("iothub-message-source"),
            Some(EventValue::String("Telemetry".into()))
        );
        assert_eq!(event.properties.message_id.as_deref(), Some("m"));
        assert_eq!(event.properties.correlation_id.as_deref(), Some("c"));
        assert_eq!(
            event.properties.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(event.properties.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(event.properties.user_id.as_deref(), Some("u"));
        assert_eq!(
            event.application_properties,
            vec![
                ("alert".into(), EventValue::String("1".into())),
                ("flag".into(), EventValue::Null),
                (
                    "iothub-creation-time-utc".into(),
                    EventValue::String("2024-01-01T00:00:00Z".into())
                ),
            ]
        );
    }
}
