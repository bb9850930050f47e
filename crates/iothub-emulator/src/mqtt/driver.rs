//! One connection, from CONNECT to close: moves packets between a [`Transport`], the
//! [`Session`] state machine and the [`Hub`]. All protocol decisions are the session's; this
//! loop adds the timers (keep-alive × 1.5, SAS expiry), the session table (one connection per
//! client id, persistent sessions, desired notifications, connection state), shutdown and the hub
//! calls.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use rumqttc::mqttbytes::Error as CodecError;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::ack_gate::{AckGate, NotStored};
use super::c2d::C2dLink;
use super::codec::{self, FrameError};
use super::connect::{self, Accepted, Credentials, KeyPair};
use super::methods::{DeviceAnswer, DirectMethods};
use super::session::{Action, CloseReason, Session};
use super::session_table::{Lease, SessionTable};
use super::transport::Transport;
use super::twin::{TwinFailure, TwinOutcome, TwinRequest};
use super::Endpoint;
use crate::hub::{Hub, HubError};

/// A client must send CONNECT this soon after the transport is up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the last packets before a close (a refusing CONNACK, a final PUBACK) may take.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Output is written once this much is queued, even in the middle of a batch of packets.
const FLUSH_THRESHOLD: usize = 16 * 1024;

/// Timers never need to reach further than this (a token valid for years still works).
const MAX_TIMER: Duration = Duration::from_secs(365 * 24 * 3600);

impl Credentials for Hub {
    fn hostname(&self) -> &str {
        Hub::hostname(self)
    }

    fn device_keys(&self, device_id: &str) -> Option<(KeyPair, bool)> {
        Hub::device_keys(self, device_id).map(|auth| {
            let keys = KeyPair {
                primary: auth.primary,
                secondary: auth.secondary,
            };
            (keys, auth.enabled)
        })
    }

    fn module_keys(&self, device_id: &str, module_id: &str) -> Option<(KeyPair, bool)> {
        Hub::module_keys(self, device_id, module_id).map(|auth| {
            let keys = KeyPair {
                primary: auth.primary,
                secondary: auth.secondary,
            };
            (keys, auth.enabled)
        })
    }

    fn policy_keys(&self, policy: &str) -> Option<(KeyPair, bool)> {
        Hub::policy(self, policy).map(|p| {
            let keys = KeyPair {
                primary: p.primary,
                secondary: p.secondary,
            };
            (keys, p.permissions.device_connect)
        })
    }
}

/// Why a connection ended, for the log.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("{0}")]
    Session(CloseReason),
    #[error("peer closed the connection")]
    PeerClosed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("no packet within 1.5 × keep-alive")]
    KeepAliveTimeout,
    #[error("SAS token expired, or the session reached its lifetime bound")]
    TokenExpired,
    #[error("CONNACK not taken within the write timeout")]
    ConnAckTimeout,
    #[error("a telemetry message could not be stored ({}); closing without its PUBACK", .0.0)]
    NotStored(NotStored),
    #[error("closed by the hub: replaced by a new connection, behind on desired notifications, dropped by fault injection, device deleted, or shutting down")]
    Stopped,
}

/// Runs one client connection to completion.
pub(crate) async fn run<T: Transport>(mut io: T, endpoint: Endpoint, peer: String) {
    let hub = &endpoint.hub;
    let shutdown = endpoint.connections.shutdown_signal();
    let mut inbuf = BytesMut::new();
    let first = tokio::select! {
        () = shutdown.cancelled() => return io.close().await,
        first = tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut io, &mut inbuf)) => first,
    };
    let connect = match first {
        Ok(Ok(Some(Packet::Connect(connect)))) => connect,
        Ok(Ok(Some(other))) => {
            debug!(%peer, packet = codec::kind(&other), "first packet is not CONNECT; closing");
            return io.close().await;
        }
        Ok(Ok(None)) => return io.close().await,
        Ok(Err(Ended::Frame(FrameError::Malformed(
            CodecError::InvalidProtocolLevel(_) | CodecError::InvalidProtocol,
        )))) => {
            // A CONNECT for another MQTT version (3.1's `MQIsdp` level 3, or an unknown level):
            // MQTT 3.1.1 §3.2.2.3 answers it with CONNACK 1, as `connect` does for level 5.
            debug!(%peer, "CONNECT for an unsupported MQTT version; refusing");
            refuse(&mut io, ConnectReturnCode::RefusedProtocolVersion).await;
            return io.close().await;
        }
        Ok(Err(error)) => {
            debug!(%peer, %error, "no valid CONNECT; closing");
            return io.close().await;
        }
        Err(_) => {
            debug!(%peer, "no CONNECT within {CONNECT_TIMEOUT:?}; closing");
            return io.close().await;
        }
    };
    let Some(accepted) = admit(&mut io, hub, &connect, &peer).await else {
        return io.close().await;
    };

    let sessions = &endpoint.sessions;
    let mut lease = sessions
        .attach(&accepted.client_id, accepted.clean_session, shutdown)
        .await;
    if let Err(refusal) = connect::authenticate(&connect, hub, iothub_auth::unix_now()) {
        // Deleted, disabled or re-keyed after CONNECT was first checked: the hub's close found
        // no session to close, so the credentials are checked again now that one is registered.
        // A stored session goes back as it was (a deleted device's is dropped by the table).
        let saved = lease.saved.take();
        sessions.detach(lease, saved);
        let what = if hub.device_exists(&accepted.client_id) {
            "credentials revoked while connecting"
        } else {
            "device deleted while connecting"
        };
        info!(%peer, client_id = %accepted.client_id, reason = %refusal, "{what}");
        refuse(&mut io, ConnectReturnCode::NotAuthorized).await;
        return io.close().await;
    }
    // The CONNECT holds the SAS token; nothing below needs it.
    drop(connect);
    record_connection_state(hub, sessions, &accepted);
    info!(%peer, client_id = %accepted.client_id, clean_session = accepted.clean_session,
        session_present = lease.saved.is_some(), "device connected");

    let c2d = C2dLink::new(&accepted.identity);
    let methods = &endpoint.methods;
    // Looked up once: a device deleted or re-created loses this connection.
    let origin = hub.telemetry_origin(&accepted.client_id);
    let links = Links {
        c2d: &c2d,
        origin: origin.as_ref(),
    };
    let (session, lease, ended) =
        serve(&mut io, hub, methods, accepted.clone(), lease, inbuf, links).await;
    info!(%peer, client_id = %accepted.client_id, reason = %ended, "device disconnected");

    let saved = (!accepted.clean_session).then(|| session.into_saved());
    sessions.detach(lease, saved);
    c2d.release(hub);
    record_connection_state(hub, sessions, &accepted);
    io.close().await;
}

/// Checks CONNECT and answers a refusal with its CONNACK code; `None` means "close".
async fn admit<T: Transport>(
    io: &mut T,
    hub: &Hub,
    connect: &Connect,
    peer: &str,
) -> Option<Accepted> {
    if hub.faults().connections_refused() {
        debug!(%peer, client_id = %connect.client_id, "connections refused by fault injection");
        return None;
    }
    match connect::authenticate(connect, hub, iothub_auth::unix_now()) {
        Ok(accepted) => Some(accepted),
        Err(refusal) => {
            info!(%peer, client_id = %connect.client_id, reason = %refusal, "CONNECT refused");
            refuse(io, refusal.return_code()).await;
            None
        }
    }
}

/// Answers CONNECT with a refusing CONNACK (the connection is closed next).
async fn refuse<T: Transport>(io: &mut T, code: ConnectReturnCode) {
    let mut out = BytesMut::new();
    let connack = Packet::ConnAck(ConnAck::new(code, false));
    if codec::encode(&connack, &mut out).is_ok() {
        write_before_close(io, &mut out).await;
    }
}

/// The connected phase: CONNACK, then packets, notifications and timers until something ends it.
async fn serve<T: Transport>(
    io: &mut T,
    hub: &Hub,
    methods: &DirectMethods,
    accepted: Accepted,
    mut lease: Lease,
    mut inbuf: BytesMut,
    links: Links<'_>,
) -> (Session, Lease, Ended) {
    let session_present = lease.saved.is_some();
    let (mut session, mut actions) = Session::resume(accepted.identity.clone(), lease.saved.take());
    let mut out = BytesMut::new();
    let connack = Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, session_present));
    if let Err(error) = codec::encode(&connack, &mut out) {
        return (session, lease, error.into());
    }
    // Every accepted CONNECT is answered, even when a newer connection for the same client id
    // is already taking over (its stop signal would otherwise win the first write below).
    match tokio::time::timeout(FINAL_WRITE_TIMEOUT, io.write(&mut out)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return (session, lease, error.into()),
        Err(_) => return (session, lease, Ended::ConnAckTimeout),
    }

    let expiry = tokio::time::sleep_until(instant_at_unix(accepted.session_ends_at));
    let keep_alive = accepted.keep_alive_timeout.unwrap_or(MAX_TIMER);
    let idle = tokio::time::sleep(keep_alive);
    // Reset to the earliest cloud-to-device lock whenever one is pending.
    let relock = tokio::time::sleep(MAX_TIMER);
    // Registered once rather than on every pass of the loop.
    let stopped = lease.stop.clone().cancelled_owned();
    tokio::pin!(expiry, idle, relock, stopped);
    let mut gate = AckGate::default();

    let ended = loop {
        let link = MethodLink {
            methods,
            lease: &lease,
            client_id: &accepted.client_id,
        };
        if let Some(ended) = execute(
            hub,
            &mut session,
            link,
            links,
            &mut gate,
            &mut actions,
            &mut out,
        )
        .await
        {
            // Write what was answered before the close (e.g. a PUBACK before DISCONNECT).
            write_before_close(io, &mut out).await;
            break ended;
        }
        if let Some(ended) = release_acks(&mut gate, &mut out) {
            break ended;
        }
        if !out.is_empty() {
            tokio::select! {
                written = io.write(&mut out) => if let Err(error) = written { break error.into() },
                () = &mut stopped => break Ended::Stopped,
            }
        }
        codec::shrink_idle(&mut out);
        if let Some(ended) = pending_input(&mut session, &mut inbuf, &mut actions) {
            break ended;
        }
        if !actions.is_empty() {
            continue;
        }
        codec::prepare_read(&mut inbuf);
        let lock_expiry = session.next_lock_expiry();
        if let Some(at) = lock_expiry.filter(|at| *at != relock.deadline()) {
            relock.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            () = &mut stopped => break Ended::Stopped,
            () = &mut expiry => break Ended::TokenExpired,
            () = &mut idle, if accepted.keep_alive_timeout.is_some() => break Ended::KeepAliveTimeout,
            stored = gate.committed(), if !gate.is_idle() => match stored {
                // The PUBACKs it frees go out at the top of the loop.
                Ok(()) => {}
                Err(error) => break Ended::NotStored(error),
            },
            Some(notification) = lease.outbox.recv() => session.on_desired(notification, &mut actions),
            () = lease.cloud_to_device.notified() => links.c2d.deliver(hub, &mut session, &mut actions),
            () = &mut relock, if lock_expiry.is_some() => session.on_lock_expiry(Instant::now(), &mut actions),
            Some(request) = lease.method_requests.recv() => session.on_method_request(request, &mut actions),
            // A device far ahead of the store waits for its PUBACKs before sending more.
            read = io.read(&mut inbuf), if !gate.is_full() => match read {
                Ok(0) => break Ended::PeerClosed,
                Ok(_) => idle.as_mut().reset(Instant::now() + keep_alive),
                Err(error) => break error.into(),
            },
        }
    };
    (session, lease, ended)
}

/// Last words before closing: written if the peer reads them soon, abandoned otherwise (a
/// client that stopped reading must not keep the connection task alive).
async fn write_before_close<T: Transport>(io: &mut T, out: &mut BytesMut) {
    if !out.is_empty() {
        let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, io.write(out)).await;
    }
}

/// Feeds whole packets from `inbuf` to the session until a batch of output is due.
fn pending_input(
    session: &mut Session,
    inbuf: &mut BytesMut,
    actions: &mut Vec<Action>,
) -> Option<Ended> {
    while actions.len() < 64 {
        match codec::decode(inbuf) {
            Ok(Some(packet)) => session.on_packet(packet, actions),
            Ok(None) => break,
            Err(error) => return Some(error.into()),
        }
    }
    None
}

/// The connection's cloud-to-device deliveries and who its telemetry events come from (`None`
/// only for an identity deleted while it connected; its connection is being closed).
#[derive(Clone, Copy)]
struct Links<'a> {
    c2d: &'a C2dLink,
    origin: Option<&'a crate::events::TelemetryOrigin>,
}

/// Where a connection's direct-method actions go: answers to the calls in flight, readiness to
/// the session table.
#[derive(Clone, Copy)]
struct MethodLink<'a> {
    methods: &'a DirectMethods,
    lease: &'a Lease,
    client_id: &'a str,
}

/// Carries out `actions` in order: encodes packets into `out`, runs twin operations against the
/// hub (feeding their outcome back to the session), records activity, passes method answers
/// and method readiness on. Returns why to close, if an action says so.
async fn execute(
    hub: &Hub,
    session: &mut Session,
    link: MethodLink<'_>,
    links: Links<'_>,
    gate: &mut AckGate,
    actions: &mut Vec<Action>,
    out: &mut BytesMut,
) -> Option<Ended> {
    let c2d = links.c2d;
    // The client id names the twin: `{device}` or `{device}/{module}`.
    let device_id = link.client_id;
    let mut queue = std::mem::take(actions);
    let mut replies = Vec::new();
    let mut pending = queue.drain(..);
    while let Some(action) = pending.next() {
        if !matches!(
            action,
            Action::Telemetry(_) | Action::Send(Packet::PubAck(_))
        ) {
            gate.other_action();
        }
        let ended = match action {
            Action::Send(Packet::PubAck(puback)) => gate
                .puback(Packet::PubAck(puback))
                .and_then(|packet| emit(Action::Send(packet), out)),
            Action::Activity => {
                hub.record_activity(device_id);
                None
            }
            Action::Twin(request) => {
                let (rid, outcome) = perform(hub, device_id, request).await;
                session.on_twin_outcome(&rid, &outcome, &mut replies);
                replies.drain(..).find_map(|reply| emit(reply, out))
            }
            Action::CloudToDeviceWanted => {
                c2d.deliver(hub, session, &mut replies);
                replies.drain(..).find_map(|reply| match reply {
                    Action::CloudToDeviceCompleted(lock) => {
                        c2d.complete(hub, lock);
                        None
                    }
                    other => emit(other, out),
                })
            }
            Action::CloudToDeviceCompleted(lock) => {
                c2d.complete(hub, lock);
                None
            }
            Action::Telemetry(message) => {
                let committed = links
                    .origin
                    .and_then(|origin| hub.events().append(origin.event(&message)).committed);
                gate.after_telemetry(committed);
                hub.telemetry().push(*message);
                None
            }
            Action::MethodResponse {
                rid,
                status,
                payload,
            } => {
                let answer = DeviceAnswer { status, payload };
                link.methods.respond(link.client_id, &rid, answer);
                None
            }
            Action::MethodSubscription(ready) => {
                link.lease.set_methods_ready(ready);
                None
            }
            other => emit(other, out),
        };
        if ended.is_some() {
            return ended;
        }
        if out.len() >= FLUSH_THRESHOLD {
            // The rest runs after this much has been written; order is preserved.
            actions.extend(pending);
            return None;
        }
    }
    drop(pending);
    // Hand the emptied allocation back so the next batch reuses it.
    *actions = queue;
    None
}

/// Encodes the PUBACKs whose telemetry has been stored into `out`; returns why to close if a
/// message could not be stored.
fn release_acks(gate: &mut AckGate, out: &mut BytesMut) -> Option<Ended> {
    if gate.is_idle() {
        return None;
    }
    let mut freed = Vec::new();
    let released = gate.release(&mut freed);
    for packet in freed {
        if let Some(ended) = emit(Action::Send(packet), out) {
            return Some(ended);
        }
    }
    released.err().map(Ended::NotStored)
}

/// Encodes a `Send` into `out`; returns why to close for a `Close` or an encoding failure.
/// The other actions are `execute`'s to run (a twin outcome or a delivery never produces them,
/// except the completion of a QoS 0 delivery, which `execute` handles before this).
fn emit(action: Action, out: &mut BytesMut) -> Option<Ended> {
    match action {
        Action::Send(packet) => codec::encode(&packet, out).err().map(Ended::from),
        Action::Close(reason) => Some(Ended::Session(reason)),
        Action::Activity
        | Action::Twin(_)
        | Action::CloudToDeviceWanted
        | Action::CloudToDeviceCompleted(_)
        | Action::Telemetry(_)
        | Action::MethodResponse { .. }
        | Action::MethodSubscription(_) => None,
    }
}

/// Runs a twin operation, unless fault injection says to fail it; returns the request id with
/// the outcome.
async fn perform(hub: &Hub, device_id: &str, request: TwinRequest) -> (String, TwinOutcome) {
    let failure = |error: HubError| {
        if error.status() >= 500 {
            warn!(%device_id, %error, "twin operation failed");
        }
        TwinOutcome::Failed(TwinFailure {
            status: error.status(),
            message: error.message(),
        })
    };
    if let Some(status) = hub.faults().take_twin_failure() {
        let rid = request.rid().to_string();
        return (rid, failure(HubError::injected(status)));
    }
    match request {
        TwinRequest::Get { rid } => {
            let outcome = hub.device_twin_properties(device_id);
            (rid, outcome.map_or_else(failure, TwinOutcome::Document))
        }
        TwinRequest::PatchReported { rid, patch } => {
            let outcome = hub.patch_reported(device_id, patch).await;
            let outcome = outcome.map_or_else(failure, |version| TwinOutcome::Patched { version });
            (rid, outcome)
        }
    }
}

/// Reads until one whole packet is buffered; `None` if the peer closed first.
async fn read_packet<T: Transport>(
    io: &mut T,
    buf: &mut BytesMut,
) -> Result<Option<Packet>, Ended> {
    loop {
        if let Some(packet) = codec::decode(buf)? {
            return Ok(Some(packet));
        }
        codec::prepare_read(buf);
        if io.read(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Writes the client's current connection state to the hub. The state is numbered by the
/// session table, so a report overtaken by a newer one is ignored by the hub (see
/// [`SessionTable::connection_state`]).
fn record_connection_state(hub: &Hub, sessions: &SessionTable, accepted: &Accepted) {
    let state = sessions.connection_state(&accepted.client_id);
    hub.set_connected(&accepted.client_id, state.connected, state.seq);
}

/// The monotonic instant at which the wall clock reaches `unix_secs`.
fn instant_at_unix(unix_secs: u64) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let remaining = Duration::from_secs(unix_secs)
        .saturating_sub(now)
        .min(MAX_TIMER);
    Instant::now() + remaining
}
