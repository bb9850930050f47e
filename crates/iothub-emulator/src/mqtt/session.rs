//! The per-connection MQTT session state machine, apart from any I/O (the rumqttc `MqttState`
//! shape): it takes decoded packets and hub outcomes and returns [`Action`]s — packets to send,
//! twin operations to run against the hub, and when to close. Unit-tested without sockets.
//!
//! The rules are IoT Hub's (ARCHITECTURE.md#device-mqtt; <https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub>): QoS 0 and 1 only (a QoS 2 PUBLISH closes the
//! connection, a QoS 2 subscription is granted QoS 1), only documented topics and filters, and a
//! device only ever touches its own topics.

use std::collections::VecDeque;

use bytes::Bytes;
use rumqttc::mqttbytes::v4::{
    Packet, PubAck, Publish, SubAck, Subscribe, SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use rumqttc::mqttbytes::QoS;
use tokio::time::Instant;

use super::topic::{self, DeviceTopic, Filter, Identity};
use super::twin::{self, TwinOutcome, TwinRequest};
use crate::c2d::Delivery;
use crate::telemetry::TelemetryMessage;

/// Largest telemetry payload the hub accepts (D2C messages are limited to 256 KB).
pub const MAX_TELEMETRY_BYTES: usize = 256 * 1024;

/// Unacknowledged QoS 1 publishes a client may owe before the hub gives up on it; well-behaved
/// clients acknowledge at once, so this only bounds memory for broken ones.
pub const MAX_INFLIGHT: usize = 1000;

/// Desired-property notifications kept for an offline persistent session (the real hub keeps
/// none: a reconnecting device re-reads its twin). Beyond this, or beyond
/// [`MAX_QUEUED_DESIRED_BYTES`], the queue is dropped and the session is not resumed (see
/// [`SavedSession::out_of_step`]).
pub const MAX_QUEUED_DESIRED: usize = 1000;

/// Bytes of desired-patch bodies kept for an offline persistent session.
pub const MAX_QUEUED_DESIRED_BYTES: usize = 256 * 1024;

/// A desired-property change to deliver on `$iothub/twin/PATCH/properties/desired/?$version=n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredNotification {
    /// The desired `$version` after the change.
    pub version: u64,
    /// The JSON patch, including `"$version": version`.
    pub body: Bytes,
}

/// A direct-method request for the device, published at QoS 0 on
/// `$iothub/methods/POST/{name}/?$rid={rid}` (the hub sends method requests at QoS 0:
/// <https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodRequest {
    /// The request id the device echoes in its response topic.
    pub rid: String,
    /// The method name (checked by the REST handler: no topic separators or wildcards).
    pub name: String,
    /// The JSON text of the payload; empty when the caller sent none.
    pub payload: Bytes,
}

/// Granted QoS per accepted filter; the hub allows at most these four filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    twin_responses: Option<QoS>,
    desired: Option<QoS>,
    methods: Option<QoS>,
    cloud_to_device: Option<QoS>,
}

impl Subscriptions {
    fn slot(&mut self, filter: Filter) -> &mut Option<QoS> {
        match filter {
            Filter::TwinResponses => &mut self.twin_responses,
            Filter::DesiredPatches => &mut self.desired,
            Filter::Methods => &mut self.methods,
            Filter::CloudToDevice => &mut self.cloud_to_device,
        }
    }

    /// Whether desired-property notifications are subscribed to.
    pub fn wants_desired(&self) -> bool {
        self.desired.is_some()
    }

    /// Whether cloud-to-device messages are subscribed to.
    pub fn wants_cloud_to_device(&self) -> bool {
        self.cloud_to_device.is_some()
    }

    /// Whether direct-method requests are subscribed to (the hub's test for a device being
    /// ready for method calls).
    pub fn wants_methods(&self) -> bool {
        self.methods.is_some()
    }
}

/// What survives a disconnect of a clean-session-0 client: its subscriptions and the desired
/// notifications it has not acknowledged yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedSession {
    /// Filters and granted QoS.
    pub subscriptions: Subscriptions,
    /// Notifications to deliver on the next connection, oldest first.
    pub pending_desired: VecDeque<DesiredNotification>,
    /// The session lost a notification (its connection fell behind, or its offline queue
    /// overflowed): it is not resumed, so the client reconnects with `session_present = 0`,
    /// subscribes again and re-reads its twin; nothing is queued meanwhile (a queue resuming after
    /// the hole would deliver versions with a gap).
    pub out_of_step: bool,
    /// Body bytes in `pending_desired`.
    pending_bytes: usize,
}

impl SavedSession {
    /// What is kept of a session that lost a notification: nothing to deliver, and the mark
    /// that stops it being resumed.
    pub fn out_of_step(self) -> SavedSession {
        SavedSession {
            subscriptions: self.subscriptions,
            pending_desired: VecDeque::new(),
            out_of_step: true,
            pending_bytes: 0,
        }
    }

    /// Queues a notification that arrived while the client was offline (only if it had
    /// subscribed to them and is not out of step).
    pub fn queue_desired(&mut self, notification: DesiredNotification) {
        if self.subscriptions.wants_desired() {
            self.keep(notification);
        }
    }

    /// Adds a notification to deliver on reconnect, within [`MAX_QUEUED_DESIRED`] and
    /// [`MAX_QUEUED_DESIRED_BYTES`]; past either the session is out of step and its queue is
    /// freed.
    fn keep(&mut self, notification: DesiredNotification) {
        if self.out_of_step {
            return;
        }
        let bytes = self.pending_bytes + notification.body.len();
        if self.pending_desired.len() >= MAX_QUEUED_DESIRED || bytes > MAX_QUEUED_DESIRED_BYTES {
            *self = std::mem::take(self).out_of_step();
            return;
        }
        self.pending_bytes = bytes;
        self.pending_desired.push_back(notification);
    }
}

/// Why the session ends the connection (for logs; MQTT 3.1.1 has no way to tell the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    #[error("client disconnected")]
    ClientDisconnected,
    /// QoS 2 is not supported by IoT Hub.
    #[error("QoS 2 publish on '{0}'")]
    QoS2Publish(String),
    /// A publish on a topic the hub does not accept from this device.
    #[error("publish on unsupported topic '{0}'")]
    UnknownTopic(String),
    /// A subscription to a filter the hub does not accept from this device.
    #[error("subscription to unsupported filter '{0}'")]
    UnknownFilter(String),
    /// Telemetry above the message size limit.
    #[error("telemetry message of {0} bytes exceeds {MAX_TELEMETRY_BYTES} bytes")]
    MessageTooLarge(usize),
    /// The client does not acknowledge what it is sent.
    #[error("more than {MAX_INFLIGHT} unacknowledged publishes")]
    TooManyUnacknowledged,
    /// A packet a client must not send at this point (a second CONNECT, QoS 2 flow, ...).
    #[error("protocol violation: unexpected {0}")]
    ProtocolViolation(&'static str),
}

/// One step for the connection driver to take, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write this packet.
    Send(Packet),
    /// Run this twin operation against the hub, then call [`Session::on_twin_outcome`].
    Twin(TwinRequest),
    /// The device did something that counts as activity (`lastActivityTime`).
    Activity,
    /// Close the connection (after writing what was queued before).
    Close(CloseReason),
    /// The session takes cloud-to-device messages (it subscribed, or resumed a subscription):
    /// fetch what is queued and call [`Session::on_cloud_to_device`].
    CloudToDeviceWanted,
    /// The device acknowledged this cloud-to-device delivery (its lock): complete the message.
    CloudToDeviceCompleted(u64),
    /// The device sent this telemetry message.
    Telemetry(Box<TelemetryMessage>),
    /// The device answered a direct method: hand the answer to the call waiting for `rid`.
    MethodResponse {
        /// The request id from the response topic.
        rid: String,
        /// The status from the response topic.
        status: i32,
        /// The response body as the device sent it.
        payload: Bytes,
    },
    /// The session's subscription to `$iothub/methods/POST/#` started (`true`) or ended
    /// (`false`): the device is ready, or no longer ready, for method calls.
    MethodSubscription(bool),
}

/// What an unacknowledged outgoing QoS 1 publish was, so a persistent session can redeliver
/// desired notifications after a reconnect.
#[derive(Debug)]
enum Unacked {
    Desired(DesiredNotification),
    Response,
    /// A cloud-to-device delivery: sent again on this connection (same packet id, DUP) when
    /// its lock runs out, and handed back to the message store when the connection ends.
    CloudToDevice(Box<C2dInflight>),
}

/// A cloud-to-device publish awaiting its PUBACK.
#[derive(Debug)]
struct C2dInflight {
    lock: u64,
    publish: Publish,
    lock_for: std::time::Duration,
    /// When it is sent again if still unacknowledged.
    due: Instant,
}

/// The state of one connected session.
#[derive(Debug)]
pub struct Session {
    me: Identity,
    subscriptions: Subscriptions,
    next_pkid: u16,
    /// Outgoing QoS 1 publishes awaiting PUBACK, oldest first (clients acknowledge in order,
    /// so the front is almost always the match).
    inflight: VecDeque<(u16, Unacked)>,
}

impl Session {
    /// Starts a session for `me`, restoring `saved` (clean session 0 with a stored session).
    /// Returns the actions that deliver what the saved session had pending.
    pub fn resume(me: Identity, saved: Option<SavedSession>) -> (Session, Vec<Action>) {
        let saved = saved.unwrap_or_default();
        let mut session = Session {
            me,
            subscriptions: saved.subscriptions,
            next_pkid: 1,
            inflight: VecDeque::new(),
        };
        let mut actions = Vec::new();
        if session.subscriptions.wants_methods() {
            actions.push(Action::MethodSubscription(true));
        }
        for notification in saved.pending_desired {
            session.on_desired(notification, &mut actions);
        }
        if session.subscriptions.wants_cloud_to_device() {
            actions.push(Action::CloudToDeviceWanted);
        }
        (session, actions)
    }

    /// Ends the session, keeping what a clean-session-0 client gets back on reconnect.
    pub fn into_saved(self) -> SavedSession {
        let mut saved = SavedSession {
            subscriptions: self.subscriptions,
            ..SavedSession::default()
        };
        for (_, unacked) in self.inflight {
            if let Unacked::Desired(notification) = unacked {
                saved.keep(notification);
            }
        }
        saved
    }

    /// Handles one packet from the client (after CONNECT), appending actions to `out`.
    pub fn on_packet(&mut self, packet: Packet, out: &mut Vec<Action>) {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, out),
            Packet::PubAck(ack) => self.on_puback(ack.pkid, out),
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe, out),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe, out),
            Packet::PingReq => out.push(Action::Send(Packet::PingResp)),
            Packet::Disconnect => out.push(Action::Close(CloseReason::ClientDisconnected)),
            other => out.push(Action::Close(CloseReason::ProtocolViolation(
                super::codec::kind(&other),
            ))),
        }
    }

    fn on_publish(&mut self, publish: Publish, out: &mut Vec<Action>) {
        if publish.qos == QoS::ExactlyOnce {
            out.push(Action::Close(CloseReason::QoS2Publish(publish.topic)));
            return;
        }
        let Some(kind) = topic::parse_publish_topic(&publish.topic, &self.me) else {
            out.push(Action::Close(CloseReason::UnknownTopic(publish.topic)));
            return;
        };
        if kind == DeviceTopic::Telemetry && publish.payload.len() > MAX_TELEMETRY_BYTES {
            out.push(Action::Close(CloseReason::MessageTooLarge(
                publish.payload.len(),
            )));
            return;
        }
        let puback = (publish.qos == QoS::AtLeastOnce)
            .then(|| Action::Send(Packet::PubAck(PubAck::new(publish.pkid))));
        // Telemetry's PUBACK comes after the message: with a durable store the driver holds it
        // until the message's event has committed.
        if kind != DeviceTopic::Telemetry {
            out.extend(puback.clone());
        }
        match kind {
            // The GET payload is ignored: it is empty or a single space depending on the SDK.
            DeviceTopic::TwinGet { rid } => {
                out.push(Action::Activity);
                out.push(Action::Twin(TwinRequest::Get { rid }));
            }
            DeviceTopic::TwinPatchReported { rid } => {
                match twin::parse_reported_patch(&publish.payload) {
                    // The hub records the activity as part of the patch itself.
                    Ok(patch) => out.push(Action::Twin(TwinRequest::PatchReported { rid, patch })),
                    Err(failure) => {
                        out.push(Action::Activity);
                        self.on_twin_outcome(&rid, &TwinOutcome::Failed(failure), out);
                    }
                }
            }
            DeviceTopic::Telemetry => {
                out.push(Action::Activity);
                out.push(Action::Telemetry(Box::new(TelemetryMessage::from_mqtt(
                    &self.me.device_id,
                    self.me.module_id.as_deref(),
                    &publish.topic,
                    publish.payload,
                ))));
                out.extend(puback);
            }
            DeviceTopic::MethodResponse { status, rid } => {
                out.push(Action::Activity);
                out.push(Action::MethodResponse {
                    rid,
                    status,
                    payload: publish.payload,
                });
            }
        }
    }

    fn on_puback(&mut self, pkid: u16, out: &mut Vec<Action>) {
        if let Some(index) = self.inflight.iter().position(|(id, _)| *id == pkid) {
            if let Some((_, Unacked::CloudToDevice(c2d))) = self.inflight.remove(index) {
                out.push(Action::CloudToDeviceCompleted(c2d.lock));
            }
        }
        if self.inflight.is_empty() && self.inflight.capacity() > 64 {
            // A burst of notifications (a replayed offline queue) does not pin its peak.
            self.inflight = VecDeque::new();
        }
    }

    fn on_subscribe(&mut self, subscribe: Subscribe, out: &mut Vec<Action>) {
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut cloud_to_device = false;
        let had_methods = self.subscriptions.wants_methods();
        for filter in &subscribe.filters {
            let Some(kind) = topic::parse_filter(&filter.path, &self.me) else {
                out.push(Action::Close(CloseReason::UnknownFilter(
                    filter.path.clone(),
                )));
                return;
            };
            let granted = if filter.qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            *self.subscriptions.slot(kind) = Some(granted);
            cloud_to_device |= kind == Filter::CloudToDevice;
            codes.push(SubscribeReasonCode::Success(granted));
        }
        out.push(Action::Send(Packet::SubAck(SubAck::new(
            subscribe.pkid,
            codes,
        ))));
        if cloud_to_device {
            out.push(Action::CloudToDeviceWanted);
        }
        if !had_methods && self.subscriptions.wants_methods() {
            out.push(Action::MethodSubscription(true));
        }
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe, out: &mut Vec<Action>) {
        let had_methods = self.subscriptions.wants_methods();
        for path in &unsubscribe.topics {
            // Unsubscribing from something never subscribed is not an error in MQTT.
            if let Some(kind) = topic::parse_filter(path, &self.me) {
                *self.subscriptions.slot(kind) = None;
            }
        }
        out.push(Action::Send(Packet::UnsubAck(UnsubAck::new(
            unsubscribe.pkid,
        ))));
        if had_methods && !self.subscriptions.wants_methods() {
            out.push(Action::MethodSubscription(false));
        }
    }

    /// Answers a twin request; nothing is sent unless `$iothub/twin/res/#` is subscribed.
    pub fn on_twin_outcome(&mut self, rid: &str, outcome: &TwinOutcome, out: &mut Vec<Action>) {
        let Some(qos) = self.subscriptions.twin_responses else {
            return;
        };
        let (topic, payload) = twin::response(rid, outcome);
        self.publish(topic, payload, qos, Unacked::Response, out);
    }

    /// Delivers a desired-property notification if the client subscribed to them.
    pub fn on_desired(&mut self, notification: DesiredNotification, out: &mut Vec<Action>) {
        let Some(qos) = self.subscriptions.desired else {
            return;
        };
        let topic = topic::desired_patch(notification.version);
        let payload = notification.body.clone();
        self.publish(topic, payload, qos, Unacked::Desired(notification), out);
    }

    /// Whether the session takes cloud-to-device messages now.
    pub fn wants_cloud_to_device(&self) -> bool {
        self.subscriptions.wants_cloud_to_device()
    }

    /// Publishes cloud-to-device messages fetched for this session, at the QoS the device
    /// subscribed with (the hub sends QoS 1, and a QoS 0 subscriber gets QoS 0). A QoS 1
    /// delivery completes on its PUBACK; a QoS 0 one as it is sent, since nothing will
    /// acknowledge it. Without the subscription nothing is sent (and nothing completes: the
    /// store offers the messages again to the next connection). `now` starts each QoS 1
    /// delivery's lock (see [`Session::on_lock_expiry`]).
    pub fn on_cloud_to_device(
        &mut self,
        deliveries: Vec<Delivery>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(qos) = self.subscriptions.cloud_to_device else {
            return;
        };
        for delivery in deliveries {
            let lock = delivery.lock;
            let mut publish = Publish::from_bytes(delivery.topic, qos, delivery.payload);
            if qos == QoS::AtLeastOnce {
                if self.inflight.len() >= MAX_INFLIGHT {
                    out.push(Action::Close(CloseReason::TooManyUnacknowledged));
                    return;
                }
                publish.pkid = self.allocate_pkid();
                publish.dup = delivery.redelivery;
                let inflight = C2dInflight {
                    lock,
                    publish: publish.clone(),
                    lock_for: delivery.lock_for,
                    due: now + delivery.lock_for,
                };
                self.inflight
                    .push_back((publish.pkid, Unacked::CloudToDevice(Box::new(inflight))));
                out.push(Action::Send(Packet::Publish(publish)));
            } else {
                out.push(Action::Send(Packet::Publish(publish)));
                out.push(Action::CloudToDeviceCompleted(lock));
            }
        }
    }

    /// When the earliest cloud-to-device lock runs out, if any delivery awaits its PUBACK.
    pub fn next_lock_expiry(&self) -> Option<Instant> {
        self.inflight
            .iter()
            .filter_map(|(_, unacked)| match unacked {
                Unacked::CloudToDevice(c2d) => Some(c2d.due),
                _ => None,
            })
            .min()
    }

    /// Sends again, with DUP and the same packet id, every cloud-to-device message whose lock
    /// has run out without a PUBACK (the hub's one-minute visibility timeout), and locks it
    /// anew. The delivery count does not change: the message never left this connection.
    pub fn on_lock_expiry(&mut self, now: Instant, out: &mut Vec<Action>) {
        for (_, unacked) in &mut self.inflight {
            if let Unacked::CloudToDevice(c2d) = unacked {
                if c2d.due <= now {
                    c2d.due = now + c2d.lock_for;
                    let mut again = c2d.publish.clone();
                    again.dup = true;
                    out.push(Action::Send(Packet::Publish(again)));
                }
            }
        }
    }

    /// Publishes a direct-method request at QoS 0 whatever QoS the device subscribed with;
    /// nothing is sent unless `$iothub/methods/POST/#` is subscribed (the call then times out).
    pub fn on_method_request(&mut self, request: MethodRequest, out: &mut Vec<Action>) {
        if !self.subscriptions.wants_methods() {
            return;
        }
        let topic = topic::method_request(&request.name, &request.rid);
        self.publish(
            topic,
            request.payload,
            QoS::AtMostOnce,
            Unacked::Response,
            out,
        );
    }

    fn publish(
        &mut self,
        topic: String,
        payload: Bytes,
        qos: QoS,
        what: Unacked,
        out: &mut Vec<Action>,
    ) {
        let mut publish = Publish::from_bytes(topic, qos, payload);
        if qos == QoS::AtLeastOnce {
            if self.inflight.len() >= MAX_INFLIGHT {
                out.push(Action::Close(CloseReason::TooManyUnacknowledged));
                return;
            }
            publish.pkid = self.allocate_pkid();
            self.inflight.push_back((publish.pkid, what));
        }
        out.push(Action::Send(Packet::Publish(publish)));
    }

    /// Next packet id in 1..=65535 not awaiting a PUBACK. At most [`MAX_INFLIGHT`] ids are in
    /// use, so the search always ends.
    fn allocate_pkid(&mut self) -> u16 {
        loop {
            let candidate = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.iter().any(|(id, _)| *id == candidate) {
                return candidate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::SubscribeFilter;
    use serde_json::json;

    fn me() -> Identity {
        Identity {
            device_id: "d1".into(),
            module_id: None,
        }
    }

    fn step(session: &mut Session, packet: Packet) -> Vec<Action> {
        let mut out = Vec::new();
        session.on_packet(packet, &mut out);
        out
    }

    fn publish(topic: &str, qos: QoS, pkid: u16, payload: &str) -> Packet {
        let mut p = Publish::new(topic, qos, payload);
        p.pkid = pkid;
        Packet::Publish(p)
    }

    fn subscribe(filters: &[(&str, QoS)]) -> Packet {
        let filters = filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new((*f).to_string(), *q));
        Packet::Subscribe(Subscribe::new_many(filters))
    }

    fn subscribed_session() -> Session {
        let (mut session, actions) = Session::resume(me(), None);
        assert!(actions.is_empty());
        let out = step(
            &mut session,
            subscribe(&[
                ("$iothub/twin/res/#", QoS::AtLeastOnce),
                ("$iothub/twin/PATCH/properties/desired/#", QoS::ExactlyOnce),
            ]),
        );
        assert!(matches!(&out[..], [Action::Send(Packet::SubAck(_))]));
        session
    }

    fn sent_publish(action: &Action) -> &Publish {
        match action {
            Action::Send(Packet::Publish(p)) => p,
            other => panic!("expected a publish, got {other:?}"),
        }
    }

    #[test]
    fn qos2_subscription_is_granted_qos1() {
        let (mut session, _) = Session::resume(me(), None);
        let out = step(
            &mut session,
            subscribe(&[
                ("$iothub/twin/res/#", QoS::ExactlyOnce),
                ("$iothub/methods/POST/#", QoS::AtMostOnce),
            ]),
        );
        let [Action::Send(Packet::SubAck(ack)), Action::MethodSubscription(true)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            ack.return_codes,
            vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Success(QoS::AtMostOnce)
            ]
        );
    }

    #[test]
    fn unknown_filter_closes() {
        let (mut session, _) = Session::resume(me(), None);
        let out = step(
            &mut session,
            subscribe(&[
                ("$iothub/twin/res/#", QoS::AtLeastOnce),
                ("#", QoS::AtMostOnce),
            ]),
        );
        assert_eq!(
            out,
            vec![Action::Close(CloseReason::UnknownFilter("#".into()))]
        );
    }

    #[test]
    fn qos2_publish_and_unknown_topic_close() {
        let mut session = subscribed_session();
        let out = step(
            &mut session,
            publish("devices/d1/messages/events/", QoS::ExactlyOnce, 1, "x"),
        );
        assert!(matches!(
            &out[..],
            [Action::Close(CloseReason::QoS2Publish(_))]
        ));
        let out = step(
            &mut session,
            publish("devices/d2/messages/events/", QoS::AtLeastOnce, 2, "x"),
        );
        assert!(matches!(
            &out[..],
            [Action::Close(CloseReason::UnknownTopic(_))]
        ));
    }

    #[test]
    fn telemetry_is_acknowledged() {
        let mut session = subscribed_session();
        let out = step(
            &mut session,
            publish("devices/d1/messages/events/a=b", QoS::AtLeastOnce, 9, "{}"),
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0], Action::Activity);
        let Action::Telemetry(message) = &out[1] else {
            panic!("{out:?}")
        };
        // After the message: the driver may hold it until the message is stored.
        assert_eq!(out[2], Action::Send(Packet::PubAck(PubAck::new(9))));
        assert_eq!(message.properties, vec![("a".into(), Some("b".into()))]);
        let out = step(
            &mut session,
            publish("devices/d1/messages/events/", QoS::AtMostOnce, 0, "{}"),
        );
        assert_eq!(out[0], Action::Activity);
        assert!(matches!(&out[1], Action::Telemetry(m) if m.device_id == "d1"));
    }

    #[test]
    fn oversized_telemetry_closes() {
        let mut session = subscribed_session();
        let mut p = Publish::new(
            "devices/d1/messages/events/",
            QoS::AtLeastOnce,
            vec![0u8; MAX_TELEMETRY_BYTES + 1],
        );
        p.pkid = 1;
        let out = step(&mut session, Packet::Publish(p));
        assert_eq!(
            out,
            vec![Action::Close(CloseReason::MessageTooLarge(
                MAX_TELEMETRY_BYTES + 1
            ))]
        );
        let mut p = Publish::new(
            "devices/d1/messages/events/",
            QoS::AtLeastOnce,
            vec![0u8; MAX_TELEMETRY_BYTES],
        );
        p.pkid = 2;
        assert_eq!(
            step(&mut session, Packet::Publish(p)).pop(),
            Some(Action::Send(Packet::PubAck(PubAck::new(2))))
        );
    }

    #[test]
    fn unsubscribe_stops_desired_notifications() {
        let mut session = subscribed_session();
        let mut unsubscribe = Unsubscribe::new("$iothub/twin/PATCH/properties/desired/#");
        unsubscribe.pkid = 4;
        let out = step(&mut session, Packet::Unsubscribe(unsubscribe));
        assert_eq!(out, vec![Action::Send(Packet::UnsubAck(UnsubAck::new(4)))]);
        let mut out = Vec::new();
        session.on_desired(
            DesiredNotification {
                version: 2,
                body: Bytes::new(),
            },
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn twin_get_round_trip() {
        let mut session = subscribed_session();
        let out = step(
            &mut session,
            publish("$iothub/twin/GET/?$rid=42", QoS::AtLeastOnce, 5, " "),
        );
        assert_eq!(
            out,
            vec![
                Action::Send(Packet::PubAck(PubAck::new(5))),
                Action::Activity,
                Action::Twin(TwinRequest::Get { rid: "42".into() }),
            ]
        );
        let mut out = Vec::new();
        let doc = json!({"desired":{"$version":1},"reported":{"$version":1}});
        session.on_twin_outcome("42", &TwinOutcome::Document(doc), &mut out);
        let response = sent_publish(&out[0]);
        assert_eq!(response.topic, "$iothub/twin/res/200/?$rid=42");
        assert_eq!(response.qos, QoS::AtLeastOnce);
        assert_ne!(response.pkid, 0);
    }

    #[test]
    fn malformed_reported_patch_gets_400_without_touching_the_hub() {
        let mut session = subscribed_session();
        let out = step(
            &mut session,
            publish(
                "$iothub/twin/PATCH/properties/reported/?$rid=7",
                QoS::AtMostOnce,
                0,
                "{nope",
            ),
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], Action::Activity);
        assert_eq!(sent_publish(&out[1]).topic, "$iothub/twin/res/400/?$rid=7");
    }

    #[test]
    fn twin_responses_need_the_response_subscription() {
        let (mut session, _) = Session::resume(me(), None);
        let mut out = Vec::new();
        session.on_twin_outcome("1", &TwinOutcome::Patched { version: 2 }, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn unacked_desired_notifications_survive_into_the_saved_session() {
        let mut session = subscribed_session();
        let mut out = Vec::new();
        let first = DesiredNotification {
            version: 2,
            body: Bytes::from_static(b"{\"$version\":2}"),
        };
        let second = DesiredNotification {
            version: 3,
            body: Bytes::from_static(b"{\"$version\":3}"),
        };
        session.on_desired(first.clone(), &mut out);
        session.on_desired(second.clone(), &mut out);
        let pkid = sent_publish(&out[0]).pkid;
        assert_eq!(
            sent_publish(&out[1]).topic,
            "$iothub/twin/PATCH/properties/desired/?$version=3"
        );
        step(&mut session, Packet::PubAck(PubAck::new(pkid)));
        let saved = session.into_saved();
        assert!(saved.subscriptions.wants_desired());
        assert_eq!(saved.pending_desired, VecDeque::from(vec![second.clone()]));

        let (_, actions) = Session::resume(me(), Some(saved));
        assert_eq!(
            sent_publish(&actions[0]).topic,
            "$iothub/twin/PATCH/properties/desired/?$version=3"
        );
        assert_eq!(sent_publish(&actions[0]).payload, second.body);
    }

    #[test]
    fn offline_queue_only_for_subscribers_and_bounded() {
        let mut saved = SavedSession::default();
        saved.queue_desired(DesiredNotification {
            version: 1,
            body: Bytes::new(),
        });
        assert!(saved.pending_desired.is_empty());
        saved.subscriptions.desired = Some(QoS::AtMostOnce);
        for version in 0..(MAX_QUEUED_DESIRED as u64 + 5) {
            saved.queue_desired(DesiredNotification {
                version,
                body: Bytes::new(),
            });
        }
        assert!(
            saved.out_of_step,
            "an overflowing queue never skips a version"
        );
        assert!(saved.pending_desired.is_empty());
    }

    #[test]
    fn offline_queue_is_bounded_by_bytes_and_overflow_marks_the_session() {
        let mut saved = SavedSession::default();
        saved.subscriptions.desired = Some(QoS::AtLeastOnce);
        let body = Bytes::from(vec![b' '; 28 * 1024]);
        let fits = MAX_QUEUED_DESIRED_BYTES / body.len();
        for version in 0..fits as u64 {
            saved.queue_desired(DesiredNotification {
                version,
                body: body.clone(),
            });
        }
        assert_eq!(saved.pending_desired.len(), fits);
        assert!(!saved.out_of_step);
        saved.queue_desired(DesiredNotification {
            version: 99,
            body: body.clone(),
        });
        assert!(saved.out_of_step);
        assert!(saved.pending_desired.is_empty());
        assert_eq!(
            saved.pending_desired.capacity(),
            0,
            "the queue's memory is freed"
        );
        saved.queue_desired(DesiredNotification {
            version: 100,
            body: Bytes::new(),
        });
        assert!(saved.pending_desired.is_empty(), "nothing after the hole");
    }

    #[test]
    fn packet_ids_skip_those_in_flight_and_wrap() {
        let mut session = subscribed_session();
        session.next_pkid = u16::MAX;
        let mut out = Vec::new();
        session.on_twin_outcome("a", &TwinOutcome::Patched { version: 1 }, &mut out);
        session.on_twin_outcome("b", &TwinOutcome::Patched { version: 2 }, &mut out);
        assert_eq!(sent_publish(&out[0]).pkid, u16::MAX);
        assert_eq!(sent_publish(&out[1]).pkid, 1);
    }

    #[test]
    fn a_client_that_never_acknowledges_is_closed() {
        let mut session = subscribed_session();
        let mut out = Vec::new();
        for i in 0..=MAX_INFLIGHT {
            session.on_twin_outcome(
                &i.to_string(),
                &TwinOutcome::Patched { version: 1 },
                &mut out,
            );
        }
        assert_eq!(
            out.last(),
            Some(&Action::Close(CloseReason::TooManyUnacknowledged))
        );
    }

    #[test]
    fn method_requests_go_out_at_qos0_and_responses_come_back() {
        let (mut session, _) = Session::resume(me(), None);
        let request = MethodRequest {
            rid: "3".into(),
            name: "reboot".into(),
            payload: Bytes::from_static(b"{\"delay\":1}"),
        };
        let mut out = Vec::new();
        session.on_method_request(request.clone(), &mut out);
        assert!(out.is_empty(), "not subscribed: nothing is sent");

        let mut sub = Subscribe::new("$iothub/methods/POST/#", QoS::AtLeastOnce);
        sub.pkid = 2;
        let out = step(&mut session, Packet::Subscribe(sub));
        assert!(
            matches!(
                &out[..],
                [
                    Action::Send(Packet::SubAck(_)),
                    Action::MethodSubscription(true)
                ]
            ),
            "{out:?}"
        );
        let out = step(
            &mut session,
            subscribe(&[("$iothub/methods/POST/#", QoS::AtMostOnce)]),
        );
        assert!(
            matches!(&out[..], [Action::Send(Packet::SubAck(_))]),
            "a repeated subscription is no news: {out:?}"
        );

        let mut out = Vec::new();
        session.on_method_request(request, &mut out);
        let sent = sent_publish(&out[0]);
        assert_eq!(sent.topic, "$iothub/methods/POST/reboot/?$rid=3");
        assert_eq!(sent.qos, QoS::AtMostOnce);
        assert_eq!(&sent.payload[..], b"{\"delay\":1}");

        let out = step(
            &mut session,
            publish(
                "$iothub/methods/res/299/?$rid=3",
                QoS::AtLeastOnce,
                8,
                "[1]",
            ),
        );
        assert_eq!(
            out,
            vec![
                Action::Send(Packet::PubAck(PubAck::new(8))),
                Action::Activity,
                Action::MethodResponse {
                    rid: "3".into(),
                    status: 299,
                    payload: Bytes::from_static(b"[1]"),
                },
            ]
        );

        let mut unsubscribe = Unsubscribe::new("$iothub/methods/POST/#");
        unsubscribe.pkid = 9;
        let out = step(&mut session, Packet::Unsubscribe(unsubscribe));
        assert_eq!(
            out,
            vec![
                Action::Send(Packet::UnsubAck(UnsubAck::new(9))),
                Action::MethodSubscription(false)
            ]
        );
    }

    #[test]
    fn a_resumed_session_is_ready_for_methods_at_once() {
        let mut saved = SavedSession::default();
        saved.subscriptions.methods = Some(QoS::AtMostOnce);
        let (_, actions) = Session::resume(me(), Some(saved));
        assert_eq!(actions, vec![Action::MethodSubscription(true)]);
    }

    #[test]
    fn ping_disconnect_and_protocol_violations() {
        let (mut session, _) = Session::resume(me(), None);
        assert_eq!(
            step(&mut session, Packet::PingReq),
            vec![Action::Send(Packet::PingResp)]
        );
        assert_eq!(
            step(&mut session, Packet::Disconnect),
            vec![Action::Close(CloseReason::ClientDisconnected)]
        );
        let connect = Packet::Connect(rumqttc::mqttbytes::v4::Connect::new("d1"));
        assert_eq!(
            step(&mut session, connect),
            vec![Action::Close(CloseReason::ProtocolViolation("CONNECT"))]
        );
    }

    fn delivery(lock: u64, redelivery: bool) -> Delivery {
        Delivery {
            lock,
            topic: format!("devices/d1/messages/devicebound/%24.mid={lock}"),
            payload: Bytes::from_static(b"hello"),
            redelivery,
            lock_for: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn cloud_to_device_is_wanted_on_subscribe_and_completed_by_its_puback() {
        let (mut session, _) = Session::resume(me(), None);
        let out = step(
            &mut session,
            subscribe(&[("devices/d1/messages/devicebound/#", QoS::AtLeastOnce)]),
        );
        assert_eq!(out.last(), Some(&Action::CloudToDeviceWanted));
        let mut out = Vec::new();
        let now = Instant::now();
        session.on_cloud_to_device(vec![delivery(7, false), delivery(8, true)], now, &mut out);
        let (first, second) = (sent_publish(&out[0]), sent_publish(&out[1]));
        assert_eq!(first.qos, QoS::AtLeastOnce);
        assert!(!first.dup && second.dup);
        assert_eq!(
            step(&mut session, Packet::PubAck(PubAck::new(second.pkid))),
            vec![Action::CloudToDeviceCompleted(8)]
        );
        let first = first.clone();
        let lock = std::time::Duration::from_secs(60);
        assert_eq!(session.next_lock_expiry(), Some(now + lock));
        let mut again = Vec::new();
        session.on_lock_expiry(now + lock / 2, &mut again);
        assert!(again.is_empty(), "still locked");
        session.on_lock_expiry(now + lock, &mut again);
        let resent = sent_publish(&again[0]);
        assert_eq!((resent.pkid, resent.dup), (first.pkid, true));
        assert_eq!(resent.topic, first.topic);
        assert_eq!(session.next_lock_expiry(), Some(now + lock * 2));
        let saved = session.into_saved();
        assert!(saved.pending_desired.is_empty(), "the store redelivers C2D");
        let (_, actions) = Session::resume(me(), Some(saved));
        assert_eq!(actions, vec![Action::CloudToDeviceWanted]);
    }

    #[test]
    fn cloud_to_device_at_qos0_completes_as_sent_and_needs_the_subscription() {
        let (mut session, _) = Session::resume(me(), None);
        let mut out = Vec::new();
        session.on_cloud_to_device(vec![delivery(1, false)], Instant::now(), &mut out);
        assert!(out.is_empty());
        step(
            &mut session,
            subscribe(&[("devices/d1/messages/devicebound/#", QoS::AtMostOnce)]),
        );
        session.on_cloud_to_device(vec![delivery(2, false)], Instant::now(), &mut out);
        assert_eq!(session.next_lock_expiry(), None, "QoS 0 is never locked");
        assert_eq!(sent_publish(&out[0]).qos, QoS::AtMostOnce);
        assert_eq!(out[1], Action::CloudToDeviceCompleted(2));
    }
}
