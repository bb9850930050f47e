//! The AMQP 1.0 front door (AMQPS, port 5671 by default): the hub's built-in Event
//! Hub-compatible endpoint (ARCHITECTURE.md#amqp).
//!
//! Built on `fe2o3-amqp`'s acceptors: the listener does the TLS handshake itself (clients start
//! TLS directly on 5671, without the AMQP TLS header the crate's own TLS path expects) and hands
//! the stream to a [`ConnectionAcceptor`] with the hub's SASL mechanisms ([`sasl`]). Each
//! session runs as a task that accepts links and routes them by address ([`address`]):
//!
//! - `$cbs`: `put-token` requests, answered on the session's `$cbs` receiver link ([`requests`]);
//! - `$management`: READ requests for the entity and its partitions ([`requests`]);
//! - `{hub}/ConsumerGroups/{group}/Partitions/{id}`: the partition's events, from the position the
//!   selector filter names ([`filter`]), as far as the client's link credit allows
//!   ([`partition`]);
//! - `messages/events…` (the IoT Hub-style entry): a redirect to the same endpoint.
//!
//! Every link but `$cbs` needs a token that covers it ([`auth`]); when the token it was opened
//! with expires and no newer one covers it, the link is closed with
//! `amqp:unauthorized-access`, as the real service does.

mod address;
mod auth;
mod event;
mod filter;
mod partition;
mod requests;
mod sasl;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerConnectionHandle,
    ListenerSessionHandle, SessionAcceptor,
};
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp_types::definitions::{self, AmqpError, Fields, LinkError, Role};
use fe2o3_amqp_types::messaging::TargetArchetype;
use fe2o3_amqp_types::primitives::{Symbol, Value};
use iothub_auth::unix_now;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::address::Node;
use self::auth::{ConnectionAuth, READ_EVENTS};
use self::requests::{Reply, RequestNode};
use crate::connections::Connections;
use crate::hub::Hub;

/// Largest frame either side may send (the Event Hubs clients' own default).
const MAX_FRAME_SIZE: u32 = 256 * 1024;
/// Sessions per connection (channel-max + 1).
const MAX_SESSIONS_PER_CONNECTION: u16 = 32;
/// Links per session.
const MAX_LINKS_PER_SESSION: usize = 64;
/// Largest message a client may send (CBS and management requests are small).
const MAX_REQUEST_SIZE: u64 = 64 * 1024;
/// Replies waiting for their reply link, per node and session.
const REPLY_QUEUE: usize = 16;
/// The client must finish SASL and Open within this after the TLS handshake.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The AMQP listener's shared state: one per running emulator.
#[derive(Debug, Clone)]
pub(crate) struct AmqpEndpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hub: Hub,
    connections: Connections,
    /// The Event Hub name: the hub name (the first label of its host name).
    entity: String,
    /// Where the `messages/events` redirect points: this host and port.
    hostname: String,
    port: u16,
}

impl AmqpEndpoint {
    /// The endpoint of `hub`, reachable at `hostname:port` (the redirect's target).
    pub(crate) fn new(hub: Hub, connections: Connections, hostname: &str, port: u16) -> Self {
        let entity = hostname.split('.').next().unwrap_or(hostname).to_string();
        AmqpEndpoint {
            inner: Arc::new(Inner {
                hub,
                connections,
                entity,
                hostname: hostname.to_string(),
                port,
            }),
        }
    }

    /// Serves one connection whose TLS handshake is done, until it closes or the emulator
    /// shuts down.
    pub(crate) async fn serve_tls<Io>(self, stream: Io, peer: SocketAddr)
    where
        Io: AsyncRead + AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
    {
        let auth = ConnectionAuth::default();
        let acceptor = ConnectionAcceptor::builder()
            .container_id(format!("iothub-emulator-{}", self.inner.entity))
            .max_frame_size(MAX_FRAME_SIZE)
            .channel_max(MAX_SESSIONS_PER_CONNECTION - 1)
            .properties(product_properties())
            .sasl_acceptor(sasl::Sasl::new(self.inner.hub.clone(), auth.clone()))
            .build();
        let stop = self.inner.connections.shutdown_signal().child_token();
        let connection = tokio::select! {
            () = stop.cancelled() => return,
            opened = tokio::time::timeout(OPEN_TIMEOUT, acceptor.accept(stream)) => opened,
        };
        let mut connection = match connection {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                debug!(%peer, %error, "AMQP connection refused during SASL or Open");
                return;
            }
            Err(_) => {
                debug!(%peer, "AMQP client did not open its connection in time");
                return;
            }
        };
        debug!(%peer, "AMQP connection open");
        let context = Arc::new(ConnectionContext {
            endpoint: self.clone(),
            auth,
            stop: stop.clone(),
        });
        self.serve_sessions(&mut connection, &context).await;
        stop.cancel();
        let _ = connection.close().await;
        debug!(%peer, "AMQP connection closed");
    }

    async fn serve_sessions(
        &self,
        connection: &mut ListenerConnectionHandle,
        context: &Arc<ConnectionContext>,
    ) {
        let mut sessions = JoinSet::new();
        let acceptor = SessionAcceptor::builder()
            .handle_max(u32::try_from(MAX_LINKS_PER_SESSION - 1).unwrap_or(u32::MAX))
            .properties(product_properties())
            .build();
        loop {
            tokio::select! {
                () = context.stop.cancelled() => break,
                incoming = connection.next_incoming_session() => {
                    let Some(incoming) = incoming else { break };
                    match acceptor.accept_incoming_session(incoming, connection).await {
                        Ok(session) => {
                            sessions.spawn(serve_session(session, Arc::clone(context)));
                        }
                        Err(error) => {
                            debug!(%error, "AMQP session refused");
                            break;
                        }
                    }
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        context.stop.cancel();
        while sessions.join_next().await.is_some() {}
    }
}

/// The `properties` of the Open, Begin and Attach the endpoint sends. Besides naming the
/// product, a last field that is set makes the encoder write every field before it: the
/// Python Event Hubs client (pyamqp) reads performative fields by position and fails on a
/// list whose trailing nulls were left out, which AMQP allows.
fn product_properties() -> Fields {
    let mut properties = Fields::new();
    properties.insert(
        Symbol::from("product"),
        Value::String("iothub-emulator".to_string()),
    );
    properties
}

/// What every link task of one connection shares.
#[derive(Debug)]
struct ConnectionContext {
    endpoint: AmqpEndpoint,
    auth: ConnectionAuth,
    /// Cancelled when the connection ends or the emulator shuts down.
    stop: CancellationToken,
}

impl ConnectionContext {
    fn hub(&self) -> &Hub {
        &self.endpoint.inner.hub
    }

    fn entity(&self) -> &str {
        &self.endpoint.inner.entity
    }
}

/// The reply links of one session, by node: a request's answer goes to the session's link
/// whose source is that node (clients may leave `reply-to` out).
#[derive(Debug, Default)]
struct ReplyLinks {
    links: Mutex<Vec<(RequestNode, mpsc::Sender<Reply>)>>,
}

impl ReplyLinks {
    fn register(&self, node: RequestNode) -> mpsc::Receiver<Reply> {
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links.retain(|(n, _)| *n != node);
        links.push((node, tx));
        rx
    }

    fn sender(&self, node: RequestNode) -> Option<mpsc::Sender<Reply>> {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links
            .iter()
            .find(|(n, tx)| *n == node && !tx.is_closed())
            .map(|(_, tx)| tx.clone())
    }
}

async fn serve_session(mut session: ListenerSessionHandle, context: Arc<ConnectionContext>) {
    let replies = Arc::new(ReplyLinks::default());
    let mut links = JoinSet::new();
    loop {
        tokio::select! {
            () = context.stop.cancelled() => break,
            attach = session.next_incoming_attach() => {
                let Some(attach) = attach else { break };
                let address = link_address(&attach);
                let node = address::classify(&address, context.entity());
                let role = attach.role.clone();
                let endpoint = match LinkAcceptor::builder()
                    .max_message_size(MAX_REQUEST_SIZE)
                    .properties(product_properties())
                    .build()
                    .accept_incoming_attach(attach, &mut session)
                    .await
                {
                    Ok(endpoint) => endpoint,
                    Err(error) => {
                        debug!(%address, %error, "AMQP link attach failed");
                        continue;
                    }
                };
                if links.len() >= MAX_LINKS_PER_SESSION {
                    close(endpoint, error(AmqpError::ResourceLimitExceeded, "too many links on this session")).await;
                    continue;
                }
                debug!(%address, ?role, "AMQP link attached");
                links.spawn(serve_link(endpoint, node, Arc::clone(&context), Arc::clone(&replies)));
            }
            Some(_) = links.join_next(), if !links.is_empty() => {}
        }
    }
    links.abort_all();
    while links.join_next().await.is_some() {}
    let _ = session.end().await;
}

/// The address of the node the link reaches: the source of a link the client receives on,
/// the target of one it sends on.
fn link_address(attach: &fe2o3_amqp_types::performatives::Attach) -> String {
    let address = match attach.role {
        Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
        Role::Sender => match attach.target.as_deref() {
            Some(TargetArchetype::Target(target)) => target.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        },
    };
    address.unwrap_or_default()
}

async fn serve_link(
    endpoint: LinkEndpoint,
    node: Node,
    context: Arc<ConnectionContext>,
    replies: Arc<ReplyLinks>,
) {
    let entity = context.entity().to_string();
    match (node, endpoint) {
        (Node::Cbs, LinkEndpoint::Receiver(receiver)) => {
            requests::serve_requests(receiver, RequestNode::Cbs, &context, &replies).await;
        }
        (Node::Cbs, LinkEndpoint::Sender(sender)) => {
            let queue = replies.register(RequestNode::Cbs);
            requests::serve_replies(sender, queue, &context.stop).await;
        }
        (Node::Management, endpoint) => {
            let path = format!("{entity}/$management");
            let Some(endpoint) = authorized(endpoint, &context, &path).await else {
                return;
            };
            match endpoint {
                LinkEndpoint::Receiver(receiver) => {
                    requests::serve_requests(receiver, RequestNode::Management, &context, &replies)
                        .await;
                }
                LinkEndpoint::Sender(sender) => {
                    let queue = replies.register(RequestNode::Management);
                    until_unauthorized(
                        requests::serve_replies(sender, queue, &context.stop),
                        &context,
                        &path,
                    )
                    .await;
                }
            }
        }
        (Node::Partition { group, partition }, endpoint) => {
            let path = format!("{entity}/ConsumerGroups/{group}/Partitions/{partition}");
            let Some(endpoint) = authorized(endpoint, &context, &path).await else {
                return;
            };
            match endpoint {
                LinkEndpoint::Sender(sender) => {
                    partition::serve(sender, &partition, &context, &path).await;
                }
                receiver => {
                    close(
                        receiver,
                        error(
                            AmqpError::NotAllowed,
                            "partitions of the built-in endpoint are read-only",
                        ),
                    )
                    .await;
                }
            }
        }
        (Node::IotHubEvents { suffix }, endpoint) => {
            let Some(endpoint) = authorized(endpoint, &context, "messages/events").await else {
                return;
            };
            close(endpoint, redirect(&context.endpoint, &suffix)).await;
        }
        (Node::Unknown(path), endpoint) => {
            close(
                endpoint,
                error(
                    AmqpError::NotFound,
                    &format!("the node '{path}' does not exist on this hub"),
                ),
            )
            .await;
        }
    }
}

/// The link, if a token of this connection covers `path` for reading events; otherwise it is
/// closed with `amqp:unauthorized-access`.
async fn authorized(
    endpoint: LinkEndpoint,
    context: &ConnectionContext,
    path: &str,
) -> Option<LinkEndpoint> {
    if context
        .auth
        .authorized_until(path, READ_EVENTS, unix_now())
        .is_some()
    {
        return Some(endpoint);
    }
    close(
        endpoint,
        error(
            AmqpError::UnauthorizedAccess,
            &format!("no valid token with ServiceConnect covers '{path}': send one to $cbs first"),
        ),
    )
    .await;
    None
}

/// Runs `serving` until it ends or the connection's tokens no longer cover `path`.
async fn until_unauthorized<F>(serving: F, context: &ConnectionContext, path: &str)
where
    F: std::future::Future<Output = ()>,
{
    tokio::select! {
        () = serving => {}
        () = context.auth.expired(path, READ_EVENTS) => {}
    }
}

fn error(
    condition: impl Into<definitions::ErrorCondition>,
    description: &str,
) -> definitions::Error {
    definitions::Error::new(condition, Some(description.to_string()), None)
}

/// `amqp:link:redirect` to the Event Hub-compatible endpoint, with the info the real hub sends:
/// `hostname`, `network-host`, `port` (int) and `address`
/// (`amqps://{host}:{port}/{hub}/{suffix}`).
fn redirect(endpoint: &AmqpEndpoint, suffix: &str) -> definitions::Error {
    let inner = &endpoint.inner;
    let address = format!(
        "amqps://{}:{}/{}/{}",
        inner.hostname, inner.port, inner.entity, suffix
    );
    let mut info = Fields::new();
    info.insert(
        Symbol::from("hostname"),
        Value::String(inner.hostname.clone()),
    );
    info.insert(
        Symbol::from("network-host"),
        Value::String(inner.hostname.clone()),
    );
    info.insert(Symbol::from("port"), Value::Int(i32::from(inner.port)));
    info.insert(Symbol::from("address"), Value::String(address));
    definitions::Error::new(
        LinkError::Redirect,
        Some("the events of this hub are served at its Event Hub-compatible endpoint".to_string()),
        Some(info),
    )
}

/// Detaches (closes) the link with `error`.
async fn close(endpoint: LinkEndpoint, error: definitions::Error) {
    let result = match endpoint {
        LinkEndpoint::Sender(sender) => close_sender(sender, error).await,
        LinkEndpoint::Receiver(receiver) => close_receiver(receiver, error).await,
    };
    if let Err(error) = result {
        debug!(%error, "AMQP link close failed");
    }
}

async fn close_sender(
    sender: Sender,
    error: definitions::Error,
) -> Result<(), fe2o3_amqp::link::DetachError> {
    sender.close_with_error(error).await
}

async fn close_receiver(
    receiver: Receiver,
    error: definitions::Error,
) -> Result<(), fe2o3_amqp::link::DetachError> {
    receiver.close_with_error(error).await
}
