//! Connection state fed by the MQTT endpoint (`connectionState`, `lastActivityTime`, …).
//! Not durable: after a restart every device is disconnected.

use serde_json::Value;

use super::{now_iso, Hub};

impl Hub {
    /// Records a device's MQTT connect or disconnect. `seq` numbers the report (the session
    /// table's count): a report older than the last one recorded arrived late and is ignored, so
    /// the state always reflects the latest connect or disconnect.
    pub(crate) fn set_connected(&self, device_id: &str, connected: bool, seq: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(device_id) {
            let conn = &mut entry.record.connection;
            if seq <= conn.state_seq {
                return;
            }
            let now = now_iso();
            conn.state_seq = seq;
            conn.connected = connected;
            conn.state_updated_time = Some(now.clone());
            conn.last_activity_time = Some(now);
            entry.invalidate();
            state.lag_device(device_id);
        }
    }

    /// Records device activity (`lastActivityTime`).
    pub(crate) fn record_activity(&self, device_id: &str) {
        let mut state = self.lock();
        if let Some(entry) = state.devices.get_mut(device_id) {
            let now = now_iso();
            if let Some(Value::Object(doc)) = &mut entry.twin_doc {
                doc.insert("lastActivityTime".into(), Value::String(now.clone()));
            }
            entry.record.connection.last_activity_time = Some(now);
        }
    }
}
