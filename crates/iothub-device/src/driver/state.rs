//! The connection task's state apart from the event loop: link state, timers, callers'
//! waiting requests, and how protocol outputs become rumqttc requests and deliveries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, QoS, SubscribeFilter};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Command, Shared, Wake, DISCONNECT_GRACE, DRAIN_POLL, MAX_RENEWAL_DRAIN};
use crate::backoff::Backoff;
use crate::credentials::Credentials;
use crate::error::Error;
use crate::events::{ConnectionEvent, DisconnectReason};
use crate::message::C2dMessage;
use crate::methods::MethodRequest;
use crate::protocol::methods::MethodTable;
use crate::protocol::outbox::{Outbox, OutboxId};
use crate::protocol::subscriptions::{Feature, Subscriptions};
use crate::protocol::{topics, Output, Protocol, Request, RequestId, Response};

/// Everything but the event loop, so both can be borrowed at once.
pub(super) struct Core {
    /// rumqttc's request channel; only this task writes to it, and only while connected.
    pub(super) client: AsyncClient,
    /// The twin state machine: the single source of what must be (re)sent.
    pub(super) protocol: Protocol,
    /// Requests from the `DeviceClient` handles.
    pub(super) commands: mpsc::Receiver<Command>,
    /// Callers waiting for an answer, by request id.
    pub(super) replies: HashMap<RequestId, oneshot::Sender<Result<Response, Error>>>,
    /// Subscriber fan-outs and the terminal error, shared with the handles.
    pub(super) shared: Arc<Shared>,
    /// Signs the password for each connection attempt and says when to renew.
    pub(super) credentials: Credentials,
    pub(super) backoff: Backoff,
    /// Shared bound on connection attempts in flight, and this client's turn while it dials.
    pub(super) connect_gate: Option<crate::gate::ConnectGate>,
    pub(super) connect_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    pub(super) link: Link,
    /// Consecutive failed connection attempts, for the backoff.
    pub(super) failures: u32,
    /// What the last failed attempt ran into, for the connect-timeout error.
    pub(super) last_error: Option<String>,
    /// The pending `DeviceClient::connect` call, until the first CONNACK or a terminal error.
    pub(super) startup: Option<Startup>,
    /// `host:port (transport)`, for logs and errors.
    pub(super) endpoint_label: String,
    /// Counts CONNACKs: method `$rid`s and C2D packet ids only mean something on the
    /// connection that carried them.
    pub(super) epoch: u64,
    /// Telemetry and method answers waiting for PUBACK.
    pub(super) outbox: Outbox,
    /// Callers of `send_telemetry` and `MethodRequest::respond`, by outbox id.
    pub(super) outbox_replies: HashMap<OutboxId, oneshot::Sender<Result<(), Error>>>,
    /// Method calls handed to the application and not answered yet.
    pub(super) methods: MethodTable,
    /// Methods and C2D subscriptions.
    pub(super) subscriptions: Subscriptions,
    /// Callers of `method_requests` / `c2d_messages` waiting for the SUBACK.
    pub(super) feature_waiters: Vec<(Feature, oneshot::Sender<Result<(), Error>>)>,
    pub(super) method_sink: Option<mpsc::UnboundedSender<MethodRequest>>,
    pub(super) c2d_sink: Option<mpsc::Sender<C2dMessage>>,
    /// Method answers and C2D completions from the application's handles.
    pub(super) answers_tx: mpsc::UnboundedSender<super::Answer>,
    pub(super) answers_rx: mpsc::UnboundedReceiver<super::Answer>,
    /// How long a method call may wait for the application's answer.
    pub(super) method_timeout: Duration,
    /// How long telemetry and method answers may wait for PUBACK.
    pub(super) request_timeout: Duration,
    /// `devices/{d}[/modules/{m}]/messages/devicebound/#`.
    pub(super) c2d_filter: String,
}

/// The caller of `DeviceClient::connect`, waiting for the first CONNACK.
pub(super) struct Startup {
    pub(super) reply: oneshot::Sender<Result<bool, Error>>,
    pub(super) deadline: Instant,
    pub(super) timeout: Duration,
}

pub(super) enum Link {
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

pub(super) enum AfterDisconnect {
    Renew,
    Exit(Option<oneshot::Sender<()>>),
}
impl Core {
    pub(super) fn accepts_commands(&self) -> bool {
        !matches!(
            self.link,
            Link::Disconnecting {
                then: AfterDisconnect::Exit(_),
                ..
            }
        )
    }

    pub(super) fn link_deadline(&self) -> Option<Instant> {
        match &self.link {
            Link::Connecting => None,
            Link::Connected { renew_at, .. } => *renew_at,
            Link::BackingOff { until } => Some(*until),
            Link::Disconnecting { deadline, .. } => Some(*deadline),
        }
    }

    pub(super) fn on_link_timer(&mut self) -> Option<Wake> {
        match std::mem::replace(&mut self.link, Link::Connecting) {
            Link::BackingOff { .. } => Some(Wake::BackoffElapsed),
            Link::Connected { drain_until, .. } => {
                let now = Instant::now();
                let in_flight = self.protocol.in_flight() + self.outbox.in_flight();
                if in_flight > 0 && drain_until.is_some_and(|until| now < until) {
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

    pub(super) fn request_disconnect(&mut self, then: AfterDisconnect) {
        let deadline = Instant::now() + DISCONNECT_GRACE;
        if let Err(e) = self.client.try_disconnect() {
            tracing::debug!("could not queue DISCONNECT: {e}");
        }
        self.link = Link::Disconnecting { then, deadline };
    }

    /// Starts a clean shutdown; returns a wake when there is no connection to close.
    pub(super) fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) -> Option<Wake> {
        match self.link {
            Link::Connected { .. } => {
                self.request_disconnect(AfterDisconnect::Exit(reply));
                None
            }
            _ => Some(Wake::Exit(reply)),
        }
    }

    pub(super) fn submit(
        &mut self,
        request: Request,
        reply: oneshot::Sender<Result<Response, Error>>,
    ) {
        let (id, out) = self.protocol.submit(request, Instant::now());
        self.replies.insert(id, reply);
        self.apply(out);
    }

    pub(super) fn on_connected(&mut self, session_present: bool) {
        self.epoch += 1;
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
        self.on_features_connected();
        self.emit(ConnectionEvent::Connected {
            session_present,
            token_expires_at: self.credentials.expires_at(),
        });
        if let Some(startup) = self.startup.take() {
            let _ = startup.reply.send(Ok(session_present));
        }
    }

    pub(super) fn apply(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Subscribe => {
                    let filters = [topics::TWIN_RESPONSES, topics::DESIRED_PATCHES]
                        .map(|t| SubscribeFilter::new(t.to_owned(), QoS::AtMostOnce));
                    match self.client.try_subscribe_many(filters) {
                        Ok(()) => self.subscriptions.handed(Vec::new()),
                        Err(e) => tracing::warn!("could not queue SUBSCRIBE: {e}"),
                    }
                }
                Output::Publish { id, topic, payload } => {
                    // QoS 0 like the Node and C SDKs: the `$rid` answer is the acknowledgement
                    // and the protocol retransmits, so a PUBACK would add nothing.
                    match self
                        .client
                        .try_publish(topic, QoS::AtMostOnce, false, payload)
                    {
                        Ok(()) => self.outbox.handed(None),
                        Err(e) => {
                            tracing::warn!("could not queue a twin request: {e}");
                            self.protocol.unsent(id);
                        }
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

    pub(super) fn emit(&self, event: ConnectionEvent) {
        self.shared.events.send(&event);
    }

    pub(super) fn startup_error(&self) -> Error {
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
    pub(super) fn close(&mut self, error: Option<Error>, reply: Option<oneshot::Sender<()>>) {
        let failure = error.clone().unwrap_or(Error::Closed);
        if let (Some(e), Ok(mut terminal)) = (&error, self.shared.terminal.lock()) {
            *terminal = Some(e.clone());
        }
        // Every caller request has an entry here; the protocol table dies with the task.
        for (_, reply) in self.replies.drain() {
            let _ = reply.send(Err(failure.clone()));
        }
        self.close_features(&failure);
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
