//! The CLI's failures and their exit codes (DESIGN.md: 0 ok · 1 other · 2 invalid usage or
//! input · 3 authentication rejected · 4 device not found · 5 hub unreachable or timed out).

use iothub_device::Error as DeviceError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad arguments or input files.
    #[error("{0}")]
    Usage(String),
    /// From the device client.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Anything else (exit code 1).
    #[error("{0}")]
    Other(String),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) => 2,
            AppError::Device(e) if e.is_authentication() => 3,
            AppError::Device(e) if e.is_unreachable_or_timeout() => 5,
            // A CA file or gateway setting we cannot use is bad input, not a runtime failure.
            AppError::Device(
                DeviceError::Tls(_) | DeviceError::Config(_) | DeviceError::InvalidPatch(_),
            ) => 2,
            // The hub found the reported patch malformed (bad key, too deep, too large).
            AppError::Device(DeviceError::Status { status: 400, .. }) => 2,
            AppError::Device(_) | AppError::Other(_) => 1,
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
    use std::time::Duration;

    #[test]
    fn exit_codes_follow_the_design() {
        assert_eq!(AppError::Usage("x".into()).exit_code(), 2);
        assert_eq!(
            AppError::from(DeviceError::AuthenticationRejected(
                "CONNACK NotAuthorized".into()
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
