//! Shared access policies and device credentials.

use iothub_auth::SharedAccessKey;

/// Permissions of a shared access policy (the hub's `AccessRights`, <https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    /// Read the identity registry.
    pub registry_read: bool,
    /// Write the identity registry (implies read, as in the hub's flag values).
    pub registry_write: bool,
    /// Back-end operations: twins, queries, statistics.
    pub service_connect: bool,
    /// Connect as any device.
    pub device_connect: bool,
}

impl Permissions {
    /// All four permissions (`iothubowner`).
    pub const ALL: Permissions = Permissions {
        registry_read: true,
        registry_write: true,
        service_connect: true,
        device_connect: true,
    };

    /// Whether any permission of `other` is held (an "A or B" requirement).
    pub fn any_of(&self, other: Permissions) -> bool {
        (self.registry_read || self.registry_write) && other.registry_read
            || self.registry_write && other.registry_write
            || self.service_connect && other.service_connect
            || self.device_connect && other.device_connect
    }
}

/// A hub-level shared access policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Policy (key) name, the SAS `skn`.
    pub name: String,
    /// What tokens signed with this policy may do.
    pub permissions: Permissions,
    /// Primary key.
    pub primary: SharedAccessKey,
    /// Secondary key (tokens signed with either key are valid).
    pub secondary: SharedAccessKey,
}

/// The default policies of a new hub, by name and permissions (ARCHITECTURE.md#connection-strings).
pub fn default_policies() -> [(&'static str, Permissions); 5] {
    let none = Permissions::default();
    [
        ("iothubowner", Permissions::ALL),
        (
            "service",
            Permissions {
                service_connect: true,
                ..none
            },
        ),
        (
            "registryRead",
            Permissions {
                registry_read: true,
                ..none
            },
        ),
        (
            "registryReadWrite",
            Permissions {
                registry_read: true,
                registry_write: true,
                ..none
            },
        ),
        (
            "device",
            Permissions {
                device_connect: true,
                ..none
            },
        ),
    ]
}

/// A device's symmetric keys, for verifying device SAS tokens.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    /// Primary device key.
    pub primary: SharedAccessKey,
    /// Secondary device key.
    pub secondary: SharedAccessKey,
    /// Disabled devices may not connect.
    pub enabled: bool,
}
