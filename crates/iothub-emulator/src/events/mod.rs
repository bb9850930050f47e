//! The hub's events: the partitioned log behind the built-in Event Hub-compatible endpoint
//! (ARCHITECTURE.md#events).
//!
//! Every event lands in one partition, chosen by a stable hash of the sending device's id, so
//! one device's events keep their order
//! (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-read-builtin>). Within a
//! partition, sequence numbers start at 0 and step by one; offsets strictly increase (each event
//! advances them by its size, like the byte positions of a real Event Hub). A partition keeps
//! its events up to a size and an age, the oldest dropped first.
//!
//! Readers (the AMQP endpoint, tests) read from a [`StartPosition`] and wait on
//! [`EventLog::subscribe`] for more.

mod partition;
mod store;
mod telemetry;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::persist::{EventPartitionRow, EventRow, PersistError, StoreSender, WriteOp};

use partition::{Partition, Retention};
pub(crate) use telemetry::TelemetryOrigin;

/// Partitions of a new hub's built-in endpoint (as a new IoT hub has).
pub const DEFAULT_PARTITIONS: u32 = 4;

/// Most partitions a hub may have (the real hub allows 2 to 128 depending on the tier; the
/// emulator keeps one lock and one retention budget per partition, so it bounds them lower).
pub const MAX_PARTITIONS: u32 = 32;

/// Bytes a partition keeps by default (bodies, properties and annotations, see
/// [`StoredEvent::footprint`]); the oldest events go first beyond it.
pub const DEFAULT_RETENTION_BYTES: usize = 32 * 1024 * 1024;

/// How long a partition keeps an event by default: one day, the real hub's default retention.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The shape and bounds of the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsConfig {
    /// Partition count, 1..=[`MAX_PARTITIONS`] (default [`DEFAULT_PARTITIONS`]).
    pub partitions: u32,
    /// Bytes each partition keeps (default [`DEFAULT_RETENTION_BYTES`]).
    pub retention_bytes: usize,
    /// How long each partition keeps an event (default [`DEFAULT_RETENTION`]).
    pub retention: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            partitions: DEFAULT_PARTITIONS,
            retention_bytes: DEFAULT_RETENTION_BYTES,
            retention: DEFAULT_RETENTION,
        }
    }
}

/// A value of a message annotation or an application property; the AMQP endpoint maps each
/// variant to the AMQP type of the same name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventValue {
    /// AMQP `string`.
    String(String),
    /// AMQP `long`.
    Long(i64),
    /// AMQP `timestamp` (milliseconds since the Unix epoch on the wire).
    Timestamp(SystemTime),
    /// AMQP `boolean`.
    Bool(bool),
    /// AMQP `null` (an MQTT property-bag key sent without `=`).
    Null,
}

/// A message annotation's value.
pub type AnnotationValue = EventValue;
/// An application property's value.
pub type PropertyValue = EventValue;

/// The AMQP properties section of an event (`None`: the field is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct EventProperties {
    /// `message-id` (`$.mid`).
    pub message_id: Option<String>,
    /// `correlation-id` (`$.cid`).
    pub correlation_id: Option<String>,
    /// `content-type` (`$.ct`).
    pub content_type: Option<String>,
    /// `content-encoding` (`$.ce`).
    pub content_encoding: Option<String>,
    /// `user-id` (`$.uid`; the hub name on the hub's own events), binary on the wire.
    pub user_id: Option<String>,
}

/// One event as the built-in endpoint delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredEvent {
    /// The partition holding it.
    pub partition: u32,
    /// Its number in the partition: 0 for the first, one more for each next.
    pub sequence_number: i64,
    /// Its position in the partition (strictly increasing; sent as a decimal string).
    pub offset: i64,
    /// When the hub accepted it (never earlier than the partition's previous event).
    pub enqueued_time: SystemTime,
    /// The partition key: the device id it was hashed from (the endpoint may leave it out).
    pub partition_key: String,
    /// The body: the device's payload, or the hub's JSON document for its own events.
    pub body: Bytes,
    /// Message annotations (`iothub-connection-device-id`, `iothub-message-source`, ...), in
    /// order; the endpoint adds `x-opt-sequence-number`, `x-opt-offset` and
    /// `x-opt-enqueued-time` from the fields above.
    pub message_annotations: Vec<(String, AnnotationValue)>,
    /// Application properties, in order.
    pub application_properties: Vec<(String, PropertyValue)>,
    /// The properties section.
    pub properties: EventProperties,
}

impl StoredEvent {
    /// A new event from `device_id` (not numbered yet: [`EventLog::append`] does that).
    pub(crate) fn new(device_id: &str, body: Bytes) -> StoredEvent {
        StoredEvent {
            partition: 0,
            sequence_number: 0,
            offset: 0,
            enqueued_time: SystemTime::UNIX_EPOCH,
            partition_key: device_id.to_string(),
            body,
            message_annotations: Vec::new(),
            application_properties: Vec::new(),
            properties: EventProperties::default(),
        }
    }

    /// The bytes this event counts against its partition's retention budget: body, keys,
    /// string values and a fixed overhead per event.
    pub fn footprint(&self) -> usize {
        fn value(v: &EventValue) -> usize {
            match v {
                EventValue::String(s) => s.len(),
                _ => 8,
            }
        }
        let pairs = |pairs: &[(String, EventValue)]| -> usize {
            pairs.iter().map(|(k, v)| k.len() + value(v)).sum()
        };
        let p = &self.properties;
        let properties: usize = [
            &p.message_id,
            &p.correlation_id,
            &p.content_type,
            &p.content_encoding,
            &p.user_id,
        ]
        .iter()
        .map(|field| field.as_ref().map_or(0, String::len))
        .sum();
        self.body.len()
            + self.partition_key.len()
            + pairs(&self.message_annotations)
            + pairs(&self.application_properties)
            + properties
            + 64
    }
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// After (or at, when `inclusive`) this sequence number.
    Sequence {
        /// The sequence number.
        value: i64,
        /// Whether the event with this number is included.
        inclusive: bool,
    },
    /// After (or at, when `inclusive`) this offset; offset -1 exclusive is the beginning.
    Offset {
        /// The offset.
        value: i64,
        /// Whether the event at this offset is included.
        inclusive: bool,
    },
    /// The events enqueued strictly after this time.
    EnqueuedTime(SystemTime),
    /// The oldest retained event.
    Earliest,
    /// Only events appended after the read: a reader resolves it once with
    /// [`EventLog::resolve`] and then reads from the sequence number it got.
    Latest,
}

/// What `$management` reports about a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The oldest retained event's sequence number (the next one's when none is retained).
    pub begin_sequence_number: i64,
    /// The newest event's sequence number; -1 before the first.
    pub last_enqueued_sequence_number: i64,
    /// The newest event's offset; -1 before the first.
    pub last_enqueued_offset: i64,
    /// The newest event's enqueued time; the Unix epoch before the first.
    pub last_enqueued_time_utc: SystemTime,
    /// Whether no event is retained.
    pub is_empty: bool,
}

/// The partitioned event log. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct EventLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // Read by the AMQP endpoint's `$management` node.
    #[allow(dead_code)]
    created_at: SystemTime,
    retention: Retention,
    partitions: Vec<PartitionSlot>,
    /// `None` for an in-memory hub: events are readable at once. With a store, an event is
    /// readable once its row has committed, so a reader never sees an event a crash could
    /// take back (and a sequence number is never handed out twice).
    store: Option<StoreSender>,
}

#[derive(Debug)]
struct PartitionSlot {
    state: Mutex<Partition>,
    /// The last visible sequence number (-1 before the first event).
    newest: watch::Sender<i64>,
}

impl PartitionSlot {
    fn lock(&self) -> MutexGuard<'_, Partition> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What [`EventLog::append`] did.
#[derive(Debug)]
pub(crate) struct Appended {
    /// The event as numbered and stored.
    #[cfg_attr(not(test), allow(dead_code))]
    pub event: StoredEvent,
    /// Resolves once the event's row has committed (`None` for an in-memory hub, where the
    /// event is readable already). The device's PUBACK waits for it.
    pub committed: Option<oneshot::Receiver<Result<(), PersistError>>>,
}

/// The log's rows to write at start-up (partitions created, expired events pruned).
pub(crate) type StartupWrites = Vec<WriteOp>;

impl EventLog {
    /// An empty in-memory log shaped by `config` (the partition count clamped to
    /// 1..=[`MAX_PARTITIONS`]; the emulator's configuration refuses other values first).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn new(config: EventsConfig) -> EventLog {
        let (log, _) = EventLog::restore(config, Vec::new(), Vec::new(), None)
            .unwrap_or_else(|_| unreachable!("an empty log without a store always restores"));
        log
    }

    /// The log from its stored rows (none for an in-memory hub), with the rows to write before
    /// the hub serves: the partitions of a new log, the pruning of events beyond retention.
    ///
    /// # Errors
    /// A stored row does not decode, or the stored partition count differs from `config`'s
    /// (it is fixed when a hub is created).
    pub(crate) fn restore(
        config: EventsConfig,
        partition_rows: Vec<EventPartitionRow>,
        rows: Vec<EventRow>,
        store: Option<StoreSender>,
    ) -> Result<(EventLog, StartupWrites), PersistError> {
        let count = config.partitions.clamp(1, MAX_PARTITIONS);
        let mut writes = Vec::new();
        if store.is_some() {
            let stored = u32::try_from(partition_rows.len()).unwrap_or(u32::MAX);
            if stored == 0 {
                writes.push(WriteOp::InitEventPartitions { count });
            } else if stored != count {
                return Err(PersistError::PartitionCount {
                    stored,
                    configured: count,
                });
            }
        }
        let mut partitions: Vec<Partition> = (0..count)
            .map(|p| {
                let start = partition_rows.iter().find(|row| row.partition == p);
                start.map_or_else(
                    || Partition::starting_at(0, 0),
                    |row| Partition::starting_at(row.pruned_below, row.next_offset),
                )
            })
            .collect();
        for row in rows {
            let event = store::restore(row)?;
            let Some(partition) = usize::try_from(event.partition)
                .ok()
                .and_then(|p| partitions.get_mut(p))
            else {
                continue;
            };
            partition.restore(event);
        }
        let retention = Retention {
            bytes: config.retention_bytes,
            age: config.retention,
        };
        let now = SystemTime::now();
        let partitions = partitions
            .into_iter()
            .enumerate()
            .map(|(id, mut partition)| {
                partition.trim(retention, now);
                let id = u32::try_from(id).unwrap_or(0);
                if store.is_some() {
                    writes.extend(partition.prune(id, 1));
                }
                let newest = partition.last_sequence_number();
                PartitionSlot {
                    state: Mutex::new(partition),
                    newest: watch::channel(newest).0,
                }
            })
            .collect();
        let log = EventLog {
            inner: Arc::new(Inner {
                created_at: SystemTime::now(),
                retention,
                partitions,
                store,
            }),
        };
        Ok((log, writes))
    }

    /// Number of partitions (ids `0..count`).
    pub(crate) fn partition_count(&self) -> u32 {
        // At most MAX_PARTITIONS, so this never truncates.
        u32::try_from(self.inner.partitions.len()).unwrap_or(MAX_PARTITIONS)
    }

    /// The partition of `device_id`'s events: FNV-1a of the id, so the choice stays the same
    /// across restarts and builds (std's hasher promises neither).
    pub(crate) fn partition_for(&self, device_id: &str) -> u32 {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in device_id.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        hash % self.partition_count()
    }

    #[allow(dead_code)] // read by the AMQP endpoint's `$management` node
    /// When the log (the hub's event entity) was created.
    pub(crate) fn created_at(&self) -> SystemTime {
        self.inner.created_at
    }

    fn slot(&self, partition: u32) -> Option<&PartitionSlot> {
        self.inner.partitions.get(usize::try_from(partition).ok()?)
    }

    /// Appends `event` to its device's partition, numbered and stamped now. In memory it is
    /// readable at once; with a store, once its row commits (see [`Appended::committed`]).
    pub(crate) fn append(&self, mut event: StoredEvent) -> Appended {
        let partition = self.partition_for(&event.partition_key);
        event.partition = partition;
        let Some(slot) = self.slot(partition) else {
            return Appended {
                event,
                committed: None,
            };
        };
        let Some(store) = &self.inner.store else {
            let stored = {
                let mut state = slot.lock();
                let now = SystemTime::now();
                event.enqueued_time = state.not_before(now);
                stamp_enqueued_time(&mut event);
                let stored = state.append(event, true);
                state.trim(self.inner.retention, now);
                stored
            };
            slot.newest.send_replace(stored.sequence_number);
            return Appended {
                event: stored,
                committed: None,
            };
        };
        let mut state = slot.lock();
        let now = SystemTime::now();
        event.enqueued_time = state.not_before(now);
        stamp_enqueued_time(&mut event);
        let row = match store::put(&event) {
            Ok(row) => row,
            Err(error) => {
                // Nothing numbered, nothing kept: the device gets no PUBACK.
                let (failed, committed) = oneshot::channel();
                let _ = failed.send(Err(error));
                return Appended {
                    event,
                    committed: Some(committed),
                };
            }
        };
        let stored = state.append(event, false);
        let mut ops = vec![with_numbers(row, &stored)];
        state.trim(self.inner.retention, now);
        ops.extend(state.prune(partition, PRUNE_BATCH));
        let inner = Arc::clone(&self.inner);
        let sequence = stored.sequence_number;
        // Runs on the writer thread after the commit, in commit order.
        let visible = Box::new(move || inner.made_durable(partition, sequence));
        let committed = store.submit(ops, Some(visible));
        drop(state);
        Appended {
            event: stored,
            committed: Some(committed),
        }
    }

    /// Applies retention to `partition` now (the store prunes in batches).
    fn trimmed<'a>(&self, slot: &'a PartitionSlot, partition: u32) -> MutexGuard<'a, Partition> {
        let mut state = slot.lock();
        state.trim(self.inner.retention, SystemTime::now());
        if let Some(store) = &self.inner.store {
            if let Some(prune) = state.prune(partition, PRUNE_BATCH) {
                // Nobody waits for it: a crash before it commits only leaves rows that the
                // next start prunes again.
                drop(store.submit(vec![prune], None));
            }
        }
        state
    }

    /// Facts about `partition`; `None` for a partition that does not exist.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))] // read by the AMQP endpoint
    pub(crate) fn partition_info(&self, partition: u32) -> Option<PartitionInfo> {
        let slot = self.slot(partition)?;
        Some(self.trimmed(slot, partition).info())
    }

    /// Up to `max` events of `partition` at `from`, oldest first (none for a partition that
    /// does not exist). Events beyond retention are never returned.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))] // read by the AMQP endpoint
    pub(crate) fn read(&self, partition: u32, from: StartPosition, max: usize) -> Vec<StoredEvent> {
        let Some(slot) = self.slot(partition) else {
            return Vec::new();
        };
        self.trimmed(slot, partition).read(&from, max)
    }

    #[allow(dead_code)] // read by the AMQP endpoint's receiver links
    /// Turns [`StartPosition::Latest`] into the position right after the newest event (other
    /// positions come back unchanged), for a reader that starts now.
    pub(crate) fn resolve(&self, partition: u32, from: StartPosition) -> StartPosition {
        match (from, self.slot(partition)) {
            (StartPosition::Latest, Some(slot)) => StartPosition::Sequence {
                value: slot.lock().last_sequence_number(),
                inclusive: false,
            },
            (other, _) => other,
        }
    }

    /// Follows the last sequence number of `partition` (-1 before its first event): it changes
    /// whenever an event becomes readable. `None` for a partition that does not exist.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code))] // read by the AMQP endpoint
    pub(crate) fn subscribe(&self, partition: u32) -> Option<watch::Receiver<i64>> {
        Some(self.slot(partition)?.newest.subscribe())
    }
}

impl Inner {
    /// The row of event `sequence` in `partition` has committed: it becomes readable.
    fn made_durable(&self, partition: u32, sequence: i64) {
        let Some(slot) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
        else {
            return;
        };
        let mut state = slot.lock();
        if state.make_visible(sequence) {
            // The rows go with the partition's next append or read.
            state.trim(self.retention, SystemTime::now());
            drop(state);
            slot.newest.send_replace(sequence);
        }
    }
}

/// Dropped events a partition collects before their rows are deleted in one statement.
const PRUNE_BATCH: i64 = 256;

/// `row` (made before numbering) with `event`'s partition, sequence number and offset.
fn with_numbers(row: WriteOp, event: &StoredEvent) -> WriteOp {
    match row {
        WriteOp::PutEvent {
            enqueued_nanos,
            body,
            meta,
            ..
        } => WriteOp::PutEvent {
            partition: event.partition,
            sequence: event.sequence_number,
            offset: event.offset,
            enqueued_nanos,
            body,
            meta,
        },
        other => other,
    }
}

/// Sets the `iothub-enqueuedtime` annotation to the event's enqueued time.
fn stamp_enqueued_time(event: &mut StoredEvent) {
    let time = EventValue::Timestamp(event.enqueued_time);
    match event
        .message_annotations
        .iter_mut()
        .find(|(key, _)| key == "iothub-enqueuedtime")
    {
        Some(slot) => slot.1 = time,
        None => event
            .message_annotations
            .push(("iothub-enqueuedtime".into(), time)),
    }
}

#[cfg(test)]
mod tests;
