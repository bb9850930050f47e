//! Direct-method calls as the application sees them: a stream of [`MethodRequest`]s, each
//! answered exactly once.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::driver::Answer;
use crate::error::Error;

/// The status of the automatic answer to a request dropped without [`MethodRequest::respond`]
/// (for example when the application's handler panicked, or the stream was dropped).
pub const DROPPED_REQUEST_STATUS: i32 = 500;

/// Largest answer payload the hub accepts (128 KB, like the request payload).
pub const MAX_METHOD_PAYLOAD: usize = 128 * 1024;

/// One direct-method call from the hub. Answer it with [`MethodRequest::respond`]; the
/// status and JSON payload become the REST caller's `{"status":…,"payload":…}`.
///
/// A request dropped without an answer is answered automatically with status
/// [`DROPPED_REQUEST_STATUS`] and `{"message":"…"}`, so the caller is not left waiting for
/// its timeout.
#[derive(Debug)]
pub struct MethodRequest {
    name: String,
    payload: Vec<u8>,
    received_at: Instant,
    deadline: Instant,
    pending: Option<PendingAnswer>,
}

#[derive(Debug)]
struct PendingAnswer {
    rid: String,
    epoch: u64,
    answers: mpsc::UnboundedSender<Answer>,
}

impl MethodRequest {
    pub(crate) fn new(
        name: String,
        payload: Vec<u8>,
        rid: String,
        epoch: u64,
        received_at: Instant,
        deadline: Instant,
        answers: mpsc::UnboundedSender<Answer>,
    ) -> MethodRequest {
        MethodRequest {
            name,
            payload,
            received_at,
            deadline,
            pending: Some(PendingAnswer {
                rid,
                epoch,
                answers,
            }),
        }
    }

    /// The method name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The request payload as sent by the hub: the caller's JSON `payload`, empty when it
    /// was absent or `null`.
    pub fn payload_bytes(&self) -> &[u8] {
        &self.payload
    }

    /// The payload as JSON: `Value::Null` for an empty body, `None` when it is not JSON.
    pub fn payload(&self) -> Option<Value> {
        if self.payload.is_empty() {
            return Some(Value::Null);
        }
        serde_json::from_slice(&self.payload).ok()
    }

    /// When the request arrived.
    pub fn received_at(&self) -> Instant {
        self.received_at
    }

    /// After this instant an answer is refused ([`crate::ClientOptions::method_timeout`]
    /// after arrival; the hub gives up after the caller's `responseTimeoutInSeconds`).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before [`MethodRequest::deadline`].
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Answers the call with `status` (any integer; 200 for success by convention) and a JSON
    /// payload, and returns once the hub acknowledged the answer (PUBACK).
    ///
    /// # Errors
    /// [`Error::InvalidMessage`] for a payload over [`MAX_METHOD_PAYLOAD`];
    /// [`Error::NoLongerPending`] past the deadline or when the connection that carried the
    /// call is gone (the hub has failed the call already); [`Error::Timeout`] without a PUBACK
    /// in time; [`Error::Closed`].
    pub async fn respond(mut self, status: i32, payload: &Value) -> Result<(), Error> {
        let body = serde_json::to_vec(payload).map_err(|e| Error::InvalidMessage(e.to_string()))?;
        if body.len() > MAX_METHOD_PAYLOAD {
            // Too large to send, but the call must still be answered once.
            let message = format!(
                "the device's answer to '{}' was {} bytes; at most {MAX_METHOD_PAYLOAD} are allowed",
                self.name,
                body.len()
            );
            self.answer_in_background(500, &serde_json::json!({ "message": message }));
            return Err(Error::InvalidMessage(format!(
                "method answer of {} bytes; the hub accepts at most {MAX_METHOD_PAYLOAD}",
                body.len()
            )));
        }
        let Some(pending) = self.pending.take() else {
            return Err(Error::NoLongerPending(
                "the call was already answered".into(),
            ));
        };
        let (reply, done) = oneshot::channel();
        pending
            .answers
            .send(Answer::Method {
                rid: pending.rid,
                epoch: pending.epoch,
                status,
                body,
                reply: Some(reply),
            })
            .map_err(|_| Error::Closed)?;
        done.await.map_err(|_| Error::Closed)?
    }

    /// Sends an answer without waiting for its outcome (used by `Drop`).
    fn answer_in_background(&mut self, status: i32, payload: &Value) {
        if let Some(pending) = self.pending.take() {
            let body = serde_json::to_vec(payload).unwrap_or_default();
            // The client may be gone already; then there is nobody to answer.
            let _ = pending.answers.send(Answer::Method {
                rid: pending.rid,
                epoch: pending.epoch,
                status,
                body,
                reply: None,
            });
        }
    }
}

impl Drop for MethodRequest {
    fn drop(&mut self) {
        if self.pending.is_some() {
            let message = format!(
                "the device application did not answer method '{}'",
                self.name
            );
            self.answer_in_background(
                DROPPED_REQUEST_STATUS,
                &serde_json::json!({ "message": message }),
            );
        }
    }
}

/// Stream of [`MethodRequest`]s from [`crate::DeviceClient::method_requests`]. It ends when the
/// client is closed, or when another stream replaces it.
#[derive(Debug)]
pub struct MethodRequests {
    pub(crate) rx: mpsc::UnboundedReceiver<MethodRequest>,
}

impl MethodRequests {
    /// The next call, or `None` once the stream ended.
    pub async fn next(&mut self) -> Option<MethodRequest> {
        self.rx.recv().await
    }
}

impl futures_util::Stream for MethodRequests {
    type Item = MethodRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<MethodRequest>> {
        self.rx.poll_recv(cx)
    }
}
