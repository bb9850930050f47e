//! The lagging query index of `--query-lag`: IoT Hub's query results trail writes by seconds or
//! more (<https://learn.microsoft.com/azure/iot-hub/query-twins>), while twin GETs are current.
//! With a lag set, queries read this index instead of the device table.
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

use super::State;
use crate::persist::WriteOp;

/// Changes that may wait to become visible; beyond this the oldest is applied early.
pub(crate) const MAX_PENDING_CHANGES: usize = 10_000;

/// What queries see when a lag is set.
pub(super) struct LaggedIndex {
    lag: Duration,
    /// Twin documents as queries see them, by device id (the table's order).
    visible: BTreeMap<String, Value>,
    /// Changes not yet visible, in write order: when, which device, its new document (`None`:
    /// deleted).
    pending: VecDeque<(Instant, String, Option<Value>)>,
}

impl LaggedIndex {
    /// An index that shows `docs` at once and later changes after `lag`.
    pub(super) fn new(lag: Duration, docs: impl Iterator<Item = (String, Value)>) -> LaggedIndex {
        LaggedIndex {
            lag,
            visible: docs.collect(),
            pending: VecDeque::new(),
        }
    }

    /// Notes that device `id` now has `doc` (or was deleted) as of `now`.
    pub(super) fn record(&mut self, now: Instant, id: String, doc: Option<Value>) {
        if self.pending.len() >= MAX_PENDING_CHANGES {
            if let Some((_, id, doc)) = self.pending.pop_front() {
                self.apply(id, doc);
            }
        }
        self.pending.push_back((now + self.lag, id, doc));
    }

    /// Makes every change due by `now` visible.
    pub(super) fn catch_up(&mut self, now: Instant) {
        while self.pending.front().is_some_and(|(due, _, _)| *due <= now) {
            if let Some((_, id, doc)) = self.pending.pop_front() {
                self.apply(id, doc);
            }
        }
    }

    fn apply(&mut self, id: String, doc: Option<Value>) {
        match doc {
            Some(doc) => {
                self.visible.insert(id, doc);
            }
            None => {
                self.visible.remove(&id);
            }
        }
    }

    /// The visible documents from `lower` on, in id order.
    pub(super) fn range(&self, lower: Bound<&str>) -> btree_map::Range<'_, String, Value> {
        self.visible.range::<str, _>((lower, Bound::Unbounded))
    }

    /// Every visible document.
    pub(super) fn values(&self) -> btree_map::Values<'_, String, Value> {
        self.visible.values()
    }
}

impl State {
    /// Hands the devices `ops` write (with their documents as they are now) to the lagging
    /// index, if there is one. Called for every write the hub submits.
    pub(super) fn lag_writes(&mut self, ops: &[WriteOp]) {
        if self.query_lag.is_none() {
            return;
        }
        for op in ops {
            match op {
                WriteOp::PutDevice { id, .. } | WriteOp::DeleteDevice { id } => self.lag_device(id),
                WriteOp::PutPolicy { .. } => {}
            }
        }
    }

    /// Hands device `id`'s current document (none if it is gone) to the lagging index, if
    /// there is one.
    pub(super) fn lag_device(&mut self, id: &str) {
        let Some(index) = &mut self.query_lag else {
            return;
        };
        let doc = self
            .devices
            .get_mut(id)
            .map(|entry| entry.twin_doc().clone());
        index.record(Instant::now(), id.to_string(), doc);
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

    fn ids(index: &LaggedIndex) -> Vec<(String, Value)> {
        index
            .range(Bound::Unbounded)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn changes_show_after_the_lag_in_write_order() {
        let t0 = Instant::now();
        let lag = Duration::from_secs(5);
        let mut index = LaggedIndex::new(lag, [("a".to_string(), json!(1))].into_iter());
        index.record(t0, "b".into(), Some(json!(2)));
        index.record(t0 + Duration::from_secs(1), "a".into(), None);
        index.record(t0 + Duration::from_secs(2), "b".into(), Some(json!(3)));

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
        assert!(index.pending.is_empty());
    }

    #[test]
    fn pending_changes_are_bounded_and_the_oldest_goes_first() {
        let t0 = Instant::now();
        let mut index = LaggedIndex::new(Duration::from_secs(3600), std::iter::empty());
        for n in 0..=MAX_PENDING_CHANGES {
            index.record(t0, format!("d{n}"), Some(json!(n)));
        }
        assert_eq!(index.pending.len(), MAX_PENDING_CHANGES);
        assert_eq!(ids(&index), vec![("d0".into(), json!(0))]);
        assert_eq!(index.values().count(), 1);
    }
}
