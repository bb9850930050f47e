//! The device-twin protocol as a state machine with no I/O; beside it, the other pure parts
//! of the MQTT protocol: direct-method topics and calls (`methods`), QoS 1 publishes awaiting
//! PUBACK (`outbox`), message topics and property bags (`property_bag`) and the optional
//! subscriptions (`subscriptions`).
//!
//! It owns the request ids (`$rid`), the table of requests waiting for the hub's answer, the
//! retransmission queue and the desired `$version` bookkeeping. The driver feeds it connection
//! changes, inbound publishes and clock ticks, and performs the [`Output`]s it returns
//! (subscribe, publish, complete a caller's request, deliver a desired update). Keeping this
//! apart from the rumqttc event loop lets every rule below be unit-tested without sockets.
//!
//! Rules that matter for "no reported patch is lost":
//! - a request stays in the table until the hub answers it, it times out, or the client closes;
//! - on disconnect every in-flight request goes back to the queue and is republished, in its
//!   original order and with its original `$rid`, after the next CONNACK — rumqttc's own replay
//!   is switched off by the driver, so this table is the only source of retransmissions;
//! - throttling and transient statuses (429, 500, 503, 504) are retried with a growing delay
//!   while the request's deadline allows.

pub(crate) mod methods;
pub(crate) mod outbox;
pub(crate) mod property_bag;
pub(crate) mod subscriptions;
pub(crate) mod topics;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::twin::{DesiredUpdate, DesiredUpdateKind, Twin};
use topics::Inbound;

/// At most this many twin requests are on the wire at once; the rest wait in order. It bounds
/// what the driver pushes into rumqttc's request channel (see `driver::REQUEST_CHANNEL_CAPACITY`).
pub(crate) const MAX_IN_FLIGHT: usize = 16;

/// First retry delay after a throttling/transient status; doubles per retry up to the cap.
const RETRY_BASE: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(10);

/// Identifies one request; its decimal form is the `$rid` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RequestId(u64);

impl RequestId {
    fn rid(self) -> String {
        self.0.to_string()
    }
}

/// A twin operation the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    GetTwin,
    /// Serialized JSON object to merge into the reported properties.
    PatchReported(Vec<u8>),
}

/// Successful answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Response {
    Twin(Twin),
    /// `status` is the hub's success status (204 from IoT Hub).
    Reported {
        status: u16,
        version: u64,
    },
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("the hub answered with status {status}: {message}")]
    Status { status: u16, message: String },
    #[error("no answer from the hub within {after:?}")]
    Timeout { after: Duration },
    #[error("the hub's answer could not be understood: {0}")]
    InvalidResponse(String),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Subscribe to [`topics::TWIN_RESPONSES`] and [`topics::DESIRED_PATCHES`].
    Subscribe,
    /// Publish a request.
    Publish {
        id: RequestId,
        topic: String,
        payload: Vec<u8>,
    },
    /// A caller's request is finished.
    Completed {
        id: RequestId,
        result: Result<Response, RequestError>,
    },
    /// Deliver a desired-properties change to subscribers.
    Desired(DesiredUpdate),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Submitted through the public API; its outcome is reported with `Output::Completed`.
    Caller,
    /// The GET issued after each CONNACK to catch desired changes missed while offline.
    Resync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Queued,
    InFlight,
    RetryAt(Instant),
}

#[derive(Debug)]
struct Pending {
    request: Request,
    origin: Origin,
    deadline: Instant,
    stage: Stage,
    retries: u32,
}

/// The twin protocol state. See the module documentation.
#[derive(Debug)]
pub(crate) struct Protocol {
    next_id: u64,
    connected: bool,
    request_timeout: Duration,
    /// Ordered by id, which is submission order: retransmissions keep the caller's order.
    pending: BTreeMap<RequestId, Pending>,
    /// Highest desired `$version` delivered (or taken as the baseline).
    desired_version: Option<u64>,
    /// Whether a resync GET has answered at least once.
    baseline_established: bool,
    /// Answers with status 429 (throttled) that were retried, since the client started.
    throttled: u64,
}

impl Protocol {
    /// `request_timeout` bounds each request from submission to answer, retries included.
    pub(crate) fn new(request_timeout: Duration) -> Protocol {
        Protocol {
            // A random start keeps this process's `$rid`s apart from those of an earlier process
            // on the same persistent (clean session 0) session, should the hub replay anything.
            next_id: u64::from(rand::random::<u32>()) + 1,
            connected: false,
            request_timeout,
            pending: BTreeMap::new(),
            desired_version: None,
            baseline_established: false,
            throttled: 0,
        }
    }

    /// How many answers were 429 (throttled) and retried after a delay.
    pub(crate) fn throttled(&self) -> u64 {
        self.throttled
    }

    /// Queues a caller's request; it is published now if connected and the window allows.
    pub(crate) fn submit(&mut self, request: Request, now: Instant) -> (RequestId, Vec<Output>) {
        let id = self.insert(request, Origin::Caller, now);
        let mut out = Vec::new();
        self.pump(&mut out);
        (id, out)
    }

    /// A CONNACK arrived: (re)subscribe, issue the resync GET, resend everything unanswered.
    pub(crate) fn on_connected(&mut self, now: Instant) -> Vec<Output> {
        self.connected = true;
        self.requeue_in_flight();
        // Re-subscribing is harmless when the hub kept the session, and required when it did not
        // (session_present = 0): rumqttc never re-subscribes by itself.
        let mut out = vec![Output::Subscribe];
        if !self.pending.values().any(|p| p.origin == Origin::Resync) {
            self.insert(Request::GetTwin, Origin::Resync, now);
        }
        self.pump(&mut out);
        out
    }

    /// The connection is gone: nothing in flight will be answered, so queue it again.
    pub(crate) fn on_disconnected(&mut self) {
        self.connected = false;
        self.requeue_in_flight();
    }

    /// A publish from the hub.
    pub(crate) fn on_publish(&mut self, topic: &str, payload: &[u8], now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match topics::parse(topic) {
            Ok(Inbound::Response {
                status,
                rid,
                version,
            }) => self.on_response(status, &rid, version, payload, now, &mut out),
            Ok(Inbound::Desired { version }) => self.on_desired(version, payload, &mut out),
            Ok(Inbound::Other) => tracing::debug!(topic, "ignoring publish on a non-twin topic"),
            Err(e) => tracing::warn!("ignoring malformed twin topic: {e}"),
        }
        self.pump(&mut out);
        out
    }

    /// Time passed: expire requests past their deadline and release retries that are due.
    pub(crate) fn on_tick(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let expired: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                match p.origin {
                    Origin::Caller => out.push(Output::Completed {
                        id,
                        result: Err(RequestError::Timeout {
                            after: self.request_timeout,
                        }),
                    }),
                    Origin::Resync => tracing::warn!("resync twin GET got no answer in time"),
                }
            }
        }
        for p in self.pending.values_mut() {
            if matches!(p.stage, Stage::RetryAt(at) if at <= now) {
                p.stage = Stage::Queued;
            }
        }
        self.pump(&mut out);
        out
    }

    /// The earliest instant at which [`Protocol::on_tick`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| match p.stage {
                Stage::RetryAt(at) => at.min(p.deadline),
                _ => p.deadline,
            })
            .min()
    }

    /// Requests published and not yet answered.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending
            .values()
            .filter(|p| p.stage == Stage::InFlight)
            .count()
    }

    /// The driver could not hand a publish to rumqttc; keep it queued for the next pump.
    pub(crate) fn unsent(&mut self, id: RequestId) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.stage = Stage::Queued;
        }
    }

    fn insert(&mut self, request: Request, origin: Origin, now: Instant) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                request,
                origin,
                deadline: now + self.request_timeout,
                stage: Stage::Queued,
                retries: 0,
            },
        );
        id
    }

    fn requeue_in_flight(&mut self) {
        for p in self.pending.values_mut() {
            if p.stage == Stage::InFlight {
                p.stage = Stage::Queued;
            }
        }
    }

    /// Publishes queued requests while connected and under the window: the resync GET first
    /// (so desired changes surface before a long backlog of patches drains), then by id.
    fn pump(&mut self, out: &mut Vec<Output>) {
        if !self.connected {
            return;
        }
        let mut in_flight = self.in_flight();
        let mut ready: Vec<(bool, RequestId)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.stage == Stage::Queued)
            .map(|(id, p)| (p.origin != Origin::Resync, *id))
            .collect();
        ready.sort();
        for (_, id) in ready {
            if in_flight >= MAX_IN_FLIGHT {
                break;
            }
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            p.stage = Stage::InFlight;
            in_flight += 1;
            let (topic, payload) = match &p.request {
                Request::GetTwin => (topics::get_twin(&id.rid()), Vec::new()),
                Request::PatchReported(body) => (topics::patch_reported(&id.rid()), body.clone()),
            };
            out.push(Output::Publish { id, topic, payload });
        }
    }

    fn on_response(
        &mut self,
        status: u16,
        rid: &str,
        version: Option<u64>,
        payload: &[u8],
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        // Our rids are decimal; anything else, or an id already answered (a duplicate after a
        // retransmission), is not ours to complete.
        let Some(id) = rid.parse::<u64>().ok().map(RequestId) else {
            tracing::debug!(rid, "response with a foreign $rid");
            return;
        };
        let Some(p) = self.pending.get_mut(&id) else {
            tracing::debug!(rid, "response for a request no longer pending");
            return;
        };
        if is_retryable(status) {
            let delay = retry_delay(p.retries);
            if now + delay < p.deadline {
                tracing::debug!(rid, status, ?delay, "hub asked to retry later");
                p.retries += 1;
                p.stage = Stage::RetryAt(now + delay);
                if status == 429 {
                    self.throttled += 1;
                }
                return;
            }
        }
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let result = interpret(status, &p.request, version, payload);
        match p.origin {
            Origin::Caller => out.push(Output::Completed { id, result }),
            Origin::Resync => match result {
                Ok(Response::Twin(twin)) => self.on_resync(&twin, out),
                Ok(Response::Reported { .. }) => {}
                Err(e) => tracing::warn!("resync twin GET failed: {e}"),
            },
        }
    }

    /// The resync GET answered: surface a desired change that no notification delivered.
    fn on_resync(&mut self, twin: &Twin, out: &mut Vec<Output>) {
        let Some(version) = twin.desired_version() else {
            tracing::warn!("twin GET without desired.$version");
            return;
        };
        let first = !self.baseline_established;
        self.baseline_established = true;
        match self.desired_version {
            Some(seen) if version <= seen => {}
            // The first GET after start-up is the baseline, not a change.
            None if first => self.desired_version = Some(version),
            _ => {
                self.desired_version = Some(version);
                out.push(Output::Desired(DesiredUpdate {
                    version,
                    kind: DesiredUpdateKind::Full,
                    properties: twin.desired.clone(),
                }));
            }
        }
    }

    fn on_desired(&mut self, topic_version: Option<u64>, payload: &[u8], out: &mut Vec<Output>) {
        let body: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("ignoring desired notification with invalid JSON: {e}");
                return;
            }
        };
        let Some(version) = topic_version.or_else(|| body.get("$version").and_then(Value::as_u64))
        else {
            tracing::warn!("ignoring desired notification without $version");
            return;
        };
        // Already covered by a resync GET (or a duplicate): the documented rule is to ignore
        // notifications whose $version is not above the last one seen.
        if self.desired_version.is_some_and(|seen| version <= seen) {
            tracing::debug!(version, "ignoring stale desired notification");
            return;
        }
        self.desired_version = Some(version);
        out.push(Output::Desired(DesiredUpdate {
            version,
            kind: DesiredUpdateKind::Patch,
            properties: body,
        }));
    }
}

fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 500 | 503 | 504)
}

fn retry_delay(retries: u32) -> Duration {
    RETRY_BASE
        .saturating_mul(1u32 << retries.min(8))
        .min(RETRY_CAP)
}

fn interpret(
    status: u16,
    request: &Request,
    version: Option<u64>,
    payload: &[u8],
) -> Result<Response, RequestError> {
    if !(200..300).contains(&status) {
        return Err(RequestError::Status {
            status,
            message: error_message(payload),
        });
    }
    match request {
        Request::GetTwin => {
            let body: Value = serde_json::from_slice(payload)
                .map_err(|e| RequestError::InvalidResponse(format!("twin GET body: {e}")))?;
            Twin::from_response(&body)
                .map(Response::Twin)
                .ok_or_else(|| {
                    RequestError::InvalidResponse("twin GET body lacks desired/reported".into())
                })
        }
        Request::PatchReported(_) => version
            .map(|version| Response::Reported { status, version })
            .ok_or_else(|| {
                RequestError::InvalidResponse(format!("status {status} without $version"))
            }),
    }
}

/// The hub's error body is `{"errorCode":…,"message":"…",…}`; fall back to the raw text.
fn error_message(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            ["message", "Message"]
                .iter()
                .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_owned))
        })
        .unwrap_or_else(|| text.trim().to_owned())
}

#[cfg(test)]
mod tests;
