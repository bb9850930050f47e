//! Connection state fed by the MQTT endpoint (`connectionState`, `lastActivityTime`, …).
//! Not durable: after a restart every device is disconnected.

use std::sync::Arc;

use serde_json::Value;

use super::{now_iso, Hub};

impl Hub {
    /// Records a device's MQTT connect or disconnect. `seq` numbers the report (the session
    /// table's count): a report older than the last one recorded arrived late and is ignored, so
    /// the state always reflects the latest connect or disconnect.
    /// `device_id` is the connection's client id: a module's is `{deviceId}/{moduleId}`.
    pub(crate) fn set_connected(&self, device_id: &str, connected: bool, seq: u64) {
        let mut state = self.lock();
        if let Some((conn, twin_doc)) = state.connection_mut(device_id) {
            if seq <= conn.state_seq {
                return;
            }
            let now = now_iso();
            conn.state_seq = seq;
            conn.connected = connected;
            conn.state_updated_time = Some(now.clone());
            conn.last_activity_time = Some(now);
            twin_doc.take();
            state.lag_client(device_id);
        }
    }

    /// Records device (or, for a client id `{deviceId}/{moduleId}`, module) activity
    /// (`lastActivityTime`).
    pub(crate) fn record_activity(&self, device_id: &str) {
        let mut state = self.lock();
        if let Some((conn, twin_doc)) = state.connection_mut(device_id) {
            let now = now_iso();
            // A document a query snapshot still shares is rendered afresh when next read.
            match twin_doc.get_mut().map(Arc::get_mut) {
                Some(Some(Value::Object(doc))) => {
                    doc.insert("lastActivityTime".into(), Value::String(now.clone()));
                }
                Some(_) => {
                    twin_doc.take();
                }
                None => {}
            }
            conn.last_activity_time = Some(now);
        }
    }
}
