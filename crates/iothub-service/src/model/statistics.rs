//! `GET /statistics/devices`.

use serde::{Deserialize, Serialize};

/// Registry statistics
/// (<https://learn.microsoft.com/rest/api/iothub/service/statistics/get-device-statistics>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStatistics {
    /// All device identities.
    #[serde(default)]
    pub total_device_count: u64,
    /// Devices with status `enabled`.
    #[serde(default)]
    pub enabled_device_count: u64,
    /// Devices with status `disabled`.
    #[serde(default)]
    pub disabled_device_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wire_shape() {
        let s: RegistryStatistics = serde_json::from_str(
            r#"{"totalDeviceCount":3,"enabledDeviceCount":2,"disabledDeviceCount":1}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            RegistryStatistics {
                total_device_count: 3,
                enabled_device_count: 2,
                disabled_device_count: 1
            }
        );
    }
}
