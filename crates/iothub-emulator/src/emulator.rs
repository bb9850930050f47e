//! The embedding API: start an emulator in-process, get its ports, CA and connection strings,
//! and shut it down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;

use crate::amqp::AmqpEndpoint;
use crate::config::{ConnectionLimits, EmulatorConfig};
use crate::connections::Connections;
use crate::faults::FaultInjector;
use crate::hub::{Hub, HubError};
use crate::mqtt::{Endpoint, SessionTable};
use crate::persist::{Loaded, PersistError, Store};
use crate::tls::{TlsError, TlsMaterial};
use crate::{https, listener, rest};

/// Standard ports: connection strings omit `:port` for these (the official SDKs need them).
const STANDARD_HTTPS_PORT: u16 = 443;
const STANDARD_MQTT_PORT: u16 = 8883;
const STANDARD_AMQP_PORT: u16 = 5671;

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
        let data_dir = prepare_data_dir(&config.data_dir)?;
        let (store, loaded) = open_store(&data_dir, config.in_memory).await?;
        let sessions = SessionTable::default();
        let hub = Hub::open(
            config.hostname.clone(),
            store,
            loaded,
            Arc::new(sessions.clone()),
            config.events,
        )
        .await?;
        hub.telemetry().set_capacity(config.telemetry_capacity);
        for id in &config.devices {
            hub.ensure_device(id).await?;
        }
        // After the start-up devices: what exists when the emulator starts is indexed already.
        hub.set_query_lag(config.query_lag);
        let tls = load_tls(&data_dir, &config.hostname).await?;

        let (https, https_port) = bind(SocketAddr::new(config.bind, config.https_port)).await?;
        let (mqtt, mqtt_port) = bind(SocketAddr::new(config.bind, config.mqtt_port)).await?;
        let (amqp, amqp_port) = bind(SocketAddr::new(config.bind, config.amqp_port)).await?;
        let connections = Connections::default();
        let listeners = Listeners {
            https,
            mqtt,
            limits: config.connection_limits.clone(),
        };
        serve(&connections, &hub, sessions, &tls, listeners)?;
        let amqp_endpoint = AmqpEndpoint::new(
            hub.clone(),
            connections.clone(),
            &config.hostname,
            amqp_port,
        );
        connections.spawn(listener::serve(
            "amqp",
            amqp,
            tls.amqp_acceptor()?,
            connections.clone(),
            config.connection_limits.clone(),
            move |stream, peer| amqp_endpoint.clone().serve_tls(stream, peer),
        ));
        tracing::info!(https_port, mqtt_port, amqp_port, hostname = %config.hostname, "emulator listening");
        Ok(RunningEmulator {
            hub,
            hostname: config.hostname,
            https_port,
            mqtt_port,
            amqp_port,
            ca_file: tls.ca_file().to_path_buf(),
            ca_pem: tls.ca_pem().to_string(),
            connections,
        })
    }
}

/// Creates the data directory if needed, private to the owner (0700 on Unix, also when it
/// already existed with looser modes: it holds every key); returns its absolute path.
fn prepare_data_dir(dir: &Path) -> Result<PathBuf, EmulatorError> {
    let data_dir_error = |source| EmulatorError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(0o700);
        builder.create(dir).map_err(data_dir_error)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(data_dir_error)?;
    }
    #[cfg(not(unix))]
    builder.create(dir).map_err(data_dir_error)?;
    std::fs::canonicalize(dir).map_err(data_dir_error)
}

/// The durable store and its rows, or nothing for an in-memory hub.
async fn open_store(
    data_dir: &Path,
    in_memory: bool,
) -> Result<(Option<Store>, Loaded), EmulatorError> {
    if in_memory {
        return Ok((None, Loaded::default()));
    }
    let dir = data_dir.to_path_buf();
    let (store, loaded) = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .map_err(|e| PersistError::OpenTask(Arc::new(e)))??;
    Ok((Some(store), loaded))
}

async fn load_tls(data_dir: &Path, hostname: &str) -> Result<TlsMaterial, EmulatorError> {
    let (dir, host) = (data_dir.to_path_buf(), hostname.to_string());
    let tls = tokio::task::spawn_blocking(move || TlsMaterial::load_or_create(&dir, &host))
        .await
        .map_err(TlsError::SetupTask)??;
    Ok(tls)
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, u16), EmulatorError> {
    let bind_error = |source| EmulatorError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    Ok((listener, port))
}

/// Both bound listeners and the bounds their connections share.
struct Listeners {
    https: TcpListener,
    mqtt: TcpListener,
    limits: ConnectionLimits,
}

/// Starts the accept loops of both listeners: HTTPS (REST API, MQTT over WebSockets) and MQTT
/// over TLS. Both loops, and every connection they accept, are tasks of `connections`.
fn serve(
    connections: &Connections,
    hub: &Hub,
    sessions: SessionTable,
    tls: &TlsMaterial,
    listeners: Listeners,
) -> Result<(), EmulatorError> {
    let Listeners {
        https: https_listener,
        mqtt: mqtt_listener,
        limits,
    } = listeners;
    let endpoint = Endpoint::new(hub.clone(), sessions, connections.clone());
    let router = rest::router(hub.clone(), endpoint.clone());
    let (lifetime, https_limits) = (connections.clone(), limits.clone());
    let https_accept = listener::serve(
        "https",
        https_listener,
        tls.https_acceptor()?,
        connections.clone(),
        limits.clone(),
        move |stream, peer| {
            https::serve_connection(
                stream,
                peer,
                router.clone(),
                lifetime.clone(),
                https_limits.clone(),
            )
        },
    );
    connections.spawn(https_accept);
    connections.spawn(listener::serve(
        "mqtt",
        mqtt_listener,
        tls.mqtt_acceptor()?,
        connections.clone(),
        limits,
        move |stream, peer| endpoint.clone().serve_tls(stream, peer),
    ));
    Ok(())
}

fn host_with_port(host: &str, port: u16, standard: u16) -> String {
    if port == standard {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// A started emulator. Dropping it stops the listeners and closes every connection without
/// waiting; [`RunningEmulator::shutdown`] also waits for in-flight requests and sessions to end
/// and commits pending writes.
pub struct RunningEmulator {
    hub: Hub,
    hostname: String,
    https_port: u16,
    mqtt_port: u16,
    amqp_port: u16,
    ca_file: PathBuf,
    ca_pem: String,
    /// Every connection task; the store is closed only once they have all ended.
    connections: Connections,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("hostname", &self.hostname)
            .field("https_port", &self.https_port)
            .field("mqtt_port", &self.mqtt_port)
            .field("amqp_port", &self.amqp_port)
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

    /// Bound AMQP port (AMQP 1.0 over TLS: the Event Hub-compatible endpoint).
    pub fn amqp_port(&self) -> u16 {
        self.amqp_port
    }

    /// The Event Hub-compatible connection string of the built-in events endpoint, as the
    /// portal shows it: `Endpoint=sb://{host}[:{amqp port}]/;SharedAccessKeyName=iothubowner;
    /// SharedAccessKey=…;EntityPath={hub name}` (contains a secret). The port is left out when
    /// it is the standard 5671.
    pub fn eventhub_connection_string(&self) -> String {
        let Some(owner) = self.hub.policy("iothubowner") else {
            return String::new();
        };
        let entity = self.hostname.split('.').next().unwrap_or(&self.hostname);
        format!(
            "Endpoint=sb://{}/;SharedAccessKeyName={};SharedAccessKey={};EntityPath={entity}",
            host_with_port(&self.hostname, self.amqp_port, STANDARD_AMQP_PORT),
            owner.name,
            owner.primary.expose_base64()
        )
    }

    /// Path of the CA certificate clients must trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The hub state, for tests and tools that act on it directly (for example
    /// [`Hub::patch_reported`] to report properties without an MQTT connection).
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
        FaultInjector::new(self.hub.clone())
    }

    /// Makes the state store's next commit fail, as a full disk would; the hub then refuses
    /// further writes (test hook; no effect in memory).
    #[cfg(feature = "test-support")]
    pub fn fail_next_commit(&self) {
        self.hub.fail_next_commit();
    }

    /// Stops accepting, lets in-flight requests finish and closes every session (HTTPS, MQTT
    /// over TLS, MQTT over WebSockets), waits until all of them have ended, then commits pending
    /// writes and closes the store. A write acknowledged before this returns is durable.
    pub async fn shutdown(self) {
        self.connections.close().await;
        self.hub.close_store().await;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.connections.cancel();
    }
}
