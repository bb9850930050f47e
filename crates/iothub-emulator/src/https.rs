//! One HTTPS connection, after the shared listener's TLS handshake: hyper (HTTP/1.1 with
//! upgrades for MQTT over WebSockets, or HTTP/2) serving the axum router.
//!
//! A connection cannot sit on its listener's slot forever: HTTP/1.1 request heads must arrive
//! within the header-read timeout, and a connection that moves no byte for the idle timeout is
//! closed, unless a request on it is still being answered (a direct method may wait minutes
//! for its device); the idle time then counts from the end of that request. At shutdown the connection gets [`SHUTDOWN_GRACE`] to finish its in-flight requests,
//! then closes; an idle or half-sent request does not hold shutdown up.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use crate::config::ConnectionLimits;
use crate::connections::Connections;

/// How long in-flight requests may take to finish once shutdown begins.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` on `tls` until the peer closes, the connection times out, or the emulator
/// shuts down. A connection upgraded to a WebSocket lives on in its own task; this one (and
/// with it the listener's permit) lasts until that socket closes too.
pub(crate) async fn serve_connection(
    tls: TlsStream<TcpStream>,
    peer: SocketAddr,
    router: Router,
    connections: Connections,
    limits: ConnectionLimits,
) {
    let (socket_open, socket_closed) = oneshot::channel::<()>();
    let activity = Arc::new(Activity::new());
    let io = WatchedIo {
        inner: tls,
        activity: Arc::clone(&activity),
        _open: socket_open,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let service = Busy {
        inner: TowerToHyperService::new(router),
        activity: Arc::clone(&activity),
    };
    let mut conn = Box::pin(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "https connection ended with an error");
            }
        }
        () = activity.idle_for(limits.idle_timeout) => {
            tracing::debug!(%peer, "https connection idle too long: closed");
        }
        () = connections.cancelled() => {
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await.is_err() {
                tracing::debug!(%peer, "https connection still busy at shutdown: closed");
            }
        }
    }
    drop(conn);
    // Resolves (with an error) once the socket is dropped: at once, unless it was upgraded.
    let _ = socket_closed.await;
}

/// When a connection last moved a byte, and how many of its requests are being answered.
#[derive(Debug)]
struct Activity {
    since: Instant,
    last_millis: AtomicU64,
    requests_in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            since: Instant::now(),
            last_millis: AtomicU64::new(0),
            requests_in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.since + Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                if self.requests_in_flight.load(Ordering::Relaxed) == 0 {
                    return;
                }
                // Waiting for its answer is not idleness; look again a limit later (the
                // request's end also counts as activity).
                self.touch();
                continue;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The router as a hyper service that counts each request as in flight until its answer is
/// ready (see [`Activity::idle_for`]).
struct Busy<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// A request being answered; its end counts as activity.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> InFlight {
        activity.requests_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.requests_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, R> hyper::service::Service<R> for Busy<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        let in_flight = InFlight::new(&self.activity);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        })
    }
}

/// The TLS stream, noting each read and write in [`Activity`]; dropping it (after the
/// connection ends, or after a WebSocket session ends) drops `_open`.
struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    _open: oneshot::Sender<()>,
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
