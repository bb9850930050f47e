//! Message topics and their property bags: building telemetry topics
//! (`devices/{d}[/modules/{m}]/messages/events/{bag}`) and reading cloud-to-device topics
//! (`devices/{d}[/modules/{m}]/messages/devicebound/{bag}`), as documented in
//! <https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>. Pure string work.
//!
//! A bag is `key=value&key=value`, keys and values percent-encoded. System properties use
//! `$.`-prefixed keys (`$.mid`, `$.cid`, `$.ct`, `$.ce`, …), which the hub sends as `%24.mid`;
//! `iothub-ack` is a system property without the prefix. Everything else is an application
//! property.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::message::{Message, SystemProperties};

/// Everything but RFC 3986 unreserved characters is encoded, as the Python device SDK does
/// (`urllib.parse.quote` with no safe characters): `$` becomes `%24`, `/` `%2F`, space `%20`.
const BAG_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const DEVICEBOUND: &str = "/messages/devicebound";

/// `devices/{d}` or `devices/{d}/modules/{m}`: the start of every per-identity topic. Ids go
/// in raw, as the official SDKs send them.
pub(crate) fn identity_prefix(device_id: &str, module_id: Option<&str>) -> String {
    match module_id {
        Some(m) => format!("devices/{device_id}/modules/{m}"),
        None => format!("devices/{device_id}"),
    }
}

/// The subscription filter for cloud-to-device messages of this identity.
pub(crate) fn c2d_filter(prefix: &str) -> String {
    format!("{prefix}{DEVICEBOUND}/#")
}

/// The topic a telemetry message is published on: the fixed part, then the encoded bag.
pub(crate) fn telemetry_topic(prefix: &str, message: &Message) -> String {
    let mut topic = format!("{prefix}/messages/events/");
    topic.push_str(&encode(message));
    topic
}

/// The property bag of an outgoing message: system properties first, then the application
/// properties in the caller's order.
pub(crate) fn encode(message: &Message) -> String {
    let system = [
        ("$.mid", &message.message_id),
        ("$.cid", &message.correlation_id),
        ("$.ct", &message.content_type),
        ("$.ce", &message.content_encoding),
    ];
    let pairs = system
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .chain(
            message
                .properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
    let mut bag = String::new();
    for (k, v) in pairs {
        if !bag.is_empty() {
            bag.push('&');
        }
        bag.extend(utf8_percent_encode(k, BAG_ENCODE));
        bag.push('=');
        bag.extend(utf8_percent_encode(v, BAG_ENCODE));
    }
    bag
}

/// The property bag of a cloud-to-device topic, or `None` when `topic` is not one. The hub
/// ends the fixed part with `/`; a topic without it has an empty bag.
pub(crate) fn c2d_bag(topic: &str) -> Option<&str> {
    if !topic.starts_with("devices/") {
        return None;
    }
    let at = topic.find(DEVICEBOUND)?;
    let rest = &topic[at + DEVICEBOUND.len()..];
    if rest.is_empty() {
        return Some("");
    }
    rest.strip_prefix('/')
}

/// Splits a received bag into system and application properties, percent-decoding keys and
/// values (`+` stays `+`, as in the SDKs). A key without `=` gets an empty value.
pub(crate) fn decode(bag: &str) -> (SystemProperties, Vec<(String, String)>) {
    let mut system = SystemProperties::default();
    let mut application = Vec::new();
    for pair in bag.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode_str(k).decode_utf8_lossy().into_owned();
        let value = percent_decode_str(v).decode_utf8_lossy().into_owned();
        let slot = match key.as_str() {
            "$.mid" => &mut system.message_id,
            "$.cid" => &mut system.correlation_id,
            "$.uid" => &mut system.user_id,
            "$.to" => &mut system.to,
            "$.ct" => &mut system.content_type,
            "$.ce" => &mut system.content_encoding,
            "$.exp" => &mut system.expiry_time_utc,
            "iothub-ack" => &mut system.ack,
            _ if key.starts_with("$.") => {
                system.other.push((key, value));
                continue;
            }
            _ => {
                application.push((key, value));
                continue;
            }
        };
        *slot = Some(value);
    }
    (system, application)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_topics_for_devices_and_modules() {
        let plain = Message::new(b"{}".to_vec());
        assert_eq!(
            telemetry_topic(&identity_prefix("d1", None), &plain),
            "devices/d1/messages/events/"
        );
        assert_eq!(
            telemetry_topic(&identity_prefix("d1", Some("m1")), &plain),
            "devices/d1/modules/m1/messages/events/"
        );
        assert_eq!(
            c2d_filter(&identity_prefix("d1", None)),
            "devices/d1/messages/devicebound/#"
        );
        assert_eq!(
            c2d_filter(&identity_prefix("d1", Some("m1"))),
            "devices/d1/modules/m1/messages/devicebound/#"
        );
    }

    #[test]
    fn system_properties_come_first_and_everything_is_percent_encoded() {
        let message = Message::new(b"x".to_vec())
            .with_message_id("id 1")
            .with_correlation_id("c/2")
            .with_content_type("application/json")
            .with_content_encoding("utf-8")
            .with_property("temp alert", "a&b=c")
            .with_property("ünï", "$x");
        assert_eq!(
            encode(&message),
            "%24.mid=id%201&%24.cid=c%2F2&%24.ct=application%2Fjson&%24.ce=utf-8\
             &temp%20alert=a%26b%3Dc&%C3%BCn%C3%AF=%24x"
        );
    }

    #[test]
    fn encoded_bags_decode_back() {
        let message = Message::new(Vec::new())
            .with_message_id("m=1")
            .with_property("k&", "v%");
        let (system, app) = decode(&encode(&message));
        assert_eq!(system.message_id.as_deref(), Some("m=1"));
        assert_eq!(app, vec![("k&".to_owned(), "v%".to_owned())]);
    }

    #[test]
    fn recognises_c2d_topics_and_their_bags() {
        assert_eq!(
            c2d_bag("devices/d/messages/devicebound/%24.mid=1&a=b"),
            Some("%24.mid=1&a=b")
        );
        assert_eq!(c2d_bag("devices/d/messages/devicebound/"), Some(""));
        assert_eq!(c2d_bag("devices/d/messages/devicebound"), Some(""));
        assert_eq!(
            c2d_bag("devices/d/modules/m/messages/devicebound/a=b"),
            Some("a=b")
        );
        assert_eq!(c2d_bag("devices/d/messages/deviceboundX"), None);
        assert_eq!(c2d_bag("$iothub/methods/POST/x/?$rid=1"), None);
        assert_eq!(c2d_bag("$iothub/twin/res/200/?$rid=1"), None);
    }

    #[test]
    fn decodes_a_real_hub_bag() {
        // The shape the hub sends for `az iot device c2d-message send` with a property.
        let (system, app) = decode(
            "%24.mid=2c2d&%24.to=%2Fdevices%2Fpubsub%2Fmessages%2Fdevicebound&%24.ce=utf-8\
             &%24.ct=application%2Fjson&%24.cid=corr&%24.uid=u&%24.exp=2026-01-01T00%3A00%3A00Z\
             &iothub-ack=full&%24.xyz=1&color=dark%20blue&plus=a+b&flag",
        );
        assert_eq!(system.message_id.as_deref(), Some("2c2d"));
        assert_eq!(
            system.to.as_deref(),
            Some("/devices/pubsub/messages/devicebound")
        );
        assert_eq!(system.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(system.content_type.as_deref(), Some("application/json"));
        assert_eq!(system.correlation_id.as_deref(), Some("corr"));
        assert_eq!(system.user_id.as_deref(), Some("u"));
        assert_eq!(
            system.expiry_time_utc.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(system.ack.as_deref(), Some("full"));
        assert_eq!(system.other, vec![("$.xyz".to_owned(), "1".to_owned())]);
        assert_eq!(
            app,
            vec![
                ("color".to_owned(), "dark blue".to_owned()),
                ("plus".to_owned(), "a+b".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn an_empty_bag_has_no_properties() {
        let (system, app) = decode("");
        assert_eq!(system, SystemProperties::default());
        assert!(app.is_empty());
    }
}
