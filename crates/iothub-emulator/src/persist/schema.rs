//! Opening the database, its schema and the initial load.

use std::path::Path;

use rusqlite::Connection;

use super::PersistError;

/// Rows read at start-up, as stored JSON documents.
#[derive(Debug, Default)]
pub struct Loaded {
    /// `(device id, DeviceRecord JSON)`.
    pub devices: Vec<(String, String)>,
    /// `(policy name, keys JSON)`.
    pub policies: Vec<(String, String)>,
}

/// Opens the database with the durability settings described in the module doc of `persist`.
pub fn open(path: &Path) -> Result<Connection, PersistError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS policies (name TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);",
    )?;
    Ok(conn)
}

/// Reads every device and policy row.
pub fn load(conn: &Connection) -> Result<Loaded, PersistError> {
    let mut loaded = Loaded::default();
    let mut stmt = conn.prepare("SELECT id, doc FROM devices ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        loaded.devices.push(row?);
    }
    let mut stmt = conn.prepare("SELECT name, doc FROM policies ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        loaded.policies.push(row?);
    }
    Ok(loaded)
}
