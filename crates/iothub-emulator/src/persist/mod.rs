//! The durable store: SQLite (rusqlite, bundled) owned by one writer thread.
//!
//! The hub applies a change to its in-memory state and, under the same lock, hands the new row
//! to [`Store::submit`]; the caller acknowledges the client only after the returned receiver
//! reports the commit. Submitting under the hub lock keeps disk order equal to memory order.
//!
//! Group commit: the writer takes every write already queued (up to a batch cap) and commits them
//! in one transaction, so concurrent clients share one commit. After a commit it runs each
//! write's after-commit effect (the hub's fan-out of a desired-property change to the device's
//! MQTT session), in commit order, then acknowledges the writes.
//!
//! Fail-stop: after a failed commit the writer refuses every later write
//! ([`PersistError::Stopped`]); the hub rolls memory back to what is committed.
//!
//! Files: the database, its WAL and shared-memory files are 0600 on Unix (they hold every key).
//!
//! Durability: WAL journal with `synchronous=NORMAL`. A commit is in the WAL file (the OS page
//! cache) when it returns, so it survives the process being killed (`kill -9`): the kernel still
//! writes those pages. It does not promise survival of a power loss or kernel crash (that would
//! need `synchronous=FULL`, an fsync per commit); for an emulator, process-crash durability is
//! the contract.

mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub(crate) use schema::{EventPartitionRow, EventRow, Loaded};

/// One row change. `Debug` leaves out the documents: they contain keys.
pub(crate) enum WriteOp {
    /// Insert or replace a device (identity + twin) as JSON.
    PutDevice {
        /// Device id (primary key).
        id: String,
        /// Serialized `DeviceRecord`.
        doc: String,
    },
    /// Remove a device.
    DeleteDevice {
        /// Device id.
        id: String,
    },
    /// Insert or replace a module (identity + twin) as JSON.
    PutModule {
        /// The module's client id, `{deviceId}/{moduleId}` (primary key).
        key: String,
        /// Serialized `ModuleRecord`.
        doc: String,
    },
    /// Remove a module.
    DeleteModule {
        /// The module's client id.
        key: String,
    },
    /// Insert or replace a policy's keys as JSON.
    PutPolicy {
        /// Policy name.
        name: String,
        /// Serialized policy keys.
        doc: String,
    },
    /// Insert or replace a queued cloud-to-device message as JSON (deleting its device deletes
    /// it too, in the same transaction).
    PutC2dMessage {
        /// Hub-wide message number (primary key).
        seq: u64,
        /// The device whose queue holds it.
        device_id: String,
        /// Serialized message.
        doc: String,
    },
    /// Remove a cloud-to-device message (completed, dead-lettered or purged).
    DeleteC2dMessage {
        /// Hub-wide message number.
        seq: u64,
    },
    /// Create the event log's partitions `0..count` that are missing (first start).
    InitEventPartitions {
        /// Partition count.
        count: u32,
    },
    /// Insert an event of the built-in endpoint's log.
    PutEvent {
        /// Its partition.
        partition: u32,
        /// Its sequence number (with the partition, the primary key).
        sequence: i64,
        /// Its offset.
        offset: i64,
        /// Enqueued time, nanoseconds since the Unix epoch.
        enqueued_nanos: i64,
        /// The body.
        body: bytes::Bytes,
        /// Partition key, annotations and properties as JSON.
        meta: String,
    },
    /// Delete a partition's events below a sequence number (retention), remembering where the
    /// numbering stands so that it continues after a restart even with no event left.
    PruneEvents {
        /// The partition.
        partition: u32,
        /// Every event below this sequence number goes.
        below: i64,
        /// The offset the event numbered `below` has or will have.
        next_offset: i64,
    },
}

impl std::fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteOp::PutDevice { id, .. } => write!(f, "PutDevice({id:?}, <redacted>)"),
            WriteOp::DeleteDevice { id } => write!(f, "DeleteDevice({id:?})"),
            WriteOp::PutModule { key, .. } => write!(f, "PutModule({key:?}, <redacted>)"),
            WriteOp::DeleteModule { key } => write!(f, "DeleteModule({key:?})"),
            WriteOp::PutPolicy { name, .. } => write!(f, "PutPolicy({name:?}, <redacted>)"),
            WriteOp::PutC2dMessage { seq, device_id, .. } => {
                write!(f, "PutC2dMessage({seq}, {device_id:?})")
            }
            WriteOp::DeleteC2dMessage { seq } => write!(f, "DeleteC2dMessage({seq})"),
            WriteOp::InitEventPartitions { count } => write!(f, "InitEventPartitions({count})"),
            WriteOp::PutEvent {
                partition,
                sequence,
                ..
            } => write!(f, "PutEvent({partition}, {sequence})"),
            WriteOp::PruneEvents {
                partition, below, ..
            } => write!(f, "PruneEvents({partition}, below {below})"),
        }
    }
}

/// What runs once a write has committed, on the writer thread, in commit order (the hub's
/// fan-out of desired-property changes to MQTT sessions).
pub(crate) type AfterCommit = Box<dyn FnOnce() + Send>;

/// A storage failure.
///
/// Cheap to clone (one commit's outcome goes to every write in its batch), so the underlying
/// errors are shared. Their text is part of this error's message rather than its `source()`, so
/// a report that walks the chain prints it once.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum PersistError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    /// Another process holds the database (SQLite's exclusive lock).
    #[error("sqlite: {} is in use by another emulator (database is locked)", path.display())]
    Locked {
        /// The database file.
        path: PathBuf,
        /// SQLite's busy or locked error.
        error: Arc<rusqlite::Error>,
    },
    /// The database files could not be made private to the owner.
    #[error("cannot make {} private (mode 0600): {source}", path.display())]
    Permissions {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// The writer thread could not be started.
    #[error("sqlite: cannot start the writer thread: {0}")]
    WriterThread(Arc<std::io::Error>),
    /// The task that opened the store failed (panicked or was cancelled).
    #[error("sqlite: store open task failed: {0}")]
    OpenTask(Arc<tokio::task::JoinError>),
    /// An earlier commit failed; the store refuses every later write, so that memory (rolled
    /// back by the hub) and disk stay equal.
    #[error("the state store refuses writes since a commit failed ({0}); restart the emulator once the cause is fixed")]
    Stopped(Arc<PersistError>),
    /// A commit failed on purpose (the test hook `fail_next_commit`).
    #[error("injected commit failure")]
    Injected,
    /// The writer has stopped (shutdown or crash).
    #[error("the store is closed")]
    Closed,
    /// A stored row could not be read back.
    #[error("corrupt stored row {key}: {reason}")]
    Corrupt {
        /// Which row.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The data directory's event log has another partition count than the configuration.
    #[error("the data directory's event log has {stored} partitions, not {configured}: start with --partitions {stored} (a hub's partition count is fixed when it is created) or use a new data directory")]
    PartitionCount {
        /// Partitions in the store.
        stored: u32,
        /// Partitions configured.
        configured: u32,
    },
    /// A row could not be encoded for storage.
    #[error("cannot encode a row for storage: {0}")]
    Encode(Arc<serde_json::Error>),
}

impl From<rusqlite::Error> for PersistError {
    fn from(e: rusqlite::Error) -> Self {
        PersistError::Sqlite(Arc::new(e))
    }
}

impl From<serde_json::Error> for PersistError {
    fn from(e: serde_json::Error) -> Self {
        PersistError::Encode(Arc::new(e))
    }
}

type Ack = oneshot::Sender<Result<(), PersistError>>;

/// One queued unit: its rows, who waits for the commit, what runs after it.
struct Submitted {
    ops: Vec<WriteOp>,
    ack: Ack,
    after_commit: Option<AfterCommit>,
}

enum Message {
    Write(Submitted),
    Close(oneshot::Sender<()>),
}

/// Handle on the writer thread.
#[derive(Debug)]
pub(crate) struct Store {
    tx: mpsc::UnboundedSender<Message>,
    /// Set by the test hook: the writer fails its next commit and clears it.
    #[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
    fail_next: Arc<std::sync::atomic::AtomicBool>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Write(submitted) => write!(f, "Write({} ops)", submitted.ops.len()),
            Message::Close(_) => f.write_str("Close"),
        }
    }
}

impl Store {
    /// Opens (creating if needed) `dir/state.sqlite3`, loads every row, starts the writer.
    ///
    /// # Errors
    /// The database cannot be opened, migrated or read.
    pub(crate) fn open(dir: &Path) -> Result<(Store, Loaded), PersistError> {
        let conn = schema::open(&dir.join("state.sqlite3"))?;
        let loaded = schema::load(&conn)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let fail_next = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer_fail_next = Arc::clone(&fail_next);
        let thread = std::thread::Builder::new()
            .name("iothub-emulator-store".into())
            .spawn(move || writer::run(conn, rx, &writer_fail_next))
            .map_err(|e| PersistError::WriterThread(Arc::new(e)))?;
        Ok((
            Store {
                tx,
                fail_next,
                thread: std::sync::Mutex::new(Some(thread)),
            },
            loaded,
        ))
    }

    /// A cheap handle that submits writes to the same writer, for state kept outside the hub's
    /// lock (the cloud-to-device queues); it does not keep the writer alive past
    /// [`Store::close`].
    pub(crate) fn sender(&self) -> StoreSender {
        StoreSender {
            tx: self.tx.clone(),
        }
    }

    /// Queues `ops` as one unit; the receiver resolves once they are committed. `after_commit`
    /// runs after a successful commit, before the receiver resolves; it is dropped unrun if the
    /// commit fails or the store is closed.
    pub(crate) fn submit(
        &self,
        ops: Vec<WriteOp>,
        after_commit: Option<AfterCommit>,
    ) -> oneshot::Receiver<Result<(), PersistError>> {
        submit_to(&self.tx, ops, after_commit)
    }

    /// Makes the next commit fail with [`PersistError::Injected`], as a full disk would.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn fail_next_commit(&self) {
        self.fail_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Commits everything queued so far, then stops the writer. Later writes fail `Closed`.
    pub(crate) async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Message::Close(done_tx)).is_ok() {
            let _ = done_rx.await;
        }
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            // The thread has already left its loop; joining only reaps it.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

/// Submits writes to a [`Store`]'s writer (see [`Store::sender`]).
#[derive(Debug, Clone)]
pub(crate) struct StoreSender {
    tx: mpsc::UnboundedSender<Message>,
}

impl StoreSender {
    /// As [`Store::submit`].
    pub(crate) fn submit(
        &self,
        ops: Vec<WriteOp>,
        after_commit: Option<AfterCommit>,
    ) -> oneshot::Receiver<Result<(), PersistError>> {
        submit_to(&self.tx, ops, after_commit)
    }
}

fn submit_to(
    tx: &mpsc::UnboundedSender<Message>,
    ops: Vec<WriteOp>,
    after_commit: Option<AfterCommit>,
) -> oneshot::Receiver<Result<(), PersistError>> {
    let (ack, done) = oneshot::channel();
    let submitted = Submitted {
        ops,
        ack,
        after_commit,
    };
    if let Err(mpsc::error::SendError(Message::Write(refused))) = tx.send(Message::Write(submitted))
    {
        let _ = refused.ack.send(Err(PersistError::Closed));
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_writes_commit_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (store, loaded) = Store::open(dir.path()).unwrap();
        assert!(loaded.devices.is_empty());
        let op = WriteOp::PutPolicy {
            name: "p".into(),
            doc: "{\"primary\":\"secret\"}".into(),
        };
        assert!(!format!("{op:?}").contains("secret"));
        let store = std::sync::Arc::new(store);
        let mut acks = Vec::new();
        for i in 0..200 {
            acks.push(store.submit(
                vec![WriteOp::PutDevice {
                    id: format!("d{i:03}"),
                    doc: format!("{{\"n\":{i}}}"),
                }],
                None,
            ));
        }
        acks.push(store.submit(
            vec![
                WriteOp::DeleteDevice { id: "d000".into() },
                WriteOp::PutPolicy {
                    name: "p".into(),
                    doc: "{}".into(),
                },
            ],
            None,
        ));
        for ack in acks {
            ack.await.unwrap().unwrap();
        }
        store.close().await;
        let late = store.submit(vec![WriteOp::DeleteDevice { id: "d001".into() }], None);
        assert!(matches!(late.await, Ok(Err(PersistError::Closed))));

        drop(store);
        let (_store, loaded) = Store::open(dir.path()).unwrap();
        assert_eq!(loaded.devices.len(), 199);
        assert_eq!(
            loaded.devices[0],
            ("d001".to_string(), "{\"n\":1}".to_string())
        );
        assert_eq!(loaded.policies, vec![("p".to_string(), "{}".to_string())]);
        // While `_store` is open, the directory is taken.
        let second = Store::open(dir.path());
        assert!(
            matches!(&second, Err(e @ PersistError::Locked { .. }) if e.to_string().contains("another emulator")),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn after_commit_effects_run_in_commit_order_before_the_ack() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let effect = |i: usize| -> Option<AfterCommit> {
            let ran = std::sync::Arc::clone(&ran);
            Some(Box::new(move || ran.lock().unwrap().push(i)))
        };
        let acks: Vec<_> = (0..50)
            .map(|i| {
                let op = WriteOp::DeleteDevice {
                    id: format!("d{i}"),
                };
                store.submit(vec![op], effect(i))
            })
            .collect();
        for ack in acks {
            ack.await.unwrap().unwrap();
        }
        assert_eq!(*ran.lock().unwrap(), (0..50).collect::<Vec<_>>());
        store.close().await;
        let late = store.submit(vec![WriteOp::DeleteDevice { id: "x".into() }], effect(99));
        assert!(matches!(late.await, Ok(Err(PersistError::Closed))));
        assert_eq!(
            ran.lock().unwrap().len(),
            50,
            "an uncommitted write has no effect"
        );
    }
}
