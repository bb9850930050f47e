//! Telemetry of one simulated device: messages rendered from the `--telemetry` template every
//! interval, queued, sent at QoS 1 and counted once the hub acknowledged them (PUBACK).
//!
//! Messages produced while the connection is down wait in the device's queue (at most
//! [`MAX_QUEUED_TELEMETRY`]; beyond that the new message is dropped and counted as lost) and
//! go out after the reconnect. A send that fails without a PUBACK (its deadline passed while
//! offline) goes back to the front of the queue: at least once, none lost.

pub mod desired;
pub mod template;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use iothub_device::{DeviceClient, Error as DeviceError, Message};
use tokio::time::Instant;

use crate::metrics::{DeviceMetrics, Operation, TelemetryCount};
use template::{RenderContext, Template};

/// Messages a device keeps waiting for the connection (or for a send slot); a message
/// produced while this many wait is dropped and counted as lost.
pub const MAX_QUEUED_TELEMETRY: usize = 1000;

/// Messages one device has handed to its client and not yet seen acknowledged.
pub const MAX_TELEMETRY_IN_FLIGHT: usize = 16;

/// How a device sends telemetry (`--telemetry` and the flags beside it).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// The body template.
    pub template: Template,
    /// The interval until desired properties or a method change it.
    pub interval: Duration,
    /// `--telemetry-count`: stop after this many are acknowledged.
    pub count: Option<u64>,
    /// `--property`: application properties, in order.
    pub properties: Vec<(String, String)>,
    /// `--content-type` (`$.ct`).
    pub content_type: Option<String>,
    /// `--content-encoding` (`$.ce`).
    pub content_encoding: Option<String>,
}

/// The totals, for the `stopped` event and a fleet's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TelemetryTotals {
    /// Rendered and queued.
    pub produced: u64,
    /// Acknowledged by the hub, each once.
    pub acknowledged: u64,
    /// Dropped because [`MAX_QUEUED_TELEMETRY`] messages were waiting.
    pub lost: u64,
    /// Refused by the client as unsendable (a rendered body over the hub's size limit).
    pub rejected: u64,
    /// Sends that failed without a PUBACK and were queued again.
    pub retried: u64,
    /// Waiting in the queue or in flight now.
    pub pending: u64,
}

/// What finished a send.
#[derive(Debug)]
pub enum TelemetryOutcome {
    /// The hub acknowledged message `seq` after `latency`.
    Acknowledged {
        /// The message's sequence number.
        seq: u64,
        /// From its first hand-over to the PUBACK.
        latency: Duration,
    },
    /// Message `seq` got no PUBACK in time; it is queued again.
    Retrying {
        /// The message's sequence number.
        seq: u64,
        /// The client's error.
        error: DeviceError,
    },
    /// Message `seq` can never be sent (too large); it is dropped.
    Rejected {
        /// The message's sequence number.
        seq: u64,
        /// The client's error.
        error: DeviceError,
    },
}

struct Pending {
    seq: u64,
    message: Message,
    first_sent: Option<Instant>,
}

type InFlight = Pin<Box<dyn Future<Output = (Pending, Result<(), DeviceError>)> + Send>>;

/// One device's telemetry state.
pub struct Telemetry {
    settings: Arc<TelemetrySettings>,
    interval: Duration,
    next_at: Instant,
    last_at: Option<Instant>,
    queue: VecDeque<Pending>,
    in_flight: FuturesUnordered<InFlight>,
    /// The client said it is closed: sending more would fail at once, again and again.
    closed: bool,
    totals: TelemetryTotals,
}

impl Telemetry {
    /// Starts with the first message due now.
    pub fn new(settings: Arc<TelemetrySettings>) -> Telemetry {
        Telemetry {
            interval: settings.interval,
            settings,
            next_at: Instant::now(),
            last_at: None,
            queue: VecDeque::new(),
            in_flight: FuturesUnordered::new(),
            closed: false,
            totals: TelemetryTotals::default(),
        }
    }

    /// The interval in force.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Changes the interval: the next message is due `interval` after the previous one (now,
    /// if that has passed).
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
        if let Some(last) = self.last_at {
            self.next_at = (last + interval).max(Instant::now());
        }
    }

    /// When the next message is due; `None` once `--telemetry-count` messages were produced.
    pub fn next_due(&self) -> Option<Instant> {
        match self.settings.count {
            Some(count) if self.totals.produced >= count => None,
            _ => Some(self.next_at),
        }
    }

    /// Renders the next message and queues it (or counts it lost when the queue is full).
    /// Returns the sequence number of a lost message.
    pub fn produce(
        &mut self,
        device_id: &str,
        module_id: Option<&str>,
        metrics: &dyn DeviceMetrics,
    ) -> Option<u64> {
        let now = Instant::now();
        self.totals.produced += 1;
        let seq = self.totals.produced;
        self.last_at = Some(now);
        self.next_at = now + self.interval;
        metrics.telemetry(TelemetryCount::Produced);
        if self.queue.len() >= MAX_QUEUED_TELEMETRY {
            self.totals.lost += 1;
            metrics.telemetry(TelemetryCount::Lost);
            return Some(seq);
        }
        let settings = &self.settings;
        let body = settings.template.render(&RenderContext {
            seq,
            device_id,
            module_id,
        });
        let message = Message {
            body: body.into_bytes(),
            message_id: Some(seq.to_string()),
            correlation_id: None,
            content_type: settings.content_type.clone(),
            content_encoding: settings.content_encoding.clone(),
            properties: settings.properties.clone(),
        };
        self.queue.push_back(Pending {
            seq,
            message,
            first_sent: None,
        });
        None
    }

    /// Hands queued messages to the client while fewer than [`MAX_TELEMETRY_IN_FLIGHT`] are
    /// in flight.
    pub fn dispatch(&mut self, client: &DeviceClient) {
        while !self.closed && self.in_flight.len() < MAX_TELEMETRY_IN_FLIGHT {
            let Some(mut pending) = self.queue.pop_front() else {
                break;
            };
            pending.first_sent.get_or_insert_with(Instant::now);
            let client = client.clone();
            self.in_flight.push(Box::pin(async move {
                let result = client.send_telemetry(&pending.message).await;
                (pending, result)
            }));
        }
    }

    /// The next finished send; never ready while nothing is in flight.
    pub async fn next_outcome(&mut self, metrics: &dyn DeviceMetrics) -> TelemetryOutcome {
        let Some((pending, result)) = self.in_flight.next().await else {
            return std::future::pending().await;
        };
        let seq = pending.seq;
        match result {
            Ok(()) => {
                let latency = pending.first_sent.map(|t| t.elapsed()).unwrap_or_default();
                self.totals.acknowledged += 1;
                metrics.telemetry(TelemetryCount::Acknowledged);
                metrics.latency(Operation::TelemetryAck, latency);
                TelemetryOutcome::Acknowledged { seq, latency }
            }
            Err(error @ DeviceError::InvalidMessage(_)) => {
                self.totals.rejected += 1;
                metrics.failure(Operation::TelemetryAck, "invalid_message");
                TelemetryOutcome::Rejected { seq, error }
            }
            Err(error) => {
                if matches!(error, DeviceError::Closed) {
                    self.closed = true;
                }
                metrics.failure(Operation::TelemetryAck, &crate::metrics::error_kind(&error));
                metrics.telemetry(TelemetryCount::Retried);
                self.totals.retried += 1;
                self.queue.push_front(pending);
                TelemetryOutcome::Retrying { seq, error }
            }
        }
    }

    /// Every `--telemetry-count` message was produced and none is pending.
    pub fn finished(&self) -> bool {
        self.next_due().is_none() && self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// The totals so far.
    pub fn totals(&self) -> TelemetryTotals {
        TelemetryTotals {
            pending: (self.queue.len() + self.in_flight.len()) as u64,
            ..self.totals
        }
    }
}
