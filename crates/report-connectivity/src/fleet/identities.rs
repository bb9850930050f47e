//! The fleet's device identities: read from `--devices-file`, or created through the bulk
//! registry API (and deleted again with `--cleanup`).
//!
//! Created devices get keys generated here and sent in the create body: the bulk answer
//! carries no keys, and sending them saves one GET per device (100 devices per request instead
//! of 101 requests per 100 devices).

use std::path::Path;

use iothub_auth::ServiceConnectionString;
use iothub_cli::read_input_file;
use iothub_device::DeviceConnectionString;
use iothub_service::{BulkOutcome, NewDevice, ServiceClient};

use crate::error::AppError;

/// The first `size` device connection strings of `path`. Blank lines and lines starting with
/// `#` are skipped; a line that is not a device connection string is an error naming its
/// number (never its text: it may hold a key).
///
/// # Errors
/// [`AppError::FleetUsage`] for an unreadable file, a bad line, or too few strings.
pub fn read_devices_file(
    path: &Path,
    size: usize,
) -> Result<Vec<DeviceConnectionString>, AppError> {
    let bytes =
        read_input_file(path).map_err(|e| AppError::FleetUsage(format!("--devices-file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        AppError::FleetUsage(format!("--devices-file {}: not UTF-8 text", path.display()))
    })?;
    let mut devices = Vec::with_capacity(size);
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let conn: DeviceConnectionString = line.parse().map_err(|e| {
            AppError::FleetUsage(format!(
                "--devices-file {} line {}: not a device connection string: {e}",
                path.display(),
                index + 1
            ))
        })?;
        devices.push(conn);
        if devices.len() == size {
            return Ok(devices);
        }
    }
    Err(AppError::FleetUsage(format!(
        "--devices-file {} holds {} device connection strings; --fleet asks for {size}",
        path.display(),
        devices.len()
    )))
}

/// `PREFIX-00000`, `PREFIX-00001`, …: five digits, more past 100,000.
pub fn device_id(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:05}")
}

/// A service client for the hub in `service`, trusting `ca_pem` too.
///
/// # Errors
/// The client's build error (a CA it cannot use).
pub fn service_client(
    service: &ServiceConnectionString,
    ca_pem: Option<&[u8]>,
) -> Result<ServiceClient, AppError> {
    let mut builder = ServiceClient::builder(service.clone());
    if let Some(pem) = ca_pem {
        builder = builder.extra_ca_pem(pem.to_vec());
    }
    Ok(builder.build()?)
}

/// Creates `size` devices named from `prefix` and returns their connection strings. When the
/// hub refuses some, the ones created are deleted again before the error is returned.
///
/// # Errors
/// [`AppError::Service`] for a failed request, [`AppError::Other`] naming the first refused
/// device and why.
pub async fn create_devices(
    client: &ServiceClient,
    device_host: &str,
    prefix: &str,
    size: usize,
) -> Result<Vec<DeviceConnectionString>, AppError> {
    let devices: Vec<NewDevice> = (0..size)
        .map(|i| NewDevice::with_generated_keys(device_id(prefix, i)))
        .collect();
    let outcome = client.create_devices(&devices).await?;
    if let Some(first) = outcome.failures.first() {
        let refused: std::collections::HashSet<&str> = outcome
            .failures
            .iter()
            .map(|f| f.device_id.as_str())
            .collect();
        let created: Vec<String> = devices
            .iter()
            .map(|d| d.device_id.clone())
            .filter(|id| !refused.contains(id.as_str()))
            .collect();
        // Best effort: the error below is what the user must see.
        if let Err(e) = client.delete_devices(&created).await {
            tracing::warn!("could not delete the devices created before the failure: {e}");
        }
        return Err(AppError::Other(format!(
            "the hub refused {} of {size} devices (first: '{}': {} {}); none are kept — pick another --create-devices prefix or delete them",
            outcome.failures.len(),
            first.device_id,
            first.error_code,
            first.error_status
        )));
    }
    Ok(devices
        .into_iter()
        .map(|d| DeviceConnectionString::with_key(device_host, d.device_id, d.primary_key))
        .collect())
}

/// Deletes the devices `create_devices` made.
///
/// # Errors
/// [`AppError::Service`] for a failed request.
pub async fn delete_devices(
    client: &ServiceClient,
    prefix: &str,
    size: usize,
) -> Result<BulkOutcome, AppError> {
    let ids: Vec<String> = (0..size).map(|i| device_id(prefix, i)).collect();
    Ok(client.delete_devices(&ids).await?)
}
