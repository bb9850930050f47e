//! The selector filter receivers send to choose where reading starts.
//!
//! The filter is an entry `apache.org:selector-filter:string` in the source's filter set, a
//! described string (the descriptor is that symbol, or the ulong `0x0000_468C_0000_0004` some
//! clients send). Its text compares one annotation with `>` or `>=`:
//! `amqp.annotation.x-opt-offset > '12345'`, `amqp.annotation.x-opt-sequence-number >= '42'`,
//! `amqp.annotation.x-opt-enqueued-time > '1700000000000'` (milliseconds since the epoch; the
//! Azure CLI spells it `x-opt-enqueuedtimeutc` and leaves out the quotes). The offset `-1` means
//! the start of the partition and `@latest` the current end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp_types::messaging::FilterSet;
use fe2o3_amqp_types::primitives::Value;

/// The filter-set key (and symbol descriptor) of the selector filter.
pub(crate) const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
/// The ulong descriptor of the same filter.
const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

/// Where a receiver starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The oldest retained event (no filter, or offset `-1`).
    Earliest,
    /// Only events enqueued after the link attached (`@latest`).
    Latest,
    /// Events after (or at, `inclusive`) this sequence number.
    Sequence { value: i64, inclusive: bool },
    /// Events after (or at) this offset.
    Offset { value: i64, inclusive: bool },
    /// Events enqueued after (or at) this time.
    EnqueuedTime { at: SystemTime, inclusive: bool },
}

/// Why a filter was refused (sent back as the link's `amqp:invalid-field` error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported selector filter '{expression}': {reason}")]
pub(crate) struct FilterError {
    expression: String,
    reason: &'static str,
}

/// Reads the start position from a source's filter set; no selector filter reads from the start.
pub(crate) fn start_of(filters: Option<&FilterSet>) -> Result<Start, FilterError> {
    let Some(filters) = filters else {
        return Ok(Start::Earliest);
    };
    let selector = filters
        .iter()
        .find(|(key, _)| key.as_str() == SELECTOR_FILTER)
        .map(|(_, value)| value);
    let Some(selector) = selector else {
        return Ok(Start::Earliest);
    };
    let text = match selector {
        Value::Described(described) => match &described.value {
            Value::String(text) if is_selector_descriptor(&described.descriptor) => text,
            _ => {
                return Err(invalid(
                    "?",
                    "the filter is not a described selector string",
                ))
            }
        },
        Value::String(text) => text,
        _ => return Err(invalid("?", "the filter is not a string")),
    };
    parse(text)
}

fn is_selector_descriptor(descriptor: &serde_amqp::descriptor::Descriptor) -> bool {
    use serde_amqp::descriptor::Descriptor;
    match descriptor {
        Descriptor::Name(name) => name.as_str() == SELECTOR_FILTER,
        Descriptor::Code(code) => *code == SELECTOR_FILTER_CODE,
    }
}

fn invalid(expression: &str, reason: &'static str) -> FilterError {
    FilterError {
        expression: expression.to_string(),
        reason,
    }
}

/// Parses `amqp.annotation.{name} (>|>=) ('v'|v)`.
pub(crate) fn parse(expression: &str) -> Result<Start, FilterError> {
    let bad = |reason| invalid(expression, reason);
    let rest = expression
        .trim()
        .strip_prefix("amqp.annotation.")
        .ok_or_else(|| bad("expected amqp.annotation.{name} > value"))?;
    let name_end = rest
        .find(|c: char| c.is_whitespace() || c == '>')
        .ok_or_else(|| bad("expected > or >="))?;
    let (name, rest) = rest.split_at(name_end);
    let rest = rest.trim_start();
    let (inclusive, value) = if let Some(value) = rest.strip_prefix(">=") {
        (true, value)
    } else if let Some(value) = rest.strip_prefix('>') {
        (false, value)
    } else {
        return Err(bad("expected > or >="));
    };
    let value = value.trim();
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    let number = || {
        value
            .parse::<i64>()
            .map_err(|_| bad("the value is not an integer"))
    };
    match name.to_ascii_lowercase().as_str() {
        "x-opt-offset" => match value {
            "@latest" => Ok(Start::Latest),
            "-1" if !inclusive => Ok(Start::Earliest),
            _ => Ok(Start::Offset {
                value: number()?,
                inclusive,
            }),
        },
        "x-opt-sequence-number" => Ok(Start::Sequence {
            value: number()?,
            inclusive,
        }),
        "x-opt-enqueued-time" | "x-opt-enqueuedtimeutc" => {
            let millis = u64::try_from(number()?).map_err(|_| bad("the time is before 1970"))?;
            Ok(Start::EnqueuedTime {
                at: UNIX_EPOCH + Duration::from_millis(millis),
                inclusive,
            })
        }
        _ => Err(bad(
            "filters compare x-opt-offset, x-opt-sequence-number or x-opt-enqueued-time",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_expressions_parse() {
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let cases = [
            ("amqp.annotation.x-opt-offset > '@latest'", Start::Latest),
            ("amqp.annotation.x-opt-offset > '-1'", Start::Earliest),
            (
                "amqp.annotation.x-opt-offset >= '12345'",
                Start::Offset {
                    value: 12345,
                    inclusive: true,
                },
            ),
            (
                "amqp.annotation.x-opt-sequence-number > '42'",
                Start::Sequence {
                    value: 42,
                    inclusive: false,
                },
            ),
            (
                "amqp.annotation.x-opt-sequence-number > 2995",
                Start::Sequence {
                    value: 2995,
                    inclusive: false,
                },
            ),
            (
                "amqp.annotation.x-opt-enqueued-time > '1700000000000'",
                Start::EnqueuedTime {
                    at: at(1_700_000_000_000),
                    inclusive: false,
                },
            ),
            (
                "amqp.annotation.x-opt-enqueuedtimeutc > 1700000000000",
                Start::EnqueuedTime {
                    at: at(1_700_000_000_000),
                    inclusive: false,
                },
            ),
        ];
        for (expression, expected) in cases {
            assert_eq!(parse(expression), Ok(expected), "{expression}");
        }
    }

    #[test]
    fn other_expressions_are_refused_with_the_reason() {
        for expression in [
            "amqp.annotation.x-opt-offset < '5'",
            "amqp.annotation.x-opt-offset > 'abc'",
            "amqp.annotation.x-opt-partition-key > 'a'",
            "sys.x > 1",
        ] {
            assert!(parse(expression).is_err(), "{expression}");
        }
    }
}
