//! Device-to-cloud messages (telemetry): one message type for what devices send, parsed from the
//! MQTT topic `devices/{d}/messages/events/{property bag}` (or
//! `devices/{d}/modules/{m}/messages/events/{property bag}`), and the hub's bounded buffer of the
//! most recent ones, numbered in arrival order (ARCHITECTURE.md#telemetry).
//!
//! The property bag is a URL-encoded query string
//! (<https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub#sending-device-to-cloud-messages>):
//! `$.`-prefixed keys are system properties (`$.mid`, `$.cid`, `$.uid`, `$.ct`, `$.ce`,
//! `$.exp`, ...; the SDKs send the `$` as `%24`), every other key an application property. A key
//! without `=` has a null value, `key=` an empty one. The hub does not refuse a message for its
//! bag: a percent sequence that does not decode is kept as written, empty pairs are skipped.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use percent_encoding::percent_decode_str;
use tokio::sync::watch;

/// Messages the buffer keeps by default (the oldest go first).
pub const DEFAULT_TELEMETRY_CAPACITY: usize = 10_000;

/// Body and property bytes the buffer keeps at most (the oldest messages go first).
pub const MAX_TELEMETRY_BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// The system properties a device can set on a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SystemProperties {
    /// `$.mid`: message id.
    pub message_id: Option<String>,
    /// `$.cid`: correlation id.
    pub correlation_id: Option<String>,
    /// `$.uid`: user id.
    pub user_id: Option<String>,
    /// `$.ct`: content type.
    pub content_type: Option<String>,
    /// `$.ce`: content encoding.
    pub content_encoding: Option<String>,
    /// `$.exp`: absolute expiry time, as the device wrote it.
    pub expiry_time: Option<String>,
    /// `$.to`.
    pub to: Option<String>,
    /// `$.ctime`: creation time, as the device wrote it.
    pub creation_time: Option<String>,
    /// Any other `$.` key (`$.on`, `$.ifid`, `$.sub`, `$.diagid`, ...), without the `$.`, in
    /// the device's order.
    pub other: Vec<(String, Option<String>)>,
}

/// One device-to-cloud message as the hub received it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryMessage {
    /// Position in the hub's telemetry stream: 1 for the first message, one more for each next.
    pub sequence_number: u64,
    /// When the hub accepted it.
    pub enqueued_time: SystemTime,
    /// The sending device.
    pub device_id: String,
    /// The sending module, for a module identity.
    pub module_id: Option<String>,
    /// System properties from the bag.
    pub system: SystemProperties,
    /// Application properties from the bag, in the device's order (a later duplicate key
    /// replaces the earlier value); `None` for a key sent without `=`.
    pub properties: Vec<(String, Option<String>)>,
    /// The payload, unchanged.
    pub body: Bytes,
}

impl TelemetryMessage {
    /// Parses the telemetry published on `topic` (which the MQTT session has already matched to
    /// the sender's own `…/messages/events/` topic) by `device_id` / `module_id`. The sequence
    /// number and enqueued time are set when the buffer takes it.
    pub(crate) fn from_mqtt(
        device_id: &str,
        module_id: Option<&str>,
        topic: &str,
        body: Bytes,
    ) -> TelemetryMessage {
        // `devices/{d}/messages/events/` or `devices/{d}/modules/{m}/messages/events/`: ids
        // cannot hold `/`, so the bag is everything after the fixed number of levels.
        let levels = if module_id.is_some() { 6 } else { 4 };
        let bag = topic.splitn(levels + 1, '/').nth(levels).unwrap_or("");
        let (system, properties) = parse_property_bag(bag);
        TelemetryMessage {
            sequence_number: 0,
            enqueued_time: SystemTime::now(),
            device_id: device_id.to_string(),
            module_id: module_id.map(str::to_string),
            system,
            properties,
            body,
        }
    }

    fn footprint(&self) -> usize {
        let pairs = |pairs: &[(String, Option<String>)]| -> usize {
            pairs
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len))
                .sum()
        };
        self.body.len() + pairs(&self.properties) + pairs(&self.system.other) + 256
    }
}

/// Splits a property bag into system and application properties.
fn parse_property_bag(bag: &str) -> (SystemProperties, Vec<(String, Option<String>)>) {
    // Node adds a trailing `/` to module output events; some clients start the bag with `?`.
    let bag = bag.strip_prefix('?').unwrap_or(bag);
    let bag = bag.strip_suffix('/').unwrap_or(bag);
    let mut system = SystemProperties::default();
    let mut properties: Vec<(String, Option<String>)> = Vec::new();
    for pair in bag.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = match pair.split_once('=') {
            Some((key, value)) => (decode(key), Some(decode(value))),
            None => (decode(pair), None),
        };
        if key.is_empty() {
            continue;
        }
        let Some(name) = key.strip_prefix("$.") else {
            match properties.iter_mut().find(|(k, _)| *k == key) {
                Some(existing) => existing.1 = value,
                None => properties.push((key, value)),
            }
            continue;
        };
        let slot = match name {
            "mid" => &mut system.message_id,
            "cid" => &mut system.correlation_id,
            "uid" => &mut system.user_id,
            "ct" => &mut system.content_type,
            "ce" => &mut system.content_encoding,
            "exp" => &mut system.expiry_time,
            "to" => &mut system.to,
            "ctime" => &mut system.creation_time,
            other => {
                system.other.push((other.to_string(), value));
                continue;
            }
        };
        *slot = value;
    }
    (system, properties)
}

/// Percent-decodes one key or value (no `+` → space, as the SDKs' decoders); text that does not
/// decode to UTF-8 is kept as written.
fn decode(text: &str) -> String {
    match percent_decode_str(text).decode_utf8() {
        Ok(decoded) => decoded.into_owned(),
        Err(_) => text.to_string(),
    }
}

/// The hub's most recent telemetry: at most `capacity` messages and
/// [`MAX_TELEMETRY_BUFFER_BYTES`], the oldest dropped first.
#[derive(Debug)]
pub(crate) struct TelemetryBuffer {
    state: Mutex<Ring>,
    /// The sequence number of the newest message (0 before the first).
    newest: watch::Sender<u64>,
}

#[derive(Debug)]
struct Ring {
    messages: VecDeque<TelemetryMessage>,
    bytes: usize,
    capacity: usize,
    last_sequence: u64,
}

impl Default for TelemetryBuffer {
    fn default() -> Self {
        TelemetryBuffer::with_capacity(DEFAULT_TELEMETRY_CAPACITY)
    }
}

impl TelemetryBuffer {
    /// A buffer of at most `capacity` messages (at least one).
    pub(crate) fn with_capacity(capacity: usize) -> TelemetryBuffer {
        TelemetryBuffer {
            state: Mutex::new(Ring {
                messages: VecDeque::new(),
                bytes: 0,
                capacity: capacity.max(1),
                last_sequence: 0,
            }),
            newest: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the capacity (start-up configuration), dropping the oldest beyond it.
    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut ring = self.lock();
        ring.capacity = capacity.max(1);
        ring.trim();
    }

    /// Numbers `message`, stamps its enqueued time, and keeps it; returns its sequence number.
    pub(crate) fn push(&self, mut message: TelemetryMessage) -> u64 {
        let sequence = {
            let mut ring = self.lock();
            ring.last_sequence += 1;
            message.sequence_number = ring.last_sequence;
            message.enqueued_time = SystemTime::now();
            ring.bytes += message.footprint();
            ring.messages.push_back(message);
            ring.trim();
            ring.last_sequence
        };
        self.newest.send_replace(sequence);
        sequence
    }

    /// The kept messages with a sequence number above `after`, oldest first.
    // Read by `test_support` now and by the AMQP endpoint later.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    pub(crate) fn since(&self, after: u64) -> Vec<TelemetryMessage> {
        let ring = self.lock();
        ring.messages
            .iter()
            .filter(|m| m.sequence_number > after)
            .cloned()
            .collect()
    }

    /// Follows the newest sequence number (for waiting on new messages without polling).
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))]
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }
}

impl Ring {
    fn trim(&mut self) {
        while self.messages.len() > self.capacity || self.bytes > MAX_TELEMETRY_BUFFER_BYTES {
            match self.messages.pop_front() {
                Some(old) => self.bytes -= old.footprint(),
                None => break,
            }
        }
        if self.messages.is_empty() {
            self.bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bag_with_system_and_application_properties() {
        let m = TelemetryMessage::from_mqtt(
            "device1",
            None,
            "devices/device1/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&flag&empty=&%24.on=out1",
            Bytes::from_static(b"{}"),
        );
        assert_eq!(m.system.message_id.as_deref(), Some("m1"));
        assert_eq!(m.system.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.system.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(m.system.other, vec![("on".into(), Some("out1".into()))]);
        assert_eq!(
            m.properties,
            vec![
                ("alert".into(), Some("high temp".into())),
                ("flag".into(), None),
                ("empty".into(), Some(String::new())),
            ]
        );
    }

    #[test]
    fn module_topics_raw_dollar_and_odd_bags() {
        let m = TelemetryMessage::from_mqtt(
            "d",
            Some("m"),
            "devices/d/modules/m/messages/events/$.cid=c&a=1&a=2&&=x&bad=%ZZ/",
            Bytes::new(),
        );
        assert_eq!(m.module_id.as_deref(), Some("m"));
        assert_eq!(m.system.correlation_id.as_deref(), Some("c"));
        assert_eq!(
            m.properties,
            vec![
                ("a".into(), Some("2".into())),
                ("bad".into(), Some("%ZZ".into()))
            ]
        );
        let empty =
            TelemetryMessage::from_mqtt("d", None, "devices/d/messages/events/", Bytes::new());
        assert!(empty.properties.is_empty());
        assert_eq!(empty.system, SystemProperties::default());
    }

    #[test]
    fn buffer_numbers_in_order_and_drops_the_oldest() {
        let buffer = TelemetryBuffer::with_capacity(3);
        let rx = buffer.subscribe();
        for _ in 0..5 {
            buffer.push(TelemetryMessage::from_mqtt(
                "d",
                None,
                "devices/d/messages/events/",
                Bytes::from_static(b"x"),
            ));
        }
        assert_eq!(*rx.borrow(), 5);
        let kept: Vec<u64> = buffer.since(0).iter().map(|m| m.sequence_number).collect();
        assert_eq!(kept, vec![3, 4, 5]);
        assert_eq!(buffer.since(4).len(), 1);
        buffer.set_capacity(1);
        assert_eq!(buffer.since(0).len(), 1);
    }
}
