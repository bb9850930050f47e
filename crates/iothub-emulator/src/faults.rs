//! Fault injection for clients' reliability tests: drop a device's MQTT connection, refuse MQTT
//! connections for a while, and fail the next N twin operations (REST and MQTT) with 429 or 503.
//!
//! [`Faults`] is the hub-internal state the front doors consult; [`FaultInjector`] is the public
//! handle tests get from `RunningEmulator::faults()`. The REST admin endpoints
//! (`/$emulator/faults/…`, see `rest::admin`) drive the same state.

use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

/// Shared fault state.
#[derive(Debug)]
pub struct Faults {
    /// Twin operations still to fail.
    twin_failures_left: AtomicU32,
    /// Status of those failures (429 or 503).
    twin_failure_status: AtomicU16,
    /// MQTT CONNECTs are refused until this instant.
    refuse_until: Mutex<Option<Instant>>,
    /// Device ids whose MQTT connection must close now.
    drops: broadcast::Sender<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new()
    }
}

impl Faults {
    /// No faults armed.
    pub fn new() -> Faults {
        let (drops, _) = broadcast::channel(256);
        Faults {
            twin_failures_left: AtomicU32::new(0),
            twin_failure_status: AtomicU16::new(503),
            refuse_until: Mutex::new(None),
            drops,
        }
    }

    /// Consumes one armed twin failure: `Some(status)` means "answer this operation with it".
    pub fn take_twin_failure(&self) -> Option<u16> {
        self.twin_failures_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()
            .map(|_| self.twin_failure_status.load(Ordering::Acquire))
    }

    /// Whether MQTT CONNECTs must be refused right now.
    pub fn connections_refused(&self) -> bool {
        let guard = self
            .refuse_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.is_some_and(|until| Instant::now() < until)
    }

    /// Device ids to disconnect, as they are requested.
    pub fn subscribe_drops(&self) -> broadcast::Receiver<String> {
        self.drops.subscribe()
    }

    /// Arms the next `n` twin operations to fail with `status` (anything but 429 means 503).
    pub fn fail_next_twin_operations(&self, n: u32, status: u16) {
        let status = if status == 429 { 429 } else { 503 };
        self.twin_failure_status.store(status, Ordering::Release);
        self.twin_failures_left.store(n, Ordering::Release);
    }

    /// Refuses MQTT connections for `d` from now.
    pub fn refuse_connections_for(&self, d: Duration) {
        let mut guard = self
            .refuse_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = Instant::now().checked_add(d);
    }

    /// Asks the MQTT endpoint to close this device's connection.
    pub fn drop_device_connection(&self, device_id: &str) {
        // No receiver simply means no MQTT session is listening; nothing to drop.
        let _ = self.drops.send(device_id.to_string());
    }
}

/// Public, cloneable handle on the emulator's faults.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    faults: Arc<Faults>,
}

impl FaultInjector {
    pub(crate) fn new(faults: Arc<Faults>) -> FaultInjector {
        FaultInjector { faults }
    }

    /// Closes the device's MQTT connection now.
    pub fn drop_device_connection(&self, device_id: &str) {
        self.faults.drop_device_connection(device_id);
    }

    /// MQTT CONNECTs are refused (connection closed) during `d`.
    pub fn refuse_connections_for(&self, d: Duration) {
        self.faults.refuse_connections_for(d);
    }

    /// The next `n` twin operations (REST or MQTT) answer `status` (429 or 503).
    pub fn fail_next_twin_operations(&self, n: u32, status: u16) {
        self.faults.fail_next_twin_operations(n, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twin_failures_are_consumed_one_by_one() {
        let f = Faults::new();
        assert_eq!(f.take_twin_failure(), None);
        f.fail_next_twin_operations(2, 429);
        assert_eq!(f.take_twin_failure(), Some(429));
        assert_eq!(f.take_twin_failure(), Some(429));
        assert_eq!(f.take_twin_failure(), None);
    }

    #[test]
    fn refusal_expires() {
        let f = Faults::new();
        assert!(!f.connections_refused());
        f.refuse_connections_for(Duration::from_secs(60));
        assert!(f.connections_refused());
        f.refuse_connections_for(Duration::ZERO);
        assert!(!f.connections_refused());
    }
}
