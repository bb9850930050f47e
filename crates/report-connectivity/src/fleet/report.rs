//! Output of a fleet run, apart from the run: the live progress line (stderr, only on a
//! terminal), the few fleet events (`metrics_listening`, `all_connected`) and the summary, as
//! text or as JSON documents on stdout.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iothub_service::BulkOutcome;
use serde_json::{json, Value};

use super::metrics::Metrics;
use crate::cli::Format;

/// How often the progress line is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// Prints the fleet's events and summary.
pub struct Reporter {
    format: Format,
    progress: ProgressBar,
}

impl Reporter {
    /// A reporter for `-o`; the progress line draws only when stderr is a terminal.
    pub fn new(format: Format, target: u64) -> Reporter {
        let progress = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(target), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} connected  {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Reporter { format, progress }
    }

    /// Redraws the progress line from `metrics` until the returned task is aborted.
    pub fn follow(self: &Arc<Self>, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
        let reporter = Arc::clone(self);
        tokio::spawn(async move {
            if reporter.progress.is_hidden() {
                return;
            }
            let mut tick = tokio::time::interval(PROGRESS_TICK);
            loop {
                tick.tick().await;
                reporter.progress.set_position(metrics.connected());
                reporter.progress.set_message(format!(
                    "reported {}  telemetry sent {} acked {}  reconnects {}  errors {}",
                    metrics.reported_acked.load(Relaxed),
                    metrics.telemetry_sent.load(Relaxed),
                    metrics.telemetry_acked.load(Relaxed),
                    metrics.reconnects.load(Relaxed),
                    metrics.error_count(),
                ));
            }
        })
    }

    /// The Prometheus endpoint is up.
    pub fn metrics_listening(&self, addr: SocketAddr) {
        match self.format {
            Format::Json => self.line(
                &json!({"event": "metrics_listening", "address": addr.to_string()}).to_string(),
            ),
            Format::Text => self.note(&format!("metrics at http://{addr}/metrics")),
        }
    }

    /// Devices were created (`--create-devices`).
    pub fn created(&self, count: usize, took: Duration) {
        match self.format {
            Format::Json => self.line(
                &json!({"event": "created", "devices": count, "elapsedMs": took.as_millis() as u64})
                    .to_string(),
            ),
            Format::Text => self.note(&format!(
                "created {count} devices in {:.1} s",
                took.as_secs_f64()
            )),
        }
    }

    /// Every device is connected (at the start, and again after each recovery).
    pub fn all_connected(&self, metrics: &Metrics) {
        let elapsed = metrics.elapsed();
        match self.format {
            Format::Json => self.line(
                &json!({
                    "event": "all_connected",
                    "devices": metrics.target(),
                    "elapsedMs": elapsed.as_millis() as u64,
                    "reconnects": metrics.reconnects.load(Relaxed),
                })
                .to_string(),
            ),
            Format::Text => self.note(&format!(
                "all {} devices connected after {:.1} s",
                metrics.target(),
                elapsed.as_secs_f64()
            )),
        }
    }

    /// The summary: counts, latencies, errors by kind, and the cleanup.
    pub fn summary(
        &self,
        metrics: &Metrics,
        stop: &str,
        connected_at_stop: u64,
        cleanup: Option<&BulkOutcome>,
    ) {
        self.progress.finish_and_clear();
        let mut doc = metrics.counts_json();
        doc["devices"]["connected"] = json!(connected_at_stop);
        doc["elapsedMs"] = json!(metrics.elapsed().as_millis() as u64);
        doc["stopped"] = json!(stop);
        doc["latencyMs"] = metrics.latency_json();
        if let Some(outcome) = cleanup {
            doc["cleanup"] = json!({
                "deleted": outcome.succeeded,
                "failures": outcome.failures.iter().map(|f| json!({
                    "deviceId": f.device_id, "errorCode": f.error_code, "errorStatus": f.error_status,
                })).collect::<Vec<_>>(),
            });
        }
        match self.format {
            Format::Json => {
                let mut event = json!({"event": "summary"});
                if let (Value::Object(e), Value::Object(d)) = (&mut event, doc) {
                    e.extend(d);
                }
                self.line(&event.to_string());
            }
            Format::Text => self.line(&summary_text(&doc)),
        }
    }

    /// A line on stderr that does not tear the progress line.
    fn note(&self, text: &str) {
        self.progress.suspend(|| eprintln!("{text}"));
    }

    fn line(&self, text: &str) {
        self.progress.suspend(|| {
            // A closed stdout must not crash the run.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        });
    }
}

fn summary_text(doc: &Value) -> String {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut out = format!(
        "Fleet summary: {} devices, {} connected when stopped, {} failed, {:.1} s ({})\n",
        n(&doc["devices"]["target"]),
        n(&doc["devices"]["connected"]),
        n(&doc["devices"]["failed"]),
        n(&doc["elapsedMs"]) as f64 / 1000.0,
        doc["stopped"].as_str().unwrap_or(""),
    );
    out.push_str(&format!(
        "  connects {}  reconnects {}  disconnects {}\n  twin GETs {}  reported patches acked {}  desired updates {}  method calls {}  telemetry sent {} acked {}\n",
        n(&doc["connects"]),
        n(&doc["reconnects"]),
        n(&doc["disconnects"]),
        n(&doc["twinGets"]),
        n(&doc["reportedAcked"]),
        n(&doc["desiredUpdates"]),
        n(&doc["methodCalls"]),
        n(&doc["telemetry"]["sent"]),
        n(&doc["telemetry"]["acked"]),
    ));
    out.push_str("  latency (ms)       count      p50      p95      p99      max\n");
    if let Value::Object(ops) = &doc["latencyMs"] {
        for (op, l) in ops {
            let f = |k: &str| l[k].as_f64().map_or("-".to_owned(), |v| format!("{v:.1}"));
            out.push_str(&format!(
                "  {op:<16} {:>7} {:>8} {:>8} {:>8} {:>8}\n",
                n(&l["count"]),
                f("p50"),
                f("p95"),
                f("p99"),
                f("max")
            ));
        }
    }
    match &doc["errors"] {
        Value::Object(errors) if !errors.is_empty() => {
            let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!("  errors: {}\n", list.join(", ")));
        }
        _ => out.push_str("  errors: none\n"),
    }
    if let Some(deleted) = doc["cleanup"]["deleted"].as_u64() {
        out.push_str(&format!(
            "  cleanup: deleted {deleted} devices, {} failures\n",
            doc["cleanup"]["failures"].as_array().map_or(0, Vec::len)
        ));
    }
    out.trim_end().to_owned()
}
