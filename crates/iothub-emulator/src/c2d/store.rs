//! The per-device cloud-to-device queues as plain data: enqueue within the bounds, hand
//! messages to a device connection, complete, release, expire, dead-letter, purge. Every change
//! returns the rows to write and the feedback records it produced; the caller owns the lock,
//! the store and the clock (times are milliseconds since the Unix epoch, passed in).
//!
//! The rules are IoT Hub's
//! (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-c2d>): at most 50
//! messages per device, a default time to live of one hour and a maximum of two days, a maximum
//! delivery count of 10, and a message leaves the queue when it is completed, expires, or is
//! delivered once too often.

use std::collections::{HashMap, VecDeque};

use std::time::Duration;

use bytes::Bytes;

use super::feedback::{FeedbackRecord, FeedbackStatus};
use super::message::{OutgoingMessage, QueuedMessage};
use crate::persist::{PersistError, WriteOp};

/// Messages one device's queue holds at most (then 403004 `DeviceMaximumQueueDepthExceeded`).
pub(crate) const MAX_QUEUE_DEPTH: usize = 50;
/// Time to live of a message whose sender set no expiry.
pub(crate) const DEFAULT_TTL_MS: u64 = 3_600_000;
/// The latest expiry a sender can ask for, from the time it is sent (later ones are cut to it).
pub(crate) const MAX_TTL_MS: u64 = 2 * 24 * 3_600_000;
/// Deliveries without a completion before a message is dead-lettered.
pub(crate) const MAX_DELIVERY_COUNT: u32 = 10;
/// Largest message: body plus application property names and values (C2D messages are limited
/// to 64 KB).
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages queued across all devices.
pub(crate) const MAX_TOTAL_MESSAGES: usize = 100_000;
/// Bytes queued across all devices.
pub(crate) const MAX_TOTAL_BYTES: usize = 256 * 1024 * 1024;
/// How long a delivered message stays locked to its connection before that connection gets it
/// again (the hub's fixed one-minute lock).
pub(crate) const LOCK_DURATION: Duration = Duration::from_secs(60);
/// Longest topic name MQTT can carry (the property bag is part of it).
const MAX_TOPIC_BYTES: usize = 65_535;

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The device already has [`MAX_QUEUE_DEPTH`] messages.
    QueueFull,
    /// The whole store is at [`MAX_TOTAL_MESSAGES`] or [`MAX_TOTAL_BYTES`].
    HubFull,
    /// Body plus properties over [`MAX_MESSAGE_BYTES`].
    TooLarge(usize),
    /// The properties do not fit in an MQTT topic.
    TopicTooLong(usize),
}

/// A message handed to a device connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Identifies this delivery when the device acknowledges it.
    pub lock: u64,
    /// `devices/{id}/messages/devicebound/{property bag}`.
    pub topic: String,
    /// The body.
    pub payload: Bytes,
    /// The message was delivered before (the MQTT DUP flag).
    pub redelivery: bool,
    /// How long the device has to acknowledge it before it is sent again on the same
    /// connection (the hub's lock, or visibility, timeout).
    pub lock_for: Duration,
}

/// What a change asks of the outside world.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Rows to write.
    pub ops: Vec<WriteOp>,
    /// Feedback records produced.
    pub feedback: Vec<FeedbackRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Accepted in memory, its row not committed yet: not deliverable.
    Uncommitted,
    /// Waiting for a device connection.
    Ready,
    /// Handed to connection `receiver`, awaiting its acknowledgement.
    Delivered { receiver: u64, lock: u64 },
}

#[derive(Debug)]
struct Slot {
    message: QueuedMessage,
    state: State,
}

/// Every device's queue.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    by_device: HashMap<String, VecDeque<Slot>>,
    total_messages: usize,
    total_bytes: usize,
    next_seq: u64,
    next_lock: u64,
}

impl Queues {
    /// The queues as stored: `(message number, device id, JSON)` rows in enqueue order.
    ///
    /// # Errors
    /// A row that does not parse.
    pub(crate) fn restore(rows: Vec<(u64, String, String)>) -> Result<Queues, PersistError> {
        let mut queues = Queues::default();
        for (seq, device_id, doc) in rows {
            let mut message: QueuedMessage =
                serde_json::from_str(&doc).map_err(|e| PersistError::Corrupt {
                    key: format!("c2d message {seq}"),
                    reason: e.to_string(),
                })?;
            message.seq = seq;
            message.device_id = device_id;
            queues.next_seq = queues.next_seq.max(seq);
            queues.insert(message, State::Ready);
        }
        Ok(queues)
    }

    fn insert(&mut self, message: QueuedMessage, state: State) {
        self.total_messages += 1;
        self.total_bytes += message.footprint();
        self.by_device
            .entry(message.device_id.clone())
            .or_default()
            .push_back(Slot { message, state });
    }

    /// Accepts `outgoing` for `device_id` (whose `generationId` is `generation_id`) at `now`.
    /// `committed` makes it deliverable at once (no store); otherwise [`Queues::mark_committed`]
    /// does once its row is on disk. Returns the message number.
    ///
    /// # Errors
    /// A bound is reached (see [`Refusal`]).
    pub(crate) fn enqueue(
        &mut self,
        device_id: &str,
        generation_id: &str,
        outgoing: OutgoingMessage,
        now: u64,
        committed: bool,
        effects: &mut Effects,
    ) -> Result<u64, Refusal> {
        let size = outgoing.body.len()
            + outgoing
                .properties
                .iter()
                .map(|(key, value)| key.len() + value.len())
                .sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            return Err(Refusal::TooLarge(size));
        }
        self.expire(device_id, now, effects);
        if self.depth(device_id) >= MAX_QUEUE_DEPTH {
            return Err(Refusal::QueueFull);
        }
        let latest = now.saturating_add(MAX_TTL_MS);
        let message = QueuedMessage {
            seq: self.next_seq + 1,
            device_id: device_id.to_string(),
            device_generation_id: generation_id.to_string(),
            message_id: outgoing
                .message_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            to: outgoing
                .to
                .unwrap_or_else(|| format!("/devices/{device_id}/messages/deviceBound")),
            correlation_id: outgoing.correlation_id,
            user_id: outgoing.user_id,
            content_type: outgoing.content_type,
            content_encoding: outgoing.content_encoding,
            ack: outgoing.ack,
            explicit_expiry: outgoing.expiry_ms.is_some(),
            expiry_ms: outgoing
                .expiry_ms
                .unwrap_or(now.saturating_add(DEFAULT_TTL_MS))
                .min(latest),
            enqueued_ms: now,
            properties: outgoing.properties,
            body: outgoing.body,
            delivery_count: 0,
        };
        let topic = message.topic().len();
        if topic > MAX_TOPIC_BYTES {
            return Err(Refusal::TopicTooLong(topic));
        }
        if self.total_messages >= MAX_TOTAL_MESSAGES
            || self.total_bytes + message.footprint() > MAX_TOTAL_BYTES
        {
            self.expire_all(now, effects);
            if self.total_messages >= MAX_TOTAL_MESSAGES
                || self.total_bytes + message.footprint() > MAX_TOTAL_BYTES
            {
                return Err(Refusal::HubFull);
            }
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        effects.ops.push(put_op(&message));
        let state = if committed {
            State::Ready
        } else {
            State::Uncommitted
        };
        self.insert(message, state);
        Ok(seq)
    }

    /// The message's row has committed: it may be delivered. `false` if it is gone already
    /// (purged, or its device deleted, meanwhile).
    pub(crate) fn mark_committed(&mut self, device_id: &str, seq: u64) -> bool {
        let Some(slot) = self.slot_mut(device_id, |slot| slot.message.seq == seq) else {
            return false;
        };
        if slot.state == State::Uncommitted {
            slot.state = State::Ready;
        }
        true
    }

    /// The message's row did not commit: forget it.
    pub(crate) fn remove_uncommitted(&mut self, device_id: &str, seq: u64) {
        self.remove_where(device_id, |slot| {
            slot.message.seq == seq && slot.state == State::Uncommitted
        });
    }

    /// Hands every deliverable message of `device_id` to connection `receiver`, oldest first,
    /// each locked to it for `lock_for`; expired ones and ones delivered
    /// [`MAX_DELIVERY_COUNT`] times are dead-lettered instead.
    pub(crate) fn take(
        &mut self,
        device_id: &str,
        receiver: u64,
        now: u64,
        lock_for: Duration,
        effects: &mut Effects,
    ) -> Vec<Delivery> {
        self.expire(device_id, now, effects);
        let exhausted = self.remove_where(device_id, |slot| {
            slot.state == State::Ready && slot.message.delivery_count >= MAX_DELIVERY_COUNT
        });
        for message in exhausted {
            dead_letter(message, FeedbackStatus::DeliveryCountExceeded, now, effects);
        }
        let Some(queue) = self.by_device.get_mut(device_id) else {
            return Vec::new();
        };
        let mut deliveries = Vec::new();
        for slot in queue.iter_mut().filter(|slot| slot.state == State::Ready) {
            self.next_lock += 1;
            let lock = self.next_lock;
            slot.message.delivery_count += 1;
            slot.state = State::Delivered { receiver, lock };
            effects.ops.push(put_op(&slot.message));
            deliveries.push(Delivery {
                lock,
                topic: slot.message.topic(),
                payload: slot.message.body.clone(),
                redelivery: slot.message.delivery_count > 1,
                lock_for,
            });
        }
        deliveries
    }

    /// The device acknowledged delivery `lock`: the message is done (positive feedback if asked
    /// for). Unknown locks (a purge came first) are ignored.
    pub(crate) fn complete(&mut self, device_id: &str, lock: u64, now: u64, effects: &mut Effects) {
        let done = self.remove_where(
            device_id,
            |slot| matches!(slot.state, State::Delivered { lock: l, .. } if l == lock),
        );
        for message in done {
            effects
                .ops
                .push(WriteOp::DeleteC2dMessage { seq: message.seq });
            if message.ack().wants_positive() {
                effects
                    .feedback
                    .push(record(&message, FeedbackStatus::Success, now));
            }
        }
    }

    /// Connection `receiver` ended: what it was handed and did not acknowledge waits for the
    /// next one. Returns whether anything was released.
    pub(crate) fn release(&mut self, device_id: &str, receiver: u64) -> bool {
        let Some(queue) = self.by_device.get_mut(device_id) else {
            return false;
        };
        let mut released = false;
        for slot in queue.iter_mut() {
            if matches!(slot.state, State::Delivered { receiver: r, .. } if r == receiver) {
                slot.state = State::Ready;
                released = true;
            }
        }
        released
    }

    /// Removes every message of `device_id` (negative feedback `Purged` where asked for);
    /// returns how many there were.
    pub(crate) fn purge(&mut self, device_id: &str, now: u64, effects: &mut Effects) -> usize {
        let purged = self.remove_where(device_id, |_| true);
        let count = purged.len();
        for message in purged {
            dead_letter(message, FeedbackStatus::Purged, now, effects);
        }
        count
    }

    /// The device was deleted: its queue goes, without feedback (its rows go with the device's).
    pub(crate) fn drop_device(&mut self, device_id: &str) {
        self.remove_where(device_id, |_| true);
    }

    /// Dead-letters every expired message that is not out with a device.
    pub(crate) fn expire_all(&mut self, now: u64, effects: &mut Effects) {
        let devices: Vec<String> = self.by_device.keys().cloned().collect();
        for device_id in devices {
            self.expire(&device_id, now, effects);
        }
    }

    fn expire(&mut self, device_id: &str, now: u64, effects: &mut Effects) {
        let expired = self.remove_where(device_id, |slot| {
            slot.state == State::Ready && slot.message.expiry_ms <= now
        });
        for message in expired {
            dead_letter(message, FeedbackStatus::Expired, now, effects);
        }
    }

    /// Messages queued for `device_id`, in any state.
    pub(crate) fn depth(&self, device_id: &str) -> usize {
        self.by_device.get(device_id).map_or(0, VecDeque::len)
    }

    fn slot_mut(&mut self, device_id: &str, pick: impl Fn(&Slot) -> bool) -> Option<&mut Slot> {
        self.by_device
            .get_mut(device_id)?
            .iter_mut()
            .find(|s| pick(s))
    }

    /// Removes the matching messages of `device_id` (in queue order), keeping the totals.
    fn remove_where(
        &mut self,
        device_id: &str,
        pick: impl Fn(&Slot) -> bool,
    ) -> Vec<QueuedMessage> {
        let Some(queue) = self.by_device.get_mut(device_id) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        let mut kept = VecDeque::with_capacity(queue.len());
        for slot in queue.drain(..) {
            if pick(&slot) {
                removed.push(slot.message);
            } else {
                kept.push_back(slot);
            }
        }
        if kept.is_empty() {
            self.by_device.remove(device_id);
        } else {
            *queue = kept;
        }
        for message in &removed {
            self.total_messages -= 1;
            self.total_bytes -= message.footprint();
        }
        removed
    }
}

fn put_op(message: &QueuedMessage) -> WriteOp {
    WriteOp::PutC2dMessage {
        seq: message.seq,
        device_id: message.device_id.clone(),
        // A message of strings, bytes and numbers always serializes.
        doc: serde_json::to_string(message).unwrap_or_default(),
    }
}

fn record(message: &QueuedMessage, status: FeedbackStatus, now: u64) -> FeedbackRecord {
    FeedbackRecord {
        original_message_id: message.message_id.clone(),
        device_id: message.device_id.clone(),
        device_generation_id: message.device_generation_id.clone(),
        enqueued_ms: now,
        status,
    }
}

/// Removes a message for good with a negative outcome (feedback if the sender asked for it).
fn dead_letter(message: QueuedMessage, status: FeedbackStatus, now: u64, effects: &mut Effects) {
    effects
        .ops
        .push(WriteOp::DeleteC2dMessage { seq: message.seq });
    if message.ack().wants_negative() {
        effects.feedback.push(record(&message, status, now));
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::Ack;
    use super::*;

    fn outgoing(id: &str, ack: Option<Ack>) -> OutgoingMessage {
        OutgoingMessage {
            message_id: Some(id.into()),
            ack,
            body: Bytes::from_static(b"x"),
            ..OutgoingMessage::default()
        }
    }

    fn send(queues: &mut Queues, id: &str, ack: Option<Ack>, now: u64) -> Result<u64, Refusal> {
        queues.enqueue(
            "d",
            "g",
            outgoing(id, ack),
            now,
            true,
            &mut Effects::default(),
        )
    }

    #[test]
    fn depth_is_bounded_per_device() {
        let mut queues = Queues::default();
        for n in 0..MAX_QUEUE_DEPTH {
            send(&mut queues, &n.to_string(), None, 0).unwrap();
        }
        assert_eq!(send(&mut queues, "over", None, 0), Err(Refusal::QueueFull));
        queues
            .enqueue(
                "other",
                "g",
                outgoing("o", None),
                0,
                true,
                &mut Effects::default(),
            )
            .unwrap();
    }

    #[test]
    fn deliver_complete_release_and_redeliver() {
        let mut queues = Queues::default();
        send(&mut queues, "a", Some(Ack::Positive), 0).unwrap();
        send(&mut queues, "b", None, 0).unwrap();
        let mut effects = Effects::default();
        let first = queues.take("d", 1, 0, LOCK_DURATION, &mut effects);
        assert_eq!(first.len(), 2);
        assert!(!first[0].redelivery);
        assert!(
            queues
                .take("d", 1, 0, LOCK_DURATION, &mut effects)
                .is_empty(),
            "in flight"
        );
        queues.complete("d", first[0].lock, 5, &mut effects);
        assert_eq!(effects.feedback.len(), 1);
        assert_eq!(effects.feedback[0].status, FeedbackStatus::Success);
        assert!(queues.release("d", 1));
        let again = queues.take("d", 2, 0, LOCK_DURATION, &mut effects);
        assert_eq!(again.len(), 1);
        assert!(again[0].redelivery);
        assert!(again[0].topic.contains("%24.mid=b"));
    }

    #[test]
    fn too_many_deliveries_dead_letter() {
        let mut queues = Queues::default();
        send(&mut queues, "a", Some(Ack::Negative), 0).unwrap();
        let mut effects = Effects::default();
        for receiver in 0..u64::from(MAX_DELIVERY_COUNT) {
            assert_eq!(
                queues
                    .take("d", receiver, 0, LOCK_DURATION, &mut effects)
                    .len(),
                1
            );
            queues.release("d", receiver);
        }
        assert!(queues
            .take("d", 99, 0, LOCK_DURATION, &mut effects)
            .is_empty());
        assert_eq!(
            effects.feedback.last().map(|r| r.status),
            Some(FeedbackStatus::DeliveryCountExceeded)
        );
        assert_eq!(queues.depth("d"), 0);
    }

    #[test]
    fn expiry_default_and_capped() {
        let mut queues = Queues::default();
        send(&mut queues, "a", Some(Ack::Full), 0).unwrap();
        let mut late = outgoing("late", None);
        late.expiry_ms = Some(u64::MAX);
        queues
            .enqueue("d", "g", late, 0, true, &mut Effects::default())
            .unwrap();
        let mut effects = Effects::default();
        assert_eq!(
            queues
                .take("d", 1, DEFAULT_TTL_MS, LOCK_DURATION, &mut effects)
                .len(),
            1
        );
        assert_eq!(effects.feedback[0].status, FeedbackStatus::Expired);
        queues.release("d", 1);
        assert!(queues
            .take("d", 2, MAX_TTL_MS, LOCK_DURATION, &mut effects)
            .is_empty());
        assert_eq!(queues.depth("d"), 0);
    }

    #[test]
    fn uncommitted_messages_wait_and_purge_counts_all() {
        let mut queues = Queues::default();
        let mut effects = Effects::default();
        let seq = queues
            .enqueue(
                "d",
                "g",
                outgoing("a", Some(Ack::Negative)),
                0,
                false,
                &mut effects,
            )
            .unwrap();
        assert!(queues
            .take("d", 1, 0, LOCK_DURATION, &mut effects)
            .is_empty());
        assert!(queues.mark_committed("d", seq));
        assert_eq!(queues.take("d", 1, 0, LOCK_DURATION, &mut effects).len(), 1);
        assert!(queues.release("d", 1));
        send(&mut queues, "b", None, 0).unwrap();
        let mut effects = Effects::default();
        assert_eq!(queues.purge("d", 0, &mut effects), 2);
        assert_eq!(effects.feedback.len(), 1);
        assert_eq!(effects.feedback[0].status, FeedbackStatus::Purged);
        assert!(!queues.mark_committed("d", seq));
        assert_eq!((queues.total_messages, queues.total_bytes), (0, 0));
    }

    #[test]
    fn oversized_messages_are_refused() {
        let mut queues = Queues::default();
        let mut big = outgoing("big", None);
        big.body = Bytes::from(vec![0u8; MAX_MESSAGE_BYTES + 1]);
        assert!(matches!(
            queues.enqueue("d", "g", big, 0, true, &mut Effects::default()),
            Err(Refusal::TooLarge(_))
        ));
    }

    #[test]
    fn restore_keeps_order_and_numbers() {
        let mut queues = Queues::default();
        let mut effects = Effects::default();
        for id in ["a", "b"] {
            queues
                .enqueue("d", "g", outgoing(id, None), 0, true, &mut effects)
                .unwrap();
        }
        let rows = effects
            .ops
            .into_iter()
            .filter_map(|op| match op {
                WriteOp::PutC2dMessage {
                    seq,
                    device_id,
                    doc,
                } => Some((seq, device_id, doc)),
                _ => None,
            })
            .collect();
        let mut restored = Queues::restore(rows).unwrap();
        let got = restored.take("d", 1, 0, LOCK_DURATION, &mut Effects::default());
        assert!(got[0].topic.contains("mid=a") && got[1].topic.contains("mid=b"));
        let next = send(&mut restored, "c", None, 0).unwrap();
        assert_eq!(next, 3);
    }
}
