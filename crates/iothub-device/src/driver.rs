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

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Outgoing, Packet, QoS,
    SubscribeFilter,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

use crate::backoff::Backoff;
use crate::credentials::Credentials;
use crate::error::Error;
use crate::events::{ConnectionEvent, DisconnectReason};
use crate::fanout::Fanout;
use crate::protocol::{topics, Output, Protocol, Request, RequestId, Response, MAX_IN_FLIGHT};
use crate::twin::DesiredUpdate;

/// Capacity of rumqttc's request channel. Only this task writes to it: at most
/// [`MAX_IN_FLIGHT`] publishes, one subscribe and one disconnect are outstanding at a time,
/// so `try_publish` never finds it full.
pub(crate) const REQUEST_CHANNEL_CAPACITY: usize = MAX_IN_FLIGHT * 2 + 4;

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
}

/// State shared between the task and the client handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) desired: Fanout<DesiredUpdate>,
    pub(crate) events: Fanout<ConnectionEvent>,
    /// Why the task stopped, for requests made afterwards (`None`: still running, or closed
    /// by the caller).
    pub(crate) terminal: std::sync::Mutex<Option<Error>>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            desired: Fanout::new(),
            events: Fanout::new(),
            terminal: std::sync::Mutex::new(None),
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
    pub(crate) backoff: Backoff,
    pub(crate) connect_timeout: Duration,
    pub(crate) endpoint_label: String,
    pub(crate) startup: oneshot::Sender<Result<(), Error>>,
}

pub(crate) struct Driver {
    eventloop: EventLoop,
    core: Core,
}

/// Everything but the event loop, so both can be borrowed at once.
struct Core {
    client: AsyncClient,
    protocol: Protocol,
    commands: mpsc::Receiver<Command>,
    replies: HashMap<RequestId, oneshot::Sender<Result<Response, Error>>>,
    shared: Arc<Shared>,
    credentials: Credentials,
    backoff: Backoff,
    link: Link,
    /// Consecutive failed connection attempts, for the backoff.
    failures: u32,
    last_error: Option<String>,
    startup: Option<Startup>,
    endpoint_label: String,
}

struct Startup {
    reply: oneshot::Sender<Result<(), Error>>,
    deadline: Instant,
    timeout: Duration,
}

enum Link {
    /// The next `poll()` dials and sends CONNECT.
    Connecting,
    Connected {
        /// When to reconnect with a fresh token (`None`: fixed token, no renewal).
        renew_at: Option<Instant>,
        /// Renewal waits for in-flight twin requests until this instant, so their answers are
        /// not cut off (which would make the protocol resend, and the hub apply them twice).
        drain_until: Option<Instant>,
    },
    /// Waiting out the reconnect delay; `poll()` is not called.
    BackingOff { until: Instant },
    /// DISCONNECT requested; waiting for rumqttc to report it written.
    Disconnecting {
        then: AfterDisconnect,
        deadline: Instant,
    },
}

enum AfterDisconnect {
    Renew,
    Exit(Option<oneshot::Sender<()>>),
}

/// Why [`Driver::next_wake`] returned.
enum Wake {
    Event(Result<Event, ConnectionError>),
    BackoffElapsed,
    /// Our DISCONNECT for a renewal did not get out in time: drop the link and redial.
    ForceReconnect,
    Exit(Option<oneshot::Sender<()>>),
    StartupExpired,
}

enum Flow {
    Continue,
    Stop,
}

impl Driver {
    /// Installs the first token; fails if no token can be produced (expired fixed SAS).
    pub(crate) fn new(mut parts: DriverParts) -> Result<Driver, Error> {
        let username = parts
            .eventloop
            .mqtt_options
            .credentials()
            .map(|login| login.username)
            .unwrap_or_default();
        let token = parts.credentials.token()?;
        parts
            .eventloop
            .mqtt_options
            .set_credentials(username, token);
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
                link: Link::Connecting,
                failures: 0,
                last_error: None,
                startup: Some(Startup {
                    reply: parts.startup,
                    deadline: Instant::now() + parts.connect_timeout,
                    timeout: parts.connect_timeout,
                }),
                endpoint_label: parts.endpoint_label,
            },
        })
    }

    pub(crate) async fn run(mut self) {
        loop {
            let flow = match self.next_wake().await {
                Wake::Event(event) => self.on_event(event),
                Wake::BackoffElapsed => self.reconnect_now(),
                Wake::ForceReconnect => {
                    self.drop_connection();
                    self.core.emit(ConnectionEvent::Disconnected {
                        reason: DisconnectReason::TokenRenewal,
                    });
                    self.reconnect_now()
                }
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
        let polling = !matches!(core.link, Link::BackingOff { .. });
        let poll = self.eventloop.poll();
        tokio::pin!(poll);
        loop {
            let tick_at = core.protocol.next_deadline();
            let link_at = core.link_deadline();
            let startup_at = core.startup.as_ref().map(|s| s.deadline);
            tokio::select! {
                event = &mut poll, if polling => return Wake::Event(event),
                command = core.commands.recv(), if core.accepts_commands() => {
                    match command {
                        Some(Command::Submit { request, reply }) => core.submit(request, reply),
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
                () = sleep_until_opt(startup_at) => return Wake::StartupExpired,
            }
        }
    }

    fn on_event(&mut self, event: Result<Event, ConnectionError>) -> Flow {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                // Our protocol resends what matters; rumqttc's replay would duplicate it.
                self.eventloop.pending.clear();
                self.core.on_connected(ack.session_present);
                Flow::Continue
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let out =
                    self.core
                        .protocol
                        .on_publish(&publish.topic, &publish.payload, Instant::now());
                self.core.apply(out);
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
            } => {
                self.drop_connection();
                self.core.emit(ConnectionEvent::Disconnected {
                    reason: DisconnectReason::TokenRenewal,
                });
                self.reconnect_now()
            }
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
        self.core.protocol.on_disconnected();
        let message = error.to_string();
        if let Some(terminal) = terminal_error(error) {
            tracing::warn!("connection refused for good: {terminal}");
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
                let username = self
                    .eventloop
                    .mqtt_options
                    .credentials()
                    .map(|login| login.username)
                    .unwrap_or_default();
                self.eventloop.mqtt_options.set_credentials(username, token);
                self.core.link = Link::Connecting;
                Flow::Continue
            }
            Err(error) => {
                self.core.close(Some(error), None);
                Flow::Stop
            }
        }
    }

    /// Drops the network so the next `poll()` reconnects.
    fn drop_connection(&mut self) {
        self.eventloop.clean();
        self.eventloop.pending.clear();
        self.core.protocol.on_disconnected();
    }
}

impl Core {
    fn accepts_commands(&self) -> bool {
        !matches!(
            self.link,
            Link::Disconnecting {
                then: AfterDisconnect::Exit(_),
                ..
            }
        )
    }

    fn link_deadline(&self) -> Option<Instant> {
        match &self.link {
            Link::Connecting => None,
            Link::Connected { renew_at, .. } => *renew_at,
            Link::BackingOff { until } => Some(*until),
            Link::Disconnecting { deadline, .. } => Some(*deadline),
        }
    }

    fn on_link_timer(&mut self) -> Option<Wake> {
        match std::mem::replace(&mut self.link, Link::Connecting) {
            Link::BackingOff { .. } => Some(Wake::BackoffElapsed),
            Link::Connected { drain_until, .. } => {
                let now = Instant::now();
                if self.protocol.in_flight() > 0 && drain_until.is_some_and(|until| now < until) {
                    self.link = Link::Connected {
                        renew_at: Some(now + DRAIN_POLL),
                        drain_until,
                    };
                    return None;
                }
                tracing::info!("renewing the SAS token: reconnecting");
                self.request_disconnect(AfterDisconnect::Renew);
                None
            }
            Link::Disconnecting {
                then: AfterDisconnect::Exit(reply),
                ..
            } => Some(Wake::Exit(reply)),
            Link::Disconnecting {
                then: AfterDisconnect::Renew,
                ..
            } => {
                // The DISCONNECT never got out; the connection is presumably stuck.
                Some(Wake::ForceReconnect)
            }
            Link::Connecting => None,
        }
    }

    fn request_disconnect(&mut self, then: AfterDisconnect) {
        let deadline = Instant::now() + DISCONNECT_GRACE;
        if let Err(e) = self.client.try_disconnect() {
            tracing::debug!("could not queue DISCONNECT: {e}");
        }
        self.link = Link::Disconnecting { then, deadline };
    }

    /// Starts a clean shutdown; returns a wake when there is no connection to close.
    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) -> Option<Wake> {
        match self.link {
            Link::Connected { .. } => {
                self.request_disconnect(AfterDisconnect::Exit(reply));
                None
            }
            _ => Some(Wake::Exit(reply)),
        }
    }

    fn submit(&mut self, request: Request, reply: oneshot::Sender<Result<Response, Error>>) {
        let (id, out) = self.protocol.submit(request, Instant::now());
        self.replies.insert(id, reply);
        self.apply(out);
    }

    fn on_connected(&mut self, session_present: bool) {
        self.failures = 0;
        self.last_error = None;
        let renew_at = self.credentials.renew_in().map(|d| Instant::now() + d);
        let drain = (self.credentials.margin() / 2).min(MAX_RENEWAL_DRAIN);
        self.link = Link::Connected {
            renew_at,
            drain_until: renew_at.map(|at| at + drain),
        };
        tracing::info!(session_present, "connected to {}", self.endpoint_label);
        let out = self.protocol.on_connected(Instant::now());
        self.apply(out);
        self.emit(ConnectionEvent::Connected {
            session_present,
            token_expires_at: self.credentials.expires_at(),
        });
        if let Some(startup) = self.startup.take() {
            let _ = startup.reply.send(Ok(()));
        }
    }

    fn apply(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Subscribe => {
                    let filters = [topics::TWIN_RESPONSES, topics::DESIRED_PATCHES]
                        .map(|t| SubscribeFilter::new(t.to_owned(), QoS::AtMostOnce));
                    if let Err(e) = self.client.try_subscribe_many(filters) {
                        tracing::warn!("could not queue SUBSCRIBE: {e}");
                    }
                }
                Output::Publish { id, topic, payload } => {
                    // QoS 0 like the Node and C SDKs: the `$rid` answer is the acknowledgement
                    // and the protocol retransmits, so a PUBACK would add nothing.
                    if let Err(e) = self
                        .client
                        .try_publish(topic, QoS::AtMostOnce, false, payload)
                    {
                        tracing::warn!("could not queue a twin request: {e}");
                        self.protocol.unsent(id);
                    }
                }
                Output::Completed { id, result } => {
                    if let Some(reply) = self.replies.remove(&id) {
                        let _ = reply.send(result.map_err(Error::from));
                    }
                }
                Output::Desired(update) => self.shared.desired.send(&update),
            }
        }
    }

    fn emit(&self, event: ConnectionEvent) {
        self.shared.events.send(&event);
    }

    fn startup_error(&self) -> Error {
        let timeout = self.startup.as_ref().map(|s| s.timeout).unwrap_or_default();
        Error::Unreachable {
            endpoint: self.endpoint_label.clone(),
            after: timeout,
            last_error: self
                .last_error
                .clone()
                .unwrap_or_else(|| "the connection attempt did not finish".into()),
        }
    }

    /// Ends the client: fails what is waiting, tells subscribers, answers the closer.
    fn close(&mut self, error: Option<Error>, reply: Option<oneshot::Sender<()>>) {
        let failure = error.clone().unwrap_or(Error::Closed);
        if let (Some(e), Ok(mut terminal)) = (&error, self.shared.terminal.lock()) {
            *terminal = Some(e.clone());
        }
        // Every caller request has an entry here; the protocol table dies with the task.
        for (_, reply) in self.replies.drain() {
            let _ = reply.send(Err(failure.clone()));
        }
        if let Some(startup) = self.startup.take() {
            let _ = startup.reply.send(Err(failure.clone()));
        }
        if error.is_none() {
            self.emit(ConnectionEvent::Disconnected {
                reason: DisconnectReason::ClientClosed,
            });
        }
        self.emit(ConnectionEvent::Closed { error });
        self.shared.events.close();
        self.shared.desired.close();
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
    }
}

/// Refusals that retrying cannot fix. CONNACK 5 is what IoT Hub sends for every credential
/// problem (reference §3.4); hammering it would only get the device throttled.
fn terminal_error(error: &ConnectionError) -> Option<Error> {
    match error {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                Some(Error::AuthenticationRejected(format!("CONNACK {code:?}")))
            }
            ConnectReturnCode::RefusedProtocolVersion | ConnectReturnCode::BadClientId => {
                Some(Error::Refused(format!("CONNACK {code:?}")))
            }
            ConnectReturnCode::ServiceUnavailable | ConnectReturnCode::Success => None,
        },
        _ => None,
    }
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
            Some(Error::AuthenticationRejected(_))
        ));
        assert!(matches!(
            refused(ConnectReturnCode::BadUserNamePassword),
            Some(Error::AuthenticationRejected(_))
        ));
        assert!(matches!(
            refused(ConnectReturnCode::BadClientId),
            Some(Error::Refused(_))
        ));
        assert_eq!(refused(ConnectReturnCode::ServiceUnavailable), None);
        assert_eq!(terminal_error(&ConnectionError::NetworkTimeout), None);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(terminal_error(&ConnectionError::Io(io)), None);
    }
}
