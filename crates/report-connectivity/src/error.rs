//! The CLI's failures and their exit codes ([`iothub_cli::exit`]): 0 ok · 1 other failure
//! (including Ctrl-C before the hub acknowledged) · 2 invalid usage or input · 3
//! authentication rejected · 5 hub unreachable or timed out. Code 4 (device not found) is never
//! returned: over MQTT the hub answers an unknown device with the same CONNACK 5 as a wrong
//! key, which is exit 3.

use std::str::FromStr;

use iothub_cli::{exit, CaFileError, JsonArgError};
use iothub_device::{DeviceConnectionString, Error as DeviceError};

/// Why the run failed. `Display` is the message printed after `report-connectivity: error: `.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The connection string is not a device connection string (the message says what is
    /// wrong, with a hint when a service string was given, and never echoes the key).
    #[error("invalid device connection string: {0}")]
    ConnectionString(<DeviceConnectionString as FromStr>::Err),
    /// `--reported` is not JSON, or its `@file` cannot be read.
    #[error(transparent)]
    JsonArg(#[from] JsonArgError),
    /// `--ca-file` cannot be read or holds no usable certificate.
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    /// `--reported` is JSON but not an object.
    #[error("--reported: must be a JSON object (the reported properties to merge)")]
    ReportedNotAnObject,
    /// A `--method-response` value that cannot be used (the message names it).
    #[error("--method-response {0}")]
    MethodResponse(String),
    /// A telemetry flag that cannot be used (`--telemetry`, `--property`, ...; the message
    /// names the flag).
    #[error("{0}")]
    Telemetry(String),
    /// From the device client.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A fleet setting that cannot be used: `--devices-file` content, a missing identity
    /// source, a prefix (the message names it; exit code 2).
    #[error("{0}")]
    FleetUsage(String),
    /// From the service client (`--create-devices`, `--cleanup`).
    #[error(transparent)]
    Service(#[from] iothub_service::ServiceError),
    /// Anything else (exit code 1).
    #[error("{0}")]
    Other(String),
}

impl AppError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::ConnectionString(_)
            | AppError::JsonArg(_)
            | AppError::CaFile(_)
            | AppError::ReportedNotAnObject
            | AppError::MethodResponse(_)
            | AppError::Telemetry(_)
            | AppError::FleetUsage(_) => exit::USAGE,
            AppError::Service(e) => match e.kind() {
                iothub_service::ErrorKind::Unauthorized => exit::AUTH,
                iothub_service::ErrorKind::Unreachable | iothub_service::ErrorKind::Timeout => {
                    exit::UNREACHABLE
                }
                iothub_service::ErrorKind::InvalidInput | iothub_service::ErrorKind::Tls => {
                    exit::USAGE
                }
                _ => exit::OTHER,
            },
            AppError::Device(e) if e.is_authentication() => exit::AUTH,
            AppError::Device(e) if e.is_unreachable_or_timeout() => exit::UNREACHABLE,
            // A CA file or gateway setting we cannot use is bad input, not a runtime failure.
            AppError::Device(
                DeviceError::Tls(_) | DeviceError::Config(_) | DeviceError::InvalidPatch(_),
            ) => exit::USAGE,
            // The hub found the reported patch malformed (bad key, too deep, too large).
            AppError::Device(DeviceError::Status { status: 400, .. }) => exit::USAGE,
            AppError::Device(_) | AppError::Other(_) => exit::OTHER,
        }
    }

    /// A hint printed under the error, when one helps.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            AppError::Device(e) if e.is_authentication() => Some(
                "check the device's SharedAccessKey (or token) and that the device exists and is enabled",
            ),
            AppError::Device(DeviceError::UntrustedCertificate(_)) => Some(
                "pass the hub's CA with --ca-file (or IOTHUB_CA_FILE); the emulator's is ca.pem in its data dir",
            ),
            AppError::Device(DeviceError::Unreachable { .. }) => Some(
                "check HostName/GatewayHostName and port, --transport, and --ca-file for a private CA",
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_device::ConnackRefusal;
    use std::time::Duration;

    #[test]
    fn exit_codes_follow_the_conventions() {
        assert_eq!(AppError::ReportedNotAnObject.exit_code(), 2);
        assert_eq!(
            AppError::from(DeviceError::AuthenticationRejected(
                ConnackRefusal::NotAuthorized
            ))
            .exit_code(),
            3
        );
        assert_eq!(AppError::from(DeviceError::TokenExpired).exit_code(), 3);
        assert_eq!(
            AppError::from(DeviceError::Unreachable {
                endpoint: "h:1 (mqtt)".into(),
                after: Duration::from_secs(1),
                last_error: "refused".into()
            })
            .exit_code(),
            5
        );
        assert_eq!(
            AppError::from(DeviceError::Timeout(Duration::from_secs(1))).exit_code(),
            5
        );
        assert_eq!(
            AppError::from(DeviceError::Tls("bad".into())).exit_code(),
            2
        );
        assert_eq!(
            AppError::from(DeviceError::Status {
                status: 400,
                message: "m".into()
            })
            .exit_code(),
            2
        );
        assert_eq!(
            AppError::from(DeviceError::Status {
                status: 500,
                message: "m".into()
            })
            .exit_code(),
            1
        );
        assert_eq!(AppError::from(DeviceError::Closed).exit_code(), 1);
    }
}
