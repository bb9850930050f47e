//! Connection strings: `Key=Value;…` text naming a hub, an identity and its credential.

mod device;
pub(crate) mod segments;
mod service;
mod validate;

pub use device::{DeviceConnectionString, DeviceCredential};
pub use service::ServiceConnectionString;

/// Splits `host[:port]`; a suffix that is not a valid port is treated as part of the host.
fn split_host_port(host_name: &str) -> (&str, Option<u16>) {
    match host_name.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) => (host, Some(port)),
            _ => (host_name, None),
        },
        None => (host_name, None),
    }
}
