//! The embedding API: start an emulator in-process, get its ports, CA and connection strings,
//! and shut it down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EmulatorConfig;
use crate::faults::FaultInjector;
use crate::hub::{Hub, HubError};
use crate::persist::{Loaded, PersistError, Store};
use crate::tls::{TlsError, TlsMaterial};

/// Standard ports: connection strings omit `:port` for these (the official SDKs need them).
const STANDARD_HTTPS_PORT: u16 = 443;
const STANDARD_MQTT_PORT: u16 = 8883;

/// Why the emulator could not start or register a device.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The durable store.
    #[error("state store: {0}")]
    Persist(#[from] PersistError),
    /// A hub operation.
    #[error("{0}")]
    Hub(#[from] HubError),
}

/// Entry point of the embedding API.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Opens the state, makes or loads certificates, binds both listeners and starts serving.
    /// Both listeners accept connections when this returns.
    ///
    /// # Errors
    /// Unusable data directory, store or certificates, a port in use, or an invalid `--device`.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        // Another provider may already be installed (tests); then it is used for clients only.
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::fs::create_dir_all(&config.data_dir).map_err(|source| EmulatorError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let data_dir =
            std::fs::canonicalize(&config.data_dir).map_err(|source| EmulatorError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?;
        let (store, loaded) = if config.in_memory {
            (None, Loaded::default())
        } else {
            let dir = data_dir.clone();
            let (store, loaded) = tokio::task::spawn_blocking(move || Store::open(&dir))
                .await
                .map_err(|e| PersistError::Sqlite(format!("store open task failed: {e}")))??;
            (Some(store), loaded)
        };
        let hub = Hub::open(config.hostname.clone(), store, loaded).await?;
        for id in &config.devices {
            hub.ensure_device(id).await?;
        }
        let tls = {
            let dir = data_dir.clone();
            let host = config.hostname.clone();
            tokio::task::spawn_blocking(move || TlsMaterial::load_or_create(&dir, &host))
                .await
                .map_err(|e| TlsError::Io {
                    path: data_dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                })??
        };

        let https = bind(SocketAddr::new(config.bind, config.https_port)).await?;
        let mqtt = bind(SocketAddr::new(config.bind, config.mqtt_port)).await?;
        let https_port = local_port(&https)?;
        let mqtt_port = local_port(&mqtt)?;

        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mqtt_endpoint = crate::mqtt::Endpoint::start(hub.clone(), shutdown.clone());
        tracker.spawn(crate::https::serve_https(
            https,
            tls.https_acceptor()?,
            crate::rest::router(hub.clone(), mqtt_endpoint.clone()),
            shutdown.clone(),
            tracker.clone(),
        ));
        tracker.spawn(mqtt_endpoint.serve_tls(mqtt, tls.mqtt_acceptor()?));
        tracing::info!(https_port, mqtt_port, hostname = %config.hostname, "emulator listening");
        Ok(RunningEmulator {
            hub,
            hostname: config.hostname,
            https_port,
            mqtt_port,
            ca_file: tls.ca_file().to_path_buf(),
            ca_pem: tls.ca_pem().to_string(),
            shutdown,
            tracker,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, EmulatorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| EmulatorError::Bind { addr, source })
}

fn local_port(listener: &TcpListener) -> Result<u16, EmulatorError> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| EmulatorError::DataDir {
            path: PathBuf::from("<listener>"),
            source,
        })
}

fn host_with_port(host: &str, port: u16, standard: u16) -> String {
    if port == standard {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// A started emulator. Dropping it stops the listeners; [`RunningEmulator::shutdown`] also
/// waits for in-flight requests and commits pending writes.
pub struct RunningEmulator {
    hub: Hub,
    hostname: String,
    https_port: u16,
    mqtt_port: u16,
    ca_file: PathBuf,
    ca_pem: String,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("hostname", &self.hostname)
            .field("https_port", &self.https_port)
            .field("mqtt_port", &self.mqtt_port)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// Hub host name.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Bound HTTPS port.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// Bound MQTT port.
    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_port
    }

    /// Path of the CA certificate clients must trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The hub state (for in-crate tests and tools).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// `iothubowner` service connection string (contains a secret).
    pub fn service_connection_string(&self) -> String {
        self.policy_connection_string("iothubowner")
            .unwrap_or_default()
    }

    /// Service connection string of a policy: `iothubowner`, `service`, `registryRead`,
    /// `registryReadWrite` or `device` (contains a secret).
    pub fn policy_connection_string(&self, policy: &str) -> Option<String> {
        let p = self.hub.policy(policy)?;
        Some(format!(
            "HostName={};SharedAccessKeyName={};SharedAccessKey={}",
            host_with_port(&self.hostname, self.https_port, STANDARD_HTTPS_PORT),
            p.name,
            p.primary.expose_base64()
        ))
    }

    /// Registers `id` if missing (existing keys are kept); returns its MQTT connection string.
    ///
    /// # Errors
    /// Invalid id or a storage failure.
    pub async fn add_device(&self, id: &str) -> Result<String, EmulatorError> {
        self.hub.ensure_device(id).await?;
        self.device_connection_string(id).ok_or_else(|| {
            EmulatorError::Hub(HubError::InvalidArgument(format!(
                "device '{id}' does not use SAS authentication"
            )))
        })
    }

    fn device_string(&self, id: &str, port: u16, standard: u16) -> Option<String> {
        let keys = self.hub.device_keys(id)?;
        Some(format!(
            "HostName={};DeviceId={};SharedAccessKey={}",
            host_with_port(&self.hostname, port, standard),
            id,
            keys.primary.expose_base64()
        ))
    }

    /// Device connection string for MQTT over TLS (`HostName` carries the MQTT port unless 8883).
    pub fn device_connection_string(&self, id: &str) -> Option<String> {
        self.device_string(id, self.mqtt_port, STANDARD_MQTT_PORT)
    }

    /// Device connection string for MQTT over WebSockets (`HostName` carries the HTTPS port
    /// unless 443).
    pub fn device_connection_string_ws(&self, id: &str) -> Option<String> {
        self.device_string(id, self.https_port, STANDARD_HTTPS_PORT)
    }

    /// Fault injection handle.
    pub fn faults(&self) -> FaultInjector {
        FaultInjector::new(self.hub.faults_arc())
    }

    /// Stops accepting, lets in-flight requests and sessions finish, commits pending writes.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.hub.close_store().await;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
