//! Messages: telemetry the device sends ([`Message`]) and cloud-to-device messages it receives
//! ([`C2dMessage`]), with their system and application properties.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::driver::Answer;
use crate::error::Error;

/// A device-to-cloud (telemetry) message for [`crate::DeviceClient::send_telemetry`].
///
/// The system properties travel in the topic's property bag as `$.mid`, `$.cid`, `$.ct` and
/// `$.ce`; application properties follow in the order given. Set `content_type` to
/// `application/json` and `content_encoding` to `utf-8` when the hub's message routing should
/// be able to query the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The body, sent as is.
    pub body: Vec<u8>,
    /// `$.mid`.
    pub message_id: Option<String>,
    /// `$.cid`.
    pub correlation_id: Option<String>,
    /// `$.ct`, e.g. `application/json`.
    pub content_type: Option<String>,
    /// `$.ce`, e.g. `utf-8`.
    pub content_encoding: Option<String>,
    /// Application properties, in order.
    pub properties: Vec<(String, String)>,
}

impl Message {
    /// A message with this body and no properties.
    pub fn new(body: impl Into<Vec<u8>>) -> Message {
        Message {
            body: body.into(),
            ..Message::default()
        }
    }

    /// Sets the message id.
    pub fn with_message_id(mut self, id: impl Into<String>) -> Message {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Message {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the content type.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Message {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets the content encoding.
    pub fn with_content_encoding(mut self, encoding: impl Into<String>) -> Message {
        self.content_encoding = Some(encoding.into());
        self
    }

    /// Adds an application property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Message {
        self.properties.push((key.into(), value.into()));
        self
    }
}

/// System properties of a received cloud-to-device message, percent-decoded from the topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemProperties {
    /// `$.mid`: the message id.
    pub message_id: Option<String>,
    /// `$.cid`: the correlation id.
    pub correlation_id: Option<String>,
    /// `$.uid`: the user id.
    pub user_id: Option<String>,
    /// `$.to`: the destination, `/devices/{id}/messages/devicebound`.
    pub to: Option<String>,
    /// `$.ct`: the content type.
    pub content_type: Option<String>,
    /// `$.ce`: the content encoding.
    pub content_encoding: Option<String>,
    /// `$.exp`: the expiry time, as the hub wrote it.
    pub expiry_time_utc: Option<String>,
    /// `iothub-ack`: the feedback the sender asked for (`none`, `positive`, `negative`,
    /// `full`).
    pub ack: Option<String>,
    /// Other `$.`-prefixed keys, with their prefix, in order.
    pub other: Vec<(String, String)>,
}

/// A cloud-to-device message. [`C2dMessage::complete`] acknowledges it (MQTT PUBACK), which
/// the hub takes as "completed": it leaves the device's queue, and positive feedback is sent if
/// the sender asked for it. A message dropped without completing stays unacknowledged; the hub
/// delivers it again after the next reconnect. (Over MQTT a device cannot reject or abandon a
/// message.)
#[derive(Debug)]
pub struct C2dMessage {
    /// The body, as sent.
    pub body: Vec<u8>,
    /// System properties.
    pub system: SystemProperties,
    /// Application properties, in the order the hub sent them.
    pub properties: Vec<(String, String)>,
    /// Whether the hub marked this delivery as a retransmission (MQTT DUP).
    pub redelivered: bool,
    pub(crate) completion: Completion,
}

/// What [`C2dMessage::complete`] needs: the delivery's packet id and connection.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) pkid: u16,
    pub(crate) epoch: u64,
    pub(crate) answers: mpsc::UnboundedSender<Answer>,
}

impl C2dMessage {
    /// Acknowledges the message (MQTT PUBACK). Returns once the acknowledgement is queued on
    /// the connection that delivered the message.
    ///
    /// # Errors
    /// [`Error::NoLongerPending`] when that connection is gone (the hub delivers the message
    /// again, and that delivery must be completed instead); [`Error::Closed`] when the client
    /// stopped.
    pub async fn complete(self) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        let Completion {
            pkid,
            epoch,
            answers,
        } = self.completion;
        answers
            .send(Answer::Complete { pkid, epoch, reply })
            .map_err(|_| Error::Closed)?;
        done.await.map_err(|_| Error::Closed)?
    }

    /// The body as UTF-8 text, when it is.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// Stream of [`C2dMessage`]s from [`crate::DeviceClient::c2d_messages`]. It ends when the
/// client is closed, or when another stream replaces it.
#[derive(Debug)]
pub struct C2dMessages {
    pub(crate) rx: mpsc::Receiver<C2dMessage>,
}

impl C2dMessages {
    /// The next message, or `None` once the stream ended.
    pub async fn next(&mut self) -> Option<C2dMessage> {
        self.rx.recv().await
    }
}

impl futures_util::Stream for C2dMessages {
    type Item = C2dMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<C2dMessage>> {
        self.rx.poll_recv(cx)
    }
}
