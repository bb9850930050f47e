//! The accept-and-handshake loop both TLS listeners share: the HTTPS port (REST API and MQTT over
//! WebSockets) and the MQTT port.
//!
//! Every accepted socket gets its own connection task at once and is handshaken there, so a slow
//! or silent client never stalls the accept loop. The task belongs to [`Connections`]: shutdown
//! stops the loop, abandons handshakes still running, and waits for the connections being served.
//!
//! Each listener holds at most [`ConnectionLimits::max_connections_per_listener`] connections (a
//! task keeps its permit until its socket closes). At the ceiling a new socket takes the place of
//! the oldest one still in its TLS handshake, so sockets that connect and send nothing can never
//! shut a new client out; when every connection is past its handshake, the new one waits for the
//! first to end (the HTTPS and handshake timeouts bound how long that is).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::ConnectionLimits;
use crate::connections::Connections;

/// Pause after a failed `accept` (usually out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// At most one warning per this long about failed accepts or a full listener.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts on `listener` until shutdown; each connection that completes the TLS handshake is
/// handed to `serve_connection` inside its connection task. `name` labels the logs.
pub(crate) async fn serve<S, F>(
    name: &'static str,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: Connections,
    limits: ConnectionLimits,
    serve_connection: S,
) where
    S: Fn(TlsStream<TcpStream>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections_per_listener.max(1)));
    let handshakes = Handshakes::default();
    let handshake_timeout = limits.handshake_timeout;
    let mut accept_warnings = RateLimited::new(WARNING_INTERVAL);
    let mut ceiling_warnings = RateLimited::new(WARNING_INTERVAL);
    loop {
        let (tcp, peer) = tokio::select! {
            () = connections.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if let Some(suppressed) = accept_warnings.allow(Instant::now()) {
                        warn!(listener = name, %error, suppressed, "accept failed (similar failures since the last warning: suppressed)");
                    }
                    tokio::select! {
                        () = connections.cancelled() => return,
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                    }
                }
            },
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(suppressed) = ceiling_warnings.allow(Instant::now()) {
                    warn!(
                        listener = name,
                        max_connections = limits.max_connections_per_listener,
                        suppressed,
                        "connection ceiling reached; new connections replace unfinished handshakes or wait"
                    );
                }
                handshakes.abandon_oldest();
                tokio::select! {
                    () = connections.cancelled() => return,
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // The semaphore is never closed.
                        Err(_) => return,
                    },
                }
            }
        };
        // Small requests and packets, answered at once: don't wait to coalesce them.
        let _ = tcp.set_nodelay(true);
        let (acceptor, lifetime, serve_connection, handshakes) = (
            acceptor.clone(),
            connections.clone(),
            serve_connection.clone(),
            handshakes.clone(),
        );
        connections.spawn(async move {
            let _permit: OwnedSemaphorePermit = permit;
            let (ticket, abandoned) = handshakes.begin();
            let handshake = tokio::select! {
                () = lifetime.cancelled() => return,
                () = abandoned.cancelled() => {
                    debug!(listener = name, %peer, "TLS handshake abandoned for a newer connection");
                    return;
                }
                handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)) => handshake,
            };
            handshakes.end(ticket);
            match handshake {
                Ok(Ok(tls)) => serve_connection(tls, peer).await,
                Ok(Err(error)) => debug!(listener = name, %peer, %error, "TLS handshake failed"),
                Err(_) => debug!(listener = name, %peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The handshakes still running on one listener, oldest first, each with the signal that
/// abandons it.
#[derive(Debug, Clone, Default)]
struct Handshakes {
    running: Arc<Mutex<HandshakeQueue>>,
}

#[derive(Debug, Default)]
struct HandshakeQueue {
    next: u64,
    by_age: BTreeMap<u64, CancellationToken>,
}

impl Handshakes {
    fn begin(&self) -> (u64, CancellationToken) {
        let mut queue = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = queue.next;
        queue.next += 1;
        let abandon = CancellationToken::new();
        queue.by_age.insert(ticket, abandon.clone());
        (ticket, abandon)
    }

    fn end(&self, ticket: u64) {
        let mut queue = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        queue.by_age.remove(&ticket);
    }

    fn abandon_oldest(&self) {
        let mut queue = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, abandon)) = queue.by_age.pop_first() {
            abandon.cancel();
        }
    }
}

/// Lets one event through per interval and counts the ones held back in between.
#[derive(Debug)]
struct RateLimited {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    fn new(interval: Duration) -> Self {
        RateLimited {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(events suppressed since the last one let through)` if this one may be reported.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_held_back() {
        let start = Instant::now();
        let mut limited = RateLimited::new(Duration::from_secs(10));
        assert_eq!(limited.allow(start), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(limited.allow(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(limited.allow(start + Duration::from_secs(10)), Some(3));
        assert_eq!(limited.allow(start + Duration::from_secs(11)), None);
    }

    #[test]
    fn the_oldest_running_handshake_is_abandoned_first() {
        let handshakes = Handshakes::default();
        let (first, first_abandoned) = handshakes.begin();
        let (_, second_abandoned) = handshakes.begin();
        let (_, third_abandoned) = handshakes.begin();
        handshakes.end(first);
        handshakes.abandon_oldest();
        assert!(!first_abandoned.is_cancelled());
        assert!(second_abandoned.is_cancelled());
        assert!(!third_abandoned.is_cancelled());
    }
}
