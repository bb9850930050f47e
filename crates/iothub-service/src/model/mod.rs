//! Wire types: what the hub returns and what the client sends. Deserialisation is lenient
//! (missing optional members, `null` containers, unknown members kept or ignored) because
//! hub versions and emulators differ in what they emit (ARCHITECTURE.md#service-rest-api).

mod device;
mod statistics;
mod twin;

pub use device::{Device, DeviceSummary};
pub use statistics::RegistryStatistics;
pub use twin::{IfMatch, PatchSection, Twin, TwinPatch, TwinProperties};

use serde::{Deserialize, Deserializer};

/// Treats an explicit `null` like an absent member for containers.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
