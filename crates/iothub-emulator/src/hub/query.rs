//! Query scans over the twin documents, in device-id order (stable across pages).

use std::ops::Bound;

use iothub_query::{CompiledQuery, RenderedPage};
use serde_json::Value;

use super::Hub;

impl Hub {
    /// One page of a non-aggregate query over device twins, resuming after `resume_after`,
    /// rendered as the response body: rows are written from the cached twin documents into
    /// one buffer, not copied into a page of values first.
    pub(crate) fn query_page(
        &self,
        query: &CompiledQuery,
        resume_after: Option<&str>,
        already_returned: u64,
        max_items: usize,
    ) -> RenderedPage {
        let mut state = self.lock();
        let lower = match resume_after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        // Documents changed since the last scan are rendered as the page reaches them, so rows
        // beyond the page are not rendered for it.
        let rows = state
            .devices
            .range_mut(lower)
            .map(|(k, e)| (k.as_str(), e.twin_doc()));
        query.render_page(rows, already_returned, max_items)
    }

    /// All rows of an aggregate query over device twins.
    pub(crate) fn query_aggregate(&self, query: &CompiledQuery) -> Vec<Value> {
        let mut state = self.lock();
        query.aggregate(state.devices.values_mut().map(|e| e.twin_doc()))
    }
}
