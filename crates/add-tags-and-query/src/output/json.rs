//! `-o json`: one document, written at the end of the run. The field names are documented in
//! `--help` (`crate::cli::JSON_SCHEMA_HELP`) and are part of the command's interface.

use std::io::{self, Write};

use iothub_service::{DeviceSummary, ItemType, RegistryStatistics, Twin};
use serde_json::{json, Map, Value};

use super::{row_device_id, QueryTotals, Reporter, WaitOutcome};
use crate::config::QuerySpec;

/// Version of the document's shape; bumped only on incompatible changes.
pub const SCHEMA_VERSION: u64 = 1;

/// Collects the run and writes it as one JSON document to `W` on [`Reporter::finish`].
pub struct JsonReporter<W: Write> {
    out: W,
    doc: Map<String, Value>,
    devices: Option<Vec<Value>>,
    queries: Vec<Value>,
    current: Option<CurrentQuery>,
}

struct CurrentQuery {
    spec: QuerySpec,
    item_type: Option<ItemType>,
    device_ids: Vec<Value>,
    rows: Vec<Value>,
}

impl<W: Write> JsonReporter<W> {
    /// A reporter for the hub `host`, writing to `out`.
    pub fn new(out: W, host: &str) -> Self {
        let mut doc = Map::new();
        doc.insert("schemaVersion".into(), json!(SCHEMA_VERSION));
        doc.insert("hub".into(), json!(host));
        doc.insert("statistics".into(), Value::Null);
        doc.insert("devices".into(), Value::Null);
        doc.insert("twinUpdate".into(), Value::Null);
        doc.insert("queries".into(), json!([]));
        doc.insert("wait".into(), Value::Null);
        JsonReporter {
            out,
            doc,
            devices: None,
            queries: Vec::new(),
            current: None,
        }
    }

    /// Gives the writer back (tests read what was written).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Reporter for JsonReporter<W> {
    fn statistics(&mut self, stats: &RegistryStatistics) -> io::Result<()> {
        self.doc.insert(
            "statistics".into(),
            json!({
                "totalDeviceCount": stats.total_device_count,
                "enabledDeviceCount": stats.enabled_device_count,
                "disabledDeviceCount": stats.disabled_device_count,
            }),
        );
        Ok(())
    }

    fn devices_begin(&mut self) -> io::Result<()> {
        self.devices = Some(Vec::new());
        Ok(())
    }

    fn devices(&mut self, page: &[DeviceSummary]) -> io::Result<()> {
        let list = self.devices.get_or_insert_with(Vec::new);
        list.extend(page.iter().map(|d| {
            json!({
                "deviceId": d.device_id,
                "status": d.status,
                "connectionState": d.connection_state,
                "lastActivityTime": d.last_activity_time,
            })
        }));
        Ok(())
    }

    fn devices_end(&mut self) -> io::Result<()> {
        if let Some(list) = self.devices.take() {
            self.doc.insert("devices".into(), Value::Array(list));
        }
        Ok(())
    }

    fn twin_updated(&mut self, twin: &Twin) -> io::Result<()> {
        self.doc.insert(
            "twinUpdate".into(),
            json!({
                "deviceId": twin.device_id,
                "etag": twin.etag,
                "version": twin.version,
                "tags": twin.tags,
                "desiredVersion": twin.properties.desired_version(),
            }),
        );
        Ok(())
    }

    fn query_begin(&mut self, query: &QuerySpec) -> io::Result<()> {
        self.current = Some(CurrentQuery {
            spec: query.clone(),
            item_type: None,
            device_ids: Vec::new(),
            rows: Vec::new(),
        });
        Ok(())
    }

    fn query_rows(&mut self, item_type: &ItemType, rows: &[Value]) -> io::Result<()> {
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        current.item_type.get_or_insert_with(|| item_type.clone());
        current
            .device_ids
            .extend(rows.iter().filter_map(row_device_id).map(|id| json!(id)));
        if *item_type != ItemType::Twin {
            current.rows.extend_from_slice(rows);
        }
        Ok(())
    }

    fn query_end(&mut self, totals: QueryTotals) -> io::Result<()> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        let item_type = current.item_type.unwrap_or(ItemType::Unknown);
        let rows = if item_type == ItemType::Twin {
            Value::Null
        } else {
            Value::Array(current.rows)
        };
        self.queries.push(json!({
            "heading": current.spec.heading,
            "query": current.spec.sql,
            "itemType": item_type.as_str(),
            "rowCount": totals.rows,
            "deviceIds": current.device_ids,
            "rows": rows,
            "pages": totals.pages,
            "requests": totals.requests,
        }));
        Ok(())
    }

    fn waited(&mut self, outcome: &WaitOutcome) -> io::Result<()> {
        self.doc.insert(
            "wait".into(),
            json!({
                "expectDevice": outcome.device_id,
                "attempts": outcome.attempts,
                "elapsedMs": u64::try_from(outcome.elapsed.as_millis()).unwrap_or(u64::MAX),
            }),
        );
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.doc.insert(
            "queries".into(),
            Value::Array(std::mem::take(&mut self.queries)),
        );
        serde_json::to_writer_pretty(&mut self.out, &self.doc)?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_every_documented_field() {
        let mut r = JsonReporter::new(Vec::new(), "localhost:8443");
        r.query_begin(&QuerySpec {
            heading: "Results of SELECT COUNT() AS n FROM devices".into(),
            sql: "SELECT COUNT() AS n FROM devices".into(),
        })
        .unwrap();
        r.query_rows(&ItemType::Raw, &[json!({"n": 3})]).unwrap();
        r.query_end(QueryTotals {
            rows: 1,
            pages: 1,
            requests: 2,
        })
        .unwrap();
        r.finish().unwrap();
        let doc: Value = serde_json::from_slice(&r.into_inner()).unwrap();
        assert_eq!(doc["schemaVersion"], 1);
        assert_eq!(doc["hub"], "localhost:8443");
        for key in ["statistics", "devices", "twinUpdate", "wait"] {
            assert_eq!(doc[key], Value::Null, "{key}");
        }
        let q = &doc["queries"][0];
        assert_eq!(q["itemType"], "Raw");
        assert_eq!(q["rows"], json!([{"n": 3}]));
        assert_eq!(q["deviceIds"], json!([]));
        assert_eq!(q["rowCount"], 1);
        assert_eq!(q["requests"], 2);
        // every name in the schema help is one the document uses
        for name in [
            "heading",
            "query",
            "itemType",
            "rowCount",
            "deviceIds",
            "rows",
            "pages",
            "requests",
        ] {
            assert!(q.get(name).is_some(), "{name}");
            assert!(
                crate::cli::JSON_SCHEMA_HELP.contains(name),
                "{name} undocumented"
            );
        }
    }
}
