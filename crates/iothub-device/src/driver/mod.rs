//! The connection task: owns the rumqttc `EventLoop` and wires it to the protocol state
//! machine, the callers' waiting requests, the timers and the subscriber fan-outs.
//!
//! rumqttc is used only as an MQTT transport. Its own session replay is switched off (its
//! `pending` queue is cleared on every CONNACK and error) because it drops that queue anyway
//! when `session_present` is false; [`Protocol`] owns retransmission, keyed by `$rid`.
//!
//! The `poll()` future is never cancelled while it runs (see [`Driver::next_wake`]): commands
//! and timers are served beside it in the same `select!`, and a reconnect for token renewal is
//! requested by sending DISCONNECT through rumqttc's request channel, not by dropping the
//! future halfway through a write.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use features::C2D_QUEUE;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Outgoing, Packet,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

mod features;
mod state;

use crate::backoff::Backoff;
use crate::credentials::Credentials;
use crate::error::{ConnackRefusal, Error};
use crate::events::{ConnectionEvent, DisconnectReason};
use crate::fanout::Fanout;
use crate::gate::ConnectGate;
use crate::message::C2dMessage;
use crate::methods::MethodRequest;
use crate::protocol::outbox::MAX_OUTBOX_IN_FLIGHT;
use crate::protocol::{Protocol, Request, Response, MAX_IN_FLIGHT};
use crate::twin::DesiredUpdate;
use state::{AfterDisconnect, Core, Link, Startup};

/// Capacity of rumqttc's request channel. Only this task writes to it: at most
/// [`MAX_IN_FLIGHT`] twin and [`MAX_OUTBOX_IN_FLIGHT`] QoS 1 publishes, a PUBACK per queued
/// C2D message, a few subscribes and one disconnect are outstanding at a time, so
/// `try_publish` does not find it full in practice.
pub(crate) const REQUEST_CHANNEL_CAPACITY: usize =
    MAX_IN_FLIGHT * 2 + MAX_OUTBOX_IN_FLIGHT + C2D_QUEUE + 8;

/// How long a DISCONNECT may take to reach the wire before the task stops waiting.
const DISCONNECT_GRACE: Duration = Duration::from_secs(3);

/// Longest wait for in-flight requests before a renewal reconnect (capped further at half the
/// renewal margin, so the token is still valid when the wait ends).
const MAX_RENEWAL_DRAIN: Duration = Duration::from_secs(2);

/// How often a pending renewal re-checks whether the in-flight requests were answered.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// A caller's request to the connection task.
pub(crate) enum Command {
    Submit {
        request: Request,
        reply: oneshot::Sender<Result<Response, Error>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// Publish telemetry at QoS 1; answered after the PUBACK.
    Send {
        topic: String,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Subscribe to method calls (answered after the SUBACK) and deliver them to `sink`.
    EnableMethods {
        sink: mpsc::UnboundedSender<MethodRequest>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Subscribe to C2D messages (answered after the SUBACK) and deliver them to `sink`.
    EnableC2d {
        sink: mpsc::Sender<C2dMessage>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// What an application handle sends back: a method answer or a C2D completion. Sent through
/// an unbounded channel so `Drop` can answer; its length is bounded by the method table and
/// the C2D queue.
#[derive(Debug)]
pub(crate) enum Answer {
    Method {
        rid: String,
        epoch: u64,
        status: i32,
        body: Vec<u8>,
        /// `None` for automatic answers nobody waits for.
        reply: Option<oneshot::Sender<Result<(), Error>>>,
    },
    Complete {
        pkid: u16,
        epoch: u64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// State shared between the task and the client handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) desired: Fanout<DesiredUpdate>,
    pub(crate) events: Fanout<ConnectionEvent>,
    /// Why the task stopped, for requests made afterwards (`None`: still running, or closed
    /// by the caller).
    pub(crate) terminal: std::sync::Mutex<Option<Error>>,
    /// [`Protocol::throttled`], for [`crate::DeviceClient::throttled_answers`].
    pub(crate) throttled: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            desired: Fanout::new(),
            events: Fanout::new(),
            terminal: std::sync::Mutex::new(None),
            throttled: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The error to give a caller whose request found the task gone.
    pub(crate) fn closed_error(&self) -> Error {
        self.terminal
            .lock()
            .ok()
            .and_then(|t| t.clone())
            .unwrap_or(Error::Closed)
    }
}

/// Everything [`Driver::new`] needs.
pub(crate) struct DriverParts {
    pub(crate) eventloop: EventLoop,
    pub(crate) client: AsyncClient,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) credentials: Credentials,
    pub(crate) request_timeout: Duration,
    /// How long a method call may wait for the application's answer.
    pub(crate) method_timeout: Duration,
    /// The C2D subscription filter of this identity.
    pub(crate) c2d_filter: String,
    pub(crate) backoff: Backoff,
    pub(crate) connect_gate: Option<ConnectGate>,
    pub(crate) connect_timeout: Duration,
    pub(crate) endpoint_label: String,
    /// Answered with `session_present` of the first CONNACK, or the reason connecting failed.
    pub(crate) startup: oneshot::Sender<Result<bool, Error>>,
}

pub(crate) struct Driver {
    eventloop: EventLoop,
    core: Core,
}
/// Why [`Driver::next_wake`] returned.
pub(super) enum Wake {
    Event(Result<Event, ConnectionError>),
    /// The connect gate let this client's next attempt through.
    Admitted,
    BackoffElapsed,
    /// Our DISCONNECT for a renewal did not get out in time: drop the link and redial.
    ForceReconnect,
    Exit(Option<oneshot::Sender<()>>),
    StartupExpired,
}

pub(super) enum Flow {
    Continue,
    Stop,
}
impl Driver {
    /// Installs the first token; fails if no token can be produced (expired fixed SAS).
    pub(crate) fn new(mut parts: DriverParts) -> Result<Driver, Error> {
        set_password(&mut parts.eventloop, parts.credentials.token()?);
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        Ok(Driver {
            eventloop: parts.eventloop,
            core: Core {
                client: parts.client,
                protocol: Protocol::new(parts.request_timeout),
                commands: parts.commands,
                replies: HashMap::new(),
                shared: parts.shared,
                credentials: parts.credentials,
                backoff: parts.backoff,
                connect_gate: parts.connect_gate,
                connect_permit: None,
                link: Link::Connecting,
                failures: 0,
                last_error: None,
                startup: Some(Startup {
                    reply: parts.startup,
                    deadline: Instant::now() + parts.connect_timeout,
                    timeout: parts.connect_timeout,
                }),
                endpoint_label: parts.endpoint_label,
                epoch: 0,
                outbox: Default::default(),
                outbox_replies: HashMap::new(),
                methods: Default::default(),
                subscriptions: Default::default(),
                feature_waiters: Vec::new(),
                method_sink: None,
                c2d_sink: None,
                answers_tx,
                answers_rx,
                method_timeout: parts.method_timeout,
                request_timeout: parts.request_timeout,
                c2d_filter: parts.c2d_filter,
            },
        })
    }

    pub(crate) async fn run(mut self) {
        loop {
            let flow = match self.next_wake().await {
                Wake::Event(event) => self.on_event(event),
                Wake::BackoffElapsed => self.reconnect_now(),
                Wake::Admitted => Flow::Continue,
                Wake::ForceReconnect => self.renew_connection(),
                Wake::Exit(reply) => {
                    self.core.close(None, reply);
                    Flow::Stop
                }
                Wake::StartupExpired => {
                    let error = self.core.startup_error();
                    self.core.close(Some(error), None);
                    Flow::Stop
                }
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    /// Serves commands and timers until the event loop yields an event or a state change needs
    /// the event loop itself. The `poll()` future lives across loop iterations, so it is only
    /// dropped when this function returns for a reason that ends or replaces the connection.
    async fn next_wake(&mut self) -> Wake {
        let core = &mut self.core;
        // With a connect gate, an attempt (the next poll() while connecting) waits for a turn.
        let gated = matches!(core.link, Link::Connecting)
            && core.connect_permit.is_none()
            && core.connect_gate.is_some();
        let gate = core.connect_gate.clone();
        let polling = !matches!(core.link, Link::BackingOff { .. }) && !gated;
        let poll = self.eventloop.poll();
        tokio::pin!(poll);
        loop {
            let tick_at = core.protocol.next_deadline();
            let link_at = core.link_deadline();
            let startup_at = core.startup.as_ref().map(|s| s.deadline);
            let features_at = core.features_deadline();
            tokio::select! {
                event = &mut poll, if polling => return Wake::Event(event),
                permit = enter_gate(gate.as_ref()), if gated => {
                    core.connect_permit = permit;
                    return Wake::Admitted;
                }
                command = core.commands.recv(), if core.accepts_commands() => {
                    match command {
                        Some(Command::Submit { request, reply }) => core.submit(request, reply),
                        Some(Command::Send { topic, payload, reply }) => core.send(topic, payload, reply),
                        Some(Command::EnableMethods { sink, reply }) => core.enable_methods(sink, reply),
                        Some(Command::EnableC2d { sink, reply }) => core.enable_c2d(sink, reply),
                        Some(Command::Shutdown { reply }) => {
                            if let Some(wake) = core.begin_shutdown(Some(reply)) {
                                return wake;
                            }
                        }
                        // Every handle is gone: nobody can use the client any more.
                        None => {
                            if let Some(wake) = core.begin_shutdown(None) {
                                return wake;
                            }
                        }
                    }
                }
                () = sleep_until_opt(tick_at) => {
                    let out = core.protocol.on_tick(Instant::now());
                    core.apply(out);
                }
                () = sleep_until_opt(link_at) => {
                    if let Some(wake) = core.on_link_timer() {
                        return wake;
                    }
                }
                Some(answer) = core.answers_rx.recv() => core.on_answer(answer),
                () = sleep_until_opt(features_at) => core.on_features_tick(Instant::now()),
                () = sleep_until_opt(startup_at) => return Wake::StartupExpired,
            }
        }
    }

    fn on_event(&mut self, event: Result<Event, ConnectionError>) -> Flow {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                // Our protocol resends what matters; rumqttc's replay would duplicate it.
                self.eventloop.pending.clear();
                self.core.connect_permit = None;
                self.core.on_connected(ack.session_present);
                Flow::Continue
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                self.core.on_publish(&publish);
                Flow::Continue
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                self.core.on_puback(ack.pkid);
                Flow::Continue
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                self.core.on_suback(&ack);
                Flow::Continue
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                self.core.on_outgoing_publish(pkid);
                Flow::Continue
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                self.core.on_outgoing_subscribe(pkid);
                Flow::Continue
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => self.on_disconnect_written(),
            Ok(_) => Flow::Continue,
            Err(error) => self.on_connection_error(&error),
        }
    }

    /// Our DISCONNECT is on the wire: either stop, or reconnect with a fresh token.
    fn on_disconnect_written(&mut self) -> Flow {
        let link = std::mem::replace(&mut self.core.link, Link::Connecting);
        match link {
            Link::Disconnecting {
                then: AfterDisconnect::Exit(reply),
                ..
            } => {
                self.core.close(None, reply);
                Flow::Stop
            }
            Link::Disconnecting {
                then: AfterDisconnect::Renew,
                ..
            } => self.renew_connection(),
            other => {
                self.core.link = other;
                Flow::Continue
            }
        }
    }

    fn on_connection_error(&mut self, error: &ConnectionError) -> Flow {
        // poll() has already dropped the network and moved unacknowledged packets to
        // `pending`; discard them, the protocol requeues its own requests.
        self.eventloop.pending.clear();
        self.core.connect_permit = None;
        self.core.on_link_lost();
        let message = error.to_string();
        if let Some(terminal) = terminal_error(error) {
            // Returned to the caller, who reports it; a log line would say it twice.
            tracing::debug!("connection refused for good: {terminal}");
            self.core.close(Some(terminal), None);
            return Flow::Stop;
        }
        let link = std::mem::replace(&mut self.core.link, Link::Connecting);
        match link {
            Link::Disconnecting {
                then: AfterDisconnect::Exit(reply),
                ..
            } => {
                self.core.close(None, reply);
                return Flow::Stop;
            }
            Link::Connected { .. }
            | Link::Disconnecting {
                then: AfterDisconnect::Renew,
                ..
            } => {
                tracing::info!("connection lost: {message}");
                self.core.emit(ConnectionEvent::Disconnected {
                    reason: DisconnectReason::ConnectionLost(message.clone()),
                });
            }
            Link::Connecting | Link::BackingOff { .. } => {
                tracing::debug!("connection attempt failed: {message}");
            }
        }
        self.core.last_error = Some(message);
        let delay = self.core.backoff.delay(self.core.failures);
        self.core.failures = self.core.failures.saturating_add(1);
        self.core.emit(ConnectionEvent::Reconnecting {
            attempt: self.core.failures,
            delay,
        });
        self.core.link = Link::BackingOff {
            until: Instant::now() + delay,
        };
        Flow::Continue
    }

    /// Installs a fresh token and lets the next `poll()` dial.
    fn reconnect_now(&mut self) -> Flow {
        match self.core.credentials.token() {
            Ok(token) => {
                set_password(&mut self.eventloop, token);
                self.core.link = Link::Connecting;
                Flow::Continue
            }
            Err(error) => {
                self.core.close(Some(error), None);
                Flow::Stop
            }
        }
    }

    /// Ends the link for a token renewal and redials with a fresh token.
    fn renew_connection(&mut self) -> Flow {
        self.drop_connection();
        self.core.emit(ConnectionEvent::Disconnected {
            reason: DisconnectReason::TokenRenewal,
        });
        self.reconnect_now()
    }

    /// Drops the network so the next `poll()` reconnects.
    fn drop_connection(&mut self) {
        self.eventloop.clean();
        self.eventloop.pending.clear();
        self.core.on_link_lost();
    }
}
/// A turn at the connect gate; never ready without a gate.
async fn enter_gate(gate: Option<&ConnectGate>) -> Option<tokio::sync::OwnedSemaphorePermit> {
    match gate {
        Some(gate) => gate.enter().await,
        None => std::future::pending().await,
    }
}

/// Replaces the MQTT password (the SAS token), keeping the username.
fn set_password(eventloop: &mut EventLoop, token: String) {
    let username = eventloop
        .mqtt_options
        .credentials()
        .map(|login| login.username)
        .unwrap_or_default();
    eventloop.mqtt_options.set_credentials(username, token);
}

/// Refusals that retrying cannot fix. CONNACK 5 is what IoT Hub sends for every credential
/// problem (ARCHITECTURE.md#device-mqtt; the Azure IoT C SDK's
/// <https://github.com/Azure/azure-iot-sdk-c/blob/main/doc/connection_and_messaging_reliability.md>
/// says the same); hammering it would only get the device throttled.
fn terminal_error(error: &ConnectionError) -> Option<Error> {
    match error {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => Some(Error::AuthenticationRejected(
                ConnackRefusal::BadUserNameOrPassword,
            )),
            ConnectReturnCode::NotAuthorized => {
                Some(Error::AuthenticationRejected(ConnackRefusal::NotAuthorized))
            }
            ConnectReturnCode::RefusedProtocolVersion => {
                Some(Error::Refused(ConnackRefusal::UnacceptableProtocolVersion))
            }
            ConnectReturnCode::BadClientId => {
                Some(Error::Refused(ConnackRefusal::IdentifierRejected))
            }
            // A hub that is briefly unavailable is worth retrying.
            ConnectReturnCode::ServiceUnavailable | ConnectReturnCode::Success => None,
        },
        other => untrusted_certificate(other).map(Error::UntrustedCertificate),
    }
}

/// The certificate verdict buried in a connection error, if any: rustls reports it inside
/// io::Error wrappers (TLS) or tungstenite errors (WebSockets), so walk the whole chain.
fn untrusted_certificate(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(rustls::Error::InvalidCertificate(why)) = e.downcast_ref::<rustls::Error>() {
            return Some(format!("{why:?}"));
        }
        // io::Error::source() skips the wrapped error itself, so look inside explicitly.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = untrusted_certificate(inner) {
                return Some(found);
            }
        }
        current = e.source();
    }
    None
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_credential_and_protocol_refusals_are_terminal() {
        let refused = |code| terminal_error(&ConnectionError::ConnectionRefused(code));
        assert!(matches!(
            refused(ConnectReturnCode::NotAuthorized),
            Some(Error::AuthenticationRejected(ConnackRefusal::NotAuthorized))
        ));
        assert!(matches!(
            refused(ConnectReturnCode::BadUserNamePassword),
            Some(Error::AuthenticationRejected(
                ConnackRefusal::BadUserNameOrPassword
            ))
        ));
        assert!(matches!(
            refused(ConnectReturnCode::BadClientId),
            Some(Error::Refused(ConnackRefusal::IdentifierRejected))
        ));
        assert_eq!(refused(ConnectReturnCode::ServiceUnavailable), None);
        assert_eq!(terminal_error(&ConnectionError::NetworkTimeout), None);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(terminal_error(&ConnectionError::Io(io)), None);
    }

    #[test]
    fn an_untrusted_certificate_inside_io_errors_is_terminal() {
        let verdict = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, verdict);
        assert_eq!(
            terminal_error(&ConnectionError::Io(io)),
            Some(Error::UntrustedCertificate("UnknownIssuer".into()))
        );
    }
}
