//! Telemetry PUBACKs that wait for their event's commit (durable store only): a PUBACK the
//! device receives means the message survives `kill -9`.
//!
//! MQTT 3.1.1 §4.6 wants PUBACKs in the order of their PUBLISHes, so once one waits, every later
//! PUBACK of the connection queues behind it; the rest of the session (twin replies,
//! deliveries, reading further packets) goes on meanwhile.

use std::collections::VecDeque;

use rumqttc::mqttbytes::v4::Packet;
use tokio::sync::oneshot;

use crate::persist::PersistError;

/// Most PUBACKs and commits held at once; the driver stops reading packets at this many (the
/// device is ahead of the store), which bounds the queue.
pub(super) const MAX_HELD: usize = 4096;

type Commit = oneshot::Receiver<Result<(), PersistError>>;

enum Held {
    /// The event whose commit the following PUBACKs wait for.
    Commit(Commit),
    /// A PUBACK that goes out once every commit before it has.
    Ack(Packet),
}

/// The connection's held PUBACKs, in PUBLISH order.
#[derive(Default)]
pub(super) struct AckGate {
    held: VecDeque<Held>,
    /// The commit of the telemetry message just executed, for the PUBACK that follows it.
    last_commit: Option<Commit>,
}

/// A telemetry event could not be stored: the connection closes without its PUBACK, so the
/// device sends the message again.
#[derive(Debug)]
pub(super) struct NotStored(pub(super) PersistError);

impl AckGate {
    /// Whether nothing waits.
    pub(super) fn is_idle(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether the driver should stop reading until commits catch up.
    pub(super) fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD
    }

    /// The telemetry message just executed has this commit to wait for (`None`: none).
    pub(super) fn after_telemetry(&mut self, commit: Option<Commit>) {
        self.last_commit = commit;
    }

    /// Forgets the commit of a telemetry message that had no PUBACK (QoS 0): the store commits
    /// in order, so a later PUBACK's own commit covers it.
    pub(super) fn other_action(&mut self) {
        self.last_commit = None;
    }

    /// A PUBACK to send: `Some` gives it back to send now, `None` means it is held.
    pub(super) fn puback(&mut self, puback: Packet) -> Option<Packet> {
        if let Some(commit) = self.last_commit.take() {
            self.held.push_back(Held::Commit(commit));
        }
        if self.held.is_empty() {
            return Some(puback);
        }
        self.held.push_back(Held::Ack(puback));
        None
    }

    /// Waits for the oldest held commit (pending forever when none is held, for `select!`).
    pub(super) async fn committed(&mut self) -> Result<(), NotStored> {
        match self.held.front_mut() {
            Some(Held::Commit(commit)) => {
                let outcome = commit.await;
                self.held.pop_front();
                match outcome {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(NotStored(error)),
                    Err(_) => Err(NotStored(PersistError::Closed)),
                }
            }
            _ => std::future::pending().await,
        }
    }

    /// The PUBACKs free to go now (commits already done are passed), in order.
    pub(super) fn release(&mut self, out: &mut Vec<Packet>) -> Result<(), NotStored> {
        loop {
            match self.held.front_mut() {
                Some(Held::Ack(_)) => {
                    if let Some(Held::Ack(packet)) = self.held.pop_front() {
                        out.push(packet);
                    }
                }
                Some(Held::Commit(commit)) => match commit.try_recv() {
                    Ok(Ok(())) => {
                        self.held.pop_front();
                    }
                    Ok(Err(error)) => return Err(NotStored(error)),
                    Err(oneshot::error::TryRecvError::Empty) => return Ok(()),
                    Err(oneshot::error::TryRecvError::Closed) => {
                        return Err(NotStored(PersistError::Closed))
                    }
                },
                None => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::PubAck;

    fn ack(pkid: u16) -> Packet {
        Packet::PubAck(PubAck::new(pkid))
    }

    #[tokio::test]
    async fn pubacks_wait_for_their_commit_and_keep_their_order() {
        let mut gate = AckGate::default();
        assert_eq!(gate.puback(ack(1)), Some(ack(1)), "nothing to wait for");
        let (first_done, first) = oneshot::channel();
        gate.after_telemetry(Some(first));
        assert_eq!(gate.puback(ack(2)), None);
        // A twin PUBLISH's PUBACK queues behind the held one.
        gate.other_action();
        assert_eq!(gate.puback(ack(3)), None);
        let (second_done, second) = oneshot::channel();
        gate.after_telemetry(Some(second));
        assert_eq!(gate.puback(ack(4)), None);
        let mut out = Vec::new();
        gate.release(&mut out).unwrap();
        assert!(out.is_empty());
        first_done.send(Ok(())).unwrap();
        gate.committed().await.unwrap();
        gate.release(&mut out).unwrap();
        assert_eq!(out, vec![ack(2), ack(3)]);
        assert!(!gate.is_idle());
        second_done.send(Err(PersistError::Injected)).unwrap();
        assert!(gate.committed().await.is_err());
    }

    #[test]
    fn a_qos0_message_holds_nothing() {
        let mut gate = AckGate::default();
        let (_done, commit) = oneshot::channel();
        gate.after_telemetry(Some(commit));
        gate.other_action();
        assert_eq!(gate.puback(ack(7)), Some(ack(7)));
        assert!(gate.is_idle());
    }
}
