//! Twin content rules (ARCHITECTURE.md#limits; <https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins>): property names, nesting depth, section sizes,
//! string length and integer range. Violations are `HubError::InvalidArgument` (HTTP 400) with a
//! message naming the rule and the offending path.

use serde_json::{Map, Value};

use super::HubError;

/// Deepest allowed nesting of property names under `tags`, `desired` or `reported`.
pub const MAX_DEPTH: usize = 10;
/// Size limit of `tags`.
pub const MAX_TAGS_BYTES: usize = 8 * 1024;
/// Size limit of `properties.desired` and of `properties.reported`.
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;
/// Longest property name, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest string value, in UTF-8 bytes.
pub const MAX_STRING_BYTES: usize = 4 * 1024;
/// Integer range of twin values (±2^52).
pub const MIN_INT: i64 = -4_503_599_627_370_496;
/// Upper end of the integer range.
pub const MAX_INT: i64 = 4_503_599_627_370_495;

/// Checks every property name and value of a patch (or replacement) section.
///
/// # Errors
/// The first rule broken, with the JSON path of the offending member.
pub fn validate_patch(section: &str, patch: &Map<String, Value>) -> Result<(), HubError> {
    for (key, value) in patch {
        let path = format!("{section}.{key}");
        validate_key(&path, key)?;
        validate_value(&path, value)?;
    }
    Ok(())
}

fn validate_value(path: &str, value: &Value) -> Result<(), HubError> {
    match value {
        Value::Object(map) => validate_patch(path, map),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| validate_value(&format!("{path}[{i}]"), v)),
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(HubError::InvalidArgument(format!(
            "Twin value of '{path}' is {} bytes long; string values are limited to {MAX_STRING_BYTES} bytes",
            s.len()
        ))),
        Value::Number(n) => {
            let in_range = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => (MIN_INT..=MAX_INT).contains(&i),
                (None, Some(_)) => false,
                // The parser reads an integer beyond 64 bits (`100000000000000000000`) as a
                // double, indistinguishable from `1e20`: a double whose value is whole has the
                // integer range too, so both spellings are refused like 2^53+1 is. Fractions
                // keep the double's range.
                (None, None) => n
                    .as_f64()
                    .is_some_and(|f| f.fract() != 0.0 || (MIN_INT as f64..=MAX_INT as f64).contains(&f)),
            };
            if in_range {
                Ok(())
            } else {
                Err(HubError::InvalidArgument(format!(
                    "Twin value of '{path}' is out of range; integers must be within {MIN_INT} and {MAX_INT}"
                )))
            }
        }
        _ => Ok(()),
    }
}

fn validate_key(path: &str, key: &str) -> Result<(), HubError> {
    let reason = if key.is_empty() {
        Some("is empty")
    } else if key.len() > MAX_KEY_BYTES {
        Some("is longer than 1024 bytes")
    } else if key.contains('.') {
        Some("contains '.'")
    } else if key.contains('$') {
        Some("contains '$'")
    } else if key.contains(' ') {
        Some("contains a space")
    } else if key.chars().any(is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(HubError::InvalidArgument(format!(
            "Invalid twin property name at '{path}': the name {reason}; names may not contain '.', '$', spaces or control characters"
        ))),
        None => Ok(()),
    }
}

fn is_control(c: char) -> bool {
    matches!(c as u32, 0x00..=0x1f | 0x7f..=0x9f)
}

/// Checks depth and size of a whole section after a merge.
///
/// # Errors
/// Depth beyond [`MAX_DEPTH`] or size beyond `max_bytes`.
pub fn validate_section(
    section: &str,
    content: &Map<String, Value>,
    max_bytes: usize,
) -> Result<(), HubError> {
    let depth = depth_of_map(content);
    if depth > MAX_DEPTH {
        return Err(HubError::InvalidArgument(format!(
            "Twin '{section}' is nested {depth} levels deep; the maximum depth is {MAX_DEPTH}"
        )));
    }
    let size = size_of_map(content);
    if size > max_bytes {
        return Err(HubError::InvalidArgument(format!(
            "Twin '{section}' is {size} bytes; the maximum size is {max_bytes} bytes"
        )));
    }
    Ok(())
}

/// Number of property names on the longest path from the section root to a leaf.
fn depth_of_map(map: &Map<String, Value>) -> usize {
    map.values()
        .map(|v| 1 + depth_of_value(v))
        .max()
        .unwrap_or(0)
}

fn depth_of_value(value: &Value) -> usize {
    match value {
        Value::Object(map) => depth_of_map(map),
        // An array is not a level of names, but objects inside it are.
        Value::Array(items) => items.iter().map(depth_of_value).max().unwrap_or(0),
        _ => 0,
    }
}

/// The hub's size algorithm (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins>): keys and strings by UTF-8 length without control
/// characters, numbers 8 bytes, booleans 4 bytes, containers the sum of their contents.
pub fn size_of_map(map: &Map<String, Value>) -> usize {
    map.iter()
        .map(|(k, v)| text_size(k) + size_of_value(v))
        .sum()
}

fn size_of_value(value: &Value) -> usize {
    match value {
        Value::Object(map) => size_of_map(map),
        Value::Array(items) => items.iter().map(size_of_value).sum(),
        Value::String(s) => text_size(s),
        Value::Number(_) => 8,
        Value::Bool(_) | Value::Null => 4,
    }
}

fn text_size(s: &str) -> usize {
    s.chars()
        .filter(|c| !is_control(*c))
        .map(char::len_utf8)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn nested(levels: usize) -> Map<String, Value> {
        let mut v = json!(1);
        for i in (0..levels).rev() {
            v = json!({ format!("k{i}"): v });
        }
        obj(v)
    }

    #[test]
    fn depth_ten_is_allowed_eleven_is_not() {
        assert!(validate_section("tags", &nested(10), MAX_TAGS_BYTES).is_ok());
        let err = validate_section("tags", &nested(11), MAX_TAGS_BYTES).unwrap_err();
        assert!(err.to_string().contains("maximum depth is 10"), "{err}");
    }

    #[test]
    fn key_rules() {
        for bad in ["a.b", "$x", "a b", "a\u{1}b", ""] {
            let patch = obj(json!({ bad: 1 }));
            assert!(validate_patch("tags", &patch).is_err(), "{bad:?}");
        }
        assert!(validate_patch("tags", &obj(json!({"ok_key-1": {"nested": true}}))).is_ok());
    }

    #[test]
    fn size_counts_keys_strings_numbers_bools() {
        let m = obj(json!({"ab": "xyz", "n": 5, "b": true, "o": {"k": "v"}}));
        assert_eq!(size_of_map(&m), (2 + 3) + (1 + 8) + (1 + 4) + (1 + 1 + 1));
    }

    #[test]
    fn integer_range_and_string_length() {
        assert!(validate_patch("t", &obj(json!({"n": MAX_INT}))).is_ok());
        assert!(validate_patch("t", &obj(json!({"n": MAX_INT + 1}))).is_err());
        assert!(validate_patch("t", &obj(json!({"s": "x".repeat(4097)}))).is_err());
        assert!(validate_patch("t", &obj(json!({"n": 1e20}))).is_err());
        assert!(validate_patch("t", &obj(json!({"n": -1e20}))).is_err());
        assert!(validate_patch("t", &obj(json!({"n": 1.5e3}))).is_ok());
        assert!(validate_patch("t", &obj(json!({"n": 0.25}))).is_ok());
    }
}
