//! The tutorial's steps against the hub, reported through a [`Reporter`]: statistics, device
//! list, twin update, queries (optionally polled until a device shows up).

use std::time::{Duration, Instant};

use iothub_service::{ItemType, QueryPager, ServiceClient};
use serde_json::Value;

use crate::config::{Config, QuerySpec, WaitSpec};
use crate::error::AppError;
use crate::output::{row_device_id, QueryTotals, Reporter, WaitOutcome};

/// Runs every step of `config` in order.
///
/// # Errors
/// The first failing step's error; steps already reported stay reported.
pub async fn run(
    config: &Config,
    client: &ServiceClient,
    out: &mut dyn Reporter,
) -> Result<(), AppError> {
    tracing::info!(hub = client.host(), "reading registry statistics");
    let stats = client.registry_statistics().await?;
    out.statistics(&stats)?;

    if config.list_devices {
        tracing::info!("listing devices");
        list_devices(config, client, out).await?;
    }

    if let Some(update) = &config.update {
        tracing::info!(device = %update.device_id, "updating twin");
        let twin = client
            .update_twin(&update.device_id, &update.patch, &update.if_match)
            .await
            .map_err(|error| AppError::Service {
                error,
                etag: update.etag.clone(),
            })?;
        out.twin_updated(&twin)?;
    }

    match &config.wait {
        None => {
            for query in &config.queries {
                stream_query(config, client, query, out).await?;
            }
        }
        Some(wait) => {
            let (results, outcome) = poll_until_present(config, client, wait).await?;
            for result in &results {
                out.query_begin(&result.spec)?;
                out.query_rows(&result.item_type, &result.rows)?;
                out.query_end(result.totals)?;
            }
            out.waited(&outcome)?;
        }
    }
    out.finish()?;
    Ok(())
}

fn pager(config: &Config, client: &ServiceClient, sql: &str) -> QueryPager {
    let mut pager = client.query(sql);
    if let Some(size) = config.page_size {
        pager = pager.page_size(size);
    }
    if let Some(top) = config.top {
        pager = pager.limit(top);
    }
    pager
}

async fn list_devices(
    config: &Config,
    client: &ServiceClient,
    out: &mut dyn Reporter,
) -> Result<(), AppError> {
    let mut pager = client.list_devices();
    if let Some(size) = config.page_size {
        pager = pager.page_size(size);
    }
    if let Some(top) = config.top {
        pager = pager.limit(top);
    }
    out.devices_begin()?;
    while let Some(page) = pager.next_page().await? {
        out.devices(&page)?;
    }
    out.devices_end()?;
    Ok(())
}

/// Prints a query's rows page by page as they arrive.
async fn stream_query(
    config: &Config,
    client: &ServiceClient,
    query: &QuerySpec,
    out: &mut dyn Reporter,
) -> Result<(), AppError> {
    tracing::info!(query = %query.sql, "running query");
    let mut pager = pager(config, client, &query.sql);
    out.query_begin(query)?;
    while let Some(page) = pager.next_page().await? {
        out.query_rows(&page.item_type, &page.items)?;
    }
    out.query_end(totals(&pager))?;
    Ok(())
}

fn totals(pager: &QueryPager) -> QueryTotals {
    QueryTotals {
        rows: pager.rows_returned(),
        pages: pager.pages_fetched(),
        requests: pager.requests_sent(),
    }
}

/// One query's complete result, held while `--wait` decides whether it is final.
struct Collected {
    spec: QuerySpec,
    item_type: ItemType,
    rows: Vec<Value>,
    totals: QueryTotals,
}

impl Collected {
    fn contains(&self, device_id: &str) -> bool {
        self.rows
            .iter()
            .any(|r| row_device_id(r) == Some(device_id))
    }
}

async fn collect_query(
    config: &Config,
    client: &ServiceClient,
    query: &QuerySpec,
) -> Result<Collected, AppError> {
    let mut pager = pager(config, client, &query.sql);
    let mut rows = Vec::new();
    let mut item_type = ItemType::Unknown;
    while let Some(page) = pager.next_page().await? {
        item_type = page.item_type;
        rows.extend(page.items);
    }
    Ok(Collected {
        spec: query.clone(),
        item_type,
        rows,
        totals: totals(&pager),
    })
}

/// Re-runs all queries until each result contains the awaited device, or the time is up.
/// The hub's query index is eventually consistent, so a device just tagged may be missing
/// from results for a while; results are only reported once they are final.
async fn poll_until_present(
    config: &Config,
    client: &ServiceClient,
    wait: &WaitSpec,
) -> Result<(Vec<Collected>, WaitOutcome), AppError> {
    let started = Instant::now();
    let deadline = started + wait.timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let mut results = Vec::with_capacity(config.queries.len());
        for query in &config.queries {
            results.push(collect_query(config, client, query).await?);
        }
        let missing: Vec<String> = results
            .iter()
            .filter(|r| !r.contains(&wait.device_id))
            .map(|r| r.spec.heading.clone())
            .collect();
        if missing.is_empty() {
            let outcome = WaitOutcome {
                device_id: wait.device_id.clone(),
                attempts,
                elapsed: started.elapsed(),
            };
            return Ok((results, outcome));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(AppError::WaitTimedOut {
                device: wait.device_id.clone(),
                waited: round_to_millis(started.elapsed()),
                missing,
            });
        }
        tracing::info!(
            device = %wait.device_id,
            attempt = attempts,
            missing = ?missing,
            "device not in every result yet; polling again"
        );
        tokio::time::sleep(wait.poll_interval.min(deadline - now)).await;
    }
}

fn round_to_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
