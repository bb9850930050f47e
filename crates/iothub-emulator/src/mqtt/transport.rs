//! The two byte transports MQTT runs over: a TLS stream (`--mqtt-port`) and a WebSocket
//! (`/$iothub/websocket` on the HTTPS port, MQTT carried in binary messages that need not align
//! with packet boundaries). The connection driver only sees [`Transport`].

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a closing handshake (TLS close_notify, WebSocket close frame) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A bidirectional byte channel to one client.
pub trait Transport: Send {
    /// Appends received bytes to `buf`; `Ok(0)` means the peer closed. Cancel-safe: bytes are
    /// only ever appended once they have been received.
    fn read(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send;
    /// Sends all of `buf` and empties it.
    fn write(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<()>> + Send;
    /// Closes politely, without waiting long for a peer that does not answer.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Any byte stream: in production a `tokio_rustls` server stream.
pub struct StreamTransport<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for StreamTransport<S> {
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.0.read_buf(buf).await
    }

    async fn write(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        self.0.write_all(buf).await?;
        buf.clear();
        self.0.flush().await
    }

    async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.0.shutdown()).await;
    }
}

/// An upgraded `/$iothub/websocket` connection.
pub struct WebSocketTransport(pub WebSocket);

impl Transport for WebSocketTransport {
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            match self.0.recv().await {
                None | Some(Ok(Message::Close(_))) => return Ok(0),
                Some(Err(error)) => return Err(io::Error::other(error)),
                Some(Ok(Message::Binary(data))) => {
                    // An empty message carries nothing; returning 0 would read as end of stream.
                    if !data.is_empty() {
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "MQTT over WebSockets must use binary messages",
                    ))
                }
            }
        }
    }

    async fn write(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        let data = buf.split().freeze();
        self.0
            .send(Message::Binary(data))
            .await
            .map_err(io::Error::other)
    }

    async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.0.send(Message::Close(None))).await;
    }
}
