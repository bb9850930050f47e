//! The durable store: SQLite (rusqlite, bundled) owned by one writer thread.
//!
//! The hub applies a change to its in-memory state and, under the same lock, hands the new row
//! to [`Store::submit`]; the caller acknowledges the client only after the returned receiver
//! reports the commit. Submitting under the hub lock keeps disk order equal to memory order.
//!
//! Group commit: the writer takes every write already queued (up to a batch cap) and commits them
//! in one transaction, so concurrent clients share one commit.
//!
//! Durability: WAL journal with `synchronous=NORMAL`. A commit is in the WAL file (the OS page
//! cache) when it returns, so it survives the process being killed (`kill -9`): the kernel still
//! writes those pages. It does not promise survival of a power loss or kernel crash (that would
//! need `synchronous=FULL`, an fsync per commit); for an emulator, process-crash durability is
//! the contract.

mod schema;
mod writer;

use std::path::Path;
use std::thread::JoinHandle;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use schema::Loaded;

/// One row change. `Debug` leaves out the documents: they contain keys.
pub enum WriteOp {
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
    /// Insert or replace a policy's keys as JSON.
    PutPolicy {
        /// Policy name.
        name: String,
        /// Serialized policy keys.
        doc: String,
    },
}

impl std::fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteOp::PutDevice { id, .. } => write!(f, "PutDevice({id:?}, <redacted>)"),
            WriteOp::DeleteDevice { id } => write!(f, "DeleteDevice({id:?})"),
            WriteOp::PutPolicy { name, .. } => write!(f, "PutPolicy({name:?}, <redacted>)"),
        }
    }
}

/// A storage failure.
#[derive(Debug, Clone, Error)]
pub enum PersistError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(String),
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
}

impl From<rusqlite::Error> for PersistError {
    fn from(e: rusqlite::Error) -> Self {
        PersistError::Sqlite(e.to_string())
    }
}

type Ack = oneshot::Sender<Result<(), PersistError>>;

enum Message {
    Write(Vec<WriteOp>, Ack),
    Close(oneshot::Sender<()>),
}

/// Handle on the writer thread.
#[derive(Debug)]
pub struct Store {
    tx: mpsc::UnboundedSender<Message>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Write(ops, _) => write!(f, "Write({} ops)", ops.len()),
            Message::Close(_) => f.write_str("Close"),
        }
    }
}

impl Store {
    /// Opens (creating if needed) `dir/state.sqlite3`, loads every row, starts the writer.
    ///
    /// # Errors
    /// The database cannot be opened, migrated or read.
    pub fn open(dir: &Path) -> Result<(Store, Loaded), PersistError> {
        let conn = schema::open(&dir.join("state.sqlite3"))?;
        let loaded = schema::load(&conn)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("iothub-emulator-store".into())
            .spawn(move || writer::run(conn, rx))
            .map_err(|e| PersistError::Sqlite(format!("cannot start the writer thread: {e}")))?;
        Ok((
            Store {
                tx,
                thread: std::sync::Mutex::new(Some(thread)),
            },
            loaded,
        ))
    }

    /// Queues `ops` as one unit; the receiver resolves once they are committed.
    pub fn submit(&self, ops: Vec<WriteOp>) -> oneshot::Receiver<Result<(), PersistError>> {
        let (ack, done) = oneshot::channel();
        if let Err(mpsc::error::SendError(Message::Write(_, ack))) =
            self.tx.send(Message::Write(ops, ack))
        {
            let _ = ack.send(Err(PersistError::Closed));
        }
        done
    }

    /// Commits everything queued so far, then stops the writer. Later writes fail `Closed`.
    pub async fn close(&self) {
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
            acks.push(store.submit(vec![WriteOp::PutDevice {
                id: format!("d{i:03}"),
                doc: format!("{{\"n\":{i}}}"),
            }]));
        }
        acks.push(store.submit(vec![
            WriteOp::DeleteDevice { id: "d000".into() },
            WriteOp::PutPolicy {
                name: "p".into(),
                doc: "{}".into(),
            },
        ]));
        for ack in acks {
            ack.await.unwrap().unwrap();
        }
        store.close().await;
        let late = store.submit(vec![WriteOp::DeleteDevice { id: "d001".into() }]);
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
            matches!(&second, Err(PersistError::Sqlite(m)) if m.contains("another emulator")),
            "{second:?}"
        );
    }
}
