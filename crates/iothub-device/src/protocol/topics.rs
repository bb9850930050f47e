//! IoT Hub twin topic names: building request topics and parsing the hub's responses and
//! desired-property notifications, as documented in
//! <https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>. Pure string work, no
//! state.

/// Responses to GET and PATCH requests arrive below this filter.
pub(crate) const TWIN_RESPONSES: &str = "$iothub/twin/res/#";
/// Desired-property notifications arrive below this filter.
pub(crate) const DESIRED_PATCHES: &str = "$iothub/twin/PATCH/properties/desired/#";

const RESPONSE_PREFIX: &str = "$iothub/twin/res/";
const DESIRED_PREFIX: &str = "$iothub/twin/PATCH/properties/desired/";

/// Topic of a twin GET carrying request id `rid`.
pub(crate) fn get_twin(rid: &str) -> String {
    format!("$iothub/twin/GET/?$rid={rid}")
}

/// Topic of a reported-properties PATCH carrying request id `rid`.
pub(crate) fn patch_reported(rid: &str) -> String {
    format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}")
}

/// A publish from the hub, classified by topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]`
    Response {
        status: u16,
        rid: String,
        version: Option<u64>,
    },
    /// `$iothub/twin/PATCH/properties/desired/?$version={v}`
    Desired { version: Option<u64> },
    /// Anything else (methods, C2D, …): not handled by the twin protocol.
    Other,
}

/// Why a twin topic could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TopicError {
    #[error("twin response topic without a numeric status: {0}")]
    BadStatus(String),
    #[error("twin response topic without $rid: {0}")]
    MissingRid(String),
}

/// Classifies a topic received from the hub.
pub(crate) fn parse(topic: &str) -> Result<Inbound, TopicError> {
    if let Some(rest) = topic.strip_prefix(RESPONSE_PREFIX) {
        // rest = "{status}/?$rid=…"; the hub sends the status as an integer (page linked above).
        let (status_text, query) = match rest.split_once('/') {
            Some((s, q)) => (s, q.strip_prefix('?').unwrap_or(q)),
            None => (rest, ""),
        };
        let status = status_text
            .parse::<u16>()
            .map_err(|_| TopicError::BadStatus(topic.to_owned()))?;
        let rid =
            query_value(query, "$rid").ok_or_else(|| TopicError::MissingRid(topic.to_owned()))?;
        let version = query_value(query, "$version").and_then(|v| v.parse().ok());
        return Ok(Inbound::Response {
            status,
            rid: rid.to_owned(),
            version,
        });
    }
    if let Some(rest) = topic.strip_prefix(DESIRED_PREFIX) {
        let query = rest.strip_prefix('?').unwrap_or(rest);
        let version = query_value(query, "$version").and_then(|v| v.parse().ok());
        return Ok(Inbound::Desired { version });
    }
    Ok(Inbound::Other)
}

/// Value of `name` in an `a=1&b=2` query; names are matched exactly, and a `%24`-encoded `$`
/// is accepted too because some hubs/proxies encode it.
fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    let encoded = name.strip_prefix('$').map(|n| format!("%24{n}"));
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let matches = k == name
            || encoded
                .as_deref()
                .is_some_and(|e| k.eq_ignore_ascii_case(e));
        matches.then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_topics() {
        assert_eq!(get_twin("7"), "$iothub/twin/GET/?$rid=7");
        assert_eq!(
            patch_reported("8"),
            "$iothub/twin/PATCH/properties/reported/?$rid=8"
        );
    }

    #[test]
    fn parses_get_response() {
        assert_eq!(
            parse("$iothub/twin/res/200/?$rid=63d48e43").unwrap(),
            Inbound::Response {
                status: 200,
                rid: "63d48e43".into(),
                version: None
            }
        );
    }

    #[test]
    fn parses_patch_response_with_version_in_any_order() {
        let expected = Inbound::Response {
            status: 204,
            rid: "1".into(),
            version: Some(6),
        };
        assert_eq!(
            parse("$iothub/twin/res/204/?$rid=1&$version=6").unwrap(),
            expected
        );
        assert_eq!(
            parse("$iothub/twin/res/204/?$version=6&$rid=1").unwrap(),
            expected
        );
        assert_eq!(
            parse("$iothub/twin/res/204/?%24rid=1&%24version=6").unwrap(),
            expected
        );
    }

    #[test]
    fn parses_error_response() {
        assert_eq!(
            parse("$iothub/twin/res/429/?$rid=abc").unwrap(),
            Inbound::Response {
                status: 429,
                rid: "abc".into(),
                version: None
            }
        );
    }

    #[test]
    fn rejects_bad_status_and_missing_rid() {
        assert!(matches!(
            parse("$iothub/twin/res/ok/?$rid=1"),
            Err(TopicError::BadStatus(_))
        ));
        assert!(matches!(
            parse("$iothub/twin/res/200/?$version=3"),
            Err(TopicError::MissingRid(_))
        ));
    }

    #[test]
    fn parses_desired_notification() {
        assert_eq!(
            parse("$iothub/twin/PATCH/properties/desired/?$version=8").unwrap(),
            Inbound::Desired { version: Some(8) }
        );
        assert_eq!(
            parse("$iothub/twin/PATCH/properties/desired/").unwrap(),
            Inbound::Desired { version: None }
        );
    }

    #[test]
    fn other_topics_are_not_twin_traffic() {
        assert_eq!(
            parse("$iothub/methods/POST/reboot/?$rid=1").unwrap(),
            Inbound::Other
        );
        assert_eq!(
            parse("devices/d/messages/devicebound/a=b").unwrap(),
            Inbound::Other
        );
    }
}
