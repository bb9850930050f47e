//! A receiver link on one partition: the events from the filter's position on, oldest first,
//! then each new one as it is appended, never more than the client's link credit.

use std::time::Duration;

use fe2o3_amqp::link::Sender;
use fe2o3_amqp_types::definitions::AmqpError;
use tracing::debug;

use super::auth::READ_EVENTS;
use super::filter::{self, Start};
use super::{close, error, event, ConnectionContext, LinkEndpoint};
use crate::events::StartPosition;

/// Events read from the log per batch (the link's credit paces what is sent).
const READ_BATCH: usize = 128;

/// Serves `sender` (attached to partition `id`) until the client detaches, the connection ends
/// or the token covering `path` expires.
pub(crate) async fn serve(sender: Sender, id: &str, context: &ConnectionContext, path: &str) {
    let events = context.hub().events();
    let partition = id
        .parse::<u32>()
        .ok()
        .filter(|p| *p < events.partition_count());
    let (Some(partition), Some(mut newest)) =
        (partition, partition.and_then(|p| events.subscribe(p)))
    else {
        close(
            LinkEndpoint::Sender(sender),
            error(
                AmqpError::NotFound,
                &format!(
                    "the partition '{id}' does not exist (partitions 0 to {})",
                    events.partition_count().saturating_sub(1)
                ),
            ),
        )
        .await;
        return;
    };
    let start = match filter::start_of(sender.source().as_ref().and_then(|s| s.filter.as_ref())) {
        Ok(start) => start,
        Err(refused) => {
            close(
                LinkEndpoint::Sender(sender),
                error(AmqpError::InvalidField, &refused.to_string()),
            )
            .await;
            return;
        }
    };
    let mut position = events.resolve(partition, position_of(start));
    let mut sender = sender;
    let expired = context.auth.expired(path, READ_EVENTS);
    tokio::pin!(expired);
    loop {
        let batch = events.read(partition, position, READ_BATCH);
        if batch.is_empty() {
            tokio::select! {
                () = context.stop.cancelled() => break,
                () = &mut expired => return token_expired(sender, path).await,
                _ = sender.on_detach() => return,
                changed = newest.changed() => if changed.is_err() { break },
            }
            continue;
        }
        for stored in batch {
            let message = event::message(&stored);
            tokio::select! {
                () = context.stop.cancelled() => return close_quietly(sender).await,
                () = &mut expired => return token_expired(sender, path).await,
                sent = sender.send_batchable(message) => if let Err(error) = sent {
                    debug!(partition, %error, "AMQP partition link ended");
                    return;
                },
            }
            position = StartPosition::Sequence {
                value: stored.sequence_number,
                inclusive: false,
            };
        }
    }
    close_quietly(sender).await;
}

fn position_of(start: Start) -> StartPosition {
    match start {
        Start::Earliest => StartPosition::Earliest,
        Start::Latest => StartPosition::Latest,
        Start::Sequence { value, inclusive } => StartPosition::Sequence { value, inclusive },
        Start::Offset { value, inclusive } => StartPosition::Offset { value, inclusive },
        // Clients compare enqueued times in whole milliseconds (their wire resolution): `> t`
        // is every event from millisecond t + 1 on, `>= t` every event from t on. The log
        // reads strictly after an instant, so start one nanosecond before that millisecond.
        Start::EnqueuedTime { at, inclusive } => {
            let from = if inclusive {
                at
            } else {
                at + Duration::from_millis(1)
            };
            StartPosition::EnqueuedTime(from.checked_sub(Duration::from_nanos(1)).unwrap_or(from))
        }
    }
}

async fn token_expired(sender: Sender, path: &str) {
    debug!(%path, "AMQP link closed: its token expired");
    close(
        LinkEndpoint::Sender(sender),
        error(
            AmqpError::UnauthorizedAccess,
            &format!("the token for '{path}' expired"),
        ),
    )
    .await;
}

async fn close_quietly(sender: Sender) {
    let _ = sender.close().await;
}
