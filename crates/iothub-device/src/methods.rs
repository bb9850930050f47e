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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(answers: mpsc::UnboundedSender<Answer>) -> MethodRequest {
        let now = Instant::now();
        MethodRequest::new(
            "reboot".into(),
            br#"{"delay":1}"#.to_vec(),
            "7".into(),
            3,
            now,
            now + Duration::from_secs(60),
            answers,
        )
    }

    #[tokio::test]
    async fn an_answer_carries_the_status_and_json_and_waits_for_the_driver() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = request(tx);
        assert_eq!(r.name(), "reboot");
        assert_eq!(r.payload(), Some(json!({"delay": 1})));
        let driver = async {
            match rx.recv().await {
                Some(Answer::Method {
                    rid,
                    epoch,
                    status,
                    body,
                    reply: Some(reply),
                }) => {
                    assert_eq!((rid.as_str(), epoch, status), ("7", 3, 201));
                    assert_eq!(body, br#"{"ok":true}"#);
                    let _ = reply.send(Ok(()));
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        let answer = json!({"ok": true});
        let (answered, ()) = tokio::join!(r.respond(201, &answer), driver);
        answered.unwrap();
        assert!(rx.try_recv().is_err(), "answered once, nothing on drop");
    }

    #[test]
    fn a_dropped_request_is_answered_500_naming_the_method() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        drop(request(tx));
        match rx.try_recv() {
            Ok(Answer::Method {
                status,
                body,
                reply: None,
                ..
            }) => {
                assert_eq!(status, DROPPED_REQUEST_STATUS);
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert!(body["message"].as_str().unwrap().contains("'reboot'"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused_and_the_call_still_answered() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let err = request(tx)
            .respond(200, &json!("x".repeat(MAX_METHOD_PAYLOAD)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidMessage(_)), "{err:?}");
        assert!(matches!(
            rx.try_recv(),
            Ok(Answer::Method { status: 500, .. })
        ));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn payloads_that_are_not_json_stay_readable() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let r = MethodRequest::new("m".into(), b"{x".to_vec(), "1".into(), 1, now, now, tx);
        assert_eq!(r.payload(), None);
        assert_eq!(r.payload_bytes(), b"{x");
    }
}
