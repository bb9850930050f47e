//! One simulated device of the fleet: what the single device does (connect, twin GET, report,
//! then answer methods and take desired updates until told to stop), counted into the shared
//! [`Metrics`] instead of printed. Its state is the client handle, its streams and a few flags.

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use iothub_device::{
    ClientOptions, ConnectionEvent, DeviceClient, DeviceConnectionString, DisconnectReason,
    Error as DeviceError,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use super::metrics::{Metrics, Op};
use crate::methods::{answer, MethodResponses};

/// What every device shares: settings and the metrics sink.
pub struct FleetShared {
    pub options: ClientOptions,
    pub patch: Value,
    pub methods: MethodResponses,
    pub once: bool,
    pub metrics: Arc<Metrics>,
}

/// How a device's run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// Reported (and, unless `--once`, ran until stopped).
    Done,
    /// Stopped before it could report.
    Stopped,
    /// Failed with an error of this exit code.
    Failed(u8),
}

/// The error kind in the summary's `errors` map.
pub fn error_kind(e: &DeviceError) -> String {
    match e {
        DeviceError::AuthenticationRejected(_) => "authRejected".into(),
        DeviceError::Refused(_) => "connackRefused".into(),
        DeviceError::Unreachable { .. } => "unreachable".into(),
        DeviceError::Timeout(_) => "timeout".into(),
        DeviceError::Status { status: 429, .. } => "throttled".into(),
        DeviceError::Status { status, .. } => format!("status{status}"),
        DeviceError::UntrustedCertificate(_) | DeviceError::Tls(_) => "tls".into(),
        DeviceError::Closed | DeviceError::ConnectionLost => "closed".into(),
        _ => "other".into(),
    }
}

/// Runs one device from `start_at` until it is done or `stop` turns true.
pub async fn run_device(
    conn: DeviceConnectionString,
    shared: Arc<FleetShared>,
    start_at: Instant,
    mut stop: watch::Receiver<bool>,
) -> DeviceOutcome {
    let metrics = &shared.metrics;
    tokio::select! {
        () = sleep_until(start_at) => {}
        () = stopped(&mut stop) => return DeviceOutcome::Stopped,
    }
    let began = Instant::now();
    let client = tokio::select! {
        client = DeviceClient::connect(conn, shared.options.clone()) => client,
        () = stopped(&mut stop) => return DeviceOutcome::Stopped,
    };
    let client = match client {
        Ok(client) => client,
        Err(e) => return failed(metrics, &e),
    };
    metrics.record(Op::Connect, began.elapsed());
    metrics
        .connects
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics.online();
    // Subscribed now, so a reconnect during the twin GET or the report is seen.
    let events = client.connection_events();
    let mut session = Session {
        events,
        client,
        metrics: Arc::clone(metrics),
        online: true,
        throttled_seen: 0,
    };
    let outcome = tokio::select! {
        outcome = session.live(&shared) => outcome,
        () = stopped(&mut stop) => Ok(DeviceOutcome::Stopped),
    };
    let outcome = match outcome {
        Ok(DeviceOutcome::Done) if !shared.once => {
            tokio::select! {
                outcome = session.serve(&shared.methods) => outcome,
                () = stopped(&mut stop) => Ok(DeviceOutcome::Done),
            }
        }
        other => other,
    };
    session.count_throttled();
    session.client.disconnect().await;
    if session.online {
        metrics.offline();
    }
    match outcome {
        Ok(outcome) => outcome,
        Err(e) => failed(metrics, &e),
    }
}

struct Session {
    client: DeviceClient,
    events: iothub_device::ConnectionEvents,
    metrics: Arc<Metrics>,
    online: bool,
    /// `throttled_answers()` already added to the metrics.
    throttled_seen: u64,
}

impl Session {
    /// Twin GET and the reported patch, each timed.
    async fn live(&mut self, shared: &FleetShared) -> Result<DeviceOutcome, DeviceError> {
        use std::sync::atomic::Ordering::Relaxed;
        let began = Instant::now();
        let result = self.client.get_twin().await;
        self.count_throttled();
        result?;
        self.metrics.record(Op::TwinGet, began.elapsed());
        self.metrics.twin_gets.fetch_add(1, Relaxed);
        let began = Instant::now();
        let result = self
            .client
            .update_reported_acknowledged(&shared.patch)
            .await;
        self.count_throttled();
        result?;
        self.metrics.record(Op::ReportedPatch, began.elapsed());
        self.metrics.reported_acked.fetch_add(1, Relaxed);
        Ok(DeviceOutcome::Done)
    }

    /// Answers methods, counts desired updates and follows the connection until stopped or
    /// the client stops for good.
    async fn serve(&mut self, responses: &MethodResponses) -> Result<DeviceOutcome, DeviceError> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut desired = self.client.desired_updates();
        let mut methods = self.client.method_requests().await?;
        let mut answering = FuturesUnordered::new();
        loop {
            tokio::select! {
                Some(_update) = desired.next() => {
                    self.metrics.desired_updates.fetch_add(1, Relaxed);
                }
                Some(request) = methods.next() => answering.push(answer(request, responses)),
                Some(call) = answering.next(), if !answering.is_empty() => {
                    match &call.error {
                        None => {
                            self.metrics.record(Op::MethodAnswer, call.latency);
                            self.metrics.method_calls.fetch_add(1, Relaxed);
                        }
                        Some(_) => self.metrics.error("methodAnswer"),
                    }
                }
                event = self.events.next() => match event {
                    Some(ConnectionEvent::Connected { .. }) => {
                        if !self.online {
                            self.online = true;
                            self.metrics.online();
                        }
                        self.metrics.reconnected();
                    }
                    Some(ConnectionEvent::Disconnected { reason }) => {
                        if !matches!(reason, DisconnectReason::ClientClosed) {
                            self.metrics.disconnects.fetch_add(1, Relaxed);
                        }
                        if self.online {
                            self.online = false;
                            self.metrics.offline();
                        }
                    }
                    Some(ConnectionEvent::Closed { error: Some(e) }) => return Err(e),
                    Some(ConnectionEvent::Closed { error: None }) | None => {
                        return Ok(DeviceOutcome::Done)
                    }
                    Some(_) => {}
                },
            }
        }
    }

    /// Adds the throttled answers the client retried since the last look.
    fn count_throttled(&mut self) {
        let now = self.client.throttled_answers();
        self.metrics
            .errors_by("throttled", now.saturating_sub(self.throttled_seen));
        self.throttled_seen = now;
    }
}

fn failed(metrics: &Metrics, e: &DeviceError) -> DeviceOutcome {
    metrics.error(&error_kind(e));
    metrics
        .devices_failed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    DeviceOutcome::Failed(crate::error::AppError::Device(e.clone()).exit_code())
}

/// Resolves once `stop` is (or becomes) true; never if the sender is gone without saying so.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
