//! Query scans over the twin documents, in device-id order (stable across pages).

use std::ops::Bound;

use iothub_query::{CompiledQuery, Page};
use serde_json::Value;

use super::Hub;

impl Hub {
    /// One page of a non-aggregate query over device twins, resuming after `resume_after`.
    pub fn query_page(
        &self,
        query: &CompiledQuery,
        resume_after: Option<&str>,
        already_returned: u64,
        max_items: usize,
    ) -> Page {
        let mut state = self.lock();
        let lower = match resume_after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        // Render documents changed since the last scan, then scan immutably.
        for entry in state
            .devices
            .range_mut::<str, _>((lower, Bound::Unbounded))
            .map(|(_, e)| e)
        {
            entry.twin_doc();
        }
        let rows = state
            .devices
            .range::<str, _>((lower, Bound::Unbounded))
            .filter_map(|(k, e)| e.twin_doc.as_ref().map(|doc| (k.as_str(), doc)));
        query.page(rows, already_returned, max_items)
    }

    /// All rows of an aggregate query over device twins.
    pub fn query_aggregate(&self, query: &CompiledQuery) -> Vec<Value> {
        let mut state = self.lock();
        for entry in state.devices.values_mut() {
            entry.twin_doc();
        }
        query.aggregate(state.devices.values().filter_map(|e| e.twin_doc.as_ref()))
    }
}
