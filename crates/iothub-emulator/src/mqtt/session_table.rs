//! The session table: every MQTT session of one hub by client id, shared by both transports
//! (TLS and WebSockets). It owns the sessions, so it is what closes them.
//!
//! It enforces "one connection per client id" (a new CONNECT closes the old connection, which
//! hands its session over before the new one starts), keeps clean-session-0 sessions while their
//! client is offline (subscriptions plus the desired notifications that arrive meanwhile) for at
//! most [`SESSION_EXPIRY`], routes desired-property notifications to the live connection, and
//! closes connections on the hub's behalf (fault injection, a deleted, disabled or re-keyed
//! device). See ARCHITECTURE.md#device-mqtt.
//!
//! A live connection's notifications wait in a bounded queue. A connection that lets it fill up
//! (its client stopped reading) is out of step: it is closed, nothing is queued for it after the
//! lost notification, and its session is not resumed (`session_present = 0`), so no connection
//! ever delivers a series of versions with a hole in it and the device knows to re-read its
//! twin. An offline session whose queue overflows is treated the same way.
//!
//! A std mutex guards the table and is never held across `.await`. The hub calls in here while
//! holding its own state lock (desired changes of an in-memory hub), so nothing in this file
//! calls the hub: the lock order is hub state, then session table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::session::{DesiredNotification, MethodRequest, SavedSession};
use crate::hub::{DesiredPatch, DeviceSessions};

/// How long a new connection waits for the one it replaces to hand over its session before it
/// takes over regardless (a connection stuck in a write cannot hold its successor up).
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Desired notifications a live connection may have waiting before it counts as out of step.
pub(crate) const MAX_UNSENT_DESIRED: usize = 1000;

/// How long a clean-session-0 session is kept after its connection ended; a client that comes
/// back later starts with `session_present = 0`.
pub(crate) const SESSION_EXPIRY: Duration = Duration::from_secs(3600);

/// Ended sessions are looked for at most this often (the sweep walks the whole table).
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Direct-method calls one client id may have in flight (waiting to be delivered or answered);
/// also the capacity of a connection's queue of method requests, which therefore never fills.
pub(crate) const MAX_METHOD_CALLS_PER_CLIENT: usize = 50;

/// Why a method request could not be handed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotReady {
    /// The client id has no live connection.
    Offline,
    /// It is connected but has not subscribed to `$iothub/methods/POST/#`.
    NotSubscribed,
}

/// A connection's state as the hub should record it, numbered so that the hub can ignore a
/// report that arrives after a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionState {
    /// Whether the client id has a live connection.
    pub connected: bool,
    /// Increases with every report, across all client ids.
    pub seq: u64,
}

/// The sessions of one hub.
#[derive(Clone, Default)]
pub(crate) struct SessionTable {
    slots: Arc<Mutex<Slots>>,
    /// Woken whenever a connection becomes ready for direct methods, so calls waiting for a
    /// device to come online wait on a signal rather than polling.
    methods_ready: Arc<Notify>,
}

#[derive(Default)]
struct Slots {
    by_client: HashMap<String, Slot>,
    next_connection: u64,
    next_state_seq: u64,
    /// When ended sessions are next looked for (`None`: at the next chance).
    next_sweep: Option<Instant>,
}

impl Slots {
    /// Drops the stored sessions that ended [`SESSION_EXPIRY`] or longer before `now` (and
    /// their slots), at most once per [`SWEEP_INTERVAL`].
    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|next| now < next) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_INTERVAL);
        self.by_client.retain(|_, slot| {
            if slot.active.is_none()
                && slot
                    .ended_at
                    .is_some_and(|ended| now.saturating_duration_since(ended) >= SESSION_EXPIRY)
            {
                slot.saved = None;
            }
            slot.active.is_some() || slot.saved.is_some()
        });
    }

    /// Ends `connection` if it is still `client_id`'s active one and returns its slot with what
    /// the connection was; `None` if a newer connection has replaced it (the slot is then left
    /// alone).
    fn end(&mut self, client_id: &str, connection: u64) -> Option<(&mut Slot, Active)> {
        let slot = self.by_client.get_mut(client_id)?;
        if slot.active.as_ref()?.connection != connection {
            return None;
        }
        let active = slot.active.take()?;
        Some((slot, active))
    }

    /// Drops `client_id`'s slot once it holds neither a connection nor a stored session.
    fn prune(&mut self, client_id: &str) {
        if self
            .by_client
            .get(client_id)
            .is_some_and(|slot| slot.active.is_none() && slot.saved.is_none())
        {
            self.by_client.remove(client_id);
        }
    }
}

/// One client id's state.
#[derive(Default)]
struct Slot {
    active: Option<Active>,
    saved: Option<SavedSession>,
    /// When the last connection ended (the stored session's age).
    ended_at: Option<Instant>,
}

struct Active {
    connection: u64,
    /// Cancelled to close the connection (duplicate client id, out of step, fault injection,
    /// deleted device, shutdown).
    stop: CancellationToken,
    /// Cancelled by the connection once it has detached (its session is saved).
    released: CancellationToken,
    /// Desired notifications for the connection's session.
    outbox: mpsc::Sender<DesiredNotification>,
    /// A notification could not be queued: the connection is closing, and what it leaves
    /// behind must not continue the series after the hole.
    out_of_step: bool,
    /// The device was deleted: nothing is kept when the connection ends.
    deleted: bool,
    /// Woken when the device has cloud-to-device messages waiting.
    cloud_to_device: Arc<Notify>,
    /// The session has subscribed to `$iothub/methods/POST/#`.
    methods_ready: bool,
    /// Direct-method requests for the connection (at most [`MAX_METHOD_CALLS_PER_CLIENT`]).
    method_requests: mpsc::Sender<MethodRequest>,
}

/// A connection's registration; give it back with [`SessionTable::detach`].
pub(crate) struct Lease {
    table: SessionTable,
    client_id: String,
    connection: u64,
    released: CancellationToken,
    detached: bool,
    /// Cancelled when this connection must close: replaced by a newer connection, out of step,
    /// dropped by fault injection, its device deleted, or the emulator is shutting down.
    pub stop: CancellationToken,
    /// Desired notifications routed to this connection.
    pub outbox: mpsc::Receiver<DesiredNotification>,
    /// Notified when the device has cloud-to-device messages waiting (a permit is kept if the
    /// connection is busy, so no signal is lost).
    pub cloud_to_device: Arc<Notify>,
    /// Direct-method requests routed to this connection.
    pub method_requests: mpsc::Receiver<MethodRequest>,
    /// The session stored for a clean-session-0 client, if there was one (CONNACK
    /// `session_present` is `saved.is_some()`).
    pub saved: Option<SavedSession>,
}

impl SessionTable {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic elsewhere while holding the lock leaves consistent data (each update is a
        // single assignment), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection for `client_id`, closing the current one first and taking over
    /// its session. With `clean_session` any stored session is discarded. The connection's stop
    /// signal is a child of `shutdown`.
    pub(crate) async fn attach(
        &self,
        client_id: &str,
        clean_session: bool,
        shutdown: &CancellationToken,
    ) -> Lease {
        self.attach_within(client_id, clean_session, shutdown, TAKEOVER_TIMEOUT)
            .await
    }

    async fn attach_within(
        &self,
        client_id: &str,
        clean_session: bool,
        shutdown: &CancellationToken,
        takeover_timeout: Duration,
    ) -> Lease {
        let deadline = Instant::now() + takeover_timeout;
        loop {
            let predecessor = {
                let mut slots = self.lock();
                let slot = slots.by_client.entry(client_id.to_string()).or_default();
                match &slot.active {
                    Some(active) if Instant::now() < deadline => {
                        active.stop.cancel();
                        Some(active.released.clone())
                    }
                    _ => None,
                }
            };
            match predecessor {
                Some(released) => {
                    // Either it detaches (and the next round finds the slot free) or the
                    // deadline passes (and the next round takes over).
                    let _ = tokio::time::timeout_at(deadline, released.cancelled()).await;
                }
                None => return self.take_slot(client_id, clean_session, shutdown),
            }
        }
    }

    fn take_slot(
        &self,
        client_id: &str,
        clean_session: bool,
        shutdown: &CancellationToken,
    ) -> Lease {
        let mut slots = self.lock();
        slots.sweep(Instant::now());
        slots.next_connection += 1;
        let connection = slots.next_connection;
        let slot = slots.by_client.entry(client_id.to_string()).or_default();
        if let Some(stale) = slot.active.take() {
            stale.stop.cancel();
        }
        // A session that lost a notification is not resumed (`session_present = 0`), so the
        // device cannot miss a version silently.
        let saved = slot
            .saved
            .take()
            .filter(|saved| !clean_session && !saved.out_of_step);
        let (tx, rx) = mpsc::channel(MAX_UNSENT_DESIRED);
        let (method_tx, method_rx) = mpsc::channel(MAX_METHOD_CALLS_PER_CLIENT);
        let stop = shutdown.child_token();
        let released = CancellationToken::new();
        let cloud_to_device = Arc::new(Notify::new());
        slot.active = Some(Active {
            connection,
            stop: stop.clone(),
            released: released.clone(),
            outbox: tx,
            out_of_step: false,
            deleted: false,
            cloud_to_device: Arc::clone(&cloud_to_device),
            methods_ready: false,
            method_requests: method_tx,
        });
        Lease {
            table: self.clone(),
            client_id: client_id.to_string(),
            connection,
            released,
            detached: false,
            stop,
            outbox: rx,
            cloud_to_device,
            method_requests: method_rx,
            saved,
        }
    }

    /// Ends a connection. `session` is what a clean-session-0 client keeps (`None` for clean
    /// session 1); notifications routed to the connection but not yet delivered are added to it.
    /// A connection that was already replaced leaves the slot alone.
    pub(crate) fn detach(&self, mut lease: Lease, session: Option<SavedSession>) {
        lease.detached = true;
        let mut slots = self.lock();
        if let Some((slot, active)) = slots.end(&lease.client_id, lease.connection) {
            slot.saved = match session {
                _ if active.deleted => None,
                Some(saved) if active.out_of_step => Some(saved.out_of_step()),
                Some(mut saved) => {
                    while let Ok(notification) = lease.outbox.try_recv() {
                        saved.queue_desired(notification);
                    }
                    Some(saved)
                }
                None => None,
            };
            slot.ended_at = Some(Instant::now());
        }
        slots.prune(&lease.client_id);
        slots.sweep(Instant::now());
        drop(slots);
        lease.released.cancel();
    }

    /// Routes a desired-property notification to `client_id`'s live connection, or queues it in
    /// its offline session; dropped if neither exists or the session did not subscribe. A live
    /// connection that cannot take it is closed (see the module doc).
    pub(crate) fn deliver_desired(&self, client_id: &str, notification: DesiredNotification) {
        let mut slots = self.lock();
        slots.sweep(Instant::now());
        let Some(slot) = slots.by_client.get_mut(client_id) else {
            return;
        };
        match (&mut slot.active, &mut slot.saved) {
            (Some(active), _) => {
                if active.out_of_step {
                    return;
                }
                // A closed receiver cannot happen while the connection is active (the lease
                // holds it until detach); treat it like a full queue all the same.
                if active.outbox.try_send(notification).is_err() {
                    warn!(%client_id, limit = MAX_UNSENT_DESIRED,
                        "desired-property notifications are piling up unread; closing the connection so the device re-reads its twin");
                    active.out_of_step = true;
                    active.stop.cancel();
                }
            }
            (None, Some(saved)) => saved.queue_desired(notification),
            (None, None) => {}
        }
    }

    /// Tells `client_id`'s live connection that cloud-to-device messages wait for it; nothing
    /// happens without one (the messages wait in the hub's queue for the next connection).
    pub(crate) fn cloud_to_device_ready(&self, client_id: &str) {
        let slots = self.lock();
        if let Some(active) = slots
            .by_client
            .get(client_id)
            .and_then(|s| s.active.as_ref())
        {
            active.cloud_to_device.notify_one();
        }
    }

    /// Records whether `lease`'s connection is subscribed to direct methods; a connection that
    /// becomes ready wakes the calls waiting for a device to come online.
    fn set_methods_ready(&self, lease: &Lease, ready: bool) {
        let mut slots = self.lock();
        let Some(active) = slots
            .by_client
            .get_mut(&lease.client_id)
            .and_then(|slot| slot.active.as_mut())
            .filter(|active| active.connection == lease.connection)
        else {
            return;
        };
        active.methods_ready = ready;
        drop(slots);
        if ready {
            self.methods_ready.notify_waiters();
        }
    }

    /// The signal [`SessionTable::set_methods_ready`] gives when a connection becomes ready
    /// for direct methods (create the `notified()` future before trying to deliver, so a
    /// connection that gets ready in between is not missed).
    pub(crate) fn methods_ready_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.methods_ready)
    }

    /// Hands a direct-method request to `client_id`'s live connection if it is subscribed to
    /// methods. Never queued for an offline client. On success, returns a token that is
    /// cancelled once that connection has ended, so the caller stops waiting for its answer.
    pub(crate) fn deliver_method(
        &self,
        client_id: &str,
        request: MethodRequest,
    ) -> Result<CancellationToken, NotReady> {
        let slots = self.lock();
        let active = slots
            .by_client
            .get(client_id)
            .and_then(|slot| slot.active.as_ref())
            .ok_or(NotReady::Offline)?;
        if active.stop.is_cancelled() {
            return Err(NotReady::Offline);
        }
        if !active.methods_ready {
            return Err(NotReady::NotSubscribed);
        }
        // The queue holds at most as many requests as the client may have calls in flight, so
        // it is full only once the connection has stopped taking requests (it is closing).
        active
            .method_requests
            .try_send(request)
            .map_err(|_| NotReady::Offline)?;
        Ok(active.released.clone())
    }

    /// Closes `client_id`'s live connection, if any; its stored session stays.
    pub(crate) fn kick(&self, client_id: &str) {
        let slots = self.lock();
        if let Some(active) = slots
            .by_client
            .get(client_id)
            .and_then(|s| s.active.as_ref())
        {
            active.stop.cancel();
        }
    }

    /// Closes `client_id`'s live connection and forgets its session (a deleted device).
    pub(crate) fn forget(&self, client_id: &str) {
        let mut slots = self.lock();
        let Some(slot) = slots.by_client.get_mut(client_id) else {
            return;
        };
        slot.saved = None;
        if let Some(active) = &mut slot.active {
            active.deleted = true;
            active.stop.cancel();
        }
        slots.prune(client_id);
    }

    /// Whether `client_id` has a live connection now, numbered for the hub (see
    /// [`ConnectionState`]): whoever records the state with the highest number records the
    /// latest connect or disconnect, however the connection tasks interleave.
    pub(crate) fn connection_state(&self, client_id: &str) -> ConnectionState {
        let mut slots = self.lock();
        slots.next_state_seq += 1;
        ConnectionState {
            connected: slots
                .by_client
                .get(client_id)
                .is_some_and(|slot| slot.active.is_some()),
            seq: slots.next_state_seq,
        }
    }

    /// Runs the expiry sweep as if the time were `now`.
    #[cfg(test)]
    fn sweep_at(&self, now: Instant) {
        let mut slots = self.lock();
        slots.next_sweep = None;
        slots.sweep(now);
    }

    /// How many client ids the table holds anything for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_client.len()
    }

    /// Whether `client_id` has a live connection now.
    #[cfg(test)]
    fn is_connected(&self, client_id: &str) -> bool {
        self.connection_state(client_id).connected
    }
}

/// The hub's side of the table: it reports changes and closes sessions through these.
impl DeviceSessions for SessionTable {
    fn desired_changed(&self, change: DesiredPatch) {
        let notification = DesiredNotification {
            version: change.version,
            body: Bytes::from(change.patch.to_string()),
        };
        self.deliver_desired(&change.device_id, notification);
    }

    fn disconnect(&self, device_id: &str) {
        self.kick(device_id);
    }

    fn device_deleted(&self, device_id: &str) {
        self.forget(device_id);
    }

    fn cloud_to_device_ready(&self, device_id: &str) {
        SessionTable::cloud_to_device_ready(self, device_id);
    }
}

impl Lease {
    /// Records whether this connection's session is subscribed to direct methods (see
    /// [`SessionTable::deliver_method`]).
    pub(crate) fn set_methods_ready(&self, ready: bool) {
        self.table.set_methods_ready(self, ready);
    }
}

impl Drop for Lease {
    /// A connection task that ends without [`SessionTable::detach`] (a panic) still frees
    /// its slot and unblocks a successor.
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        let mut slots = self.table.lock();
        slots.end(&self.client_id, self.connection);
        slots.prune(&self.client_id);
        drop(slots);
        self.released.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rumqttc::mqttbytes::v4::{Packet, Subscribe};
    use rumqttc::mqttbytes::QoS;

    use crate::mqtt::session::Session;
    use crate::mqtt::topic::Identity;

    fn notification(version: u64) -> DesiredNotification {
        DesiredNotification {
            version,
            body: Bytes::from(format!("{{\"$version\":{version}}}")),
        }
    }

    fn desired_subscriber() -> SavedSession {
        let (mut session, _) = Session::resume(
            Identity {
                device_id: "d".into(),
                module_id: None,
            },
            None,
        );
        let mut out = Vec::new();
        session.on_packet(
            Packet::Subscribe(Subscribe::new(
                "$iothub/twin/PATCH/properties/desired/#",
                QoS::AtLeastOnce,
            )),
            &mut out,
        );
        session.into_saved()
    }

    #[tokio::test]
    async fn persistent_session_survives_and_queues_while_offline() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let lease = table.attach("d", false, &shutdown).await;
        assert!(lease.saved.is_none(), "first connection has no session");
        assert!(table.is_connected("d"));
        table.detach(lease, Some(desired_subscriber()));
        assert!(!table.is_connected("d"));

        table.deliver_desired("d", notification(2));
        table.deliver_desired("d", notification(3));
        let lease = table.attach("d", false, &shutdown).await;
        let saved = lease.saved.clone().expect("session present");
        assert_eq!(
            saved
                .pending_desired
                .iter()
                .map(|n| n.version)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        table.detach(lease, None);
    }

    #[tokio::test]
    async fn clean_session_discards_the_stored_session() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let lease = table.attach("d", false, &shutdown).await;
        table.detach(lease, Some(desired_subscriber()));
        let lease = table.attach("d", true, &shutdown).await;
        assert!(lease.saved.is_none());
        table.detach(lease, None);
        let lease = table.attach("d", false, &shutdown).await;
        assert!(
            lease.saved.is_none(),
            "clean session 1 leaves nothing behind"
        );
    }

    #[tokio::test]
    async fn undelivered_notifications_are_kept_on_detach() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let lease = table.attach("d", false, &shutdown).await;
        table.deliver_desired("d", notification(7));
        table.detach(lease, Some(desired_subscriber()));
        let lease = table.attach("d", false, &shutdown).await;
        let versions: Vec<u64> = lease
            .saved
            .as_ref()
            .map(|s| s.pending_desired.iter().map(|n| n.version).collect())
            .unwrap_or_default();
        assert_eq!(versions, vec![7]);
    }

    #[tokio::test]
    async fn a_second_connection_closes_the_first_and_inherits_its_session() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let first = table.attach("d", false, &shutdown).await;
        let first_stop = first.stop.clone();
        let old = tokio::spawn({
            let table = table.clone();
            async move {
                first.stop.cancelled().await;
                table.detach(first, Some(desired_subscriber()));
            }
        });
        let second = table.attach("d", false, &shutdown).await;
        assert!(first_stop.is_cancelled());
        assert!(second
            .saved
            .as_ref()
            .is_some_and(|s| s.subscriptions.wants_desired()));
        assert!(!second.stop.is_cancelled());
        old.await.expect("old connection task");
        assert!(
            table.is_connected("d"),
            "the old detach must not unregister the new one"
        );
    }

    #[tokio::test]
    async fn a_stuck_connection_is_taken_over_after_the_timeout() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let stuck = table.attach("d", false, &shutdown).await;
        let second = table
            .attach_within("d", false, &shutdown, Duration::from_millis(50))
            .await;
        assert!(stuck.stop.is_cancelled());
        table.detach(stuck, Some(desired_subscriber()));
        assert!(table.is_connected("d"));
        table.detach(second, None);
        assert!(!table.is_connected("d"));
    }

    #[tokio::test]
    async fn kick_and_shutdown_stop_the_connection() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let lease = table.attach("d", true, &shutdown).await;
        table.kick("other");
        assert!(!lease.stop.is_cancelled());
        table.kick("d");
        assert!(lease.stop.is_cancelled());
        let lease2 = table.attach("e", true, &shutdown).await;
        shutdown.cancel();
        assert!(lease2.stop.is_cancelled());
    }

    #[tokio::test]
    async fn a_dropped_lease_frees_the_slot() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let lease = table.attach("d", true, &shutdown).await;
        drop(lease);
        assert!(!table.is_connected("d"));
    }

    #[tokio::test]
    async fn a_connection_that_falls_behind_is_stopped_and_leaves_no_gap() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let lease = table.attach("d", false, &shutdown).await;
        for version in 0..MAX_UNSENT_DESIRED as u64 {
            table.deliver_desired("d", notification(version));
        }
        assert!(!lease.stop.is_cancelled(), "a full queue is still in step");
        table.deliver_desired("d", notification(5000));
        assert!(
            lease.stop.is_cancelled(),
            "one more and the connection must go"
        );
        table.deliver_desired("d", notification(5001));
        table.detach(lease, Some(desired_subscriber()));

        table.deliver_desired("d", notification(5002));
        let lease = table.attach("d", false, &shutdown).await;
        assert!(
            lease.saved.is_none(),
            "a session with a hole is not resumed: session_present = 0, the device re-reads"
        );
        table.detach(lease, Some(desired_subscriber()));
        table.deliver_desired("d", notification(5003));
        let lease = table.attach("d", false, &shutdown).await;
        let versions: Vec<u64> = lease
            .saved
            .as_ref()
            .map(|s| s.pending_desired.iter().map(|n| n.version).collect())
            .unwrap_or_default();
        assert_eq!(versions, vec![5003], "back in step after a reconnect");
    }

    #[tokio::test]
    async fn forget_closes_the_connection_and_discards_the_session() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let lease = table.attach("d", false, &shutdown).await;
        table.forget("d");
        assert!(lease.stop.is_cancelled());
        table.detach(lease, Some(desired_subscriber()));
        let lease = table.attach("d", false, &shutdown).await;
        assert!(lease.saved.is_none(), "a live session is not saved");
        table.detach(lease, Some(desired_subscriber()));
        table.forget("d");
        let lease = table.attach("d", false, &shutdown).await;
        assert!(lease.saved.is_none(), "an offline session is discarded");
    }

    #[tokio::test]
    async fn ended_sessions_expire_and_their_entries_are_freed() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let lease = table.attach("gone", false, &shutdown).await;
        table.detach(lease, Some(desired_subscriber()));
        let live = table.attach("live", false, &shutdown).await;
        table.deliver_desired("gone", notification(2));
        assert_eq!(table.len(), 2);

        table.sweep_at(Instant::now() + SESSION_EXPIRY / 2);
        assert_eq!(table.len(), 2, "a recent session is kept");
        table.sweep_at(Instant::now() + SESSION_EXPIRY + Duration::from_secs(1));
        assert_eq!(
            table.len(),
            1,
            "the expired session's entry is freed; the live one stays"
        );
        assert!(table.is_connected("live"));

        let lease = table.attach("gone", false, &shutdown).await;
        assert!(lease.saved.is_none(), "an expired session is not resumed");
        table.detach(lease, None);
        table.detach(live, None);
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn connection_state_reports_are_numbered_in_order() {
        let table = SessionTable::default();
        let shutdown = CancellationToken::new();
        let before = table.connection_state("d");
        let lease = table.attach("d", true, &shutdown).await;
        let during = table.connection_state("d");
        table.detach(lease, None);
        let after = table.connection_state("d");
        assert_eq!(
            [before.connected, during.connected, after.connected],
            [false, true, false]
        );
        assert!(before.seq < during.seq && during.seq < after.seq);
    }
}
