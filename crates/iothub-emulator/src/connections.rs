//! The one lifetime every client connection shares: a shutdown signal and a task tracker, owned
//! by the running emulator.
//!
//! HTTPS connections, MQTT-over-TLS connections and MQTT-over-WebSocket sessions all run as tasks
//! of this tracker (a WebSocket session, which axum runs in a task of its own after the upgrade,
//! holds a [`TaskTrackerToken`] instead), so [`Connections::close`] returns only once every one
//! of them has ended. The emulator closes its store after that, never before.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

/// Cheap to clone; every clone is the same lifetime.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections {
    /// Cancelled when the emulator starts shutting down: listeners stop accepting, handshakes are
    /// abandoned, HTTPS connections finish their in-flight requests, MQTT sessions close.
    shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for all of them.
    tracker: TaskTracker,
}

impl Connections {
    /// Runs `task` as one of the emulator's connections.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Keeps [`Connections::close`] waiting for as long as the returned token lives: for a
    /// connection that starts in a tracked task and continues in a task someone else spawns.
    pub(crate) fn hold(&self) -> TaskTrackerToken {
        self.tracker.token()
    }

    /// The shutdown signal (MQTT sessions derive their per-connection stop signal from it).
    pub(crate) fn shutdown_signal(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn cancelled(&self) {
        self.shutdown.cancelled().await;
    }

    /// Starts shutting down without waiting (a dropped emulator).
    pub(crate) fn cancel(&self) {
        self.shutdown.cancel();
    }

    /// Starts shutting down and returns once every connection task has ended.
    pub(crate) async fn close(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_waits_for_spawned_tasks_and_held_tokens() {
        let connections = Connections::default();
        let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel();
        let spawned = finished_tx.clone();
        let signal = connections.clone();
        connections.spawn(async move {
            signal.cancelled().await;
            let _ = spawned.send("spawned task");
        });
        let held = connections.hold();
        let signal = connections.clone();
        tokio::spawn(async move {
            signal.cancelled().await;
            tokio::task::yield_now().await;
            let _ = finished_tx.send("holder");
            drop(held);
        });
        connections.close().await;
        let mut ended: Vec<&str> = std::iter::from_fn(|| finished_rx.try_recv().ok()).collect();
        ended.sort_unstable();
        assert_eq!(ended, ["holder", "spawned task"]);
    }
}
