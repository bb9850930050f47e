//! The tutorial's console output:
//!
//! ```text
//! Total device count                       : 1
//! Enabled device count                     : 1
//! Disabled device count                    : 0
//!
//! Device list:
//! myDeviceId                               : enabled, Disconnected
//!
//! Updated twin of myDeviceId               : etag AAAAAAAAAAI=, version 3
//!
//! Devices in Redmond43:
//! myDeviceId
//!
//! Devices in Redmond43 using cellular network:
//!
//! ```
//!
//! Twin results print one device ID (`device/module` for module twins) per line as pages
//! arrive; other results (projections, aggregates) are collected per query and printed as a
//! table.

use std::io::{self, Write};

use iothub_service::{DeviceSummary, ItemType, RegistryStatistics, Twin};
use serde_json::Value;

use super::{row_device_id, table, QueryTotals, Reporter, WaitOutcome};
use crate::config::QuerySpec;

/// Label column width of the tutorial's `Total device count                       : N`.
const LABEL_WIDTH: usize = 41;

/// Writes the tutorial's lines to `W`.
pub struct TextReporter<W: Write> {
    out: W,
    /// Rows of the current non-twin query, held until its end to size the table columns.
    table_rows: Vec<Value>,
}

impl<W: Write> TextReporter<W> {
    /// A reporter writing to `out`.
    pub fn new(out: W) -> Self {
        TextReporter {
            out,
            table_rows: Vec::new(),
        }
    }

    /// Gives the writer back (tests read what was written).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    fn labelled(&mut self, label: &str, value: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.out, "{label:<LABEL_WIDTH$}: {value}")
    }
}

impl<W: Write> Reporter for TextReporter<W> {
    fn statistics(&mut self, stats: &RegistryStatistics) -> io::Result<()> {
        self.labelled("Total device count", stats.total_device_count)?;
        self.labelled("Enabled device count", stats.enabled_device_count)?;
        self.labelled("Disabled device count", stats.disabled_device_count)?;
        writeln!(self.out)
    }

    fn devices_begin(&mut self) -> io::Result<()> {
        writeln!(self.out, "Device list:")
    }

    fn devices(&mut self, page: &[DeviceSummary]) -> io::Result<()> {
        for device in page {
            let status = device.status.as_deref().unwrap_or("unknown status");
            let state = device
                .connection_state
                .as_deref()
                .unwrap_or("unknown state");
            self.labelled(&device.device_id, format_args!("{status}, {state}"))?;
        }
        self.out.flush()
    }

    fn devices_end(&mut self) -> io::Result<()> {
        writeln!(self.out)
    }

    fn twin_updated(&mut self, twin: &Twin) -> io::Result<()> {
        let label = format!("Updated twin of {}", twin.device_id);
        let etag = twin.etag.as_deref().unwrap_or("?");
        match twin.version {
            Some(version) => {
                self.labelled(&label, format_args!("etag {etag}, version {version}"))?
            }
            None => self.labelled(&label, format_args!("etag {etag}"))?,
        }
        writeln!(self.out)
    }

    fn query_begin(&mut self, query: &QuerySpec) -> io::Result<()> {
        self.table_rows.clear();
        writeln!(self.out, "{}:", query.heading)
    }

    fn query_rows(&mut self, item_type: &ItemType, rows: &[Value]) -> io::Result<()> {
        if *item_type == ItemType::Twin {
            for row in rows {
                // Module twins (`FROM devices.modules`) share their device's ID.
                let module = row.get("moduleId").and_then(Value::as_str);
                match (row_device_id(row), module) {
                    (Some(id), Some(module)) => writeln!(self.out, "{id}/{module}")?,
                    (Some(id), None) => writeln!(self.out, "{id}")?,
                    (None, _) => writeln!(self.out, "{row}")?,
                }
            }
            self.out.flush()
        } else {
            self.table_rows.extend_from_slice(rows);
            Ok(())
        }
    }

    fn query_end(&mut self, _totals: QueryTotals) -> io::Result<()> {
        if !self.table_rows.is_empty() {
            let rendered = table::render(&self.table_rows);
            self.table_rows.clear();
            self.out.write_all(rendered.as_bytes())?;
        }
        writeln!(self.out)
    }

    fn waited(&mut self, _outcome: &WaitOutcome) -> io::Result<()> {
        // The transcript stays the tutorial's; -v logs the polling.
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(heading: &str) -> QuerySpec {
        QuerySpec {
            heading: heading.into(),
            sql: "SELECT".into(),
        }
    }

    const TOTALS: QueryTotals = QueryTotals {
        rows: 0,
        pages: 1,
        requests: 1,
    };

    #[test]
    fn tutorial_transcript_shape() {
        let mut r = TextReporter::new(Vec::new());
        let stats: RegistryStatistics = serde_json::from_value(
            json!({"totalDeviceCount":2,"enabledDeviceCount":1,"disabledDeviceCount":1}),
        )
        .unwrap();
        r.statistics(&stats).unwrap();
        r.devices_begin().unwrap();
        let devices: Vec<DeviceSummary> = serde_json::from_value(json!([
            {"deviceId":"myDeviceId","status":"enabled","connectionState":"Disconnected"},
            {"deviceId":"other"}
        ]))
        .unwrap();
        r.devices(&devices).unwrap();
        r.devices_end().unwrap();
        let twin: Twin = serde_json::from_value(
            json!({"deviceId":"myDeviceId","etag":"AAAAAAAAAAI=","version":3}),
        )
        .unwrap();
        r.twin_updated(&twin).unwrap();
        r.query_begin(&spec("Devices in Redmond43")).unwrap();
        r.query_rows(&ItemType::Twin, &[json!({"deviceId":"myDeviceId"})])
            .unwrap();
        r.query_rows(&ItemType::Twin, &[json!({"deviceId":"d2","moduleId":"m1"})])
            .unwrap();
        r.query_end(TOTALS).unwrap();
        r.query_begin(&spec("Devices in Redmond43 using cellular network"))
            .unwrap();
        r.query_rows(&ItemType::Twin, &[]).unwrap();
        r.query_end(TOTALS).unwrap();
        r.finish().unwrap();
        let text = String::from_utf8(r.into_inner()).unwrap();
        assert_eq!(
            text,
            "Total device count                       : 2\n\
             Enabled device count                     : 1\n\
             Disabled device count                    : 1\n\
             \n\
             Device list:\n\
             myDeviceId                               : enabled, Disconnected\n\
             other                                    : unknown status, unknown state\n\
             \n\
             Updated twin of myDeviceId               : etag AAAAAAAAAAI=, version 3\n\
             \n\
             Devices in Redmond43:\n\
             myDeviceId\n\
             d2/m1\n\
             \n\
             Devices in Redmond43 using cellular network:\n\
             \n"
        );
    }

    #[test]
    fn raw_rows_become_a_table_across_pages() {
        let mut r = TextReporter::new(Vec::new());
        r.query_begin(&spec("Results of SELECT COUNT() AS n FROM devices"))
            .unwrap();
        r.query_rows(&ItemType::Raw, &[json!({"status":"enabled","n":10})])
            .unwrap();
        r.query_rows(&ItemType::Raw, &[json!({"status":"disabled","n":2})])
            .unwrap();
        r.query_end(TOTALS).unwrap();
        let text = String::from_utf8(r.into_inner()).unwrap();
        assert_eq!(
            text,
            "Results of SELECT COUNT() AS n FROM devices:\n\
             status    n\n\
             --------  --\n\
             enabled   10\n\
             disabled  2\n\
             \n"
        );
    }
}
