//! The connection task's handling of direct methods, cloud-to-device messages and telemetry:
//! it turns inbound publishes into application handles, and the handles' answers, the
//! outbox's outputs and SUBACKs into rumqttc requests and replies. The rules live in
//! `protocol::{methods, outbox, property_bag, subscriptions}`.

use rumqttc::{Publish, QoS, SubAck, SubscribeFilter, SubscribeReasonCode};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::state::{Core, Link};
use super::Answer;
use crate::error::Error;
use crate::message::{C2dMessage, Completion};
use crate::methods::MethodRequest;
use crate::protocol::methods::{self, Admission, MethodCall, BUSY_STATUS};
use crate::protocol::outbox::{OnLoss, OutboxOutput};
use crate::protocol::property_bag;
use crate::protocol::subscriptions::{Feature, Granted};

/// Received C2D messages the application has not taken from its stream yet. When it is full,
/// further messages are left unacknowledged: the hub delivers them again after a reconnect.
pub(crate) const C2D_QUEUE: usize = 64;

impl Core {
    /// Telemetry from `DeviceClient::send_telemetry`: queued until PUBACK or the deadline.
    pub(super) fn send(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        let now = Instant::now();
        let (id, out) = self.outbox.submit(
            topic,
            payload,
            OnLoss::Resend,
            now,
            now + self.request_timeout,
        );
        self.outbox_replies.insert(id, reply);
        self.apply_outbox(out);
    }

    /// `DeviceClient::method_requests`: new calls go to `sink` from now on.
    pub(super) fn enable_methods(
        &mut self,
        sink: mpsc::UnboundedSender<MethodRequest>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        self.method_sink = Some(sink);
        self.enable(Feature::Methods, reply);
    }

    /// `DeviceClient::c2d_messages`: new messages go to `sink` from now on.
    pub(super) fn enable_c2d(
        &mut self,
        sink: mpsc::Sender<C2dMessage>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        self.c2d_sink = Some(sink);
        self.enable(Feature::CloudToDevice, reply);
    }

    fn enable(&mut self, feature: Feature, reply: oneshot::Sender<Result<(), Error>>) {
        if self.subscriptions.is_granted(feature) {
            let _ = reply.send(Ok(()));
            return;
        }
        let now = self.subscriptions.enable(feature);
        self.feature_waiters.push((feature, reply));
        self.subscribe_features(now);
    }

    /// After every CONNACK: subscribe what the application asked for, resend telemetry.
    pub(super) fn on_features_connected(&mut self) {
        let features = self.subscriptions.on_connected();
        self.subscribe_features(features);
        let out = self.outbox.on_connected();
        self.apply_outbox(out);
    }

    /// The connection is gone: calls and grants die with it, telemetry waits for the next one.
    pub(super) fn on_link_lost(&mut self) {
        self.protocol.on_disconnected();
        self.methods.on_disconnected();
        self.subscriptions.on_disconnected();
        let out = self.outbox.on_disconnected();
        self.apply_outbox(out);
    }

    fn subscribe_features(&mut self, features: Vec<Feature>) {
        if features.is_empty() {
            return;
        }
        let filters: Vec<SubscribeFilter> = features
            .iter()
            .map(|f| match f {
                Feature::Methods => {
                    SubscribeFilter::new(methods::METHOD_REQUESTS.to_owned(), QoS::AtMostOnce)
                }
                // The hub delivers C2D at QoS 1; the PUBACK is the completion.
                Feature::CloudToDevice => {
                    SubscribeFilter::new(self.c2d_filter.clone(), QoS::AtLeastOnce)
                }
            })
            .collect();
        match self.client.try_subscribe_many(filters) {
            Ok(()) => self.subscriptions.handed(features),
            Err(e) => tracing::warn!("could not queue SUBSCRIBE: {e}"),
        }
    }

    pub(super) fn on_suback(&mut self, ack: &SubAck) {
        let granted: Vec<bool> = ack
            .return_codes
            .iter()
            .map(|c| matches!(c, SubscribeReasonCode::Success(_)))
            .collect();
        for (feature, outcome) in self.subscriptions.on_suback(ack.pkid, &granted) {
            let filter = match feature {
                Feature::Methods => methods::METHOD_REQUESTS,
                Feature::CloudToDevice => self.c2d_filter.as_str(),
            };
            let result = match outcome {
                Granted::Yes => Ok(()),
                Granted::Refused => Err(Error::SubscriptionRefused(filter.to_owned())),
            };
            if let Err(e) = &result {
                tracing::warn!("{e}");
            }
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.feature_waiters)
                .into_iter()
                .partition(|(f, _)| *f == feature);
            self.feature_waiters = waiting;
            for (_, reply) in ready {
                let _ = reply.send(result.clone());
            }
        }
    }

    pub(super) fn on_outgoing_publish(&mut self, pkid: u16) {
        self.outbox.on_outgoing_publish(pkid);
    }

    pub(super) fn on_outgoing_subscribe(&mut self, pkid: u16) {
        self.subscriptions.on_outgoing_subscribe(pkid);
    }

    pub(super) fn on_puback(&mut self, pkid: u16) {
        let out = self.outbox.on_puback(pkid);
        self.apply_outbox(out);
    }

    /// A publish from the hub: a method call, a C2D message, or twin traffic.
    pub(super) fn on_publish(&mut self, publish: &Publish) {
        if let Some(call) = methods::parse_request(&publish.topic) {
            match call {
                Ok(call) => self.on_method_call(call, publish.payload.to_vec()),
                Err(e) => tracing::warn!("ignoring a malformed method call: {e}"),
            }
            self.ack_at_once(publish);
            return;
        }
        if let Some(bag) = property_bag::c2d_bag(&publish.topic) {
            self.on_c2d(publish, bag);
            return;
        }
        let out = self
            .protocol
            .on_publish(&publish.topic, &publish.payload, Instant::now());
        self.shared.throttled.store(
            self.protocol.throttled(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.apply(out);
        self.ack_at_once(publish);
    }

    /// Acks are manual (for C2D completion); everything else at QoS 1 is acknowledged on
    /// arrival.
    fn ack_at_once(&mut self, publish: &Publish) {
        if publish.qos != QoS::AtMostOnce {
            if let Err(e) = self.client.try_ack(publish) {
                tracing::warn!("could not queue PUBACK: {e}");
            }
        }
    }

    fn on_method_call(&mut self, call: MethodCall, payload: Vec<u8>) {
        let now = Instant::now();
        let Some(sink) = &self.method_sink else {
            // Only possible on a session kept from an earlier process (clean session 0).
            self.answer_directly(
                501,
                &call.rid,
                &format!(
                    "this device does not handle direct methods ('{}')",
                    call.name
                ),
            );
            return;
        };
        let deadline = now + self.method_timeout;
        match self.methods.accept(self.epoch, &call.rid, deadline) {
            Admission::Accepted => {}
            Admission::Duplicate => {
                tracing::debug!(rid = call.rid, "duplicate method call ignored");
                return;
            }
            Admission::Full => {
                self.answer_directly(
                    BUSY_STATUS,
                    &call.rid,
                    "too many method calls are waiting for this device's answer",
                );
                return;
            }
        }
        let request = MethodRequest::new(
            call.name,
            payload,
            call.rid,
            self.epoch,
            now,
            deadline,
            self.answers_tx.clone(),
        );
        // A dropped stream hands the request back; dropping it answers automatically.
        if sink.send(request).is_err() {
            self.method_sink = None;
        }
    }

    /// Answers a call the application never sees, fire and forget (QoS 0, as the Node and C
    /// SDKs answer): nothing waits for its PUBACK.
    fn answer_directly(&mut self, status: i32, rid: &str, message: &str) {
        let body = serde_json::json!({ "message": message }).to_string();
        let topic = methods::response_topic(status, rid);
        match self
            .client
            .try_publish(topic, QoS::AtMostOnce, false, body.into_bytes())
        {
            Ok(()) => self.outbox.handed(None),
            Err(e) => tracing::warn!("could not queue a method answer: {e}"),
        }
    }

    fn on_c2d(&mut self, publish: &Publish, bag: &str) {
        let Some(sink) = &self.c2d_sink else {
            tracing::debug!(
                "cloud-to-device message while nobody listens: left unacknowledged, the hub \
                 delivers it again after a reconnect"
            );
            return;
        };
        let (system, properties) = property_bag::decode(bag);
        let message = C2dMessage {
            body: publish.payload.to_vec(),
            system,
            properties,
            redelivered: publish.dup,
            completion: Completion {
                pkid: if publish.qos == QoS::AtMostOnce {
                    0
                } else {
                    publish.pkid
                },
                epoch: self.epoch,
                answers: self.answers_tx.clone(),
            },
        };
        match sink.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => tracing::warn!(
                "{C2D_QUEUE} cloud-to-device messages are waiting for the application: this one \
                 is left unacknowledged, the hub delivers it again after a reconnect"
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => self.c2d_sink = None,
        }
    }

    /// A method answer or a C2D completion from the application.
    pub(super) fn on_answer(&mut self, answer: Answer) {
        match answer {
            Answer::Method {
                rid,
                epoch,
                status,
                body,
                reply,
            } => {
                let now = Instant::now();
                if self.methods.answer(epoch, &rid, now).is_err() {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(Error::NoLongerPending(
                            "the hub no longer waits for this method call: its deadline passed \
                             or the connection that carried it was lost"
                                .into(),
                        )));
                    }
                    return;
                }
                let topic = methods::response_topic(status, &rid);
                let (id, out) =
                    self.outbox
                        .submit(topic, body, OnLoss::Fail, now, now + self.request_timeout);
                if let Some(reply) = reply {
                    self.outbox_replies.insert(id, reply);
                }
                self.apply_outbox(out);
            }
            Answer::Complete { pkid, epoch, reply } => {
                let connected = matches!(self.link, Link::Connected { .. });
                let result = if pkid == 0 {
                    // Delivered at QoS 0: there is nothing to acknowledge.
                    Ok(())
                } else if epoch != self.epoch || !connected {
                    Err(Error::NoLongerPending(
                        "the connection that delivered the message was lost; the hub delivers \
                         it again"
                            .into(),
                    ))
                } else {
                    let mut ack = Publish::new("", QoS::AtLeastOnce, Vec::<u8>::new());
                    ack.pkid = pkid;
                    self.client
                        .try_ack(&ack)
                        .map_err(|e| Error::InvalidResponse(format!("could not queue PUBACK: {e}")))
                };
                let _ = reply.send(result);
            }
        }
    }

    /// The earliest deadline of a method call or an outbox message.
    pub(super) fn features_deadline(&self) -> Option<Instant> {
        match (self.outbox.next_deadline(), self.methods.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn on_features_tick(&mut self, now: Instant) {
        let expired = self.methods.expire(now);
        if expired > 0 {
            tracing::debug!(expired, "method calls passed their deadline unanswered");
        }
        let out = self.outbox.on_tick(now);
        self.apply_outbox(out);
    }

    fn apply_outbox(&mut self, outputs: Vec<OutboxOutput>) {
        for output in outputs {
            match output {
                OutboxOutput::Publish { id, topic, payload } => {
                    match self
                        .client
                        .try_publish(topic, QoS::AtLeastOnce, false, payload)
                    {
                        Ok(()) => self.outbox.handed(Some(id)),
                        Err(e) => {
                            tracing::warn!("could not queue a publish: {e}");
                            self.outbox.unsent(id);
                        }
                    }
                }
                OutboxOutput::Done { id, result } => {
                    if let Some(reply) = self.outbox_replies.remove(&id) {
                        let _ = reply.send(result.map_err(Error::from));
                    }
                }
            }
        }
    }

    /// The client stops: fail every waiter and end the streams.
    pub(super) fn close_features(&mut self, failure: &Error) {
        for (_, reply) in self.outbox_replies.drain() {
            let _ = reply.send(Err(failure.clone()));
        }
        for (_, reply) in self.feature_waiters.drain(..) {
            let _ = reply.send(Err(failure.clone()));
        }
        self.method_sink = None;
        self.c2d_sink = None;
    }
}
