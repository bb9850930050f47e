//! One cloud-to-device message as the hub keeps it, and how it goes out over MQTT: the topic
//! `devices/{id}/messages/devicebound/{property bag}` with the system properties first
//! (`$.mid`, `$.to`, then the other `$.` keys, then `iothub-ack`) and the application
//! properties after them, every key and value percent-encoded
//! (<https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub#receiving-cloud-to-device-messages>).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Which outcomes the sender wants feedback for (`iothub-ack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Ack {
    /// No feedback (the default).
    None,
    /// Feedback when the device completes the message.
    Positive,
    /// Feedback when the message is dead-lettered (expired, delivery count exceeded, purged).
    Negative,
    /// Both.
    Full,
}

impl Ack {
    /// Parses an `iothub-ack` value (case-insensitive, as the hub's .NET enum parse is).
    pub(crate) fn parse(value: &str) -> Option<Ack> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Some(Ack::None),
            "positive" => Some(Ack::Positive),
            "negative" => Some(Ack::Negative),
            "full" => Some(Ack::Full),
            _ => None,
        }
    }

    fn wire(self) -> &'static str {
        match self {
            Ack::None => "none",
            Ack::Positive => "positive",
            Ack::Negative => "negative",
            Ack::Full => "full",
        }
    }

    /// Whether a completion produces a feedback record.
    pub(crate) fn wants_positive(self) -> bool {
        matches!(self, Ack::Positive | Ack::Full)
    }

    /// Whether a dead-lettering produces a feedback record.
    pub(crate) fn wants_negative(self) -> bool {
        matches!(self, Ack::Negative | Ack::Full)
    }
}

/// What a sender gives the hub for one message (the REST send path fills it from headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OutgoingMessage {
    /// `message-id`; the hub makes one up when the sender gives none.
    pub message_id: Option<String>,
    /// `to`; defaults to `/devices/{id}/messages/deviceBound`.
    pub to: Option<String>,
    /// `correlation-id`.
    pub correlation_id: Option<String>,
    /// `user-id`.
    pub user_id: Option<String>,
    /// `content-type`.
    pub content_type: Option<String>,
    /// `content-encoding`.
    pub content_encoding: Option<String>,
    /// `iothub-ack` as the sender set it (`None`: not set, which means no feedback).
    pub ack: Option<Ack>,
    /// Absolute expiry, milliseconds since the Unix epoch (`None`: the hub's default TTL).
    pub expiry_ms: Option<u64>,
    /// Application properties in the sender's order.
    pub properties: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

/// A queued message: what the sender gave plus what the hub added. Serialized as the stored
/// row (the body as base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueuedMessage {
    /// Hub-wide message number: enqueue order, and the stored row's key.
    #[serde(skip)]
    pub seq: u64,
    /// The device whose queue holds it.
    pub device_id: String,
    /// The device's `generationId` when the message was sent (feedback records carry it).
    pub device_generation_id: String,
    /// `message-id`.
    pub message_id: String,
    /// `to`.
    pub to: String,
    /// `correlation-id`.
    pub correlation_id: Option<String>,
    /// `user-id`.
    pub user_id: Option<String>,
    /// `content-type`.
    pub content_type: Option<String>,
    /// `content-encoding`.
    pub content_encoding: Option<String>,
    /// `iothub-ack` as the sender set it.
    pub ack: Option<Ack>,
    /// Whether the sender set the expiry (only then does the device see `$.exp`).
    pub explicit_expiry: bool,
    /// Absolute expiry, milliseconds since the Unix epoch.
    pub expiry_ms: u64,
    /// When the hub accepted it, milliseconds since the Unix epoch.
    pub enqueued_ms: u64,
    /// Application properties.
    pub properties: Vec<(String, String)>,
    /// The body.
    #[serde(with = "base64_body")]
    pub body: Bytes,
    /// How many times the message has been handed to a device connection.
    pub delivery_count: u32,
}

impl QueuedMessage {
    /// Bytes this message holds in memory (bounds the whole store).
    pub(crate) fn footprint(&self) -> usize {
        let properties: usize = self
            .properties
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum();
        self.body.len() + properties + self.message_id.len() + self.to.len() + 256
    }

    /// The topic the device receives this message on.
    pub(crate) fn topic(&self) -> String {
        let mut bag = PropertyBag::default();
        bag.push("$.mid", &self.message_id);
        bag.push("$.to", &self.to);
        if let Some(cid) = &self.correlation_id {
            bag.push("$.cid", cid);
        }
        if let Some(uid) = &self.user_id {
            bag.push("$.uid", uid);
        }
        if let Some(ct) = &self.content_type {
            bag.push("$.ct", ct);
        }
        if let Some(ce) = &self.content_encoding {
            bag.push("$.ce", ce);
        }
        if self.explicit_expiry {
            bag.push("$.exp", &iso_from_ms(self.expiry_ms));
        }
        if let Some(ack) = self.ack {
            bag.push("iothub-ack", ack.wire());
        }
        for (key, value) in &self.properties {
            bag.push(key, value);
        }
        format!(
            "devices/{}/messages/devicebound/{}",
            self.device_id, bag.text
        )
    }

    /// The feedback this message asked for.
    pub(crate) fn ack(&self) -> Ack {
        self.ack.unwrap_or(Ack::None)
    }
}

/// A property bag being written: `key=value` pairs joined by `&`, both percent-encoded (RFC 3986
/// unreserved characters kept, so `$` becomes `%24` and `/` becomes `%2F`, which the SDKs need
/// because they split the topic on `/`).
#[derive(Default)]
struct PropertyBag {
    text: String,
}

impl PropertyBag {
    fn push(&mut self, key: &str, value: &str) {
        if !self.text.is_empty() {
            self.text.push('&');
        }
        self.text.push_str(&iothub_auth::encode_component(key));
        self.text.push('=');
        self.text.push_str(&iothub_auth::encode_component(value));
    }
}

/// ISO 8601 UTC with 7 fractional digits and `Z`, the hub's timestamp format.
pub(crate) fn iso_from_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59.9999999Z".to_string())
}

/// Parses an absolute expiry as senders write it: RFC 3339 / ISO 8601 (with or without an
/// offset; without one it is UTC, as .NET's round-trip format of a UTC time), or milliseconds
/// since the Unix epoch (JavaScript's `Date.getTime()`).
pub(crate) fn parse_expiry(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Some(ms);
    }
    let parsed = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .or_else(|_| {
            let with_zone = format!("{text}Z");
            OffsetDateTime::parse(&with_zone, &time::format_description::well_known::Rfc3339)
        })
        .ok()?;
    let ms = parsed.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).ok()
}

mod base64_body {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> QueuedMessage {
        QueuedMessage {
            seq: 1,
            device_id: "my-device".into(),
            device_generation_id: "1".into(),
            message_id: "m 1".into(),
            to: "/devices/my-device/messages/deviceBound".into(),
            correlation_id: Some("c/1".into()),
            user_id: None,
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            ack: Some(Ack::Full),
            explicit_expiry: false,
            expiry_ms: 0,
            enqueued_ms: 0,
            properties: vec![("temp alert".into(), "high&low=1".into())],
            body: Bytes::from_static(b"hi"),
            delivery_count: 0,
        }
    }

    #[test]
    fn topic_has_system_properties_first_all_percent_encoded() {
        assert_eq!(
            message().topic(),
            "devices/my-device/messages/devicebound/%24.mid=m%201&%24.to=%2Fdevices%2Fmy-device%2Fmessages%2FdeviceBound&%24.cid=c%2F1&%24.ct=application%2Fjson&%24.ce=utf-8&iothub-ack=full&temp%20alert=high%26low%3D1"
        );
    }

    #[test]
    fn expiry_forms() {
        assert_eq!(parse_expiry("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(
            parse_expiry("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_expiry("2023-11-14T22:13:20.5"),
            Some(1_700_000_000_500)
        );
        assert_eq!(parse_expiry("tomorrow"), None);
        assert_eq!(
            iso_from_ms(1_700_000_000_500),
            "2023-11-14T22:13:20.5000000Z"
        );
    }

    #[test]
    fn stored_form_round_trips() {
        let m = message();
        let text = serde_json::to_string(&m).unwrap();
        let mut back: QueuedMessage = serde_json::from_str(&text).unwrap();
        back.seq = 1;
        assert_eq!(back, m);
    }
}
