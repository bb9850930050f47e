//! Errors of hub operations, each mapped to the IoT Hub error code and HTTP status that the
//! real service uses (ARCHITECTURE.md#service-rest-api;
//! <https://learn.microsoft.com/rest/api/iothub/common-error-codes>), so REST and MQTT front
//! doors report them identically.

use thiserror::Error;

use crate::persist::PersistError;

/// A failed hub operation.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum HubError {
    /// No device with this id is registered.
    #[error("device '{0}' not found")]
    DeviceNotFound(String),
    /// A create-only PUT hit an existing device.
    #[error("a device with ID '{0}' is already registered")]
    DeviceAlreadyExists(String),
    /// No module with this id on the device.
    #[error("module '{module}' not found on device '{device}'")]
    ModuleNotFound {
        /// Device id.
        device: String,
        /// Module id.
        module: String,
    },
    /// A create-only module PUT hit an existing module.
    #[error("a module with ID '{module}' is already registered on device '{device}'")]
    ModuleAlreadyExists {
        /// Device id.
        device: String,
        /// Module id.
        module: String,
    },
    /// The device already has the most modules a device may have.
    #[error("device '{device}' already has {limit} modules, the most a device may have")]
    TooManyModules {
        /// Device id.
        device: String,
        /// The bound.
        limit: usize,
    },
    /// A `deviceScope` or `parentScopes` value breaks the registry's IoT Edge rules.
    #[error("{0}")]
    InvalidDeviceScope(String),
    /// An `If-Match` etag did not match the current one.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The request content breaks a rule (id charset, twin key rules, depth, size, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// Injected fault or throttling: 429.
    #[error("the request has been throttled")]
    Throttled,
    /// Injected fault: 503.
    #[error("the service is unavailable")]
    ServiceUnavailable,
    /// The durable store failed; the write was not acknowledged. (The store's error is part of
    /// the message, not a `source()`, so it is printed once.)
    #[error("storage failure: {0}")]
    Storage(PersistError),
}

impl HubError {
    /// The HTTP status (also used as the MQTT twin response status).
    pub fn status(&self) -> u16 {
        match self {
            HubError::DeviceNotFound(_) => 404,
            HubError::DeviceAlreadyExists(_) => 409,
            HubError::ModuleNotFound { .. } => 404,
            HubError::ModuleAlreadyExists { .. } => 409,
            // The error number 413003 carries the status, as the hub's codes do.
            HubError::TooManyModules { .. } => 413,
            HubError::InvalidDeviceScope(_) => 400,
            HubError::PreconditionFailed(_) => 412,
            HubError::InvalidArgument(_) => 400,
            HubError::Throttled => 429,
            HubError::ServiceUnavailable => 503,
            HubError::Storage(_) => 500,
        }
    }

    /// The `iothub-errorcode` name.
    pub fn error_code(&self) -> &'static str {
        match self {
            HubError::DeviceNotFound(_) => "DeviceNotFound",
            HubError::DeviceAlreadyExists(_) => "DeviceAlreadyExists",
            HubError::ModuleNotFound { .. } => "ModuleNotFound",
            HubError::ModuleAlreadyExists { .. } => "ModuleAlreadyExistsOnDevice",
            HubError::TooManyModules { .. } => "TooManyModulesOnDevice",
            HubError::InvalidDeviceScope(_) => "InvalidDeviceScope",
            HubError::PreconditionFailed(_) => "PreconditionFailed",
            HubError::InvalidArgument(_) => "ArgumentInvalid",
            HubError::Throttled => "ThrottlingException",
            HubError::ServiceUnavailable => "ServiceUnavailable",
            HubError::Storage(_) => "ServerError",
        }
    }

    /// The human-readable part of the Format A message (after `ErrorCode:<Name>;`).
    pub fn message(&self) -> String {
        match self {
            // The hub puts the bare device id after the code for 404s
            // (ARCHITECTURE.md#service-rest-api).
            HubError::DeviceNotFound(id) => id.clone(),
            HubError::Throttled => {
                "The request has been throttled. Wait 10 seconds and try again.".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The error for an injected twin-operation failure with this HTTP status.
    pub(crate) fn injected(status: u16) -> HubError {
        if status == 429 {
            HubError::Throttled
        } else {
            HubError::ServiceUnavailable
        }
    }
}
