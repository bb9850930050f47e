//! Fault injection for clients' reliability tests: drop a device's MQTT connection, refuse MQTT
//! connections for a while, and fail the next N twin operations (REST and MQTT) with 429 or 503.
//!
//! [`Faults`] is the hub-internal state the front doors consult; [`FaultInjector`] is the public
//! handle tests get from `RunningEmulator::faults()`. The REST admin endpoints
//! (`/$emulator/faults/…`, see `rest::admin`) drive the same state. Dropping a connection goes
//! straight to the MQTT session table through the hub (`Hub::disconnect_device`).

use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::hub::Hub;

/// Shared fault state (no faults armed by default).
#[derive(Debug)]
pub(crate) struct Faults {
    /// Twin operations still to fail.
    twin_failures_left: AtomicU32,
    /// Status of those failures (429 or 503).
    twin_failure_status: AtomicU16,
    /// MQTT CONNECTs are refused until this instant.
    refuse_until: Mutex<Option<Instant>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            twin_failures_left: AtomicU32::new(0),
            twin_failure_status: AtomicU16::new(503),
            refuse_until: Mutex::new(None),
        }
    }
}

impl Faults {
    /// Consumes one armed twin failure: `Some(status)` means "answer this operation with it".
    pub(crate) fn take_twin_failure(&self) -> Option<u16> {
        self.twin_failures_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()
            .map(|_| self.twin_failure_status.load(Ordering::Acquire))
    }

    /// Whether MQTT CONNECTs must be refused right now.
    pub(crate) fn connections_refused(&self) -> bool {
        let guard = self
            .refuse_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.is_some_and(|until| Instant::now() < until)
    }

    /// Arms the next `n` twin operations to fail with `status` (anything but 429 means 503).
    pub(crate) fn fail_next_twin_operations(&self, n: u32, status: u16) {
        let status = if status == 429 { 429 } else { 503 };
        self.twin_failure_status.store(status, Ordering::Release);
        self.twin_failures_left.store(n, Ordering::Release);
    }

    /// Refuses MQTT connections for `d` from now.
    pub(crate) fn refuse_connections_for(&self, d: Duration) {
        let mut guard = self
            .refuse_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = Instant::now().checked_add(d);
    }
}

/// Public, cloneable handle on the emulator's faults.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    hub: Hub,
}

impl FaultInjector {
    pub(crate) fn new(hub: Hub) -> FaultInjector {
        FaultInjector { hub }
    }

    /// Closes the device's MQTT connection now (its clean-session-0 session is kept).
    pub fn drop_device_connection(&self, device_id: &str) {
        self.hub.disconnect_device(device_id);
    }

    /// MQTT CONNECTs are refused (connection closed) during `d`.
    pub fn refuse_connections_for(&self, d: Duration) {
        self.hub.faults().refuse_connections_for(d);
    }

    /// The next `n` twin operations (REST or MQTT) answer `status` (429 or 503).
    pub fn fail_next_twin_operations(&self, n: u32, status: u16) {
        self.hub.faults().fail_next_twin_operations(n, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twin_failures_are_consumed_one_by_one() {
        let f = Faults::default();
        assert_eq!(f.take_twin_failure(), None);
        f.fail_next_twin_operations(2, 429);
        assert_eq!(f.take_twin_failure(), Some(429));
        assert_eq!(f.take_twin_failure(), Some(429));
        assert_eq!(f.take_twin_failure(), None);
    }

    #[test]
    fn refusal_expires() {
        let f = Faults::default();
        assert!(!f.connections_refused());
        f.refuse_connections_for(Duration::from_secs(60));
        assert!(f.connections_refused());
        f.refuse_connections_for(Duration::ZERO);
        assert!(!f.connections_refused());
    }
}
