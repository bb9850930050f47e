//! The hook one simulated device reports its operations to: a latency sample (or a failure)
//! per operation, and counters for telemetry and the connection. The single device ignores it
//! ([`NoMetrics`]); a fleet passes one shared aggregator to every device.

use std::time::Duration;

use iothub_device::ConnectionEvent;

/// An operation whose latency is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// From the start of `DeviceClient::connect` to the first CONNACK.
    Connect,
    /// A twin GET, request to response.
    TwinGet,
    /// A reported-properties patch, request to the hub's acknowledgement.
    ReportedPatch,
    /// A telemetry message, from its first hand-over to the client to the PUBACK (retries
    /// after a lost connection included).
    TelemetryAck,
    /// A direct method, from the request's arrival to the hub's acknowledgement of the answer.
    MethodAnswer,
}

impl Operation {
    /// Every operation, in the order summaries list them.
    pub const ALL: [Operation; 5] = [
        Operation::Connect,
        Operation::TwinGet,
        Operation::ReportedPatch,
        Operation::TelemetryAck,
        Operation::MethodAnswer,
    ];

    /// The name used in JSON summaries and metric labels (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::TwinGet => "twin_get",
            Operation::ReportedPatch => "reported_patch",
            Operation::TelemetryAck => "telemetry_ack",
            Operation::MethodAnswer => "method_answer",
        }
    }
}

/// What happened to telemetry, counted one message at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TelemetryCount {
    /// A message was rendered and queued.
    Produced,
    /// The hub acknowledged a message (PUBACK); each message counts once.
    Acknowledged,
    /// A message was dropped because the device's queue was full
    /// ([`crate::telemetry::MAX_QUEUED_TELEMETRY`]).
    Lost,
    /// A send failed (no PUBACK in time) and the message went back to the queue.
    Retried,
}

/// Receives a device's measurements. Called from the device's task, so implementations must
/// be cheap and must not block (atomics, a short-held mutex).
pub trait DeviceMetrics: Send + Sync {
    /// `op` succeeded after `latency`.
    fn latency(&self, op: Operation, latency: Duration) {
        let _ = (op, latency);
    }

    /// `op` failed; `kind` is a short stable name for the error (e.g. `timeout`, `status_429`).
    fn failure(&self, op: Operation, kind: &str) {
        let _ = (op, kind);
    }

    /// One telemetry message changed state.
    fn telemetry(&self, count: TelemetryCount) {
        let _ = count;
    }

    /// The device's connection changed state (disconnected, reconnecting, reconnected, closed).
    fn connection(&self, event: &ConnectionEvent) {
        let _ = event;
    }
}

/// Measures nothing: the single device's hook.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl DeviceMetrics for NoMetrics {}

/// A short stable name for a device error, for [`DeviceMetrics::failure`].
pub fn error_kind(error: &iothub_device::Error) -> String {
    use iothub_device::Error;
    match error {
        Error::Status { status, .. } => format!("status_{status}"),
        Error::Timeout(_) => "timeout".into(),
        Error::Closed => "closed".into(),
        e if e.is_authentication() => "auth".into(),
        e if e.is_unreachable_or_timeout() => "unreachable".into(),
        _ => "other".into(),
    }
}
