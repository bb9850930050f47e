//! Rendering. The run (`crate::run`) reports what happened through [`Reporter`]; the two
//! implementations decide what it looks like. Nothing here talks to the hub.

mod json;
mod table;
mod text;

use std::io;
use std::time::Duration;

use iothub_service::{DeviceSummary, ItemType, RegistryStatistics, Twin};
use serde_json::Value;

pub use json::JsonReporter;
pub use text::TextReporter;

use crate::config::QuerySpec;

/// Counters of one finished query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryTotals {
    /// Rows returned.
    pub rows: u64,
    /// Pages received.
    pub pages: u64,
    /// HTTP requests, including retries.
    pub requests: u64,
}

/// How `--wait` ended (successfully).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    /// The awaited device.
    pub device_id: String,
    /// Rounds of queries run.
    pub attempts: u32,
    /// Time spent.
    pub elapsed: Duration,
}

/// Receives the steps of a run, in order. Query rows arrive page by page, so a reporter can
/// print them as they come.
pub trait Reporter {
    /// Registry statistics.
    fn statistics(&mut self, stats: &RegistryStatistics) -> io::Result<()>;
    /// Start of the device list.
    fn devices_begin(&mut self) -> io::Result<()>;
    /// One page of the device list.
    fn devices(&mut self, page: &[DeviceSummary]) -> io::Result<()>;
    /// End of the device list.
    fn devices_end(&mut self) -> io::Result<()>;
    /// The twin after the update.
    fn twin_updated(&mut self, twin: &Twin) -> io::Result<()>;
    /// Start of a query's results.
    fn query_begin(&mut self, query: &QuerySpec) -> io::Result<()>;
    /// One page of rows.
    fn query_rows(&mut self, item_type: &ItemType, rows: &[Value]) -> io::Result<()>;
    /// End of a query's results.
    fn query_end(&mut self, totals: QueryTotals) -> io::Result<()>;
    /// `--wait` succeeded.
    fn waited(&mut self, outcome: &WaitOutcome) -> io::Result<()>;
    /// The run is complete.
    fn finish(&mut self) -> io::Result<()>;
}

/// A row's `deviceId`, if it has one.
pub fn row_device_id(row: &Value) -> Option<&str> {
    row.get("deviceId").and_then(Value::as_str)
}
