//! Query scans over the twin documents: device twins in device-id order, module twins
//! (`FROM devices.modules`) in client-id order (`{deviceId}/{moduleId}`), both stable across
//! pages.

use std::ops::Bound;
use std::time::Duration;

use iothub_query::{Collection, CompiledQuery, RenderedPage};
use serde_json::Value;

use super::query_lag::LaggedIndex;
use super::Hub;

impl Hub {
    /// Makes query results trail writes by `lag` (zero: current, the default), as the real
    /// hub's query index does; twin GETs stay current (see `query_lag`).
    pub(crate) fn set_query_lag(&self, lag: Duration) {
        let mut state = self.lock();
        state.query_lag = (!lag.is_zero()).then(|| {
            let state = &mut *state;
            let devices = state.devices.range_mut(Bound::Unbounded);
            let devices = devices.map(|(k, e)| (k.clone(), e.twin_doc().clone()));
            let modules = state.modules.iter_mut();
            let modules = modules.map(|(k, e)| (k.clone(), e.twin_doc().clone()));
            LaggedIndex::new(lag, devices.collect(), modules.collect())
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
        let modules = query.collection() == Collection::DevicesModules;
        if let Some(index) = state.lagged_view() {
            let rows = index
                .range(modules, lower)
                .map(|(k, doc)| (k.as_str(), doc));
            return query.render_page(rows, already_returned, max_items);
        }
        // Documents changed since the last scan are rendered as the page reaches them, so rows
        // beyond the page are not rendered for it.
        if modules {
            // Keys are the modules' client ids, so paging resumes after the last module.
            let rows = state
                .modules
                .range_mut::<str, _>((lower, Bound::Unbounded))
                .map(|(k, e)| (k.as_str(), e.twin_doc()));
            return query.render_page(rows, already_returned, max_items);
        }
        let rows = state
            .devices
            .range_mut(lower)
            .map(|(k, e)| (k.as_str(), e.twin_doc()));
        query.render_page(rows, already_returned, max_items)
    }

    /// All rows of an aggregate query over device twins.
    pub(crate) fn query_aggregate(&self, query: &CompiledQuery) -> Vec<Value> {
        let mut state = self.lock();
        let modules = query.collection() == Collection::DevicesModules;
        if let Some(index) = state.lagged_view() {
            return query.aggregate(index.range(modules, Bound::Unbounded).map(|(_, doc)| doc));
        }
        if modules {
            return query.aggregate(state.modules.values_mut().map(|e| e.twin_doc()));
        }
        query.aggregate(state.devices.values_mut().map(|e| e.twin_doc()))
    }
}
