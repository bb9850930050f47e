//! `--fleet` arguments validated into a [`FleetConfig`], before any network I/O (exit code 2
//! for anything wrong). The per-device settings are the single device's: the same patch,
//! method answers, transport, CA, token lifetime, timeouts and reconnect back-off.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use iothub_auth::ServiceConnectionString;
use iothub_cli::load_ca_file;
use iothub_device::{ClientOptions, ConnectGate, SharedTls, TransportKind};
use serde_json::{json, Value};

use crate::cli::{Cli, Format, TransportArg};
use crate::config::{parse_patch, reconnect_backoff};
use crate::error::AppError;
use crate::methods::MethodResponses;

/// Where the fleet's identities come from.
pub enum Identities {
    /// `--devices-file`: device connection strings, one a line.
    File(PathBuf),
    /// `--create-devices PREFIX` with a service connection string.
    Create {
        /// The hub and the policy that creates the devices.
        service: ServiceConnectionString,
        /// `PREFIX` of `PREFIX-00000…`.
        prefix: String,
        /// `--cleanup`.
        cleanup: bool,
        /// `--device-host`, else the service connection string's host name.
        device_host: String,
    },
}

/// Everything a fleet run needs.
pub struct FleetConfig {
    /// `--fleet N`.
    pub size: usize,
    pub identities: Identities,
    /// The extra CA (PEM), also for the service client.
    pub ca_pem: Option<Vec<u8>>,
    /// Every device's client options; they share one TLS configuration and connect gate.
    pub options: ClientOptions,
    pub patch: Value,
    pub methods: MethodResponses,
    pub once: bool,
    pub duration: Option<Duration>,
    /// `--connect-rate`, devices a second.
    pub connect_rate: Option<f64>,
    pub format: Format,
    pub metrics_listen: Option<SocketAddr>,
}

impl FleetConfig {
    /// Validates the arguments of a `--fleet` run.
    ///
    /// # Errors
    /// An [`AppError`] with exit code 2 naming what is wrong.
    pub fn from_cli(cli: Cli) -> Result<FleetConfig, AppError> {
        let size = cli.fleet.unwrap_or(1) as usize;
        let identities = match (&cli.devices_file, &cli.create_devices) {
            (Some(path), None) => Identities::File(path.clone()),
            (None, Some(prefix)) => {
                let Some(secret) = &cli.connection_string else {
                    return Err(AppError::FleetUsage(
                        "--create-devices needs a service connection string in -c (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…)".into(),
                    ));
                };
                let service = secret.expose().parse::<ServiceConnectionString>().map_err(|e| {
                    AppError::FleetUsage(format!(
                        "--create-devices: -c must be a service connection string: {e}"
                    ))
                })?;
                validate_prefix(prefix)?;
                let device_host = cli
                    .device_host
                    .clone()
                    .unwrap_or_else(|| service.host_name.clone());
                Identities::Create {
                    device_host,
                    service,
                    prefix: prefix.clone(),
                    cleanup: cli.cleanup,
                }
            }
            _ => {
                return Err(AppError::FleetUsage(
                    "--fleet needs its devices: --devices-file FILE, or --create-devices PREFIX with a service connection string in -c".into(),
                ))
            }
        };
        let ca_pem = match &cli.ca_file {
            Some(path) => Some(load_ca_file(path)?.into_pem()),
            None => None,
        };
        let patch = match &cli.reported {
            Some(arg) => parse_patch(arg)?,
            None => json!({ "connectivity": { "type": cli.connectivity } }),
        };
        let methods = MethodResponses::parse(&cli.method_response)?;
        // Built once: loading the system roots per device would cost time and memory per
        // device for the same answer.
        let shared_tls = SharedTls::new(ca_pem.as_deref())?;
        let options = ClientOptions {
            transport: match cli.transport {
                TransportArg::Mqtt => TransportKind::Mqtt,
                TransportArg::MqttWs => TransportKind::MqttWebSockets,
            },
            ca_pem: None,
            shared_tls: Some(shared_tls),
            connect_gate: Some(ConnectGate::new(cli.max_connecting as usize)),
            sas_ttl: cli.sas_ttl,
            connect_timeout: cli.timeout,
            request_timeout: cli.timeout,
            backoff: reconnect_backoff(cli.reconnect_backoff),
            ..ClientOptions::default()
        };
        Ok(FleetConfig {
            size,
            identities,
            ca_pem,
            options,
            patch,
            methods,
            once: cli.once,
            duration: cli.duration,
            connect_rate: cli.connect_rate,
            format: cli.output,
            metrics_listen: cli.metrics_listen,
        })
    }
}

/// Device ids allow letters, digits and `-.%_*?!(),:=@$'` (at most 128 characters, with the
/// `-00000` suffix): the prefix must leave room and use only those.
fn validate_prefix(prefix: &str) -> Result<(), AppError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-.%_*?!(),:=@$'".contains(c);
    if prefix.is_empty() || prefix.len() > 100 || !prefix.chars().all(allowed) {
        return Err(AppError::FleetUsage(format!(
            "--create-devices '{prefix}': a prefix is 1–100 characters of letters, digits and -.%_*?!(),:=@$'"
        )));
    }
    Ok(())
}
