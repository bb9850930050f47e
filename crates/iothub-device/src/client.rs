//! The public handle: connect, twin GET, reported PATCH, desired updates, connection events,
//! direct methods, cloud-to-device messages and telemetry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iothub_auth::DeviceConnectionString;
use rumqttc::{AsyncClient, MqttOptions, TlsConfiguration, Transport};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::credentials::Credentials;
use crate::driver::{Command, Driver, DriverParts, Shared, C2D_QUEUE, REQUEST_CHANNEL_CAPACITY};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::events::ConnectionEvent;
use crate::fanout::Subscription;
use crate::message::{C2dMessages, Message};
use crate::methods::MethodRequests;
use crate::options::{ClientOptions, TransportKind};
use crate::protocol::property_bag;
use crate::protocol::{Request, Response};
use crate::tls;
use crate::twin::{DesiredUpdate, Twin};

/// Largest twin document is 32 KiB per section, telemetry 256 KiB; rumqttc's 10 KiB default
/// would reject a full twin GET response. Headroom covers topic and property bag.
const MAX_PACKET_SIZE: usize = 256 * 1024 + 16 * 1024;

/// The hub caps the whole reported section at 32 KB, so a larger patch can never succeed. It is
/// refused here: sent, it could exceed the packet limit, which makes rumqttc drop the
/// connection, and the resend after reconnecting would do it again until the deadline.
const MAX_REPORTED_PATCH: usize = 32 * 1024;

/// Commands waiting for the connection task; callers wait when it is full.
const COMMAND_QUEUE: usize = 256;

/// Largest telemetry body: the hub's device-to-cloud limit is 256 KB, properties included.
pub const MAX_TELEMETRY_SIZE: usize = 256 * 1024;

/// Telemetry messages waiting for their PUBACK at once; further `send_telemetry` calls wait.
const MAX_PENDING_TELEMETRY: usize = 64;

/// The MQTT limit on a topic name (the property bag is part of it).
const MAX_TOPIC_LEN: usize = 65_535;

/// The hub's acknowledgement of a reported-properties patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedAck {
    /// Success status from the response topic (IoT Hub sends 204).
    pub status: u16,
    /// The reported `$version` after the patch.
    pub version: u64,
}

/// Stream of [`DesiredUpdate`]s.
pub type DesiredUpdates = Subscription<DesiredUpdate>;
/// Stream of [`ConnectionEvent`]s.
pub type ConnectionEvents = Subscription<ConnectionEvent>;

/// A connected IoT Hub device. Cheap to clone; all clones share one connection.
///
/// The connection is kept alive in a background task: it renews the SAS token by
/// reconnecting before expiry, reconnects with backoff after a loss, resubscribes, re-reads the
/// twin to surface desired changes missed while offline, and resends unacknowledged twin
/// requests. It stops for good only on [`DeviceClient::disconnect`], when every handle is
/// dropped, or on a terminal error (credentials rejected, fixed SAS token expired).
#[derive(Clone)]
pub struct DeviceClient {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    device_id: String,
    module_id: Option<String>,
    /// `devices/{d}` or `devices/{d}/modules/{m}`.
    topic_prefix: String,
    endpoint: String,
    session_present: bool,
    telemetry_permits: Arc<Semaphore>,
}

impl std::fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl DeviceClient {
    /// Connects and waits for the first CONNACK.
    ///
    /// Transient failures (network, TLS, hub busy) are retried with backoff until
    /// `options.connect_timeout`.
    ///
    /// # Errors
    /// [`Error::AuthenticationRejected`] at once on CONNACK 4/5; [`Error::Unreachable`] when
    /// the timeout passes (with the last failure); [`Error::Tls`] / [`Error::Config`] /
    /// [`Error::TokenExpired`] for unusable settings.
    pub async fn connect(
        conn: DeviceConnectionString,
        options: ClientOptions,
    ) -> Result<DeviceClient, Error> {
        let endpoint = Endpoint::new(&conn, options.transport)?;
        let tls = match &options.shared_tls {
            Some(shared) => Arc::clone(&shared.0),
            None => tls::client_config(options.ca_pem.as_deref())?,
        };

        let mut mqtt = MqttOptions::new(
            endpoint.client_id(),
            endpoint.broker_addr(),
            endpoint.dial_port,
        );
        // IoT Hub keeps subscriptions for clean_session = 0, like every official SDK uses.
        mqtt.set_clean_session(false);
        // rumqttc panics below one second; the hub's cap is 1,177 s: it times out a client after
        // 1.5 × its keep-alive, at most 29.45 min
        // (<https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>).
        mqtt.set_keep_alive(
            options
                .keep_alive
                .clamp(Duration::from_secs(5), Duration::from_secs(1177)),
        );
        mqtt.set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE);
        // A C2D message is completed by its PUBACK, so the application decides when it goes.
        mqtt.set_manual_acks(true);
        mqtt.set_credentials(endpoint.username(&options.product_info), "");
        let tls = TlsConfiguration::Rustls(tls);
        mqtt.set_transport(match options.transport {
            TransportKind::Mqtt => Transport::tls_with_config(tls),
            TransportKind::MqttWebSockets => Transport::wss_with_config(tls),
        });

        let (client, mut eventloop) = AsyncClient::new(mqtt, REQUEST_CHANNEL_CAPACITY);
        let mut network = eventloop.network_options();
        // One attempt (TCP + TLS + CONNACK) may not outlast the overall connect timeout.
        network.set_connection_timeout(options.connect_timeout.as_secs().clamp(1, 30));
        eventloop.set_network_options(network);

        let shared = Arc::new(Shared::new());
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (startup_tx, startup_rx) = oneshot::channel();
        let device_id = conn.device_id.clone();
        let module_id = conn.module_id.clone();
        let topic_prefix = property_bag::identity_prefix(&device_id, module_id.as_deref());
        let label = endpoint.label();
        let credentials =
            Credentials::new(conn, options.sas_ttl, options.effective_renewal_margin());
        let driver = Driver::new(DriverParts {
            eventloop,
            client,
            commands: commands_rx,
            shared: Arc::clone(&shared),
            credentials,
            request_timeout: options.request_timeout,
            method_timeout: options.method_timeout,
            c2d_filter: property_bag::c2d_filter(&topic_prefix),
            backoff: options.backoff,
            connect_gate: options.connect_gate.clone(),
            connect_timeout: options.connect_timeout,
            endpoint_label: label.clone(),
            startup: startup_tx,
        })?;
        let task = tokio::spawn(driver.run());
        match startup_rx.await {
            Ok(Ok(session_present)) => Ok(DeviceClient {
                commands: commands_tx,
                session_present,
                shared,
                task: Arc::new(Mutex::new(Some(task))),
                device_id,
                module_id,
                topic_prefix,
                endpoint: label,
                telemetry_permits: Arc::new(Semaphore::new(MAX_PENDING_TELEMETRY)),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Closed),
        }
    }

    /// The device id this client authenticates as.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The module id, for a module identity.
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }

    /// Whether the hub still had this device's session (subscriptions) at the first CONNACK.
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// `host:port (transport)` the client dials.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Twin answers with status 429 (the hub throttling this device) so far; the client waited
    /// and retried each within the request's deadline.
    pub fn throttled_answers(&self) -> u64 {
        self.shared
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads the twin (desired and reported properties).
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Status`], [`Error::Closed`], or a terminal connection error.
    pub async fn get_twin(&self) -> Result<Twin, Error> {
        match self.request(Request::GetTwin).await? {
            Response::Twin(twin) => Ok(twin),
            Response::Reported { .. } => Err(Error::InvalidResponse(
                "a reported-properties answer to a twin GET".into(),
            )),
        }
    }

    /// Merges `patch` into the reported properties (`null` deletes a member) and returns the
    /// new reported `$version`. The patch is kept and resent across reconnects until the hub
    /// acknowledges it or the request timeout passes.
    ///
    /// # Errors
    /// [`Error::InvalidPatch`] when `patch` is not a JSON object or exceeds the hub's 32 KB;
    /// otherwise as [`DeviceClient::get_twin`].
    pub async fn update_reported(&self, patch: &Value) -> Result<u64, Error> {
        self.update_reported_acknowledged(patch)
            .await
            .map(|ack| ack.version)
    }

    /// Like [`DeviceClient::update_reported`], with the hub's acknowledgement status as well.
    ///
    /// # Errors
    /// As [`DeviceClient::update_reported`].
    pub async fn update_reported_acknowledged(&self, patch: &Value) -> Result<ReportedAck, Error> {
        if !patch.is_object() {
            return Err(Error::InvalidPatch(
                "reported properties must be a JSON object".into(),
            ));
        }
        let body = serde_json::to_vec(patch).map_err(|e| Error::InvalidPatch(e.to_string()))?;
        if body.len() > MAX_REPORTED_PATCH {
            return Err(Error::InvalidPatch(format!(
                "{} bytes; the hub accepts at most {MAX_REPORTED_PATCH} bytes of reported properties",
                body.len()
            )));
        }
        match self.request(Request::PatchReported(body)).await? {
            Response::Reported { status, version } => Ok(ReportedAck { status, version }),
            Response::Twin(_) => Err(Error::InvalidResponse(
                "a twin document answering a reported PATCH".into(),
            )),
        }
    }

    /// Desired-property changes from now on: patches as the hub pushes them, and the whole
    /// desired document when a reconnect finds that it changed while offline.
    pub fn desired_updates(&self) -> DesiredUpdates {
        self.shared.desired.subscribe()
    }

    /// Connection lifecycle events from now on.
    pub fn connection_events(&self) -> ConnectionEvents {
        self.shared.events.subscribe()
    }

    /// Direct-method calls from now on. Subscribes to `$iothub/methods/POST/#` (and again after
    /// every reconnect) and returns once the hub granted it, so the device counts as online
    /// for method calls from then on. Each [`crate::MethodRequest`] must be answered once; one
    /// dropped unanswered is answered with status 500. A later call replaces this stream (the
    /// old one ends).
    ///
    /// # Errors
    /// [`Error::SubscriptionRefused`], [`Error::Closed`], or a terminal connection error.
    pub async fn method_requests(&self) -> Result<MethodRequests, Error> {
        let (sink, rx) = mpsc::unbounded_channel();
        self.enable(|reply| Command::EnableMethods { sink, reply })
            .await?;
        Ok(MethodRequests { rx })
    }

    /// Cloud-to-device messages from now on. Subscribes to
    /// `devices/{id}/messages/devicebound/#` (the module form for a module identity) and
    /// returns once the hub granted it. Complete each message with
    /// [`crate::C2dMessage::complete`] once the application has taken it over; until then the
    /// hub keeps it. At most 64 messages wait in the stream; more are left unacknowledged and
    /// come again after a reconnect. A later call replaces this stream (the old one ends).
    ///
    /// # Errors
    /// As [`DeviceClient::method_requests`].
    pub async fn c2d_messages(&self) -> Result<C2dMessages, Error> {
        let (sink, rx) = mpsc::channel(C2D_QUEUE);
        self.enable(|reply| Command::EnableC2d { sink, reply })
            .await?;
        Ok(C2dMessages { rx })
    }

    /// Sends a telemetry message at QoS 1 on `devices/{id}/messages/events/{properties}` (or
    /// the module form) and returns after the hub's PUBACK. Across a reconnect the message is
    /// sent again (at least once) until the request timeout. At most 64 messages are in
    /// flight; further calls wait for a slot.
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] for a body over [`MAX_TELEMETRY_SIZE`] or properties too long
    /// for a topic; [`Error::Timeout`] without a PUBACK in time; [`Error::Closed`].
    pub async fn send_telemetry(&self, message: &Message) -> Result<(), Error> {
        if message.body.len() > MAX_TELEMETRY_SIZE {
            return Err(Error::InvalidMessage(format!(
                "a body of {} bytes; the hub accepts at most {MAX_TELEMETRY_SIZE} bytes",
                message.body.len()
            )));
        }
        let topic = property_bag::telemetry_topic(&self.topic_prefix, message);
        if topic.len() > MAX_TOPIC_LEN {
            return Err(Error::InvalidMessage(format!(
                "the properties take {} bytes of topic; MQTT allows at most {MAX_TOPIC_LEN}",
                topic.len()
            )));
        }
        let _permit = self
            .telemetry_permits
            .acquire()
            .await
            .map_err(|_| Error::Closed)?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send {
                topic,
                payload: message.body.clone(),
                reply,
            })
            .await
            .map_err(|_| self.shared.closed_error())?;
        answer.await.map_err(|_| self.shared.closed_error())?
    }

    async fn enable(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<(), Error>>) -> Command,
    ) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| self.shared.closed_error())?;
        answer.await.map_err(|_| self.shared.closed_error())?
    }

    /// Sends MQTT DISCONNECT (when connected) and stops the connection task. Requests still
    /// waiting fail with [`Error::Closed`]. Calling it again is harmless.
    pub async fn disconnect(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn request(&self, request: Request) -> Result<Response, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Submit { request, reply })
            .await
            .map_err(|_| self.shared.closed_error())?;
        answer.await.map_err(|_| self.shared.closed_error())?
    }
}
