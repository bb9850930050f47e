//! Request/response nodes: `$cbs` (`put-token`) and `$management` (READ).
//!
//! A request arrives on the client's sender link to the node; the answer goes out on the
//! session's link from the same node, with `correlation-id` = the request's `message-id` (the
//! same AMQP type) and the application properties `status-code` (an AMQP int) and
//! `status-description`.

use std::time::{SystemTime, UNIX_EPOCH};

use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp_types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties,
};
use fe2o3_amqp_types::primitives::{Array, OrderedMap, SimpleValue, Timestamp, Value};
use iothub_auth::unix_now;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::auth::{self, READ_EVENTS};
use super::{ConnectionContext, ReplyLinks};

/// The nodes that answer requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestNode {
    /// `$cbs`.
    Cbs,
    /// `$management`.
    Management,
}

/// A response message.
pub(crate) type Reply = Message<AmqpValue<Value>>;

/// A request message: any body.
type Request = Message<Body<Value>>;

/// Reads requests from `receiver` and queues each answer for the session's reply link of
/// `node`, until the link or the connection ends.
pub(crate) async fn serve_requests(
    mut receiver: Receiver,
    node: RequestNode,
    context: &ConnectionContext,
    replies: &ReplyLinks,
) {
    loop {
        let delivery = tokio::select! {
            () = context.stop.cancelled() => break,
            delivery = receiver.recv::<Body<Value>>() => match delivery {
                Ok(delivery) => delivery,
                Err(error) => {
                    debug!(?node, %error, "AMQP request link ended");
                    return;
                }
            },
        };
        if let Err(error) = receiver.accept(&delivery).await {
            debug!(?node, %error, "AMQP request link ended");
            return;
        }
        let request = delivery.message();
        let reply = match node {
            RequestNode::Cbs => put_token(context, request),
            RequestNode::Management => read(context, request),
        };
        match replies.sender(node) {
            Some(queue) => {
                // A client that never reads its replies only stalls its own request link.
                if queue.send(reply).await.is_err() {
                    debug!(?node, "AMQP reply link gone; reply dropped");
                }
            }
            None => debug!(?node, "AMQP request without a reply link; reply dropped"),
        }
    }
    let _ = receiver.close().await;
}

/// Sends the queued replies on `sender` until it detaches or the connection ends.
pub(crate) async fn serve_replies(
    mut sender: Sender,
    mut queue: mpsc::Receiver<Reply>,
    stop: &CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = sender.on_detach() => return,
            reply = queue.recv() => {
                let Some(reply) = reply else { break };
                match sender.send_batchable(reply).await {
                    // The client settles replies (or not); nothing waits for that.
                    Ok(_settlement) => {}
                    Err(error) => {
                        debug!(%error, "AMQP reply link ended");
                        return;
                    }
                }
            }
        }
    }
    let _ = sender.close().await;
}

fn property<'a>(request: &'a Request, key: &str) -> Option<&'a SimpleValue> {
    request.application_properties.as_ref()?.0.get(key)
}

fn string_property<'a>(request: &'a Request, key: &str) -> Option<&'a str> {
    match property(request, key)? {
        SimpleValue::String(s) => Some(s),
        SimpleValue::Symbol(s) => Some(s.as_str()),
        _ => None,
    }
}

fn reply(request: &Request, status: i32, description: &str, body: Value) -> Reply {
    let mut properties = ApplicationProperties::default();
    properties
        .0
        .insert("status-code".to_string(), SimpleValue::Int(status));
    properties.0.insert(
        "status-description".to_string(),
        SimpleValue::String(description.to_string()),
    );
    let correlation_id: Option<MessageId> = request
        .properties
        .as_ref()
        .and_then(|p| p.message_id.clone());
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            correlation_id,
            ..Properties::default()
        }),
        application_properties: Some(properties),
        body: AmqpValue(body),
        footer: None,
    }
}

/// `put-token`: the body is the token (a string), `type` is `servicebus.windows.net:sastoken`
/// (SAS; AAD `jwt` tokens are refused), `name` the audience (not needed: the token's own `sr`
/// scopes it).
fn put_token(context: &ConnectionContext, request: &Request) -> Reply {
    if string_property(request, "operation") != Some("put-token") {
        return reply(
            request,
            400,
            "the $cbs node supports only put-token",
            Value::Null,
        );
    }
    if string_property(request, "type").is_some_and(|t| t != "servicebus.windows.net:sastoken") {
        return reply(
            request,
            401,
            "only shared access signature tokens (servicebus.windows.net:sastoken) are supported",
            Value::Null,
        );
    }
    let token = match &request.body {
        Body::Value(AmqpValue(Value::String(token))) => token.as_str(),
        _ => {
            return reply(
                request,
                400,
                "the token must be an AMQP string",
                Value::Null,
            )
        }
    };
    match auth::verify(context.hub(), token, unix_now()) {
        Ok(grant) if !grant.has_any(READ_EVENTS) => reply(
            request,
            401,
            "the token's policy lacks ServiceConnect, which this endpoint requires",
            Value::Null,
        ),
        Ok(grant) => {
            context.auth.add(grant);
            reply(request, 200, "OK", Value::Null)
        }
        Err(refused) => {
            debug!(%refused, "CBS token refused");
            reply(request, 401, &refused.to_string(), Value::Null)
        }
    }
}

/// `READ` of `com.microsoft:eventhub` (the entity) or `com.microsoft:partition` (one
/// partition, named by the `partition` application property).
fn read(context: &ConnectionContext, request: &Request) -> Reply {
    let entity = context.entity();
    if context
        .auth
        .authorized_until(&format!("{entity}/$management"), READ_EVENTS, unix_now())
        .is_none()
    {
        return reply(
            request,
            401,
            "no valid token with ServiceConnect covers this entity",
            Value::Null,
        );
    }
    if string_property(request, "operation") != Some("READ") {
        return reply(
            request,
            400,
            "the $management node supports only READ",
            Value::Null,
        );
    }
    if !string_property(request, "name").is_some_and(|n| n.eq_ignore_ascii_case(entity)) {
        return reply(
            request,
            404,
            &format!("the entity is named '{entity}'"),
            Value::Null,
        );
    }
    let events = context.hub().events();
    let mut map = OrderedMap::new();
    let mut put = |key: &str, value: Value| {
        map.insert(Value::String(key.to_string()), value);
    };
    match string_property(request, "type") {
        Some("com.microsoft:eventhub") => {
            let count = events.partition_count();
            let ids: Vec<Value> = (0..count).map(|p| Value::String(p.to_string())).collect();
            put("name", Value::String(entity.to_string()));
            put("type", Value::String("com.microsoft:eventhub".into()));
            put(
                "created_at",
                Value::Timestamp(timestamp(events.created_at())),
            );
            put(
                "partition_count",
                Value::Int(i32::try_from(count).unwrap_or(i32::MAX)),
            );
            put("partition_ids", Value::Array(Array::from(ids)));
        }
        Some("com.microsoft:partition") => {
            let id = string_property(request, "partition").unwrap_or_default();
            let info = id
                .parse::<u32>()
                .ok()
                .and_then(|p| events.partition_info(p));
            let Some(info) = info else {
                return reply(
                    request,
                    404,
                    &format!("the partition '{id}' does not exist"),
                    Value::Null,
                );
            };
            put("name", Value::String(entity.to_string()));
            put("type", Value::String("com.microsoft:partition".into()));
            put("partition", Value::String(id.to_string()));
            put(
                "begin_sequence_number",
                Value::Long(info.begin_sequence_number),
            );
            put(
                "last_enqueued_sequence_number",
                Value::Long(info.last_enqueued_sequence_number),
            );
            put(
                "last_enqueued_offset",
                Value::String(info.last_enqueued_offset.to_string()),
            );
            put(
                "last_enqueued_time_utc",
                Value::Timestamp(timestamp(info.last_enqueued_time_utc)),
            );
            put("is_partition_empty", Value::Bool(info.is_empty));
        }
        _ => {
            return reply(
                request,
                400,
                "type must be com.microsoft:eventhub or com.microsoft:partition",
                Value::Null,
            )
        }
    }
    reply(request, 200, "OK", Value::Map(map))
}

/// An AMQP timestamp (milliseconds since the epoch).
pub(crate) fn timestamp(time: SystemTime) -> Timestamp {
    let millis = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    };
    Timestamp::from_milliseconds(millis)
}
