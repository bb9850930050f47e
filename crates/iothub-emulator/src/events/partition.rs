//! One partition of the event log: its retained events in sequence order, the numbering of the
//! next one, and retention by size and age.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use super::{PartitionInfo, StartPosition, StoredEvent};
use crate::persist::WriteOp;

/// What bounds a partition: its retained bytes (footprints, see [`StoredEvent::footprint`]) and
/// the age of its oldest event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retention {
    pub bytes: usize,
    pub age: Duration,
}

/// A partition's state (behind the log's per-partition lock).
#[derive(Debug)]
pub(super) struct Partition {
    /// Retained events, oldest first; sequence numbers and offsets strictly increase.
    events: VecDeque<StoredEvent>,
    /// Sum of the retained events' footprints.
    bytes: usize,
    /// The next event's sequence number (0 for the first).
    next_sequence: i64,
    /// The next event's offset (0 for the first; each event advances it by its footprint, so
    /// offsets look like the byte positions of a real Event Hub).
    next_offset: i64,
    /// Events with a sequence number below this are not visible yet (their commit is pending).
    /// Equals `next_sequence` on an in-memory hub.
    visible_until: i64,
    /// The last event ever appended and made visible, kept after retention drops it.
    last_visible: Option<(i64, i64, SystemTime)>,
    /// The store holds no row below this sequence number (pruned, or never written).
    deleted_below: i64,
}

impl Partition {
    /// An empty partition whose first event gets `next_sequence` and `next_offset`.
    pub(super) fn starting_at(next_sequence: i64, next_offset: i64) -> Partition {
        Partition {
            events: VecDeque::new(),
            bytes: 0,
            next_sequence,
            next_offset,
            visible_until: next_sequence,
            last_visible: None,
            deleted_below: next_sequence,
        }
    }

    /// Numbers `event` (sequence number, offset) and keeps it; it becomes visible at once when
    /// `visible`, otherwise when [`Partition::make_visible`] passes it.
    pub(super) fn append(&mut self, mut event: StoredEvent, visible: bool) -> StoredEvent {
        event.sequence_number = self.next_sequence;
        event.offset = self.next_offset;
        let footprint = event.footprint();
        self.next_sequence += 1;
        self.next_offset += i64::try_from(footprint).unwrap_or(i64::MAX / 4);
        self.bytes += footprint;
        self.events.push_back(event.clone());
        if visible {
            self.make_visible(event.sequence_number);
        }
        event
    }

    /// `now`, or the newest event's enqueued time if the clock went back: enqueued times never
    /// decrease within a partition (reads by enqueued time rely on it).
    pub(super) fn not_before(&self, now: SystemTime) -> SystemTime {
        let newest = self
            .events
            .back()
            .map(|e| e.enqueued_time)
            .or(self.last_visible.map(|(_, _, time)| time));
        match newest {
            Some(newest) if newest > now => newest,
            _ => now,
        }
    }

    /// Keeps an event restored from the store (already numbered, in order).
    pub(super) fn restore(&mut self, event: StoredEvent) {
        self.next_sequence = event.sequence_number + 1;
        self.next_offset = event
            .offset
            .saturating_add(i64::try_from(event.footprint()).unwrap_or(i64::MAX / 4));
        self.visible_until = self.next_sequence;
        self.last_visible = Some((event.sequence_number, event.offset, event.enqueued_time));
        self.bytes += event.footprint();
        self.events.push_back(event);
    }

    /// Makes every event up to `sequence_number` visible; returns whether that changed anything.
    pub(super) fn make_visible(&mut self, sequence_number: i64) -> bool {
        if sequence_number < self.visible_until {
            return false;
        }
        self.visible_until = sequence_number + 1;
        let newest = self
            .visible()
            .next_back()
            .map(|e| (e.sequence_number, e.offset, e.enqueued_time));
        if newest.is_some() {
            self.last_visible = newest;
        }
        true
    }

    /// Drops the oldest events beyond `retention` (size, or older than `now - age`); returns the
    /// sequence number below which every event is now gone, if anything was dropped. Only
    /// visible events go: one whose commit is pending stays until it has been readable (so
    /// the newest readable event's numbers are always known), which lets the partition exceed
    /// its size by the events in flight.
    pub(super) fn trim(&mut self, retention: Retention, now: SystemTime) -> Option<i64> {
        let oldest_kept = now.checked_sub(retention.age);
        let mut dropped = None;
        while let Some(oldest) = self.events.front() {
            if oldest.sequence_number >= self.visible_until {
                break;
            }
            let too_old = oldest_kept.is_some_and(|limit| oldest.enqueued_time <= limit);
            if self.bytes <= retention.bytes && !too_old {
                break;
            }
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -= old.footprint();
            dropped = Some(old.sequence_number + 1);
        }
        if self.events.is_empty() {
            self.bytes = 0;
        }
        dropped
    }

    /// The store's deletion of the rows retention dropped, once at least `batch` of them are
    /// waiting (so one statement deletes many rows); `None` when fewer are.
    pub(super) fn prune(&mut self, partition: u32, batch: i64) -> Option<WriteOp> {
        let (below, next_offset) = match self.events.front() {
            Some(oldest) => (oldest.sequence_number, oldest.offset),
            None => (self.next_sequence, self.next_offset),
        };
        if below - self.deleted_below < batch.max(1) {
            return None;
        }
        self.deleted_below = below;
        Some(WriteOp::PruneEvents {
            partition,
            below,
            next_offset,
        })
    }

    fn visible(&self) -> impl DoubleEndedIterator<Item = &StoredEvent> {
        let end = self
            .events
            .partition_point(|e| e.sequence_number < self.visible_until);
        self.events.range(..end)
    }

    /// The sequence number of the first visible event at or after `from`.
    fn first_index(&self, from: &StartPosition) -> usize {
        let events = &self.events;
        match *from {
            StartPosition::Earliest => 0,
            StartPosition::Latest => events.len(),
            StartPosition::Sequence { value, inclusive } => events.partition_point(|e| {
                if inclusive {
                    e.sequence_number < value
                } else {
                    e.sequence_number <= value
                }
            }),
            StartPosition::Offset { value, inclusive } => events.partition_point(|e| {
                if inclusive {
                    e.offset < value
                } else {
                    e.offset <= value
                }
            }),
            StartPosition::EnqueuedTime(time) => {
                events.partition_point(|e| e.enqueued_time <= time)
            }
        }
    }

    /// The visible events at `from`, oldest first, at most `max`.
    pub(super) fn read(&self, from: &StartPosition, max: usize) -> Vec<StoredEvent> {
        let start = self.first_index(from);
        self.events
            .range(start..)
            .take_while(|e| e.sequence_number < self.visible_until)
            .take(max)
            .cloned()
            .collect()
    }

    /// The sequence number of the last visible event (-1 before the first one).
    pub(super) fn last_sequence_number(&self) -> i64 {
        self.last_visible.map_or(-1, |(sequence, _, _)| sequence)
    }

    pub(super) fn info(&self) -> PartitionInfo {
        let first = self.visible().next();
        let (last_sequence, last_offset, last_time) =
            self.last_visible
                .unwrap_or((-1, -1, SystemTime::UNIX_EPOCH));
        PartitionInfo {
            begin_sequence_number: first.map_or(last_sequence + 1, |e| e.sequence_number),
            last_enqueued_sequence_number: last_sequence,
            last_enqueued_offset: last_offset,
            last_enqueued_time_utc: last_time,
            is_empty: first.is_none(),
        }
    }
}
