//! Cloud-to-device messages (ARCHITECTURE.md#cloud-to-device-messages): every device's queue
//! and the hub's feedback queue, behind one mutex of their own, written through to the durable
//! store.
//!
//! A message is accepted under the hub's state lock (so a device delete cannot slip between the
//! existence check and the enqueue; lock order hub state → C2D → session table) and its row is
//! handed to the store under the C2D lock (disk order = memory order). It becomes deliverable
//! once that row has committed (an after-commit effect, so deliveries follow commit order), and
//! the device's connection is then told through [`DeviceSessions::cloud_to_device_ready`]: a
//! signal, the connection fetches the messages itself. Completions, deliveries and dead-letters
//! write their rows without being awaited: a message whose completion did not reach the disk is
//! delivered again after a restart, which at-least-once delivery allows.

mod feedback;
mod message;
mod store;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use crate::hub::DeviceSessions;
use crate::persist::{AfterCommit, PersistError, StoreSender};

pub(crate) use feedback::FeedbackRecord;
pub(crate) use message::{parse_expiry, Ack, OutgoingMessage};
pub(crate) use store::{Delivery, Refusal, MAX_MESSAGE_BYTES, MAX_QUEUE_DEPTH};
use store::{Effects, Queues};

/// The C2D side of one hub. Cheap to clone.
#[derive(Clone)]
pub(crate) struct CloudToDevice {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// `None` for an in-memory hub.
    store: Option<StoreSender>,
    sessions: Arc<dyn DeviceSessions>,
    /// Added to the wall clock (test hook: lets a test see a message expire).
    #[cfg(feature = "test-support")]
    clock_offset_ms: std::sync::atomic::AtomicU64,
    /// Replaces the one-minute lock when set (test hook: lets a test see a redelivery).
    #[cfg(feature = "test-support")]
    lock_override_ms: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct State {
    queues: Queues,
    feedback: feedback::FeedbackQueue,
}

/// A message accepted in memory whose row may still be on its way to the disk.
#[must_use]
pub(crate) struct Accepted {
    device_id: String,
    seq: u64,
    commit: Option<oneshot::Receiver<Result<(), PersistError>>>,
}

/// Rows handed to the store, to be awaited outside every lock.
#[must_use]
pub(crate) struct Written(Option<oneshot::Receiver<Result<(), PersistError>>>);

impl Written {
    /// Waits until the rows have committed (at once for an in-memory hub).
    ///
    /// # Errors
    /// The commit failed.
    pub(crate) async fn committed(self) -> Result<(), PersistError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(PersistError::Closed)),
        }
    }
}

/// A received feedback batch.
#[derive(Debug)]
pub(crate) struct FeedbackBatch {
    /// Settles the batch (`DELETE …/feedback/{lock}` or `…/abandon`).
    pub lock_token: String,
    /// The records, oldest first.
    pub records: Vec<FeedbackRecord>,
}

impl CloudToDevice {
    /// The queues as stored (`rows` from the store's load), writing through `store`, signalling
    /// connections through `sessions`.
    ///
    /// # Errors
    /// A stored message row is corrupt.
    pub(crate) fn restore(
        rows: Vec<(u64, String, String)>,
        store: Option<StoreSender>,
        sessions: Arc<dyn DeviceSessions>,
    ) -> Result<CloudToDevice, PersistError> {
        let state = State {
            queues: Queues::restore(rows)?,
            feedback: feedback::FeedbackQueue::default(),
        };
        Ok(CloudToDevice {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                store,
                sessions,
                #[cfg(feature = "test-support")]
                clock_offset_ms: std::sync::atomic::AtomicU64::new(0),
                #[cfg(feature = "test-support")]
                lock_override_ms: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each change below leaves the queues consistent before anything can panic.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        #[cfg(feature = "test-support")]
        let wall = wall.saturating_add(
            self.shared
                .clock_offset_ms
                .load(std::sync::atomic::Ordering::SeqCst),
        );
        wall
    }

    /// Moves this hub's C2D clock forward (test hook for expiry).
    #[cfg(feature = "test-support")]
    pub(crate) fn advance_clock(&self, by: std::time::Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .clock_offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes deliveries lock for `lock` instead of a minute (test hook for redelivery).
    #[cfg(feature = "test-support")]
    pub(crate) fn set_lock_duration(&self, lock: std::time::Duration) {
        let ms = u64::try_from(lock.as_millis()).unwrap_or(u64::MAX).max(1);
        self.shared
            .lock_override_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// How long a delivery stays locked to its connection.
    fn lock_duration(&self) -> std::time::Duration {
        #[cfg(feature = "test-support")]
        {
            let ms = self
                .shared
                .lock_override_ms
                .load(std::sync::atomic::Ordering::SeqCst);
            if ms > 0 {
                return std::time::Duration::from_millis(ms);
            }
        }
        store::LOCK_DURATION
    }

    /// Accepts a message for `device_id`. Call with the hub's state lock held and the device
    /// known to exist; then await [`CloudToDevice::committed`] without it.
    ///
    /// # Errors
    /// A bound is reached.
    pub(crate) fn enqueue(
        &self,
        device_id: &str,
        generation_id: &str,
        outgoing: OutgoingMessage,
    ) -> Result<Accepted, Refusal> {
        let now = self.now();
        let mut effects = Effects::default();
        let mut state = self.lock();
        let committed = self.shared.store.is_none();
        let result = state.queues.enqueue(
            device_id,
            generation_id,
            outgoing,
            now,
            committed,
            &mut effects,
        );
        let commit = match &result {
            Ok(seq) => self.write(&mut state, effects, Some(self.on_commit(device_id, *seq))),
            Err(_) => self.write(&mut state, effects, None),
        };
        drop(state);
        let seq = result?;
        if committed {
            self.shared.sessions.cloud_to_device_ready(device_id);
        }
        Ok(Accepted {
            device_id: device_id.to_string(),
            seq,
            commit,
        })
    }

    /// Waits until an accepted message's row has committed. If it did not, the message is
    /// forgotten (it was never delivered: it only becomes deliverable after its commit).
    ///
    /// # Errors
    /// The commit failed.
    pub(crate) async fn committed(&self, accepted: Accepted) -> Result<(), PersistError> {
        let Some(commit) = accepted.commit else {
            return Ok(());
        };
        let error = match commit.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => PersistError::Closed,
        };
        self.lock()
            .queues
            .remove_uncommitted(&accepted.device_id, accepted.seq);
        Err(error)
    }

    /// The effect that makes message `seq` deliverable once its row has committed.
    fn on_commit(&self, device_id: &str, seq: u64) -> AfterCommit {
        let shared = Arc::downgrade(&self.shared);
        let device_id = device_id.to_string();
        Box::new(move || {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let found = shared
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .queues
                .mark_committed(&device_id, seq);
            if found {
                shared.sessions.cloud_to_device_ready(&device_id);
            }
        })
    }

    /// Writes `effects` (rows to the store, records to the feedback queue); call with the C2D
    /// lock held so rows reach the store in the order memory changed.
    fn write(
        &self,
        state: &mut State,
        effects: Effects,
        after_commit: Option<AfterCommit>,
    ) -> Option<oneshot::Receiver<Result<(), PersistError>>> {
        for record in effects.feedback {
            state.feedback.push(record);
        }
        match &self.shared.store {
            Some(store) if !effects.ops.is_empty() || after_commit.is_some() => {
                Some(store.submit(effects.ops, after_commit))
            }
            _ => None,
        }
    }

    /// Hands `device_id`'s deliverable messages to connection `receiver` (see
    /// [`CloudToDevice::new_receiver`]).
    pub(crate) fn take(&self, device_id: &str, receiver: u64) -> Vec<Delivery> {
        let now = self.now();
        let mut effects = Effects::default();
        let mut state = self.lock();
        let lock_for = self.lock_duration();
        let deliveries = state
            .queues
            .take(device_id, receiver, now, lock_for, &mut effects);
        let _ = self.write(&mut state, effects, None);
        deliveries
    }

    /// The device acknowledged delivery `lock`.
    pub(crate) fn complete(&self, device_id: &str, lock: u64) {
        let now = self.now();
        let mut effects = Effects::default();
        let mut state = self.lock();
        state.queues.complete(device_id, lock, now, &mut effects);
        let _ = self.write(&mut state, effects, None);
    }

    /// Connection `receiver` of `device_id` ended: what it did not acknowledge is offered to
    /// the device's next connection (which may already be there).
    pub(crate) fn release(&self, device_id: &str, receiver: u64) {
        let released = self.lock().queues.release(device_id, receiver);
        if released {
            self.shared.sessions.cloud_to_device_ready(device_id);
        }
    }

    /// A fresh connection number for [`CloudToDevice::take`] and [`CloudToDevice::release`].
    pub(crate) fn new_receiver() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Removes every queued message of `device_id`; returns how many, and the deletes to await.
    /// Call with the hub's state lock held and the device known to exist.
    pub(crate) fn purge(&self, device_id: &str) -> (usize, Written) {
        let now = self.now();
        let mut effects = Effects::default();
        let mut state = self.lock();
        let count = state.queues.purge(device_id, now, &mut effects);
        let written = Written(self.write(&mut state, effects, None));
        (count, written)
    }

    /// The device was deleted (its rows are deleted with it): drop its queue.
    pub(crate) fn device_deleted(&self, device_id: &str) {
        self.lock().queues.drop_device(device_id);
    }

    /// Messages queued for `device_id` (the device's `cloudToDeviceMessageCount`).
    pub(crate) fn queue_depth(&self, device_id: &str) -> usize {
        self.lock().queues.depth(device_id)
    }

    /// The next batch of feedback records, locked for a minute; `None` when there are none.
    /// Expired messages are dead-lettered first, so their feedback is in it.
    pub(crate) fn receive_feedback(&self) -> Option<FeedbackBatch> {
        let now = self.now();
        let mut effects = Effects::default();
        let mut state = self.lock();
        state.queues.expire_all(now, &mut effects);
        let _ = self.write(&mut state, effects, None);
        let (lock_token, records) = state.feedback.receive(now)?;
        Some(FeedbackBatch {
            lock_token,
            records,
        })
    }

    /// Settles a received feedback batch; `false` for an unknown or expired lock token.
    pub(crate) fn complete_feedback(&self, lock_token: &str) -> bool {
        let now = self.now();
        self.lock().feedback.complete(lock_token, now)
    }

    /// Returns a received feedback batch to the queue; `false` for an unknown or expired lock
    /// token.
    pub(crate) fn abandon_feedback(&self, lock_token: &str) -> bool {
        let now = self.now();
        self.lock().feedback.abandon(lock_token, now)
    }
}
