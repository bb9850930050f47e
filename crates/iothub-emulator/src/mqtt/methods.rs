//! Direct-method calls in flight (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods>):
//! the service side of `POST /twins/{id}/methods` once the REST handler has checked the request.
//!
//! A call waits (on the session table's signal, not by polling) up to its connect timeout for
//! the client id to have a live connection subscribed to `$iothub/methods/POST/#`, hands the
//! request to that connection (never to an offline session), and then waits for the first of:
//! the device's answer with the call's `$rid`, the end of that connection (the call fails at
//! once), or the response timeout. Both timeouts fire [`ANSWER_MARGIN`] early, so the answer
//! reaches clients whose own HTTP timeout equals the hub timeout (the Azure CLI's) before they
//! give up.
//!
//! Request ids are a hub-wide decimal counter; an answer counts only when it comes from the
//! client id the request went to. An answer nobody waits for (late, unknown `$rid`) is dropped.
//! At most [`MAX_METHOD_CALLS_PER_CLIENT`] calls per client id and [`MAX_METHOD_CALLS_PER_HUB`]
//! per hub are in flight; past either a call is refused at once.
//!
//! The registry's mutex is a leaf: nothing is called while it is held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::session::MethodRequest;
use super::session_table::{NotReady, SessionTable, MAX_METHOD_CALLS_PER_CLIENT};

/// Direct-method calls the whole hub may have in flight (each holds up to 128 KB of payload).
pub(crate) const MAX_METHOD_CALLS_PER_HUB: usize = 1000;

/// How much earlier than the requested timeouts a call gives up, so that its 404 or 504 arrives
/// before a client's HTTP timeout set to the same number of seconds.
pub(crate) const ANSWER_MARGIN: Duration = Duration::from_millis(250);

/// One call, as the REST handler has checked it.
#[derive(Debug, Clone)]
pub(crate) struct MethodCall {
    /// `{device}` or `{device}/{module}`: the MQTT client id whose session gets the request.
    pub client_id: String,
    /// The method name.
    pub name: String,
    /// The MQTT body: the payload's JSON text, empty for none.
    pub payload: Bytes,
    /// How long to wait for the client to be connected and subscribed (zero: it must be now).
    pub connect_timeout: Duration,
    /// How long to wait for the answer once the request is delivered.
    pub response_timeout: Duration,
}

/// What the device answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceAnswer {
    /// The status from the response topic.
    pub status: i32,
    /// The body as the device sent it.
    pub payload: Bytes,
}

/// Why a call got no answer. The messages are the hub's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MethodError {
    /// No live connection within the connect timeout.
    #[error("Timed out waiting for device to connect.")]
    NotConnected,
    /// Connected, but not subscribed to methods within the connect timeout.
    #[error("Timed out waiting for device to subscribe.")]
    NotSubscribed,
    /// The connection that got the request ended before answering.
    #[error("The device disconnected before it answered the method call.")]
    Disconnected,
    /// No answer within the response timeout.
    #[error("Timed out waiting for the response from device.")]
    Timeout,
    /// The client id already has [`MAX_METHOD_CALLS_PER_CLIENT`] calls in flight.
    #[error("'{0}' already has {MAX_METHOD_CALLS_PER_CLIENT} direct method calls in flight; wait for one to finish")]
    TooManyForClient(String),
    /// The hub already has [`MAX_METHOD_CALLS_PER_HUB`] calls in flight.
    #[error("the hub already has {MAX_METHOD_CALLS_PER_HUB} direct method calls in flight; wait for one to finish")]
    TooManyForHub,
}

/// The direct-method calls of one hub. Cheap to clone.
#[derive(Clone)]
pub(crate) struct DirectMethods {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: SessionTable,
    calls: Mutex<Calls>,
    next_rid: AtomicU64,
}

#[derive(Default)]
struct Calls {
    /// Calls waiting for an answer, by (client id, `$rid`).
    waiting: HashMap<(String, String), oneshot::Sender<DeviceAnswer>>,
    /// Calls in flight per client id (waiting to be delivered or answered).
    per_client: HashMap<String, usize>,
    /// Calls in flight in the hub.
    total: usize,
}

/// A call's place in the registry; dropping it (the call ended, or its HTTP request was
/// abandoned) frees the place and forgets the `$rid`.
struct InFlight<'a> {
    inner: &'a Inner,
    client_id: String,
    rid: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let key = (
            std::mem::take(&mut self.client_id),
            std::mem::take(&mut self.rid),
        );
        let mut calls = self.inner.lock();
        calls.waiting.remove(&key);
        if let Some(count) = calls.per_client.get_mut(&key.0) {
            *count -= 1;
            if *count == 0 {
                calls.per_client.remove(&key.0);
            }
        }
        calls.total -= 1;
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Calls> {
        // Every update is a few map operations that cannot leave the maps inconsistent.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DirectMethods {
    /// The calls of the hub whose sessions are `sessions`.
    pub(crate) fn new(sessions: SessionTable) -> DirectMethods {
        DirectMethods {
            inner: Arc::new(Inner {
                sessions,
                calls: Mutex::new(Calls::default()),
                next_rid: AtomicU64::new(1),
            }),
        }
    }

    /// Runs one call to its end: the device's answer, or why there is none.
    pub(crate) async fn invoke(&self, call: MethodCall) -> Result<DeviceAnswer, MethodError> {
        let received = Instant::now();
        let (in_flight, answer) = self.register(&call.client_id)?;
        let request = MethodRequest {
            rid: in_flight.rid.clone(),
            name: call.name,
            payload: call.payload,
        };
        let connect_deadline = if call.connect_timeout.is_zero() {
            received
        } else {
            received + call.connect_timeout.saturating_sub(ANSWER_MARGIN)
        };
        let gone = self
            .deliver(&call.client_id, request, connect_deadline)
            .await?;
        let deadline = Instant::now() + call.response_timeout.saturating_sub(ANSWER_MARGIN);
        let outcome = tokio::select! {
            biased;
            answer = answer => answer.map_err(|_| MethodError::Disconnected),
            () = gone.cancelled() => Err(MethodError::Disconnected),
            () = tokio::time::sleep_until(deadline) => Err(MethodError::Timeout),
        };
        drop(in_flight);
        outcome
    }

    /// Hands the device's answer to the call waiting for (`client_id`, `rid`); an answer nobody
    /// waits for is dropped.
    pub(crate) fn respond(&self, client_id: &str, rid: &str, answer: DeviceAnswer) {
        let waiting = self
            .inner
            .lock()
            .waiting
            .remove(&(client_id.to_string(), rid.to_string()));
        match waiting {
            // The call may have ended a moment ago; then the answer is dropped here.
            Some(call) => drop(call.send(answer)),
            None => debug!(%client_id, %rid, "method response for no call in flight; ignored"),
        }
    }

    /// Takes a place for a call of `client_id` and gives it a fresh `$rid`.
    fn register(
        &self,
        client_id: &str,
    ) -> Result<(InFlight<'_>, oneshot::Receiver<DeviceAnswer>), MethodError> {
        let mut calls = self.inner.lock();
        if calls.total >= MAX_METHOD_CALLS_PER_HUB {
            return Err(MethodError::TooManyForHub);
        }
        let for_client = calls.per_client.entry(client_id.to_string()).or_default();
        if *for_client >= MAX_METHOD_CALLS_PER_CLIENT {
            return Err(MethodError::TooManyForClient(client_id.to_string()));
        }
        *for_client += 1;
        calls.total += 1;
        let rid = self
            .inner
            .next_rid
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let (tx, rx) = oneshot::channel();
        calls
            .waiting
            .insert((client_id.to_string(), rid.clone()), tx);
        let in_flight = InFlight {
            inner: &self.inner,
            client_id: client_id.to_string(),
            rid,
        };
        Ok((in_flight, rx))
    }

    /// Delivers `request` to the client's live, subscribed connection, waiting for one until
    /// `deadline`; returns the token that is cancelled when that connection ends.
    async fn deliver(
        &self,
        client_id: &str,
        request: MethodRequest,
        deadline: Instant,
    ) -> Result<CancellationToken, MethodError> {
        let signal = self.inner.sessions.methods_ready_signal();
        loop {
            let ready = signal.notified();
            tokio::pin!(ready);
            // Registered before the attempt: a connection that gets ready in between wakes us.
            ready.as_mut().enable();
            match self
                .inner
                .sessions
                .deliver_method(client_id, request.clone())
            {
                Ok(gone) => return Ok(gone),
                Err(why) if Instant::now() >= deadline => {
                    return Err(match why {
                        NotReady::Offline => MethodError::NotConnected,
                        NotReady::NotSubscribed => MethodError::NotSubscribed,
                    })
                }
                Err(_) => {}
            }
            tokio::select! {
                () = &mut ready => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(client_id: &str, connect: u64, response: u64) -> MethodCall {
        MethodCall {
            client_id: client_id.into(),
            name: "reboot".into(),
            payload: Bytes::from_static(b"{}"),
            connect_timeout: Duration::from_secs(connect),
            response_timeout: Duration::from_secs(response),
        }
    }

    fn answer(status: i32) -> DeviceAnswer {
        DeviceAnswer {
            status,
            payload: Bytes::from_static(b"\"ok\""),
        }
    }

    fn in_flight(methods: &DirectMethods) -> usize {
        methods.inner.lock().total
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivered_request_is_answered_by_its_rid_from_its_client_only() {
        let table = SessionTable::default();
        let methods = DirectMethods::new(table.clone());
        let shutdown = CancellationToken::new();
        let mut lease = table.attach("d", true, &shutdown).await;
        lease.set_methods_ready(true);

        let pending = tokio::spawn({
            let methods = methods.clone();
            async move { methods.invoke(call("d", 0, 30)).await }
        });
        let request = lease.method_requests.recv().await.expect("request");
        assert_eq!(request.name, "reboot");
        methods.respond("other", &request.rid, answer(500));
        methods.respond("d", "no-such-rid", answer(500));
        methods.respond("d", &request.rid, answer(200));
        assert_eq!(pending.await.expect("task"), Ok(answer(200)));
        assert_eq!(in_flight(&methods), 0);
        assert!(methods.inner.lock().per_client.is_empty());
        table.detach(lease, None);
    }

    #[tokio::test(start_paused = true)]
    async fn offline_unsubscribed_and_timeouts() {
        let table = SessionTable::default();
        let methods = DirectMethods::new(table.clone());
        let shutdown = CancellationToken::new();
        assert_eq!(
            methods.invoke(call("d", 0, 30)).await,
            Err(MethodError::NotConnected)
        );
        let mut lease = table.attach("d", true, &shutdown).await;
        assert_eq!(
            methods.invoke(call("d", 0, 30)).await,
            Err(MethodError::NotSubscribed)
        );
        lease.set_methods_ready(true);
        let started = Instant::now();
        assert_eq!(
            methods.invoke(call("d", 0, 5)).await,
            Err(MethodError::Timeout)
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(5) - ANSWER_MARGIN,
            "the 504 comes just before the requested timeout"
        );
        // The late answer is dropped.
        let request = lease.method_requests.recv().await.expect("request");
        methods.respond("d", &request.rid, answer(200));
        assert_eq!(in_flight(&methods), 0);
        table.detach(lease, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connect_timeout_waits_for_the_subscription() {
        let table = SessionTable::default();
        let methods = DirectMethods::new(table.clone());
        let shutdown = CancellationToken::new();
        let pending = tokio::spawn({
            let methods = methods.clone();
            async move { methods.invoke(call("d", 60, 30)).await }
        });
        tokio::time::sleep(Duration::from_secs(20)).await;
        let mut lease = table.attach("d", true, &shutdown).await;
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!pending.is_finished());
        lease.set_methods_ready(true);
        let request = lease.method_requests.recv().await.expect("request");
        methods.respond("d", &request.rid, answer(201));
        assert_eq!(pending.await.expect("task"), Ok(answer(201)));

        let started = Instant::now();
        assert_eq!(
            methods.invoke(call("e", 10, 30)).await,
            Err(MethodError::NotConnected)
        );
        assert_eq!(started.elapsed(), Duration::from_secs(10) - ANSWER_MARGIN);
        table.detach(lease, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_disconnect_fails_the_call_at_once() {
        let table = SessionTable::default();
        let methods = DirectMethods::new(table.clone());
        let shutdown = CancellationToken::new();
        let mut lease = table.attach("d", true, &shutdown).await;
        lease.set_methods_ready(true);
        let started = Instant::now();
        let pending = tokio::spawn({
            let methods = methods.clone();
            async move { methods.invoke(call("d", 0, 300)).await }
        });
        lease.method_requests.recv().await.expect("request");
        table.detach(lease, None);
        assert_eq!(pending.await.expect("task"), Err(MethodError::Disconnected));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_in_flight_are_bounded_per_client() {
        let table = SessionTable::default();
        let methods = DirectMethods::new(table.clone());
        let shutdown = CancellationToken::new();
        let lease = table.attach("d", true, &shutdown).await;
        lease.set_methods_ready(true);
        let mut pending = Vec::new();
        for _ in 0..MAX_METHOD_CALLS_PER_CLIENT {
            let methods = methods.clone();
            pending.push(tokio::spawn(async move {
                methods.invoke(call("d", 0, 30)).await
            }));
        }
        while in_flight(&methods) < MAX_METHOD_CALLS_PER_CLIENT {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            methods.invoke(call("d", 0, 30)).await,
            Err(MethodError::TooManyForClient("d".into()))
        );
        assert_eq!(
            methods.invoke(call("e", 0, 30)).await,
            Err(MethodError::NotConnected),
            "another client is not held up"
        );
        table.detach(lease, None);
        for call in pending {
            assert_eq!(call.await.expect("task"), Err(MethodError::Disconnected));
        }
        assert_eq!(in_flight(&methods), 0);
    }
}
