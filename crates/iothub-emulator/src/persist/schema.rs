//! Opening the database, its schema and the initial load.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::PersistError;

/// Rows read at start-up, as stored JSON documents.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// `(device id, DeviceRecord JSON)`.
    pub devices: Vec<(String, String)>,
    /// `(module client id "{deviceId}/{moduleId}", ModuleRecord JSON)`.
    pub modules: Vec<(String, String)>,
    /// `(policy name, keys JSON)`.
    pub policies: Vec<(String, String)>,
    /// `(message number, device id, message JSON)` of the queued cloud-to-device messages, in
    /// message-number (enqueue) order.
    pub c2d_messages: Vec<(u64, String, String)>,
    /// The event log's partitions, by partition id.
    pub event_partitions: Vec<EventPartitionRow>,
    /// The event log's events, by partition and sequence number.
    pub events: Vec<EventRow>,
}

/// Where a partition's numbering stood when its events were last pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventPartitionRow {
    /// Partition id.
    pub partition: u32,
    /// Events below this sequence number were deleted (0: none yet).
    pub pruned_below: i64,
    /// The offset of the event numbered `pruned_below`.
    pub next_offset: i64,
}

/// A stored event (see `WriteOp::PutEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventRow {
    /// Partition id.
    pub partition: u32,
    /// Sequence number.
    pub sequence: i64,
    /// Offset.
    pub offset: i64,
    /// Enqueued time, nanoseconds since the Unix epoch.
    pub enqueued_nanos: i64,
    /// Body.
    pub body: Vec<u8>,
    /// Partition key, annotations and properties as JSON.
    pub meta: String,
}

/// Opens the database with the durability settings described in the module doc of `persist`.
///
/// The connection holds SQLite's exclusive lock for its whole life (`locking_mode=EXCLUSIVE`,
/// taken by the schema transaction), so a second emulator on the same data directory fails at
/// start instead of interleaving writes. The lock dies with the process, even on `kill -9`.
pub(super) fn open(path: &Path) -> Result<Connection, PersistError> {
    make_private(path).map_err(|source| PersistError::Permissions {
        path: path.to_path_buf(),
        source: Arc::new(source),
    })?;
    let setup = || -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        // A crashed predecessor's lock is gone at once; waiting longer only delays the error.
        conn.busy_timeout(Duration::from_millis(500))?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "BEGIN EXCLUSIVE;
             CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS modules (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS policies (name TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS c2d_messages (seq INTEGER PRIMARY KEY NOT NULL, device_id TEXT NOT NULL, doc TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS c2d_messages_by_device ON c2d_messages (device_id);
             CREATE TABLE IF NOT EXISTS event_partitions (partition INTEGER PRIMARY KEY NOT NULL, pruned_below INTEGER NOT NULL, next_offset INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS events (partition INTEGER NOT NULL, seq INTEGER NOT NULL, offset INTEGER NOT NULL, enqueued_nanos INTEGER NOT NULL, body BLOB NOT NULL, meta TEXT NOT NULL, PRIMARY KEY (partition, seq)) WITHOUT ROWID;
             COMMIT;",
        )?;
        Ok(conn)
    };
    setup().map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            PersistError::Locked {
                path: path.to_path_buf(),
                error: Arc::new(e),
            }
        }
        _ => PersistError::from(e),
    })
}

/// Creates the database file 0600 if it is missing and tightens it, its WAL and its shared-memory
/// file to 0600 if they exist (they hold every key). SQLite gives the WAL and shared-memory files
/// it creates later the database file's mode.
#[cfg(unix)]
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Reads every device, module, policy and cloud-to-device message row.
pub(super) fn load(conn: &Connection) -> Result<Loaded, PersistError> {
    let mut loaded = Loaded::default();
    let mut stmt = conn.prepare("SELECT id, doc FROM devices ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        loaded.devices.push(row?);
    }
    let mut stmt = conn.prepare("SELECT id, doc FROM modules ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        loaded.modules.push(row?);
    }
    let mut stmt = conn.prepare("SELECT name, doc FROM policies ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        loaded.policies.push(row?);
    }
    let mut stmt = conn.prepare("SELECT seq, device_id, doc FROM c2d_messages ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (seq, device_id, doc) = row?;
        let seq = u64::try_from(seq).map_err(|_| PersistError::Corrupt {
            key: format!("c2d message {seq}"),
            reason: "negative message number".into(),
        })?;
        loaded.c2d_messages.push((seq, device_id, doc));
    }
    let partition = |value: i64| {
        u32::try_from(value).map_err(|_| PersistError::Corrupt {
            key: format!("event partition {value}"),
            reason: "partition id out of range".into(),
        })
    };
    let mut stmt = conn.prepare(
        "SELECT partition, pruned_below, next_offset FROM event_partitions ORDER BY partition",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (id, pruned_below, next_offset) = row?;
        loaded.event_partitions.push(EventPartitionRow {
            partition: partition(id)?,
            pruned_below,
            next_offset,
        });
    }
    let mut stmt = conn.prepare(
        "SELECT partition, seq, offset, enqueued_nanos, body, meta FROM events ORDER BY partition, seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Vec<u8>>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (id, sequence, offset, enqueued_nanos, body, meta) = row?;
        loaded.events.push(EventRow {
            partition: partition(id)?,
            sequence,
            offset,
            enqueued_nanos,
            body,
            meta,
        });
    }
    Ok(loaded)
}
