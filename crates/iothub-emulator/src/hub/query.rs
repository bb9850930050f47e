//! Query scans over the twin documents: device twins in device-id order, module twins
//! (`FROM devices.modules`) in client-id order (`{deviceId}/{moduleId}`), both stable across
//! pages.

use std::ops::Bound;

use iothub_query::{Collection, CompiledQuery, RenderedPage};
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
        if query.collection() == Collection::DevicesModules {
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
        if query.collection() == Collection::DevicesModules {
            return query.aggregate(state.modules.values_mut().map(|e| e.twin_doc()));
        }
        query.aggregate(state.devices.values_mut().map(|e| e.twin_doc()))
    }
}
