//! One simulated device, as one async function a fleet can run many times on one runtime:
//! connect, read the twin, report, then (unless `--once`) send telemetry, apply desired
//! `telemetryConfig`, print desired updates, answer direct methods (with the built-in
//! `setTelemetryInterval`) and print and complete cloud-to-device messages, until the stop
//! signal, `--duration`, `--telemetry-count` or a terminal error; then disconnect cleanly.
//!
//! Output goes to a shared [`Printer`], measurements to a shared [`DeviceMetrics`]; the stop
//! signal is a `watch` channel every device of a fleet can hold a receiver of.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use iothub_device::{
    C2dMessages, ClientOptions, ConnectionEvent, DeviceClient, DeviceConnectionString,
    Error as DeviceError, MethodRequest, MethodRequests, ReportedAck,
};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::config::Config;
use crate::error::AppError;
use crate::methods::{answer, answer_with, request_payload, CannedAnswer, MethodResponses};
use crate::metrics::{error_kind, DeviceMetrics, Operation};
use crate::output::{Printer, StopReason};
use crate::telemetry::desired::{
    check_interval, desired_telemetry_config, parse_interval, reported_telemetry_config,
};
use crate::telemetry::{Telemetry, TelemetryOutcome, TelemetrySettings, TelemetryTotals};

/// The built-in direct method that changes the telemetry interval (payload: seconds).
pub const SET_TELEMETRY_INTERVAL: &str = "setTelemetryInterval";

/// The stop signal: `Some(reason)` once the run should end. A device whose sender is dropped
/// never stops on it.
pub type Stop = watch::Receiver<Option<StopReason>>;

/// What every device of a run does; one of these can be shared by a whole fleet.
#[derive(Debug, Clone)]
pub struct DeviceBehaviour {
    /// The reported properties to send after the twin GET.
    pub patch: Value,
    /// `--once`: stop after the acknowledgement.
    pub once: bool,
    /// `--duration`: listen this long after reporting.
    pub duration: Option<Duration>,
    /// `--method-response`: canned direct-method answers.
    pub methods: MethodResponses,
    /// `--telemetry` and the flags beside it.
    pub telemetry: Option<Arc<TelemetrySettings>>,
}

impl DeviceBehaviour {
    /// The behaviour part of a validated command line.
    pub fn from_config(config: &Config) -> DeviceBehaviour {
        DeviceBehaviour {
            patch: config.patch.clone(),
            once: config.once,
            duration: config.duration,
            methods: config.methods.clone(),
            telemetry: config.telemetry.clone(),
        }
    }
}

/// How one device's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceOutcome {
    /// Why it stopped.
    pub reason: StopReason,
    /// Its telemetry totals, when it sent telemetry.
    pub telemetry: Option<TelemetryTotals>,
}

/// Runs one device. Prints everything but the final `stopped` event (the caller prints it,
/// once, for a fleet).
///
/// # Errors
/// The device client's error; [`AppError::Other`] when the stop signal came before the hub
/// acknowledged the report, or when `--telemetry-count` ended with messages lost.
pub async fn run_device(
    conn: DeviceConnectionString,
    options: ClientOptions,
    behaviour: &DeviceBehaviour,
    printer: &Printer,
    metrics: &dyn DeviceMetrics,
    mut stop: Stop,
) -> Result<DeviceOutcome, AppError> {
    let transport = options.transport.as_str();
    let started = Instant::now();
    let client = tokio::select! {
        client = DeviceClient::connect(conn, options) => match client {
            Ok(client) => client,
            Err(e) => {
                metrics.failure(Operation::Connect, &error_kind(&e));
                return Err(e.into());
            }
        },
        _ = stopped(&mut stop) => return Err(interrupted()),
    };
    metrics.latency(Operation::Connect, started.elapsed());
    // Subscribe before the first request so nothing pushed from now on is missed.
    let mut desired = client.desired_updates();
    let mut events = client.connection_events();
    printer.connected(&client, transport);

    let outcome = tokio::select! {
        outcome = listen_and_report(&client, printer, metrics, behaviour) => outcome,
        _ = stopped(&mut stop) => Err(interrupted()),
    };
    let (mut methods, mut c2d, twin_desired) = match outcome {
        Ok(streams) => streams,
        Err(e) => {
            client.disconnect().await;
            return Err(e);
        }
    };
    if behaviour.once {
        client.disconnect().await;
        return Ok(DeviceOutcome {
            reason: StopReason::Once,
            telemetry: None,
        });
    }

    printer.waiting();
    let mut device = Running {
        client: &client,
        printer,
        metrics,
        behaviour,
        telemetry: behaviour.telemetry.clone().map(Telemetry::new),
        reports: FuturesUnordered::new(),
        answered_desired_version: None,
    };
    if let Some((version, properties)) = twin_desired {
        device.apply_desired(&properties, version);
    }
    let deadline = behaviour.duration.map(|d| Instant::now() + d);
    // Calls are answered concurrently; each prints when its answer is acknowledged.
    let mut answering = FuturesUnordered::new();
    let stop = loop {
        let due = device.telemetry.as_ref().and_then(Telemetry::next_due);
        tokio::select! {
            reason = stopped(&mut stop) => break Ok(reason),
            () = sleep_until_opt(deadline) => break Ok(StopReason::Duration),
            () = sleep_until_opt(due) => device.produce(),
            outcome = next_outcome(&mut device.telemetry, metrics) => {
                if device.telemetry_outcome(outcome) {
                    break device.count_outcome();
                }
            }
            Some((context, result)) = device.reports.next(), if !device.reports.is_empty() => {
                device.reported(context, result);
            }
            Some(update) = desired.next() => {
                printer.desired(&update);
                device.apply_desired(&update.properties, update.version);
            }
            Some(request) = next_of(&mut methods) => {
                answering.push(device.answer(request));
            }
            Some(call) = answering.next(), if !answering.is_empty() => {
                match &call.error {
                    None => metrics.latency(Operation::MethodAnswer, call.latency),
                    Some(_) => metrics.failure(Operation::MethodAnswer, "answer_failed"),
                }
                printer.method(&call);
            }
            Some(message) = next_of(&mut c2d) => {
                printer.c2d(&message);
                // Printed, so taken over: complete it (PUBACK), or the hub delivers it again.
                if let Err(e) = message.complete().await {
                    printer.warning(&format!("could not complete a cloud-to-device message: {e}"));
                }
            }
            Some(event) = events.next() => {
                metrics.connection(&event);
                printer.connection(&event);
                if let ConnectionEvent::Closed { error: Some(e) } = event {
                    break Err(AppError::Device(e));
                }
            }
        }
        if let Some(telemetry) = device.telemetry.as_mut() {
            telemetry.dispatch(&client);
        }
    };
    let totals = device.telemetry.as_ref().map(Telemetry::totals);
    drop(device);
    client.disconnect().await;
    Ok(DeviceOutcome {
        reason: stop?,
        telemetry: totals,
    })
}

type ReportFuture =
    Pin<Box<dyn Future<Output = (ReportContext, Result<ReportedAck, DeviceError>)> + Send>>;

/// Why a reported patch was sent, for the line printed once it is acknowledged.
struct ReportContext {
    started: Instant,
    interval: Duration,
    desired_version: u64,
    error: Option<String>,
}

/// The state of a device after its first report.
struct Running<'a> {
    client: &'a DeviceClient,
    printer: &'a Printer,
    metrics: &'a dyn DeviceMetrics,
    behaviour: &'a DeviceBehaviour,
    telemetry: Option<Telemetry>,
    /// `reported.telemetryConfig` patches waiting for their acknowledgement.
    reports: FuturesUnordered<ReportFuture>,
    /// The desired `$version` whose `telemetryConfig` was last answered: a reconnect's full
    /// desired document with the same version is not answered again.
    answered_desired_version: Option<u64>,
}

impl Running<'_> {
    fn produce(&mut self) {
        let Some(telemetry) = self.telemetry.as_mut() else {
            return;
        };
        if let Some(seq) = telemetry.produce(
            self.client.device_id(),
            self.client.module_id(),
            self.metrics,
        ) {
            self.printer.warning(&format!(
                "telemetry message {seq} dropped: {} messages are already waiting for the connection",
                crate::telemetry::MAX_QUEUED_TELEMETRY
            ));
        }
    }

    /// Prints a finished send; true when `--telemetry-count` is done.
    fn telemetry_outcome(&mut self, outcome: TelemetryOutcome) -> bool {
        let Some(telemetry) = self.telemetry.as_ref() else {
            return false;
        };
        match outcome {
            TelemetryOutcome::Acknowledged { seq, latency } => {
                self.printer
                    .telemetry_acknowledged(seq, latency, &telemetry.totals());
            }
            TelemetryOutcome::Retrying { seq, error } => self.printer.warning(&format!(
                "telemetry message {seq} was not acknowledged ({error}); it is queued again"
            )),
            TelemetryOutcome::Rejected { seq, error } => self
                .printer
                .warning(&format!("telemetry message {seq} cannot be sent: {error}")),
        }
        telemetry.finished()
    }

    /// The end of a `--telemetry-count` run: exit 0 only when every message was acknowledged.
    fn count_outcome(&self) -> Result<StopReason, AppError> {
        let totals = self
            .telemetry
            .as_ref()
            .map(Telemetry::totals)
            .unwrap_or_default();
        if totals.acknowledged == totals.produced {
            Ok(StopReason::TelemetryCount)
        } else {
            Err(AppError::Other(format!(
                "{} of {} telemetry messages were acknowledged ({} lost, {} rejected)",
                totals.acknowledged, totals.produced, totals.lost, totals.rejected
            )))
        }
    }

    /// Applies a desired `telemetryConfig` (when telemetry runs) and reports the outcome.
    fn apply_desired(&mut self, properties: &Value, version: u64) {
        let Some(telemetry) = self.telemetry.as_mut() else {
            return;
        };
        let Some(desired) = desired_telemetry_config(properties) else {
            return;
        };
        if self.answered_desired_version == Some(version) {
            return;
        }
        self.answered_desired_version = Some(version);
        let error = match desired.interval {
            Ok(interval) => {
                telemetry.set_interval(interval);
                None
            }
            Err(e) => Some(e),
        };
        let interval = telemetry.interval();
        let patch = reported_telemetry_config(
            interval,
            version,
            desired.config_id.as_ref(),
            error.as_deref(),
        );
        let context = ReportContext {
            started: Instant::now(),
            interval,
            desired_version: version,
            error,
        };
        let client = self.client.clone();
        self.reports.push(Box::pin(async move {
            let result = client.update_reported_acknowledged(&patch).await;
            (context, result)
        }));
    }

    fn reported(&self, context: ReportContext, result: Result<ReportedAck, DeviceError>) {
        match result {
            Ok(_) => {
                self.metrics
                    .latency(Operation::ReportedPatch, context.started.elapsed());
                self.printer.telemetry_config(
                    "desired",
                    context.interval,
                    Some(context.desired_version),
                    context.error.as_deref(),
                );
            }
            Err(e) => {
                self.metrics
                    .failure(Operation::ReportedPatch, &error_kind(&e));
                self.printer.warning(&format!(
                    "could not report telemetryConfig for desired version {}: {e}",
                    context.desired_version
                ));
            }
        }
    }

    /// Answers a call: the built-in `setTelemetryInterval` while telemetry runs (unless
    /// `--method-response` names it), else the canned answers.
    fn answer(
        &mut self,
        request: MethodRequest,
    ) -> impl Future<Output = crate::methods::MethodCall> + Send + 'static {
        let builtin = match self.telemetry.as_mut() {
            Some(telemetry)
                if request.name() == SET_TELEMETRY_INTERVAL
                    && !self.behaviour.methods.has(SET_TELEMETRY_INTERVAL) =>
            {
                let answer = set_telemetry_interval(telemetry, &request_payload(&request));
                if answer.status == 200 {
                    self.printer
                        .telemetry_config("method", telemetry.interval(), None, None);
                }
                Some(answer)
            }
            _ => None,
        };
        let methods = self.behaviour.methods.clone();
        async move {
            match builtin {
                Some(canned) => answer_with(request, canned).await,
                None => answer(request, &methods).await,
            }
        }
    }
}

/// `setTelemetryInterval` with `payload` seconds: 200 and the new interval, or 400 naming
/// what is wrong.
fn set_telemetry_interval(telemetry: &mut Telemetry, payload: &Value) -> CannedAnswer {
    // The quickstart's back end sends a bare number; a string of digits is taken too.
    let seconds = match payload {
        Value::String(text) => text.trim().parse::<f64>().map(|n| json!(n)).ok(),
        Value::Number(_) => Some(payload.clone()),
        _ => None,
    };
    let interval = match seconds {
        Some(seconds) => parse_interval(&seconds).and_then(check_interval),
        None => Err(format!("{payload} is not a number of seconds")),
    };
    match interval {
        Ok(interval) => {
            telemetry.set_interval(interval);
            CannedAnswer {
                status: 200,
                payload: json!({
                    "telemetryInterval": crate::telemetry::desired::format_interval(interval),
                    "seconds": interval.as_secs_f64(),
                }),
            }
        }
        Err(e) => CannedAnswer {
            status: 400,
            payload: json!({
                "message": format!("{SET_TELEMETRY_INTERVAL}: {e}; send a positive number of seconds, e.g. 10"),
            }),
        },
    }
}

/// Subscribes to methods and C2D (not for `--once`, which only reports), then reports.
/// Returns the streams and the twin's desired section with its version.
#[allow(clippy::type_complexity)]
async fn listen_and_report(
    client: &DeviceClient,
    printer: &Printer,
    metrics: &dyn DeviceMetrics,
    behaviour: &DeviceBehaviour,
) -> Result<
    (
        Option<MethodRequests>,
        Option<C2dMessages>,
        Option<(u64, Value)>,
    ),
    AppError,
> {
    let (methods, c2d) = if behaviour.once {
        (None, None)
    } else {
        (
            Some(client.method_requests().await?),
            Some(client.c2d_messages().await?),
        )
    };
    let started = Instant::now();
    let twin = client.get_twin().await.inspect_err(|e| {
        metrics.failure(Operation::TwinGet, &error_kind(e));
    })?;
    metrics.latency(Operation::TwinGet, started.elapsed());
    printer.twin(&twin);
    printer.sending();
    let started = Instant::now();
    let ack = client
        .update_reported_acknowledged(&behaviour.patch)
        .await
        .inspect_err(|e| metrics.failure(Operation::ReportedPatch, &error_kind(e)))?;
    metrics.latency(Operation::ReportedPatch, started.elapsed());
    printer.reported(client.device_id(), ack, &behaviour.patch);
    let desired = twin
        .desired_version()
        .map(|version| (version, twin.desired.clone()));
    Ok((methods, c2d, desired))
}

fn interrupted() -> AppError {
    AppError::Other("interrupted before the hub acknowledged the reported patch".into())
}

/// The reason once the stop signal is set; never ready when its sender is gone.
async fn stopped(stop: &mut Stop) -> StopReason {
    let reason = match stop.wait_for(Option::is_some).await {
        Ok(reason) => *reason,
        Err(_) => None,
    };
    match reason {
        Some(reason) => reason,
        None => std::future::pending().await,
    }
}

async fn next_outcome(
    telemetry: &mut Option<Telemetry>,
    metrics: &dyn DeviceMetrics,
) -> TelemetryOutcome {
    match telemetry {
        Some(telemetry) => telemetry.next_outcome(metrics).await,
        None => std::future::pending().await,
    }
}

/// The next item of an optional stream; never ready without one.
async fn next_of<S: futures_util::Stream + Unpin>(stream: &mut Option<S>) -> Option<S::Item> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
