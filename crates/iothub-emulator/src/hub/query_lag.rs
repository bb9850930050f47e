//! The lagging query index of `--query-lag`: IoT Hub's query results trail writes by seconds or
//! more (<https://learn.microsoft.com/azure/iot-hub/query-twins>), while twin GETs are current.
//! With a lag set, queries (`FROM devices` and `FROM devices.modules`) read this index instead
//! of the device and module tables.
//!
//! The index holds the twin documents queries see, plus the changes not yet visible, each with
//! the time it becomes visible (write time + lag), oldest first. There is no timer per write:
//! due changes are applied when a query next looks ([`LaggedIndex::catch_up`]). At most
//! [`MAX_PENDING_CHANGES`] changes wait; past that the oldest is applied early, so memory stays
//! bounded and the view only gets fresher, never wrong. The index is a copy of every twin
//! document, so a hub with a lag uses about twice the memory for twins.

use std::collections::{btree_map, BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{State, Undo};
use crate::persist::WriteOp;

/// Changes that may wait to become visible; beyond this the oldest is applied early.
pub(crate) const MAX_PENDING_CHANGES: usize = 10_000;

/// Which collection a document belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LagKey {
    /// A device twin, by device id.
    Device(String),
    /// A module twin, by client id `{deviceId}/{moduleId}`.
    Module(String),
}

/// What queries see when a lag is set.
pub(super) struct LaggedIndex {
    lag: Duration,
    /// Device twins as queries see them, by device id (the table's order).
    devices: BTreeMap<String, Value>,
    /// Module twins as queries see them, by client id.
    modules: BTreeMap<String, Value>,
    /// Changes not yet visible, in write order: when, which twin, its new document (`None`:
    /// deleted).
    pending: VecDeque<(Instant, LagKey, Option<Value>)>,
}

impl LaggedIndex {
    /// An index that shows `devices` and `modules` at once and later changes after `lag`.
    pub(super) fn new(
        lag: Duration,
        devices: BTreeMap<String, Value>,
        modules: BTreeMap<String, Value>,
    ) -> LaggedIndex {
        LaggedIndex {
            lag,
            devices,
            modules,
            pending: VecDeque::new(),
        }
    }

    /// Notes that `key` now has `doc` (or was deleted) as of `now`.
    pub(super) fn record(&mut self, now: Instant, key: LagKey, doc: Option<Value>) {
        if self.pending.len() >= MAX_PENDING_CHANGES {
            if let Some((_, key, doc)) = self.pending.pop_front() {
                self.apply(key, doc);
            }
        }
        self.pending.push_back((now + self.lag, key, doc));
    }

    /// Makes every change due by `now` visible.
    pub(super) fn catch_up(&mut self, now: Instant) {
        while self.pending.front().is_some_and(|(due, _, _)| *due <= now) {
            if let Some((_, key, doc)) = self.pending.pop_front() {
                self.apply(key, doc);
            }
        }
    }

    fn apply(&mut self, key: LagKey, doc: Option<Value>) {
        let (map, key) = match key {
            LagKey::Device(id) => (&mut self.devices, id),
            LagKey::Module(id) => (&mut self.modules, id),
        };
        match doc {
            Some(doc) => {
                map.insert(key, doc);
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// The visible device twins (or, with `modules`, module twins) from `lower` on, in key
    /// order.
    pub(super) fn range(
        &self,
        modules: bool,
        lower: Bound<&str>,
    ) -> btree_map::Range<'_, String, Value> {
        let map = if modules {
            &self.modules
        } else {
            &self.devices
        };
        map.range::<str, _>((lower, Bound::Unbounded))
    }
}

impl Undo {
    /// The twins this undo restores, for the lagging index.
    pub(super) fn lagged_keys(&self) -> Vec<LagKey> {
        match self {
            Undo::Nothing => Vec::new(),
            Undo::Device { id, .. } => vec![LagKey::Device(id.clone())],
            Undo::Module { key, .. } => vec![LagKey::Module(key.clone())],
            Undo::Batch(undos) => undos.iter().flat_map(Undo::lagged_keys).collect(),
        }
    }
}

impl State {
    /// Hands the twins `ops` write (with their documents as they are now) to the lagging
    /// index, if there is one. Called for every write the hub submits.
    pub(super) fn lag_writes(&mut self, ops: &[WriteOp]) {
        if self.query_lag.is_none() {
            return;
        }
        for op in ops {
            match op {
                WriteOp::PutDevice { id, .. } | WriteOp::DeleteDevice { id } => {
                    self.lag_key(&LagKey::Device(id.clone()));
                }
                WriteOp::PutModule { key, .. } | WriteOp::DeleteModule { key } => {
                    self.lag_key(&LagKey::Module(key.clone()));
                }
                // Cloud-to-device and event rows are no twin (and go to the store through
                // their own sides).
                WriteOp::PutPolicy { .. }
                | WriteOp::PutC2dMessage { .. }
                | WriteOp::DeleteC2dMessage { .. }
                | WriteOp::InitEventPartitions { .. }
                | WriteOp::PutEvent { .. }
                | WriteOp::PruneEvents { .. } => {}
            }
        }
    }

    /// Hands the current document of the twin of MQTT client id `client_id` (a device, or a
    /// module `{deviceId}/{moduleId}`) to the lagging index, if there is one.
    pub(super) fn lag_client(&mut self, client_id: &str) {
        if self.query_lag.is_none() {
            return;
        }
        let key = if self.modules.contains_key(client_id) {
            LagKey::Module(client_id.to_string())
        } else {
            LagKey::Device(client_id.to_string())
        };
        self.lag_key(&key);
    }

    /// Hands `key`'s current document (none if it is gone) to the lagging index, if there is
    /// one.
    pub(super) fn lag_key(&mut self, key: &LagKey) {
        let Some(index) = &mut self.query_lag else {
            return;
        };
        let doc = match key {
            LagKey::Device(id) => self.devices.get_mut(id).map(|e| e.twin_doc().clone()),
            LagKey::Module(key) => self.modules.get_mut(key).map(|e| e.twin_doc().clone()),
        };
        index.record(Instant::now(), key.clone(), doc);
    }

    /// The index queries read when a lag is set, caught up to now; `None` without a lag.
    pub(super) fn lagged_view(&mut self) -> Option<&LaggedIndex> {
        let index = self.query_lag.as_mut()?;
        index.catch_up(Instant::now());
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn device(id: &str) -> LagKey {
        LagKey::Device(id.to_string())
    }

    fn ids(index: &LaggedIndex) -> Vec<(String, Value)> {
        index
            .range(false, Bound::Unbounded)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn changes_show_after_the_lag_in_write_order() {
        let t0 = Instant::now();
        let lag = Duration::from_secs(5);
        let devices = [("a".to_string(), json!(1))].into_iter().collect();
        let mut index = LaggedIndex::new(lag, devices, BTreeMap::new());
        index.record(t0, device("b"), Some(json!(2)));
        index.record(t0 + Duration::from_secs(1), device("a"), None);
        index.record(t0 + Duration::from_secs(2), device("b"), Some(json!(3)));
        index.record(t0, LagKey::Module("b/m".into()), Some(json!(4)));

        index.catch_up(t0 + Duration::from_secs(4));
        assert_eq!(ids(&index), vec![("a".into(), json!(1))]);
        index.catch_up(t0 + lag);
        assert_eq!(
            ids(&index),
            vec![("a".into(), json!(1)), ("b".into(), json!(2))]
        );
        index.catch_up(t0 + lag + Duration::from_secs(1));
        assert_eq!(ids(&index), vec![("b".into(), json!(2))]);
        index.catch_up(t0 + Duration::from_secs(60));
        assert_eq!(ids(&index), vec![("b".into(), json!(3))]);
        let modules: Vec<_> = index.range(true, Bound::Unbounded).collect();
        assert_eq!(modules, vec![(&"b/m".to_string(), &json!(4))]);
        assert!(index.pending.is_empty());
    }

    #[test]
    fn pending_changes_are_bounded_and_the_oldest_goes_first() {
        let t0 = Instant::now();
        let mut index =
            LaggedIndex::new(Duration::from_secs(3600), BTreeMap::new(), BTreeMap::new());
        for n in 0..=MAX_PENDING_CHANGES {
            index.record(t0, device(&format!("d{n}")), Some(json!(n)));
        }
        assert_eq!(index.pending.len(), MAX_PENDING_CHANGES);
        assert_eq!(ids(&index), vec![("d0".into(), json!(0))]);
    }
}
