//! Events as rows of the durable store (`persist`): the body as a blob, the rest as JSON.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{EventProperties, EventValue, StoredEvent};
use crate::persist::{EventRow, PersistError, WriteOp};

#[derive(Serialize)]
struct MetaRef<'a> {
    key: &'a str,
    annotations: &'a [(String, EventValue)],
    properties: &'a [(String, EventValue)],
    system: &'a EventProperties,
}

#[derive(Deserialize)]
struct Meta {
    key: String,
    annotations: Vec<(String, EventValue)>,
    properties: Vec<(String, EventValue)>,
    system: EventProperties,
}

/// Nanoseconds since the Unix epoch (0 before it, saturating after 2262).
pub(super) fn nanos(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The row that stores `event`.
pub(super) fn put(event: &StoredEvent) -> Result<WriteOp, PersistError> {
    let meta = serde_json::to_string(&MetaRef {
        key: &event.partition_key,
        annotations: &event.message_annotations,
        properties: &event.application_properties,
        system: &event.properties,
    })?;
    Ok(WriteOp::PutEvent {
        partition: event.partition,
        sequence: event.sequence_number,
        offset: event.offset,
        enqueued_nanos: nanos(event.enqueued_time),
        body: event.body.clone(),
        meta,
    })
}

/// The event a row stores.
pub(super) fn restore(row: EventRow) -> Result<StoredEvent, PersistError> {
    let meta: Meta = serde_json::from_str(&row.meta).map_err(|e| PersistError::Corrupt {
        key: format!("event {}/{}", row.partition, row.sequence),
        reason: e.to_string(),
    })?;
    let nanos = u64::try_from(row.enqueued_nanos).unwrap_or(0);
    Ok(StoredEvent {
        partition: row.partition,
        sequence_number: row.sequence,
        offset: row.offset,
        enqueued_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos),
        partition_key: meta.key,
        body: row.body.into(),
        message_annotations: meta.annotations,
        application_properties: meta.properties,
        properties: meta.system,
    })
}
