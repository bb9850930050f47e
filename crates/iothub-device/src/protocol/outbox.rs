//! QoS 1 publishes that wait for the hub's PUBACK: telemetry and direct-method answers. No I/O.
//!
//! rumqttc assigns packet ids itself and reports them, in the order requests were handed to
//! it, as `Outgoing::Publish(pkid)` events (0 for QoS 0). So the driver tells the outbox about
//! every publish it hands over, tracked or not, and the outbox pairs the n-th report with the
//! n-th publish; the PUBACK carrying that pkid then completes the message.
//!
//! On a lost connection everything handed over but not acknowledged is void (rumqttc drops its
//! queue, and the driver clears rumqttc's replay). Telemetry goes back to the queue and is sent
//! again on the next connection, until its deadline: at least once, like the SDKs. Method
//! answers fail instead: the hub failed the call when the device went away.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// QoS 1 publishes on the wire at once (far below rumqttc's 100, so its packet ids never
/// collide with an unacknowledged one).
pub(crate) const MAX_OUTBOX_IN_FLIGHT: usize = 16;

/// Identifies one outbox message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OutboxId(u64);

/// What happens to a message handed over but not acknowledged when the connection is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLoss {
    /// Publish it again on the next connection (telemetry).
    Resend,
    /// Fail it (a method answer: its call died with the connection).
    Fail,
}

/// Why an outbox message failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutboxError {
    #[error("no PUBACK from the hub within {after:?}")]
    Timeout { after: Duration },
    #[error("the connection was lost before the hub acknowledged the message")]
    ConnectionLost,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutboxOutput {
    /// Publish at QoS 1, then report the hand-over with [`Outbox::handed`] (or
    /// [`Outbox::unsent`] if rumqttc refused it).
    Publish {
        id: OutboxId,
        topic: String,
        payload: Vec<u8>,
    },
    /// The message is finished.
    Done {
        id: OutboxId,
        result: Result<(), OutboxError>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Queued,
    /// Handed to rumqttc; its pkid is not known yet.
    Handed,
    AwaitingAck(u16),
}

#[derive(Debug)]
struct Entry {
    topic: String,
    payload: Vec<u8>,
    on_loss: OnLoss,
    submitted: Instant,
    deadline: Instant,
    stage: Stage,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    next_id: u64,
    connected: bool,
    entries: BTreeMap<OutboxId, Entry>,
    /// Every publish handed to rumqttc whose `Outgoing::Publish` has not been seen, in order;
    /// `None` for publishes the outbox does not track (twin requests, QoS 0 answers).
    handed: VecDeque<Option<OutboxId>>,
    by_pkid: HashMap<u16, OutboxId>,
}

impl Outbox {
    /// Queues a message that must be acknowledged by `deadline`.
    pub(crate) fn submit(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        on_loss: OnLoss,
        now: Instant,
        deadline: Instant,
    ) -> (OutboxId, Vec<OutboxOutput>) {
        let id = OutboxId(self.next_id);
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                topic,
                payload,
                on_loss,
                submitted: now,
                deadline,
                stage: Stage::Queued,
            },
        );
        let mut out = Vec::new();
        self.pump(&mut out);
        (id, out)
    }

    /// A CONNACK arrived: publish what is queued.
    pub(crate) fn on_connected(&mut self) -> Vec<OutboxOutput> {
        self.connected = true;
        let mut out = Vec::new();
        self.pump(&mut out);
        out
    }

    /// The connection is gone: requeue telemetry, fail method answers.
    pub(crate) fn on_disconnected(&mut self) -> Vec<OutboxOutput> {
        self.connected = false;
        self.handed.clear();
        self.by_pkid.clear();
        let mut out = Vec::new();
        let lost: Vec<OutboxId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.stage != Stage::Queued)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            match entry.on_loss {
                OnLoss::Resend => entry.stage = Stage::Queued,
                OnLoss::Fail => {
                    self.entries.remove(&id);
                    out.push(OutboxOutput::Done {
                        id,
                        result: Err(OutboxError::ConnectionLost),
                    });
                }
            }
        }
        out
    }

    /// The driver handed a publish to rumqttc: `Some(id)` for an outbox message, `None` for
    /// any other publish (their `Outgoing::Publish` reports are interleaved with ours).
    pub(crate) fn handed(&mut self, id: Option<OutboxId>) {
        self.handed.push_back(id);
    }

    /// rumqttc would not take the publish; keep it queued for the next pump.
    pub(crate) fn unsent(&mut self, id: OutboxId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.stage = Stage::Queued;
        }
    }

    /// rumqttc wrote the oldest handed-over publish, with packet id `pkid`.
    pub(crate) fn on_outgoing_publish(&mut self, pkid: u16) {
        let Some(front) = self.handed.pop_front() else {
            tracing::debug!(pkid, "outgoing publish the driver did not hand over");
            return;
        };
        let Some(id) = front else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.stage = Stage::AwaitingAck(pkid);
            self.by_pkid.insert(pkid, id);
        }
    }

    /// A PUBACK arrived.
    pub(crate) fn on_puback(&mut self, pkid: u16) -> Vec<OutboxOutput> {
        let mut out = Vec::new();
        if let Some(id) = self.by_pkid.remove(&pkid) {
            if self.entries.remove(&id).is_some() {
                out.push(OutboxOutput::Done { id, result: Ok(()) });
            }
        }
        self.pump(&mut out);
        out
    }

    /// Time passed: fail messages past their deadline.
    pub(crate) fn on_tick(&mut self, now: Instant) -> Vec<OutboxOutput> {
        let mut out = Vec::new();
        let expired: Vec<OutboxId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(entry) = self.entries.remove(&id) {
                if let Stage::AwaitingAck(pkid) = entry.stage {
                    self.by_pkid.remove(&pkid);
                }
                out.push(OutboxOutput::Done {
                    id,
                    result: Err(OutboxError::Timeout {
                        after: entry.deadline.saturating_duration_since(entry.submitted),
                    }),
                });
            }
        }
        self.pump(&mut out);
        out
    }

    /// The earliest deadline, for the driver's timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.deadline).min()
    }

    /// Messages handed over and not acknowledged yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.stage != Stage::Queued)
            .count()
    }

    fn pump(&mut self, out: &mut Vec<OutboxOutput>) {
        if !self.connected {
            return;
        }
        let mut in_flight = self.in_flight();
        for (id, entry) in self.entries.iter_mut() {
            if in_flight >= MAX_OUTBOX_IN_FLIGHT {
                break;
            }
            if entry.stage != Stage::Queued {
                continue;
            }
            entry.stage = Stage::Handed;
            in_flight += 1;
            out.push(OutboxOutput::Publish {
                id: *id,
                topic: entry.topic.clone(),
                payload: entry.payload.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: Duration = Duration::from_secs(10);

    fn published(out: &[OutboxOutput]) -> Vec<OutboxId> {
        out.iter()
            .filter_map(|o| match o {
                OutboxOutput::Publish { id, .. } => Some(*id),
                OutboxOutput::Done { .. } => None,
            })
            .collect()
    }

    fn done(out: &[OutboxOutput]) -> Vec<(OutboxId, Result<(), OutboxError>)> {
        out.iter()
            .filter_map(|o| match o {
                OutboxOutput::Done { id, result } => Some((*id, result.clone())),
                OutboxOutput::Publish { .. } => None,
            })
            .collect()
    }

    #[test]
    fn waits_for_the_connection_then_completes_on_the_matching_puback() {
        let now = Instant::now();
        let mut o = Outbox::default();
        let (a, out) = o.submit("t".into(), b"a".to_vec(), OnLoss::Resend, now, now + SOON);
        assert!(out.is_empty(), "nothing is published before CONNACK");
        let out = o.on_connected();
        assert_eq!(published(&out), vec![a]);
        // A twin request went out between ours: its report must not be taken for ours.
        o.handed(None);
        o.handed(Some(a));
        let (b, out) = o.submit("t".into(), b"b".to_vec(), OnLoss::Resend, now, now + SOON);
        assert_eq!(published(&out), vec![b]);
        o.handed(Some(b));
        o.on_outgoing_publish(0);
        o.on_outgoing_publish(7);
        o.on_outgoing_publish(8);
        assert!(done(&o.on_puback(99)).is_empty(), "unknown pkid");
        assert_eq!(done(&o.on_puback(8)), vec![(b, Ok(()))]);
        assert_eq!(done(&o.on_puback(7)), vec![(a, Ok(()))]);
        assert_eq!(o.next_deadline(), None);
    }

    #[test]
    fn telemetry_is_resent_after_a_reconnect_and_answers_fail() {
        let now = Instant::now();
        let mut o = Outbox::default();
        o.on_connected();
        let (telemetry, _) = o.submit("t".into(), vec![], OnLoss::Resend, now, now + SOON);
        o.handed(Some(telemetry));
        let (answer, _) = o.submit("r".into(), vec![], OnLoss::Fail, now, now + SOON);
        o.handed(Some(answer));
        o.on_outgoing_publish(1);
        let out = o.on_disconnected();
        assert_eq!(done(&out), vec![(answer, Err(OutboxError::ConnectionLost))]);
        assert!(published(&out).is_empty());
        // The old pkid means nothing on the new connection.
        let out = o.on_connected();
        assert_eq!(published(&out), vec![telemetry]);
        assert!(done(&o.on_puback(1)).is_empty());
        o.handed(Some(telemetry));
        o.on_outgoing_publish(1);
        assert_eq!(done(&o.on_puback(1)), vec![(telemetry, Ok(()))]);
    }

    #[test]
    fn the_window_is_bounded_and_refills_on_puback() {
        let now = Instant::now();
        let mut o = Outbox::default();
        o.on_connected();
        let mut sent = Vec::new();
        for _ in 0..MAX_OUTBOX_IN_FLIGHT + 2 {
            let (_, out) = o.submit("t".into(), vec![], OnLoss::Resend, now, now + SOON);
            sent.extend(published(&out));
        }
        assert_eq!(sent.len(), MAX_OUTBOX_IN_FLIGHT);
        for (pkid, id) in sent.iter().enumerate() {
            o.handed(Some(*id));
            o.on_outgoing_publish(pkid as u16 + 1);
        }
        let out = o.on_puback(1);
        assert_eq!(done(&out).len(), 1);
        assert_eq!(published(&out).len(), 1, "one more goes out");
    }

    #[test]
    fn unanswered_messages_time_out() {
        let now = Instant::now();
        let mut o = Outbox::default();
        let (a, _) = o.submit("t".into(), vec![], OnLoss::Resend, now, now + SOON);
        assert_eq!(o.next_deadline(), Some(now + SOON));
        assert!(done(&o.on_tick(now + SOON / 2)).is_empty());
        assert_eq!(
            done(&o.on_tick(now + SOON)),
            vec![(a, Err(OutboxError::Timeout { after: SOON }))]
        );
    }

    #[test]
    fn a_refused_hand_over_is_retried_on_the_next_pump() {
        let now = Instant::now();
        let mut o = Outbox::default();
        o.on_connected();
        let (a, _) = o.submit("t".into(), vec![], OnLoss::Resend, now, now + SOON);
        o.unsent(a);
        let (_, out) = o.submit("t".into(), vec![], OnLoss::Resend, now, now + SOON);
        assert_eq!(published(&out).first(), Some(&a));
    }
}
