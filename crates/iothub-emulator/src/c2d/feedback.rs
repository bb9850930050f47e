//! The hub's feedback queue: one record per outcome a sender asked to hear about (`iothub-ack`),
//! received in batches of up to 64 records, each batch locked for a minute under a lock token
//! until the receiver completes it (gone) or abandons it (back at the front)
//! (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-c2d#message-feedback>).
//! Pure data: the caller passes the time in.

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Value};

use super::message::iso_from_ms;

/// Records one received batch holds at most (the hub batches up to 64).
pub(crate) const MAX_BATCH: usize = 64;

/// How long a received batch stays locked before it is offered again.
pub(crate) const LOCK_MS: u64 = 60_000;

/// How long a record waits to be received before the hub drops it (feedback TTL 1 h).
pub(crate) const RECORD_TTL_MS: u64 = 3_600_000;

/// Records kept in all (waiting and locked); past this the oldest waiting record is dropped.
pub(crate) const MAX_RECORDS: usize = 10_000;

/// The outcome a record reports (`statusCode`, and the same word as `description`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FeedbackStatus {
    /// The device completed the message.
    Success,
    /// The message expired before it was completed.
    Expired,
    /// The message was delivered the maximum number of times without being completed.
    DeliveryCountExceeded,
    /// The device rejected the message (not possible over MQTT; kept for the AMQP front door).
    #[allow(dead_code)]
    Rejected,
    /// The queue was purged.
    Purged,
}

impl FeedbackStatus {
    fn word(self) -> &'static str {
        match self {
            FeedbackStatus::Success => "Success",
            FeedbackStatus::Expired => "Expired",
            FeedbackStatus::DeliveryCountExceeded => "DeliveryCountExceeded",
            FeedbackStatus::Rejected => "Rejected",
            FeedbackStatus::Purged => "Purged",
        }
    }
}

/// One feedback record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedbackRecord {
    /// The `message-id` of the message it is about.
    pub original_message_id: String,
    /// Its device.
    pub device_id: String,
    /// The device's `generationId` when the message was sent.
    pub device_generation_id: String,
    /// When the outcome happened, milliseconds since the Unix epoch.
    pub enqueued_ms: u64,
    /// The outcome.
    pub status: FeedbackStatus,
}

impl FeedbackRecord {
    /// The record as the hub sends it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "originalMessageId": self.original_message_id,
            "description": self.status.word(),
            "deviceGenerationId": self.device_generation_id,
            "deviceId": self.device_id,
            "enqueuedTimeUtc": iso_from_ms(self.enqueued_ms),
            "statusCode": self.status.word(),
        })
    }
}

/// A received batch, locked until `until_ms`.
#[derive(Debug)]
struct Locked {
    records: Vec<FeedbackRecord>,
    until_ms: u64,
    /// Receive order, so expired locks go back in the order they were taken.
    taken: u64,
}

/// Feedback records waiting to be received, and the batches received but not yet settled.
#[derive(Debug, Default)]
pub(crate) struct FeedbackQueue {
    waiting: VecDeque<FeedbackRecord>,
    locked: HashMap<String, Locked>,
    locked_records: usize,
    next_taken: u64,
}

impl FeedbackQueue {
    /// Adds a record, dropping the oldest waiting one past [`MAX_RECORDS`].
    pub(crate) fn push(&mut self, record: FeedbackRecord) {
        if self.waiting.len() + self.locked_records >= MAX_RECORDS
            && self.waiting.pop_front().is_none()
        {
            // Every kept record is locked: the new one has no room.
            return;
        }
        self.waiting.push_back(record);
    }

    /// Takes the next batch (up to [`MAX_BATCH`] records) under a new lock token; `None` when no
    /// record waits.
    pub(crate) fn receive(&mut self, now_ms: u64) -> Option<(String, Vec<FeedbackRecord>)> {
        self.reclaim(now_ms);
        self.waiting
            .retain(|record| now_ms < record.enqueued_ms.saturating_add(RECORD_TTL_MS));
        if self.waiting.is_empty() {
            return None;
        }
        let take = self.waiting.len().min(MAX_BATCH);
        let records: Vec<FeedbackRecord> = self.waiting.drain(..take).collect();
        let lock = uuid::Uuid::new_v4().to_string();
        self.locked_records += records.len();
        self.next_taken += 1;
        self.locked.insert(
            lock.clone(),
            Locked {
                records: records.clone(),
                until_ms: now_ms.saturating_add(LOCK_MS),
                taken: self.next_taken,
            },
        );
        Some((lock, records))
    }

    /// Settles a received batch for good; `false` if the lock token is unknown or its lock has
    /// expired.
    pub(crate) fn complete(&mut self, lock: &str, now_ms: u64) -> bool {
        self.reclaim(now_ms);
        match self.locked.remove(lock) {
            Some(batch) => {
                self.locked_records -= batch.records.len();
                true
            }
            None => false,
        }
    }

    /// Puts a received batch back at the front; `false` if the lock token is unknown or its lock
    /// has expired.
    pub(crate) fn abandon(&mut self, lock: &str, now_ms: u64) -> bool {
        self.reclaim(now_ms);
        match self.locked.remove(lock) {
            Some(batch) => {
                self.locked_records -= batch.records.len();
                for record in batch.records.into_iter().rev() {
                    self.waiting.push_front(record);
                }
                true
            }
            None => false,
        }
    }

    /// Returns the batches whose lock expired to the front, oldest batch first.
    fn reclaim(&mut self, now_ms: u64) {
        let mut expired: Vec<(u64, String)> = self
            .locked
            .iter()
            .filter(|(_, batch)| batch.until_ms <= now_ms)
            .map(|(lock, batch)| (batch.taken, lock.clone()))
            .collect();
        expired.sort_unstable();
        for (_, lock) in expired.into_iter().rev() {
            if let Some(batch) = self.locked.remove(&lock) {
                self.locked_records -= batch.records.len();
                for record in batch.records.into_iter().rev() {
                    self.waiting.push_front(record);
                }
            }
        }
    }

    /// Records kept (waiting and locked).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.len() + self.locked_records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize, at: u64) -> FeedbackRecord {
        FeedbackRecord {
            original_message_id: format!("m{n}"),
            device_id: "d".into(),
            device_generation_id: "1".into(),
            enqueued_ms: at,
            status: FeedbackStatus::Success,
        }
    }

    fn ids(records: &[FeedbackRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.original_message_id.clone())
            .collect()
    }

    #[test]
    fn batches_lock_complete_and_abandon() {
        let mut queue = FeedbackQueue::default();
        assert!(queue.receive(0).is_none());
        for n in 0..70 {
            queue.push(record(n, 0));
        }
        let (lock, first) = queue.receive(1).unwrap();
        assert_eq!(first.len(), MAX_BATCH);
        let (second_lock, second) = queue.receive(1).unwrap();
        assert_eq!(ids(&second), ["m64", "m65", "m66", "m67", "m68", "m69"]);
        assert!(queue.receive(1).is_none(), "everything is locked");
        assert!(queue.abandon(&second_lock, 2));
        assert!(!queue.abandon(&second_lock, 2), "a lock settles once");
        assert!(queue.complete(&lock, 2));
        let (_, again) = queue.receive(3).unwrap();
        assert_eq!(ids(&again), ids(&second));
    }

    #[test]
    fn an_expired_lock_returns_the_batch_and_cannot_be_completed() {
        let mut queue = FeedbackQueue::default();
        queue.push(record(1, 0));
        let (lock, _) = queue.receive(0).unwrap();
        let (_, again) = queue.receive(LOCK_MS).unwrap();
        assert_eq!(ids(&again), ["m1"]);
        assert!(!queue.complete(&lock, LOCK_MS));
    }

    #[test]
    fn old_records_expire_and_the_queue_is_bounded() {
        let mut queue = FeedbackQueue::default();
        queue.push(record(0, 0));
        assert!(queue.receive(RECORD_TTL_MS).is_none());
        for n in 0..MAX_RECORDS + 5 {
            queue.push(record(n, 10));
        }
        assert_eq!(queue.len(), MAX_RECORDS);
        let (_, batch) = queue.receive(11).unwrap();
        assert_eq!(
            batch[0].original_message_id, "m5",
            "the oldest were dropped"
        );
    }

    #[test]
    fn record_shape() {
        let json = record(1, 1_700_000_000_000).to_json();
        assert_eq!(
            json,
            json!({
                "originalMessageId": "m1",
                "description": "Success",
                "deviceGenerationId": "1",
                "deviceId": "d",
                "enqueuedTimeUtc": "2023-11-14T22:13:20.0000000Z",
                "statusCode": "Success",
            })
        );
    }
}
