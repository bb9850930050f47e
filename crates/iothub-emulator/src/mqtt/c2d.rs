//! One connection's side of cloud-to-device delivery (ARCHITECTURE.md#cloud-to-device-messages):
//! fetching what the hub's queue holds for the device when the session wants it (it subscribed,
//! resumed a subscription, or the session table signalled new messages), completing a message
//! on its PUBACK, and handing back what was not acknowledged when the connection ends. The
//! protocol side (packet ids, QoS, DUP) is the [`Session`]'s.

use tokio::time::Instant;

use super::session::{Action, Session};
use super::topic::Identity;
use crate::c2d::CloudToDevice;
use crate::hub::Hub;

/// A connection's link to its device's cloud-to-device queue.
#[derive(Debug)]
pub(super) struct C2dLink {
    /// `None` for a module identity: modules have no cloud-to-device queue here.
    device_id: Option<String>,
    /// Which connection the queue handed messages to.
    receiver: u64,
}

impl C2dLink {
    /// The link of a new connection authenticated as `identity`.
    pub(super) fn new(identity: &Identity) -> C2dLink {
        C2dLink {
            device_id: identity
                .module_id
                .is_none()
                .then(|| identity.device_id.clone()),
            receiver: CloudToDevice::new_receiver(),
        }
    }

    /// Fetches every deliverable message and lets the session publish them (appending to
    /// `out`), if the session is subscribed.
    pub(super) fn deliver(&self, hub: &Hub, session: &mut Session, out: &mut Vec<Action>) {
        let Some(device_id) = &self.device_id else {
            return;
        };
        if !session.wants_cloud_to_device() {
            return;
        }
        let deliveries = hub.c2d().take(device_id, self.receiver);
        if !deliveries.is_empty() {
            session.on_cloud_to_device(deliveries, Instant::now(), out);
        }
    }

    /// The device acknowledged delivery `lock`.
    pub(super) fn complete(&self, hub: &Hub, lock: u64) {
        if let Some(device_id) = &self.device_id {
            hub.c2d().complete(device_id, lock);
        }
    }

    /// The connection ended: what it did not acknowledge goes back to the queue for the
    /// device's next connection. Call after the session table has let the connection go, so
    /// the signal reaches a successor.
    pub(super) fn release(&self, hub: &Hub) {
        if let Some(device_id) = &self.device_id {
            hub.c2d().release(device_id, self.receiver);
        }
    }
}
