//! Rendering of run events: the tutorial's text (stdout), or one JSON object per line.
//! Connection troubles go to stderr in text mode so stdout stays the tutorial's transcript.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use iothub_device::{
    C2dMessage, ConnectionEvent, DesiredUpdate, DesiredUpdateKind, DeviceClient, DisconnectReason,
    ReportedAck, SystemProperties, Twin,
};
use serde_json::{json, Map, Value};

use crate::cli::Format;
use crate::methods::MethodCall;
use crate::telemetry::desired::format_interval;
use crate::telemetry::TelemetryTotals;

/// Why the run ended (the `stopped` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Once,
    Duration,
    CtrlC,
    Sigterm,
    /// `--telemetry-count` messages were all acknowledged.
    TelemetryCount,
}

impl StopReason {
    fn as_str(self) -> &'static str {
        match self {
            StopReason::Once => "once",
            StopReason::Duration => "duration",
            StopReason::CtrlC => "ctrl-c",
            StopReason::Sigterm => "sigterm",
            StopReason::TelemetryCount => "telemetry-count",
        }
    }
}

pub struct Printer {
    format: Format,
    /// `--once`: JSON mode prints only the acknowledgement, as one document.
    once: bool,
    /// The last disconnect was a token renewal: the reconnect that follows is routine too.
    renewing: AtomicBool,
}

impl Printer {
    pub fn new(format: Format, once: bool) -> Printer {
        Printer {
            format,
            once,
            renewing: AtomicBool::new(false),
        }
    }

    pub fn connected(&self, client: &DeviceClient, transport: &str) {
        let (device_id, endpoint) = (client.device_id(), client.endpoint());
        match self.format {
            Format::Text => match client.module_id() {
                Some(module) => self.text(&format!(
                    "Connected to {endpoint} as module {device_id}/{module}"
                )),
                None => self.text(&format!("Connected to {endpoint} as device {device_id}")),
            },
            Format::Json => {
                let mut event = json!({
                    "event": "connected",
                    "deviceId": device_id,
                    "endpoint": endpoint,
                    "transport": transport,
                    "sessionPresent": client.session_present(),
                });
                if let Some(module) = client.module_id() {
                    event["moduleId"] = json!(module);
                }
                self.event(event);
            }
        }
    }

    pub fn twin(&self, twin: &Twin) {
        match self.format {
            Format::Text => self.twin_callback("COMPLETE", &twin.to_json()),
            Format::Json => self.event(json!({
                "event": "twin",
                "desiredVersion": twin.desired_version(),
                "reportedVersion": twin.reported_version(),
                "twin": twin.to_json(),
            })),
        }
    }

    pub fn sending(&self) {
        if self.format == Format::Text {
            self.text("Sending data as reported property...");
        }
    }

    pub fn reported(&self, device_id: &str, ack: ReportedAck, patch: &Value) {
        let ReportedAck { status, version } = ack;
        match self.format {
            Format::Text => self.text(&format!(
                "\nConfirmation for reported state called with:\n    status_code: {status}\n    version: {version}"
            )),
            Format::Json => self.write_json(&json!({
                "event": "reported", "deviceId": device_id, "status": status, "version": version, "patch": patch
            })),
        }
    }

    pub fn waiting(&self) {
        if self.format == Format::Text {
            self.text("Press Ctrl-C to exit");
        }
    }

    pub fn desired(&self, update: &DesiredUpdate) {
        match self.format {
            // The C/Python SDKs' DEVICE_TWIN_UPDATE_STATE: COMPLETE for a whole document.
            Format::Text => self.twin_callback(
                match update.kind {
                    DesiredUpdateKind::Patch => "PARTIAL",
                    DesiredUpdateKind::Full => "COMPLETE",
                },
                &update.properties,
            ),
            Format::Json => self.event(json!({
                "event": "desired",
                "kind": match update.kind { DesiredUpdateKind::Patch => "patch", DesiredUpdateKind::Full => "full" },
                "version": update.version,
                "properties": update.properties,
            })),
        }
    }

    pub fn connection(&self, event: &ConnectionEvent) {
        let (json, text) = match event {
            ConnectionEvent::Connected {
                session_present,
                token_expires_at,
            } => (
                json!({"event": "reconnected", "sessionPresent": session_present, "tokenExpiresAt": token_expires_at}),
                format!("Reconnected (session present: {session_present})"),
            ),
            ConnectionEvent::Disconnected { reason } => {
                let (name, detail) = match reason {
                    DisconnectReason::TokenRenewal => ("token_renewal", None),
                    DisconnectReason::ConnectionLost(d) => ("connection_lost", Some(d.clone())),
                    DisconnectReason::ClientClosed => ("client_closed", None),
                    _ => ("other", None),
                };
                let mut j = json!({"event": "disconnected", "reason": name});
                if let Some(d) = &detail {
                    j["detail"] = json!(d);
                }
                let text = match (reason, &detail) {
                    (DisconnectReason::TokenRenewal, _) => {
                        "Reconnecting to renew the SAS token".to_owned()
                    }
                    (_, Some(d)) => format!("Connection lost: {d}"),
                    _ => format!("Disconnected ({name})"),
                };
                (j, text)
            }
            ConnectionEvent::Reconnecting { attempt, delay } => (
                json!({"event": "reconnecting", "attempt": attempt, "delayMs": delay.as_millis() as u64}),
                format!(
                    "Reconnecting in {:.1} s (attempt {attempt})",
                    delay.as_secs_f64()
                ),
            ),
            ConnectionEvent::Closed { error } => (
                json!({"event": "closed", "error": error.as_ref().map(ToString::to_string)}),
                match error {
                    Some(e) => format!("Connection closed: {e}"),
                    None => "Connection closed".to_owned(),
                },
            ),
            _ => return,
        };
        // Token renewals (hourly by default) are routine: text mode stays quiet about them and
        // the reconnect that follows; -v shows the log lines.
        let routine = match event {
            ConnectionEvent::Disconnected { reason } => {
                let renewal = matches!(reason, DisconnectReason::TokenRenewal);
                self.renewing.store(renewal, Ordering::Relaxed);
                renewal || matches!(reason, DisconnectReason::ClientClosed)
            }
            ConnectionEvent::Connected { .. } => self.renewing.swap(false, Ordering::Relaxed),
            ConnectionEvent::Closed { error } => error.is_none(),
            _ => false,
        };
        match self.format {
            Format::Text if !routine => eprintln!("{text}"),
            Format::Text => {}
            Format::Json => self.event(json),
        }
    }

    /// A direct-method call and how it was answered.
    pub fn method(&self, call: &MethodCall) {
        let latency_ms = call.latency.as_millis() as u64;
        match self.format {
            Format::Text => {
                let outcome = match &call.error {
                    None => format!("answered {} in {latency_ms} ms", call.status),
                    Some(e) => format!(
                        "the answer {} failed after {latency_ms} ms: {e}",
                        call.status
                    ),
                };
                self.text(&format!(
                    "Method '{}' called with payload {}: {outcome}",
                    call.name, call.payload
                ));
            }
            Format::Json => {
                let mut event = json!({
                    "event": "method",
                    "name": call.name,
                    "payload": call.payload,
                    "status": call.status,
                    "response": call.response,
                    "latencyMs": latency_ms,
                });
                if let Some(e) = &call.error {
                    event["error"] = json!(e);
                }
                self.event(event);
            }
        }
    }

    /// A received cloud-to-device message.
    pub fn c2d(&self, message: &C2dMessage) {
        let body = String::from_utf8_lossy(&message.body);
        let application: Map<String, Value> = message
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let properties = json!({
            "system": system_properties(&message.system),
            "application": application,
        });
        match self.format {
            Format::Text => self.text(&format!(
                "\nC2D message received:\n    body: {body}\n    properties: {properties}"
            )),
            Format::Json => self.event(json!({
                "event": "c2d",
                "body": body,
                "properties": properties,
                "redelivered": message.redelivered,
            })),
        }
    }

    /// Something went wrong that does not end the run (stderr in both formats).
    pub fn warning(&self, text: &str) {
        eprintln!("report-connectivity: warning: {text}");
    }

    pub fn stopped(&self, reason: StopReason) {
        self.stopped_with(reason, None);
    }

    /// The `stopped` event, with the telemetry totals when the device sent telemetry.
    pub fn stopped_with(&self, reason: StopReason, telemetry: Option<TelemetryTotals>) {
        match self.format {
            Format::Text => {
                if let Some(t) = telemetry {
                    self.text(&format!(
                        "Telemetry: {} produced, {} acknowledged, {} lost, {} rejected, {} retried, {} pending",
                        t.produced, t.acknowledged, t.lost, t.rejected, t.retried, t.pending
                    ));
                }
                if reason != StopReason::Once {
                    self.text("IoTHubClient sample stopped");
                }
            }
            Format::Json => {
                let mut event = json!({"event": "stopped", "reason": reason.as_str()});
                if let Some(t) = telemetry {
                    event["telemetry"] = json!({
                        "produced": t.produced,
                        "acknowledged": t.acknowledged,
                        "lost": t.lost,
                        "rejected": t.rejected,
                        "retried": t.retried,
                        "pending": t.pending,
                    });
                }
                self.event(event);
            }
        }
    }

    /// A telemetry message the hub acknowledged.
    pub fn telemetry_acknowledged(&self, seq: u64, latency: Duration, totals: &TelemetryTotals) {
        let latency_ms = latency.as_millis() as u64;
        match self.format {
            Format::Text => self.text(&format!(
                "Telemetry message {seq} acknowledged in {latency_ms} ms"
            )),
            Format::Json => self.event(json!({
                "event": "telemetry",
                "seq": seq,
                "latencyMs": latency_ms,
                "acknowledged": totals.acknowledged,
                "pending": totals.pending,
                "lost": totals.lost,
            })),
        }
    }

    /// The telemetry interval was changed (or a change refused). `source` is `desired` or
    /// `method`; `desired_version` the desired `$version` answered.
    pub fn telemetry_config(
        &self,
        source: &str,
        interval: Duration,
        desired_version: Option<u64>,
        error: Option<&str>,
    ) {
        let frequency = format_interval(interval);
        match self.format {
            Format::Text => self.text(&match error {
                None => format!("Telemetry interval set to {frequency} ({source})"),
                Some(e) => {
                    format!(
                        "Telemetry interval change refused ({source}): {e}; it stays {frequency}"
                    )
                }
            }),
            Format::Json => {
                let mut event = json!({
                    "event": "telemetryConfig",
                    "source": source,
                    "status": if error.is_some() { "Failed" } else { "Success" },
                    "sendFrequency": frequency,
                });
                if let Some(v) = desired_version {
                    event["desiredVersion"] = json!(v);
                }
                if let Some(e) = error {
                    event["error"] = json!(e);
                }
                self.event(event);
            }
        }
    }

    fn twin_callback(&self, status: &str, payload: &Value) {
        self.text(&format!(
            "\nTwin callback called with:\n    updateStatus: {status}\n    payload: {payload}"
        ));
    }

    /// A JSON event line; `--once` keeps JSON output to the single acknowledgement document.
    fn event(&self, value: Value) {
        if !self.once {
            self.write_json(&value);
        }
    }

    fn write_json(&self, value: &Value) {
        self.text(&value.to_string());
    }

    fn text(&self, line: &str) {
        // A closed stdout (e.g. `| head`) must not crash the device; just stop printing.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The system properties that are present, camelCase like the service SDKs name them.
fn system_properties(system: &SystemProperties) -> Map<String, Value> {
    let named = [
        ("messageId", &system.message_id),
        ("correlationId", &system.correlation_id),
        ("userId", &system.user_id),
        ("to", &system.to),
        ("contentType", &system.content_type),
        ("contentEncoding", &system.content_encoding),
        ("expiryTimeUtc", &system.expiry_time_utc),
        ("ack", &system.ack),
    ];
    let mut map: Map<String, Value> = named
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), json!(v))))
        .collect();
    for (k, v) in &system.other {
        map.insert(k.clone(), json!(v));
    }
    map
}
