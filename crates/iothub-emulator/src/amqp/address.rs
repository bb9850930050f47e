//! What a link address names: the claims-based-security node, a management node, an Event Hub
//! partition, or the IoT Hub-style `messages/events` entry that answers with a redirect.
//!
//! Clients spell the same node several ways: Python sends full URLs
//! (`amqps://{host}/{entity}/ConsumerGroups/{group}/Partitions/{id}`), Node sends the bare path,
//! the IoT Hub tools add the port. The scheme and host are stripped and the rest compared
//! case-insensitively (consumer group names keep the case the client sent).

/// A node of the AMQP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// `$cbs`: put-token requests and their responses.
    Cbs,
    /// `$management` or `{entity}/$management`: READ requests for the entity and partitions.
    Management,
    /// `{entity}/ConsumerGroups/{group}/Partitions/{id}`.
    Partition {
        /// The consumer group as the client named it.
        group: String,
        /// The partition id as sent (a decimal number on a valid link).
        partition: String,
    },
    /// `messages/events[/…]` on the IoT Hub host: `suffix` is what follows (`$management`,
    /// `ConsumerGroups/{group}/Partitions/{id}` or empty).
    IotHubEvents {
        /// The path after `messages/events`, without its leading `/`.
        suffix: String,
    },
    /// Anything else (answered with `amqp:not-found`).
    Unknown(String),
}

/// The path of `address` without scheme and host, without surrounding `/`.
pub(crate) fn path_of(address: &str) -> &str {
    let without_scheme = match address.find("://") {
        Some(at) => {
            let rest = &address[at + 3..];
            match rest.find('/') {
                Some(slash) => &rest[slash..],
                None => "",
            }
        }
        None => address,
    };
    without_scheme.trim_matches('/')
}

/// Classifies `address` for the Event Hub named `entity` (the hub name).
pub(crate) fn classify(address: &str, entity: &str) -> Node {
    let path = path_of(address);
    let segments: Vec<&str> = path.split('/').collect();
    let is = |segment: &str, expected: &str| segment.eq_ignore_ascii_case(expected);
    match segments.as_slice() {
        [cbs] if is(cbs, "$cbs") => Node::Cbs,
        [management] if is(management, "$management") => Node::Management,
        [name, management] if is(name, entity) && is(management, "$management") => Node::Management,
        [name, groups, group, partitions, partition]
            if is(name, entity) && is(groups, "ConsumerGroups") && is(partitions, "Partitions") =>
        {
            Node::Partition {
                group: (*group).to_string(),
                partition: (*partition).to_string(),
            }
        }
        [messages, events, rest @ ..] if is(messages, "messages") && is(events, "events") => {
            Node::IotHubEvents {
                suffix: rest.join("/"),
            }
        }
        _ => Node::Unknown(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(group: &str, id: &str) -> Node {
        Node::Partition {
            group: group.into(),
            partition: id.into(),
        }
    }

    #[test]
    fn the_clients_spellings_name_the_same_nodes() {
        let cases = [
            ("$cbs", Node::Cbs),
            ("$management", Node::Management),
            ("hub/$management", Node::Management),
            ("amqps://h.net:5671/hub/$management", Node::Management),
            (
                "hub/ConsumerGroups/$Default/Partitions/3",
                partition("$Default", "3"),
            ),
            (
                "amqps://localhost/HUB/consumergroups/Mine/partitions/0",
                partition("Mine", "0"),
            ),
            (
                "amqps://h.net/messages/events/$management",
                Node::IotHubEvents {
                    suffix: "$management".into(),
                },
            ),
            (
                "/messages/events/ConsumerGroups/$Default/Partitions/0",
                Node::IotHubEvents {
                    suffix: "ConsumerGroups/$Default/Partitions/0".into(),
                },
            ),
            (
                "messages/events/",
                Node::IotHubEvents {
                    suffix: String::new(),
                },
            ),
            (
                "other/ConsumerGroups/$Default/Partitions/0",
                Node::Unknown("other/ConsumerGroups/$Default/Partitions/0".into()),
            ),
        ];
        for (address, expected) in cases {
            assert_eq!(classify(address, "hub"), expected, "{address}");
        }
    }
}
