use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::*;

fn log(partitions: u32) -> EventLog {
    EventLog::new(EventsConfig {
        partitions,
        ..EventsConfig::default()
    })
}

fn event(device: &str, body: &str) -> StoredEvent {
    StoredEvent::new(device, Bytes::from(body.to_string()))
}

fn bodies(events: &[StoredEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect()
}

#[test]
fn partition_count_is_bounded_and_the_hash_is_stable() {
    assert_eq!(log(0).partition_count(), 1);
    assert_eq!(log(99).partition_count(), MAX_PARTITIONS);
    let four = log(4);
    // FNV-1a: fixed values, so a device keeps its partition across restarts and builds.
    assert_eq!(four.partition_for(""), 0x811c_9dc5 % 4);
    assert_eq!(four.partition_for("a"), 0xe40c_292c % 4);
    let spread: std::collections::BTreeSet<u32> = (0..64)
        .map(|i| four.partition_for(&format!("device-{i}")))
        .collect();
    assert_eq!(spread.len(), 4, "64 devices use every partition");
}

#[test]
fn numbering_per_partition_offsets_and_order() {
    let log = log(4);
    let p = log.partition_for("d1");
    let mut newest = log.subscribe(p).unwrap();
    assert_eq!(*newest.borrow_and_update(), -1);
    let first = log.append(event("d1", "a")).event;
    let second = log.append(event("d1", "bb")).event;
    assert_eq!(
        (first.partition, first.sequence_number, first.offset),
        (p, 0, 0)
    );
    assert_eq!(second.sequence_number, 1);
    assert_eq!(second.offset, i64::try_from(first.footprint()).unwrap());
    assert!(second.enqueued_time >= first.enqueued_time);
    assert!(newest.has_changed().unwrap());
    assert_eq!(*newest.borrow_and_update(), 1);
    assert!(matches!(
        first.message_annotations.last(),
        Some((key, EventValue::Timestamp(t))) if key == "iothub-enqueuedtime" && *t == first.enqueued_time
    ));

    let all = log.read(p, StartPosition::Earliest, 10);
    assert_eq!(bodies(&all), ["a", "bb"]);
    let seq = |value, inclusive| StartPosition::Sequence { value, inclusive };
    assert_eq!(bodies(&log.read(p, seq(0, false), 10)), ["bb"]);
    assert_eq!(bodies(&log.read(p, seq(1, true), 10)), ["bb"]);
    assert_eq!(bodies(&log.read(p, seq(-1, false), 1)), ["a"]);
    let offset = |value, inclusive| StartPosition::Offset { value, inclusive };
    assert_eq!(bodies(&log.read(p, offset(-1, false), 10)), ["a", "bb"]);
    assert_eq!(
        bodies(&log.read(p, offset(second.offset, true), 10)),
        ["bb"]
    );
    assert!(log.read(p, offset(second.offset, false), 10).is_empty());
    let at = StartPosition::EnqueuedTime(first.enqueued_time - Duration::from_millis(1));
    assert_eq!(log.read(p, at, 10).len(), 2);
    assert!(log.read(p, StartPosition::Latest, 10).is_empty());
    assert_eq!(log.resolve(p, StartPosition::Latest), seq(1, false));
    assert!(log.read(p + 1, StartPosition::Earliest, 10).is_empty() || p == 3);
    assert!(log.read(99, StartPosition::Earliest, 10).is_empty());
    assert!(log.subscribe(99).is_none());

    let info = log.partition_info(p).unwrap();
    assert_eq!(info.begin_sequence_number, 0);
    assert_eq!(info.last_enqueued_sequence_number, 1);
    assert_eq!(info.last_enqueued_offset, second.offset);
    assert_eq!(info.last_enqueued_time_utc, second.enqueued_time);
    assert!(!info.is_empty);
}

#[test]
fn an_empty_partition_reports_minus_one() {
    let log = log(2);
    let info = log.partition_info(1).unwrap();
    assert_eq!(
        info,
        PartitionInfo {
            begin_sequence_number: 0,
            last_enqueued_sequence_number: -1,
            last_enqueued_offset: -1,
            last_enqueued_time_utc: SystemTime::UNIX_EPOCH,
            is_empty: true,
        }
    );
    assert!(log.partition_info(2).is_none());
}

#[test]
fn retention_by_size_drops_the_oldest_and_advances_the_beginning() {
    // As stored: with its `iothub-enqueuedtime` annotation.
    let one = log(1)
        .append(event("d", &"x".repeat(100)))
        .event
        .footprint();
    let log = EventLog::new(EventsConfig {
        partitions: 1,
        retention_bytes: one * 3,
        retention: DEFAULT_RETENTION,
    });
    for i in 0..10 {
        log.append(event("d", &format!("{i}").repeat(100)));
    }
    let kept = log.read(0, StartPosition::Earliest, 100);
    let numbers: Vec<i64> = kept.iter().map(|e| e.sequence_number).collect();
    assert_eq!(numbers, [7, 8, 9]);
    let info = log.partition_info(0).unwrap();
    assert_eq!(info.begin_sequence_number, 7);
    assert_eq!(info.last_enqueued_sequence_number, 9);
    // A reader behind the beginning resumes at the oldest retained event.
    let behind = StartPosition::Sequence {
        value: 2,
        inclusive: false,
    };
    assert_eq!(log.read(0, behind, 1)[0].sequence_number, 7);
}

#[test]
fn retention_by_age_empties_a_partition_but_keeps_the_numbering() {
    let log = EventLog::new(EventsConfig {
        partitions: 1,
        retention_bytes: DEFAULT_RETENTION_BYTES,
        retention: Duration::ZERO,
    });
    log.append(event("d", "old"));
    let info = log.partition_info(0).unwrap();
    assert!(info.is_empty);
    assert_eq!(info.begin_sequence_number, 1);
    assert_eq!(info.last_enqueued_sequence_number, 0);
    assert!(log.read(0, StartPosition::Earliest, 10).is_empty());
    assert_eq!(log.append(event("d", "new")).event.sequence_number, 1);
}
