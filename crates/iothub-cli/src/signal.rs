//! Stopping on SIGINT (Ctrl-C) or SIGTERM (how service managers, `kill` and test harnesses
//! stop a process), so a binary can end cleanly: a device sends DISCONNECT, the emulator
//! finishes in-flight writes.
//!
//! The handlers are registered by [`StopSignals::listen`], not on first poll: once it returns,
//! a signal can no longer kill the process, even if the binary is still busy starting up.

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT, or Ctrl-C on a console.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

/// Registered SIGINT and SIGTERM handlers; [`StopSignals::recv`] waits for either.
#[derive(Debug)]
pub struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Registers the handlers. Needs a tokio runtime with I/O enabled.
    ///
    /// # Errors
    /// The operating system refused to install a handler.
    pub fn listen() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    /// Resolves on the next SIGINT or SIGTERM received since [`StopSignals::listen`].
    pub async fn recv(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => StopSignal::Interrupt,
                _ = self.terminate.recv() => StopSignal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => StopSignal::Interrupt,
                // No console to listen to: nothing will ever ask us to stop this way.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

// Two attributes, not `cfg(all(test, unix))`: clippy recognises a test module (and allows its
// helpers to expect) only by a plain `#[cfg(test)]`.
#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;

    fn raise(signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    // One test for both signals: handlers are process-wide, and a SIGINT raised by one test
    // while another listens would be seen by both.
    #[tokio::test]
    async fn either_signal_resolves_and_is_named() {
        let mut signals = StopSignals::listen().unwrap();
        raise("INT");
        let got = tokio::time::timeout(std::time::Duration::from_secs(30), signals.recv()).await;
        assert_eq!(got, Ok(StopSignal::Interrupt));
        raise("TERM");
        let got = tokio::time::timeout(std::time::Duration::from_secs(30), signals.recv()).await;
        assert_eq!(got, Ok(StopSignal::Terminate));
        assert_eq!(StopSignal::Terminate.name(), "SIGTERM");
        assert_eq!(StopSignal::Interrupt.name(), "SIGINT");
    }
}
