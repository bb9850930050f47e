//! The topic names and filters a device may use, and the topic names the hub publishes on
//! (ARCHITECTURE.md#device-mqtt; <https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>).
//! Anything a device sends that is not listed here makes the hub close the connection, so
//! parsing returns `None` rather than guessing.

use percent_encoding::percent_decode_str;

/// The identity a connection authenticated as: a device, or a module of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The device id (the whole MQTT client id for a device).
    pub device_id: String,
    /// The module id, for a `device/module` client id.
    pub module_id: Option<String>,
}

impl Identity {
    /// The prefix of this identity's own topics: `devices/{d}/` or `devices/{d}/modules/{m}/`.
    fn topic_prefix(&self) -> String {
        match &self.module_id {
            None => format!("devices/{}/", self.device_id),
            Some(module) => format!("devices/{}/modules/{module}/", self.device_id),
        }
    }
}

/// A topic a device publishes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceTopic {
    /// `$iothub/twin/GET/?$rid={rid}`.
    TwinGet {
        /// The request id, echoed in the response topic.
        rid: String,
    },
    /// `$iothub/twin/PATCH/properties/reported/?$rid={rid}[&$version={v}]`.
    TwinPatchReported {
        /// The request id, echoed in the response topic.
        rid: String,
    },
    /// `devices/{id}/messages/events/{property bag}` (device-to-cloud telemetry).
    Telemetry,
    /// `$iothub/methods/res/{status}/?$rid={rid}`: a direct-method response.
    MethodResponse {
        /// The status the device answered with (any integer).
        status: i32,
        /// The request id of the method request being answered.
        rid: String,
    },
}

/// A subscription filter the hub accepts (each one exactly as documented, `#` last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `$iothub/twin/res/#`: twin GET / PATCH responses.
    TwinResponses,
    /// `$iothub/twin/PATCH/properties/desired/#`: desired-property notifications.
    DesiredPatches,
    /// `$iothub/methods/POST/#`: direct-method requests.
    Methods,
    /// `devices/{id}/messages/devicebound/#`: cloud-to-device messages.
    CloudToDevice,
}

const TWIN_GET: &str = "$iothub/twin/GET/";
const TWIN_PATCH_REPORTED: &str = "$iothub/twin/PATCH/properties/reported/";
const METHOD_RESPONSE: &str = "$iothub/methods/res/";
const TWIN_RESPONSE: &str = "$iothub/twin/res/";
const DESIRED_PATCH: &str = "$iothub/twin/PATCH/properties/desired/";
const METHOD_REQUEST: &str = "$iothub/methods/POST/";

/// Classifies a topic the device published on; `None` for anything the hub does not accept,
/// including another device's topics.
pub fn parse_publish_topic(topic: &str, me: &Identity) -> Option<DeviceTopic> {
    if let Some(rest) = topic.strip_prefix(TWIN_GET) {
        return Some(DeviceTopic::TwinGet {
            rid: request_id(rest)?,
        });
    }
    if let Some(rest) = topic.strip_prefix(TWIN_PATCH_REPORTED) {
        return Some(DeviceTopic::TwinPatchReported {
            rid: request_id(rest)?,
        });
    }
    if let Some(rest) = topic.strip_prefix(METHOD_RESPONSE) {
        let (status, query) = rest.split_once('/')?;
        return Some(DeviceTopic::MethodResponse {
            status: status.parse::<i32>().ok()?,
            rid: request_id(query)?,
        });
    }
    let own = strip_own_prefix(topic, me)?;
    own.starts_with("messages/events/")
        .then_some(DeviceTopic::Telemetry)
}

/// Classifies a subscription filter; `None` for anything else (wildcards elsewhere, other
/// devices' topics, undocumented filters).
pub fn parse_filter(filter: &str, me: &Identity) -> Option<Filter> {
    match filter {
        "$iothub/twin/res/#" => Some(Filter::TwinResponses),
        "$iothub/twin/PATCH/properties/desired/#" => Some(Filter::DesiredPatches),
        "$iothub/methods/POST/#" => Some(Filter::Methods),
        _ => (strip_own_prefix(filter, me)? == "messages/devicebound/#")
            .then_some(Filter::CloudToDevice),
    }
}

/// Removes `devices/{my id}/` (or the module form) from `topic`. Device ids may reach us either
/// raw or percent-encoded (SDKs differ), so both spellings are accepted.
fn strip_own_prefix<'t>(topic: &'t str, me: &Identity) -> Option<&'t str> {
    let prefix = me.topic_prefix();
    if let Some(rest) = topic.strip_prefix(&prefix) {
        return Some(rest);
    }
    let rest = topic.strip_prefix("devices/")?;
    let segments = if me.module_id.is_some() { 3 } else { 1 };
    let mut parts = rest.splitn(segments + 1, '/');
    let device = decode(parts.next()?);
    if device != me.device_id {
        return None;
    }
    if let Some(module) = &me.module_id {
        if parts.next()? != "modules" || decode(parts.next()?) != *module {
            return None;
        }
    }
    parts.next()
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Longest `$rid` accepted. SDKs send a counter or a UUID; the bound keeps every response topic
/// far below MQTT's 65,535-byte topic limit.
pub const MAX_RID_LEN: usize = 128;

/// The `$rid` of a twin request: the part after `?` is a query string; a missing `?` or a missing
/// `$rid` is tolerated (an empty id is echoed back), but anything else before `?` is not a
/// documented topic, and neither is a `$rid` that could not be echoed into a valid topic name
/// (see [`valid_rid`]).
fn request_id(rest: &str) -> Option<String> {
    let query = match rest.strip_prefix('?') {
        Some(query) => query,
        None if rest.is_empty() => "",
        None => return None,
    };
    let rid = query_param(query, "$rid").unwrap_or_default();
    valid_rid(rid).then(|| rid.to_string())
}

/// A `$rid` is echoed byte for byte into the response topic, so it must be short and must not
/// hold what a topic name may not (wildcards `#` `+`, NUL) or what would change the topic's
/// levels (`/`).
fn valid_rid(rid: &str) -> bool {
    rid.len() <= MAX_RID_LEN && !rid.contains(['#', '+', '/', '\0'])
}

/// The raw (still encoded) value of `name` in a `a=1&b=2` query string. `$rid` is echoed back
/// byte for byte, so it is not decoded.
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name || decode(key) == name).then_some(value)
    })
}

/// `$iothub/twin/res/{status}/?$rid={rid}` (plus `&$version={n}` after a reported PATCH).
pub fn twin_response(status: u16, rid: &str, version: Option<u64>) -> String {
    match version {
        Some(version) => format!("{TWIN_RESPONSE}{status}/?$rid={rid}&$version={version}"),
        None => format!("{TWIN_RESPONSE}{status}/?$rid={rid}"),
    }
}

/// `$iothub/twin/PATCH/properties/desired/?$version={n}`.
pub fn desired_patch(version: u64) -> String {
    format!("{DESIRED_PATCH}?$version={version}")
}

/// `$iothub/methods/POST/{name}/?$rid={rid}`, with `$rid` the only query parameter (the C SDK
/// takes everything after `?$rid=` as the id). The name is sent as given; the REST handler
/// refuses names that would change the topic's levels.
pub fn method_request(name: &str, rid: &str) -> String {
    format!("{METHOD_REQUEST}{name}/?$rid={rid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str) -> Identity {
        Identity {
            device_id: id.to_string(),
            module_id: None,
        }
    }

    #[test]
    fn twin_topics_carry_the_request_id() {
        let me = device("d1");
        assert_eq!(
            parse_publish_topic("$iothub/twin/GET/?$rid=63d48e43-3d3a", &me),
            Some(DeviceTopic::TwinGet {
                rid: "63d48e43-3d3a".into()
            })
        );
        assert_eq!(
            parse_publish_topic(
                "$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3",
                &me
            ),
            Some(DeviceTopic::TwinPatchReported { rid: "7".into() })
        );
        assert_eq!(
            parse_publish_topic(
                "$iothub/twin/PATCH/properties/reported/?$version=3&%24rid=9",
                &me
            ),
            Some(DeviceTopic::TwinPatchReported { rid: "9".into() })
        );
        assert_eq!(
            parse_publish_topic("$iothub/twin/GET/", &me),
            Some(DeviceTopic::TwinGet { rid: String::new() })
        );
    }

    #[test]
    fn telemetry_only_on_the_own_device_topic() {
        let me = device("dev #1");
        assert_eq!(
            parse_publish_topic("devices/dev #1/messages/events/%24.mid=m1&a=b", &me),
            Some(DeviceTopic::Telemetry)
        );
        assert_eq!(
            parse_publish_topic("devices/dev%20%231/messages/events/", &me),
            Some(DeviceTopic::Telemetry)
        );
        assert_eq!(
            parse_publish_topic("devices/other/messages/events/", &me),
            None
        );
        assert_eq!(
            parse_publish_topic("devices/dev #1/messages/eventsX", &me),
            None
        );
    }

    #[test]
    fn module_topics_need_the_module_prefix() {
        let me = Identity {
            device_id: "d".into(),
            module_id: Some("m".into()),
        };
        assert_eq!(
            parse_publish_topic("devices/d/modules/m/messages/events/", &me),
            Some(DeviceTopic::Telemetry)
        );
        assert_eq!(parse_publish_topic("devices/d/messages/events/", &me), None);
        assert_eq!(
            parse_publish_topic("devices/d/modules/x/messages/events/", &me),
            None
        );
    }

    #[test]
    fn unknown_topics_are_refused() {
        let me = device("d1");
        for topic in [
            "$iothub/twin/GET",
            "$iothub/twin/GETX/?$rid=1",
            "$iothub/twin/PATCH/properties/desired/?$rid=1",
            "$iothub/methods/res/abc/?$rid=1",
            "hello/world",
            "devices/d1/messages/devicebound/",
        ] {
            assert_eq!(parse_publish_topic(topic, &me), None, "{topic}");
        }
        assert_eq!(
            parse_publish_topic("$iothub/methods/res/200/?$rid=5", &me),
            Some(DeviceTopic::MethodResponse {
                status: 200,
                rid: "5".into()
            })
        );
        assert_eq!(
            parse_publish_topic("$iothub/methods/res/-1/?$rid=a-b", &me),
            Some(DeviceTopic::MethodResponse {
                status: -1,
                rid: "a-b".into()
            })
        );
    }

    #[test]
    fn only_documented_filters() {
        let me = device("d1");
        assert_eq!(
            parse_filter("$iothub/twin/res/#", &me),
            Some(Filter::TwinResponses)
        );
        assert_eq!(
            parse_filter("$iothub/twin/PATCH/properties/desired/#", &me),
            Some(Filter::DesiredPatches)
        );
        assert_eq!(
            parse_filter("$iothub/methods/POST/#", &me),
            Some(Filter::Methods)
        );
        assert_eq!(
            parse_filter("devices/d1/messages/devicebound/#", &me),
            Some(Filter::CloudToDevice)
        );
        for filter in [
            "#",
            "$iothub/#",
            "$iothub/twin/res/+",
            "devices/d2/messages/devicebound/#",
            "devices/+/messages/devicebound/#",
        ] {
            assert_eq!(parse_filter(filter, &me), None, "{filter}");
        }
    }

    #[test]
    fn response_topics() {
        assert_eq!(
            twin_response(200, "a", None),
            "$iothub/twin/res/200/?$rid=a"
        );
        assert_eq!(
            twin_response(204, "a", Some(6)),
            "$iothub/twin/res/204/?$rid=a&$version=6"
        );
        assert_eq!(
            desired_patch(8),
            "$iothub/twin/PATCH/properties/desired/?$version=8"
        );
        assert_eq!(
            method_request("reboot", "17"),
            "$iothub/methods/POST/reboot/?$rid=17"
        );
    }
}
