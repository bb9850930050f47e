//! The fleet's counters and latency histograms, shared by every device task, read by the
//! progress line, the summary and the Prometheus endpoint. Atomics for counts; one mutex each
//! for the error map and the histograms, taken once per operation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The operations whose latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `DeviceClient::connect`: gate, TCP, TLS, CONNECT to CONNACK.
    Connect,
    /// Twin GET to its answer.
    TwinGet,
    /// Reported patch to the hub's acknowledgement.
    ReportedPatch,
    /// Telemetry message to PUBACK.
    TelemetryAck,
    /// Method request's arrival to the PUBACK of its answer.
    MethodAnswer,
}

const OPS: [Op; 5] = [
    Op::Connect,
    Op::TwinGet,
    Op::ReportedPatch,
    Op::TelemetryAck,
    Op::MethodAnswer,
];

impl Op {
    fn index(self) -> usize {
        self as usize
    }

    /// The name in the summary and the Prometheus label.
    pub fn name(self) -> &'static str {
        match self {
            Op::Connect => "connect",
            Op::TwinGet => "twinGet",
            Op::ReportedPatch => "reportedPatch",
            Op::TelemetryAck => "telemetryAck",
            Op::MethodAnswer => "methodAnswer",
        }
    }
}

/// Counters of one fleet run.
pub struct Metrics {
    started: Instant,
    target: u64,
    connected: AtomicI64,
    /// Woken whenever the connected count reaches the target.
    all_connected: Notify,
    pub connects: AtomicU64,
    pub reconnects: AtomicU64,
    pub disconnects: AtomicU64,
    pub twin_gets: AtomicU64,
    pub reported_acked: AtomicU64,
    pub desired_updates: AtomicU64,
    pub method_calls: AtomicU64,
    pub telemetry_sent: AtomicU64,
    pub telemetry_acked: AtomicU64,
    pub devices_failed: AtomicU64,
    /// Milliseconds from the start to the first and the last reconnect.
    first_reconnect_ms: AtomicU64,
    last_reconnect_ms: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    latencies: Mutex<Vec<Histogram<u64>>>,
}

/// Latencies are recorded in microseconds, up to an hour, three significant digits.
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

impl Metrics {
    /// Counters for a fleet of `target` devices, timed from now.
    pub fn new(target: usize) -> Metrics {
        let histograms = OPS
            .iter()
            .filter_map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).ok())
            .collect();
        Metrics {
            started: Instant::now(),
            target: target as u64,
            connected: AtomicI64::new(0),
            all_connected: Notify::new(),
            connects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            twin_gets: AtomicU64::new(0),
            reported_acked: AtomicU64::new(0),
            desired_updates: AtomicU64::new(0),
            method_calls: AtomicU64::new(0),
            telemetry_sent: AtomicU64::new(0),
            telemetry_acked: AtomicU64::new(0),
            devices_failed: AtomicU64::new(0),
            first_reconnect_ms: AtomicU64::new(u64::MAX),
            last_reconnect_ms: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            latencies: Mutex::new(histograms),
        }
    }

    /// Devices in the fleet.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Devices connected right now.
    pub fn connected(&self) -> u64 {
        self.connected.load(Relaxed).max(0) as u64
    }

    /// A device's connection is up (first connect or reconnect).
    pub fn online(&self) {
        let now = self.connected.fetch_add(1, Relaxed) + 1;
        if now as u64 == self.target {
            self.all_connected.notify_one();
        }
    }

    /// A device's connection went down.
    pub fn offline(&self) {
        self.connected.fetch_sub(1, Relaxed);
    }

    /// Waits until the connected count reaches the target (again).
    pub async fn wait_all_connected(&self) {
        self.all_connected.notified().await;
    }

    /// A reconnect succeeded now.
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Relaxed);
        let at = self.started.elapsed().as_millis() as u64;
        self.first_reconnect_ms.fetch_min(at, Relaxed);
        self.last_reconnect_ms.fetch_max(at, Relaxed);
    }

    /// Counts one error of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors_by(kind, 1);
    }

    /// Counts `n` errors of `kind`.
    pub fn errors_by(&self, kind: &str, n: u64) {
        if n == 0 {
            return;
        }
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(kind.to_owned()).or_default() += n;
        }
    }

    /// Records how long `op` took.
    pub fn record(&self, op: Op, took: Duration) {
        let micros = (took.as_micros() as u64).clamp(1, MAX_LATENCY_MICROS);
        if let Ok(mut latencies) = self.latencies.lock() {
            if let Some(h) = latencies.get_mut(op.index()) {
                let _ = h.record(micros);
            }
        }
    }

    /// Errors by kind so far.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// All errors so far.
    pub fn error_count(&self) -> u64 {
        self.errors().values().sum()
    }

    /// `count`, `p50`, `p95`, `p99`, `max` in milliseconds for each operation.
    pub fn latency_json(&self) -> Value {
        let mut map = Map::new();
        if let Ok(latencies) = self.latencies.lock() {
            for (op, h) in OPS.iter().zip(latencies.iter()) {
                let ms = |micros: u64| micros as f64 / 1000.0;
                let entry = if h.is_empty() {
                    json!({"count": 0})
                } else {
                    json!({
                        "count": h.len(),
                        "p50": ms(h.value_at_quantile(0.50)),
                        "p95": ms(h.value_at_quantile(0.95)),
                        "p99": ms(h.value_at_quantile(0.99)),
                        "max": ms(h.max()),
                    })
                };
                map.insert(op.name().to_owned(), entry);
            }
        }
        Value::Object(map)
    }

    /// The counts of the summary document (without latencies and cleanup).
    pub fn counts_json(&self) -> Value {
        let first = self.first_reconnect_ms.load(Relaxed);
        let reconnect_window = (first != u64::MAX)
            .then(|| json!({"firstMs": first, "lastMs": self.last_reconnect_ms.load(Relaxed)}));
        json!({
            "devices": {
                "target": self.target,
                "connected": self.connected(),
                "failed": self.devices_failed.load(Relaxed),
            },
            "connects": self.connects.load(Relaxed),
            "reconnects": self.reconnects.load(Relaxed),
            "reconnectWindow": reconnect_window,
            "disconnects": self.disconnects.load(Relaxed),
            "twinGets": self.twin_gets.load(Relaxed),
            "reportedAcked": self.reported_acked.load(Relaxed),
            "desiredUpdates": self.desired_updates.load(Relaxed),
            "methodCalls": self.method_calls.load(Relaxed),
            "telemetry": {
                "sent": self.telemetry_sent.load(Relaxed),
                "acked": self.telemetry_acked.load(Relaxed),
            },
            "errors": self.errors(),
        })
    }

    /// The same counters in the Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP report_connectivity_{name} {help}");
            let _ = writeln!(out, "# TYPE report_connectivity_{name} {kind}");
            let _ = writeln!(out, "report_connectivity_{name} {value}");
        };
        metric(
            "devices_target",
            "gauge",
            "Devices in the fleet.",
            self.target,
        );
        metric(
            "devices_connected",
            "gauge",
            "Devices connected now.",
            self.connected(),
        );
        metric(
            "devices_failed",
            "gauge",
            "Devices that stopped with an error.",
            self.devices_failed.load(Relaxed),
        );
        metric(
            "connects_total",
            "counter",
            "First connections made.",
            self.connects.load(Relaxed),
        );
        metric(
            "reconnects_total",
            "counter",
            "Reconnections after a lost connection or a token renewal.",
            self.reconnects.load(Relaxed),
        );
        metric(
            "disconnects_total",
            "counter",
            "Connections lost or renewed.",
            self.disconnects.load(Relaxed),
        );
        metric(
            "twin_gets_total",
            "counter",
            "Twin GETs answered.",
            self.twin_gets.load(Relaxed),
        );
        metric(
            "reported_acked_total",
            "counter",
            "Reported patches the hub acknowledged.",
            self.reported_acked.load(Relaxed),
        );
        metric(
            "desired_updates_total",
            "counter",
            "Desired-property updates received.",
            self.desired_updates.load(Relaxed),
        );
        metric(
            "method_calls_total",
            "counter",
            "Direct-method calls answered.",
            self.method_calls.load(Relaxed),
        );
        metric(
            "telemetry_sent_total",
            "counter",
            "Telemetry messages sent.",
            self.telemetry_sent.load(Relaxed),
        );
        metric(
            "telemetry_acked_total",
            "counter",
            "Telemetry messages acknowledged (PUBACK).",
            self.telemetry_acked.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP report_connectivity_errors_total Errors by kind."
        );
        let _ = writeln!(out, "# TYPE report_connectivity_errors_total counter");
        for (kind, n) in self.errors() {
            let _ = writeln!(
                out,
                "report_connectivity_errors_total{{kind=\"{kind}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP report_connectivity_latency_seconds Operation latency."
        );
        let _ = writeln!(out, "# TYPE report_connectivity_latency_seconds summary");
        if let Ok(latencies) = self.latencies.lock() {
            for (op, h) in OPS.iter().zip(latencies.iter()) {
                let name = op.name();
                for q in [0.5, 0.95, 0.99] {
                    let seconds = h.value_at_quantile(q) as f64 / 1e6;
                    let _ = writeln!(
                        out,
                        "report_connectivity_latency_seconds{{op=\"{name}\",quantile=\"{q}\"}} {seconds}"
                    );
                }
                let _ = writeln!(
                    out,
                    "report_connectivity_latency_seconds_count{{op=\"{name}\"}} {}",
                    h.len()
                );
            }
        }
        out
    }
}
