//! The writer thread: group commit of queued writes, then their after-commit effects in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::{Message, PersistError, Submitted, WriteOp};

/// Most writes folded into one transaction; bounds the latency of the first one in a batch.
const MAX_BATCH: usize = 4096;

/// Fail-stop: after the first failed commit every later write is refused with
/// [`PersistError::Stopped`], because the hub rolls back every write not yet committed and a
/// later write may build on one that failed.
pub(super) fn run(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Message>,
    fail_next: &AtomicBool,
) {
    let mut batch: Vec<Submitted> = Vec::new();
    let mut closing = None;
    let mut failed: Option<Arc<PersistError>> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Write(submitted) => batch.push(submitted),
                Message::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let result = match &failed {
            Some(cause) => Err(PersistError::Stopped(Arc::clone(cause))),
            None if fail_next.swap(false, Ordering::SeqCst) => Err(PersistError::Injected),
            None => commit(&mut conn, &batch),
        };
        if let (Err(e), None) = (&result, &failed) {
            tracing::error!(error = %e, "state store commit failed; refusing further writes");
            failed = Some(Arc::new(e.clone()));
        }
        for submitted in batch.drain(..) {
            if result.is_ok() {
                if let Some(after_commit) = submitted.after_commit {
                    after_commit();
                }
            }
            // A dropped receiver means the client went away; the write still stands.
            let _ = submitted.ack.send(result.clone());
        }
        if let Some(done) = closing.take() {
            rx.close();
            // Writes that raced with Close are refused, not silently dropped.
            while let Ok(Message::Write(refused)) = rx.try_recv() {
                let _ = refused.ack.send(Err(PersistError::Closed));
            }
            let _ = done.send(());
            break;
        }
    }
}

fn commit(conn: &mut Connection, batch: &[Submitted]) -> Result<(), PersistError> {
    if batch.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut put_device =
            tx.prepare_cached("INSERT OR REPLACE INTO devices (id, doc) VALUES (?1, ?2)")?;
        let mut delete_device = tx.prepare_cached("DELETE FROM devices WHERE id = ?1")?;
        let mut put_module =
            tx.prepare_cached("INSERT OR REPLACE INTO modules (id, doc) VALUES (?1, ?2)")?;
        let mut delete_module = tx.prepare_cached("DELETE FROM modules WHERE id = ?1")?;
        let mut put_policy =
            tx.prepare_cached("INSERT OR REPLACE INTO policies (name, doc) VALUES (?1, ?2)")?;
        let mut put_c2d = tx.prepare_cached(
            "INSERT OR REPLACE INTO c2d_messages (seq, device_id, doc) VALUES (?1, ?2, ?3)",
        )?;
        let mut delete_c2d = tx.prepare_cached("DELETE FROM c2d_messages WHERE seq = ?1")?;
        let mut delete_device_c2d =
            tx.prepare_cached("DELETE FROM c2d_messages WHERE device_id = ?1")?;
        let mut init_partition = tx.prepare_cached(
            "INSERT OR IGNORE INTO event_partitions (partition, pruned_below, next_offset) VALUES (?1, 0, 0)",
        )?;
        let mut put_event = tx.prepare_cached(
            "INSERT OR REPLACE INTO events (partition, seq, offset, enqueued_nanos, body, meta) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut prune_events =
            tx.prepare_cached("DELETE FROM events WHERE partition = ?1 AND seq < ?2")?;
        let mut prune_mark = tx.prepare_cached(
            "UPDATE event_partitions SET pruned_below = ?2, next_offset = ?3 WHERE partition = ?1 AND pruned_below < ?2",
        )?;
        for op in batch.iter().flat_map(|submitted| &submitted.ops) {
            match op {
                WriteOp::PutDevice { id, doc } => put_device.execute((id, doc))?,
                // A deleted device's queue goes with it (the hub drops it from memory too).
                WriteOp::DeleteDevice { id } => {
                    delete_device_c2d.execute([id])?;
                    delete_device.execute([id])?
                }
                WriteOp::PutModule { key, doc } => put_module.execute((key, doc))?,
                WriteOp::DeleteModule { key } => delete_module.execute([key])?,
                WriteOp::PutPolicy { name, doc } => put_policy.execute((name, doc))?,
                WriteOp::PutC2dMessage {
                    seq,
                    device_id,
                    doc,
                } => put_c2d.execute((sql_seq(*seq)?, device_id, doc))?,
                WriteOp::DeleteC2dMessage { seq } => delete_c2d.execute([sql_seq(*seq)?])?,
                WriteOp::InitEventPartitions { count } => {
                    for partition in 0..*count {
                        init_partition.execute([partition])?;
                    }
                    0
                }
                WriteOp::PutEvent {
                    partition,
                    sequence,
                    offset,
                    enqueued_nanos,
                    body,
                    meta,
                } => put_event.execute((
                    partition,
                    sequence,
                    offset,
                    enqueued_nanos,
                    &body[..],
                    meta,
                ))?,
                WriteOp::PruneEvents {
                    partition,
                    below,
                    next_offset,
                } => {
                    prune_mark.execute((partition, below, next_offset))?;
                    prune_events.execute((partition, below))?
                }
            };
        }
    }
    tx.commit()?;
    Ok(())
}

/// A message number as SQLite's signed integer.
fn sql_seq(seq: u64) -> Result<i64, PersistError> {
    i64::try_from(seq).map_err(|_| PersistError::Corrupt {
        key: format!("c2d message {seq}"),
        reason: "message number out of range".into(),
    })
}
