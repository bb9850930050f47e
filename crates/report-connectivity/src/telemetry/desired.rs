//! Telemetry configured through desired properties, as the device of Microsoft's "Use desired
//! properties to configure devices" tutorial is: the back end sets
//! `desired.telemetryConfig.sendFrequency` (e.g. `"5s"`, `"1m"`, or a number of seconds); the
//! device applies it and reports `reported.telemetryConfig` with the `sendFrequency` in force,
//! a `status` of `Success` or `Failed`, the desired `$version` it answers (`desiredVersion`),
//! the desired `configId` when one was given, and an `error` when it failed.

use std::time::Duration;

use serde_json::{json, Value};

/// The desired (and reported) property name.
pub const TELEMETRY_CONFIG: &str = "telemetryConfig";

/// The member of [`TELEMETRY_CONFIG`] holding the interval.
pub const SEND_FREQUENCY: &str = "sendFrequency";

/// The longest interval accepted from `--telemetry-interval`, desired properties or the
/// `setTelemetryInterval` method.
pub const MAX_TELEMETRY_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// A desired `telemetryConfig` found in a desired patch or document.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredTelemetryConfig {
    /// The interval to apply, or why the value cannot be used.
    pub interval: Result<Duration, String>,
    /// The desired `configId`, echoed back when present.
    pub config_id: Option<Value>,
}

/// The `telemetryConfig` in desired `properties` (a patch or the whole desired section), if it
/// is there and not `null` (a deletion leaves the interval as it is).
pub fn desired_telemetry_config(properties: &Value) -> Option<DesiredTelemetryConfig> {
    let config = properties.get(TELEMETRY_CONFIG)?;
    if config.is_null() {
        return None;
    }
    let config_id = config.get("configId").cloned();
    let interval = match config.get(SEND_FREQUENCY) {
        Some(value) => parse_interval(value),
        None => Err(format!("{TELEMETRY_CONFIG} has no {SEND_FREQUENCY}")),
    };
    Some(DesiredTelemetryConfig {
        interval,
        config_id,
    })
}

/// An interval from JSON: a duration string (`"500ms"`, `"5s"`, `"1m"`) or a positive number
/// of seconds, at most [`MAX_TELEMETRY_INTERVAL`].
pub fn parse_interval(value: &Value) -> Result<Duration, String> {
    let interval = match value {
        Value::String(text) => iothub_cli::parse_positive_duration(text)
            .map_err(|e| format!("{SEND_FREQUENCY} {text:?}: {e}"))?,
        Value::Number(n) => match n.as_f64() {
            Some(secs) if secs > 0.0 && secs.is_finite() => {
                Duration::try_from_secs_f64(secs).map_err(|e| format!("{n} seconds: {e}"))?
            }
            _ => return Err(format!("{n} is not a positive number of seconds")),
        },
        other => {
            return Err(format!(
                "{other} is neither a duration like \"5s\" nor a number of seconds"
            ))
        }
    };
    check_interval(interval)
}

/// Refuses intervals over [`MAX_TELEMETRY_INTERVAL`] and zero.
pub fn check_interval(interval: Duration) -> Result<Duration, String> {
    if interval.is_zero() {
        Err("the interval must be positive".into())
    } else if interval > MAX_TELEMETRY_INTERVAL {
        Err(format!(
            "{} is longer than the longest interval, {}",
            format_interval(interval),
            format_interval(MAX_TELEMETRY_INTERVAL)
        ))
    } else {
        Ok(interval)
    }
}

/// An interval as reported: `5s`, `1m 30s`, `250ms`.
pub fn format_interval(interval: Duration) -> String {
    humantime::format_duration(interval).to_string()
}

/// The reported patch answering desired `$version` `desired_version`: `applied` is the
/// interval now in force, `error` why the desired one was refused.
pub fn reported_telemetry_config(
    applied: Duration,
    desired_version: u64,
    config_id: Option<&Value>,
    error: Option<&str>,
) -> Value {
    let mut config = json!({
        SEND_FREQUENCY: format_interval(applied),
        "status": if error.is_some() { "Failed" } else { "Success" },
        "desiredVersion": desired_version,
        // `null` removes an earlier failure's text from the reported properties.
        "error": error,
    });
    if let Some(id) = config_id {
        config["configId"] = id.clone();
    }
    json!({ TELEMETRY_CONFIG: config })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_frequency_strings_and_numbers() {
        let found = desired_telemetry_config(
            &json!({"telemetryConfig": {"sendFrequency": "5s", "configId": "c1"}}),
        )
        .unwrap();
        assert_eq!(found.interval, Ok(Duration::from_secs(5)));
        assert_eq!(found.config_id, Some(json!("c1")));
        assert_eq!(parse_interval(&json!(0.5)), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval(&json!("1m")), Ok(Duration::from_secs(60)));
        assert!(desired_telemetry_config(&json!({"other": 1})).is_none());
        assert!(desired_telemetry_config(&json!({"telemetryConfig": null})).is_none());
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            json!("soon"),
            json!("0s"),
            json!(0),
            json!(-1),
            json!(true),
            json!("25h"),
        ] {
            assert!(parse_interval(&bad).is_err(), "{bad}");
        }
        let found = desired_telemetry_config(&json!({"telemetryConfig": {}})).unwrap();
        assert!(found.interval.is_err());
    }

    #[test]
    fn reported_shape() {
        assert_eq!(
            reported_telemetry_config(Duration::from_secs(5), 3, Some(&json!("c")), None),
            json!({"telemetryConfig": {"sendFrequency": "5s", "status": "Success", "desiredVersion": 3, "error": null, "configId": "c"}})
        );
        let failed = reported_telemetry_config(Duration::from_secs(60), 4, None, Some("bad"));
        assert_eq!(failed["telemetryConfig"]["status"], "Failed");
        assert_eq!(failed["telemetryConfig"]["sendFrequency"], "1m");
        assert_eq!(failed["telemetryConfig"]["error"], "bad");
    }
}
