//! Query scans over the twin documents: device twins in device-id order, module twins
//! (`FROM devices.modules`) in client-id order (`{deviceId}/{moduleId}`), both stable across
//! pages.
//!
//! A query never evaluates under the state lock: under it, it takes the collection as it is
//! now ([`QuerySource`], O(1): the tables are persistent maps), then releases the lock and
//! scans, renders and aggregates that snapshot. Writes meanwhile change the tables, not the
//! snapshot (ARCHITECTURE.md#lock-discipline).

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use iothub_query::{Collection, CompiledQuery, RenderedPage};
use serde_json::Value;

use super::query_lag::{lagged_range, LaggedDocs, LaggedIndex};
use super::twin_map::TwinMap;
use super::{DeviceRecord, Hub, ModuleRecord};

/// One collection's twins as they were at one moment, for a query to read without the lock.
enum QuerySource {
    /// The device table.
    Devices(TwinMap<DeviceRecord>),
    /// The module table.
    Modules(TwinMap<ModuleRecord>),
    /// The lagging index of `--query-lag`.
    Lagged(LaggedDocs),
}

impl Hub {
    /// Makes query results trail writes by `lag` (zero: current, the default), as the real
    /// hub's query index does; twin GETs stay current (see `query_lag`).
    pub(crate) fn set_query_lag(&self, lag: Duration) {
        let mut state = self.lock();
        state.query_lag = (!lag.is_zero()).then(|| {
            let devices = state.devices.snapshot();
            let devices = devices
                .iter()
                .map(|(k, e)| (Arc::from(k), Arc::clone(e.twin_doc())));
            let modules = state.modules.iter();
            let modules = modules.map(|(k, e)| (Arc::from(k), Arc::clone(e.twin_doc())));
            LaggedIndex::new(lag, devices.collect(), modules.collect())
        });
    }

    /// The twins `query` reads, taken under the state lock in O(1) (with a query lag, after
    /// applying the changes that are due).
    fn query_source(&self, query: &CompiledQuery) -> QuerySource {
        let modules = query.collection() == Collection::DevicesModules;
        let mut state = self.lock();
        if let Some(docs) = state.lagged_view(modules) {
            return QuerySource::Lagged(docs);
        }
        if modules {
            QuerySource::Modules(state.modules.clone())
        } else {
            QuerySource::Devices(state.devices.snapshot())
        }
    }

    /// One page of a non-aggregate query, resuming after `resume_after`, rendered as the
    /// response body: rows are written from the cached twin documents into one buffer, not
    /// copied into a page of values first. Evaluated over a snapshot, off the state lock;
    /// this can take as long as a full scan, so call it off the async workers.
    pub(crate) fn query_page(
        &self,
        query: &CompiledQuery,
        resume_after: Option<&str>,
        already_returned: u64,
        max_items: usize,
    ) -> RenderedPage {
        let source = self.query_source(query);
        let lower = match resume_after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        // A document changed since the last scan is rendered when the page reaches it (and
        // cached in the entry for everyone), so rows beyond the page are not rendered for it.
        match &source {
            QuerySource::Devices(table) => {
                let rows = table.range(lower).map(|(k, e)| (k, &**e.twin_doc()));
                query.render_page(rows, already_returned, max_items)
            }
            // Keys are the modules' client ids, so paging resumes after the last module.
            QuerySource::Modules(table) => {
                let rows = table.range(lower).map(|(k, e)| (k, &**e.twin_doc()));
                query.render_page(rows, already_returned, max_items)
            }
            QuerySource::Lagged(docs) => {
                query.render_page(lagged_range(docs, lower), already_returned, max_items)
            }
        }
    }

    /// All rows of an aggregate query, over a snapshot, off the state lock (see
    /// [`Hub::query_page`]).
    pub(crate) fn query_aggregate(&self, query: &CompiledQuery) -> Vec<Value> {
        match &self.query_source(query) {
            QuerySource::Devices(table) => query.aggregate(table.values().map(|e| &**e.twin_doc())),
            QuerySource::Modules(table) => query.aggregate(table.values().map(|e| &**e.twin_doc())),
            QuerySource::Lagged(docs) => {
                query.aggregate(lagged_range(docs, Bound::Unbounded).map(|(_, doc)| doc))
            }
        }
    }
}
