//! `GET /devices` rendered a few devices at a time from a snapshot of the device table, so the
//! list is streamed as it is written instead of being built as one JSON value first, and the
//! state lock is held only to take the snapshot (O(1), see `twin_map`).
//!
//! The bytes are those of the JSON array of identities serialized compactly, as before.

use std::ops::Bound;

use super::twin_map::TwinMap;
use super::{DeviceRecord, Hub};

/// The device list of one `GET /devices`, rendered on demand ([`DeviceList::next_chunk`]).
pub(crate) struct DeviceList {
    hub: Hub,
    devices: TwinMap<DeviceRecord>,
    /// Devices still to write (the request's `top` minus those written).
    remaining: usize,
    /// The last device id written; the next chunk starts after it.
    after: Option<String>,
    /// Devices written so far.
    written: usize,
    /// Whether the closing `]` has been written.
    finished: bool,
}

impl Hub {
    /// The first `top` device identities in id order, as they are now, to be rendered in
    /// chunks.
    pub(crate) fn device_list(&self, top: usize) -> DeviceList {
        DeviceList {
            hub: self.clone(),
            devices: self.lock().devices.snapshot(),
            remaining: top,
            after: None,
            written: 0,
            finished: false,
        }
    }
}

impl DeviceList {
    /// The next part of the JSON array, with at most `rows` identities; `None` once the
    /// array has been closed. Each identity carries its device's cloud-to-device queue length
    /// as of this call.
    pub(crate) fn next_chunk(&mut self, rows: usize) -> Option<Vec<u8>> {
        if self.finished {
            return None;
        }
        let mut out = Vec::new();
        if self.written == 0 {
            out.push(b'[');
        }
        let want = rows.min(self.remaining);
        let lower = match &self.after {
            Some(id) => Bound::Excluded(id.as_str()),
            None => Bound::Unbounded,
        };
        let mut taken = 0;
        let mut last = None;
        for (id, entry) in self.devices.range(lower).take(want) {
            if self.written + taken > 0 {
                out.push(b',');
            }
            let mut json = entry.record.identity_json();
            json["cloudToDeviceMessageCount"] = self.hub.shared.c2d.queue_depth(id).into();
            out.extend_from_slice(json.to_string().as_bytes());
            taken += 1;
            last = Some(id);
        }
        if let Some(id) = last {
            self.after = Some(id.to_string());
        }
        self.written += taken;
        self.remaining -= taken;
        if taken < want || self.remaining == 0 || want == 0 {
            out.push(b']');
            self.finished = true;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::super::{AuthSpec, DeviceSpec};
    use super::*;
    use crate::persist::Loaded;

    struct Nobody;
    impl super::super::DeviceSessions for Nobody {
        fn desired_changed(&self, _: super::super::DesiredPatch) {}
        fn disconnect(&self, _: &str) {}
        fn device_deleted(&self, _: &str) {}
    }

    /// The list as `GET /devices` rendered it before it was streamed: one JSON value.
    fn previous_rendering(hub: &Hub, top: usize) -> Vec<u8> {
        let mut devices: Vec<Value> = hub
            .lock()
            .devices
            .values()
            .take(top)
            .map(|e| e.record.identity_json())
            .collect();
        for device in &mut devices {
            if let Some(id) = device["deviceId"].as_str() {
                let depth = hub.shared.c2d.queue_depth(id);
                device["cloudToDeviceMessageCount"] = depth.into();
            }
        }
        serde_json::to_vec(&Value::Array(devices)).unwrap()
    }

    fn streamed(hub: &Hub, top: usize, rows: usize) -> Vec<u8> {
        let mut list = hub.device_list(top);
        let mut body = Vec::new();
        while let Some(chunk) = list.next_chunk(rows) {
            body.extend(chunk);
        }
        body
    }

    #[tokio::test]
    async fn the_streamed_list_has_the_bytes_of_the_previous_rendering() {
        let hub = Hub::open(
            "localhost".into(),
            None,
            Loaded::default(),
            Arc::new(Nobody),
            crate::events::EventsConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(streamed(&hub, 1000, 7), previous_rendering(&hub, 1000));
        assert_eq!(streamed(&hub, 1000, 7), b"[]");
        for n in 0..23 {
            let spec = DeviceSpec {
                enabled: n % 3 != 0,
                status_reason: (n % 4 == 0).then(|| format!("reason \"{n}\" é")),
                authentication: if n % 5 == 0 {
                    AuthSpec::SelfSigned {
                        primary_thumbprint: Some(format!("{n:040X}")),
                        secondary_thumbprint: None,
                    }
                } else {
                    AuthSpec::Sas {
                        primary: None,
                        secondary: None,
                    }
                },
                ..DeviceSpec::default()
            };
            hub.create_device(&format!("dev;{n:02}"), spec)
                .await
                .unwrap();
        }
        hub.set_connected("dev;03", true, 1);
        for top in [1, 6, 7, 8, 22, 23, 24, 1000] {
            for rows in [1, 2, 7, 100] {
                assert_eq!(
                    String::from_utf8(streamed(&hub, top, rows)).unwrap(),
                    String::from_utf8(previous_rendering(&hub, top)).unwrap(),
                    "top {top}, {rows} rows a chunk"
                );
            }
        }
    }
}
