//! Query scans over the twin documents, in device-id order (stable across pages).

use std::ops::Bound;
use std::time::Duration;

use iothub_query::{CompiledQuery, RenderedPage};
use serde_json::Value;

use super::query_lag::LaggedIndex;
use super::Hub;

impl Hub {
    /// Makes query results trail writes by `lag` (zero: current, the default), as the real
    /// hub's query index does; twin GETs stay current (see `query_lag`).
    pub(crate) fn set_query_lag(&self, lag: Duration) {
        let mut state = self.lock();
        state.query_lag = (!lag.is_zero()).then(|| {
            let docs = state.devices.range_mut(Bound::Unbounded);
            LaggedIndex::new(lag, docs.map(|(k, e)| (k.clone(), e.twin_doc().clone())))
        });
    }

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
        if let Some(index) = state.lagged_view() {
            let rows = index.range(lower).map(|(k, doc)| (k.as_str(), doc));
            return query.render_page(rows, already_returned, max_items);
        }
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
        if let Some(index) = state.lagged_view() {
            return query.aggregate(index.values());
        }
        query.aggregate(state.devices.values_mut().map(|e| e.twin_doc()))
    }
}
