//! `--metrics-listen ADDR`: `GET /metrics` answers the fleet's counters in the Prometheus text
//! format, as emqtt-bench and HiveMQ Swarm offer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::metrics::Metrics;
use crate::error::AppError;

/// Binds `addr` and serves until the runtime ends; returns the bound address (port 0 picks one).
///
/// # Errors
/// [`AppError::FleetUsage`] when the address cannot be bound.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<SocketAddr, AppError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| AppError::FleetUsage(format!("--metrics-listen {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| AppError::FleetUsage(format!("--metrics-listen {addr}: {e}")))?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("metrics endpoint stopped: {e}");
        }
    });
    Ok(bound)
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.prometheus(),
    )
}
