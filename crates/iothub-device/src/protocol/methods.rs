//! Direct methods: the request and response topics, and the table of requests waiting for the
//! application's answer. No I/O.
//!
//! The hub publishes a call on `$iothub/methods/POST/{name}/?$rid={rid}` and takes the answer
//! on `$iothub/methods/res/{status}/?$rid={rid}`
//! (<https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods>). The `$rid` is
//! opaque and only meaningful on the connection that carried the call: the hub fails a call as
//! soon as the device disconnects, and may reuse small ids on the next connection. So the
//! table is keyed by (connection, `$rid`), emptied when the connection is lost, and an answer
//! is only published while its entry exists.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use tokio::time::Instant;

/// Method calls arrive below this filter.
pub(crate) const METHOD_REQUESTS: &str = "$iothub/methods/POST/#";

const REQUEST_PREFIX: &str = "$iothub/methods/POST/";

/// At most this many calls may wait for the application's answer; further calls are answered
/// at once with [`BUSY_STATUS`]. The hub itself keeps few calls in flight per device.
pub(crate) const MAX_PENDING_METHODS: usize = 64;

/// The automatic answer to a call that finds the table full.
pub(crate) const BUSY_STATUS: i32 = 429;

/// A method call parsed from its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MethodCall {
    /// The method name, percent-decoded (the Python SDK decodes it; C and Node use it raw,
    /// which is the same for the names the hub accepts).
    pub(crate) name: String,
    pub(crate) rid: String,
}

/// Why a method topic could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MethodTopicError {
    #[error("method request topic without a method name: {0}")]
    MissingName(String),
    #[error("method request topic without $rid: {0}")]
    MissingRid(String),
}

/// `Some` for every topic below `$iothub/methods/POST/`, with the call or why it is unusable.
pub(crate) fn parse_request(topic: &str) -> Option<Result<MethodCall, MethodTopicError>> {
    let rest = topic.strip_prefix(REQUEST_PREFIX)?;
    let (name, query) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Some(Err(MethodTopicError::MissingName(topic.to_owned())));
    }
    let query = query.strip_prefix('?').unwrap_or(query);
    let rid = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "$rid" || k.eq_ignore_ascii_case("%24rid")).then_some(v)
    });
    let Some(rid) = rid.filter(|r| !r.is_empty()) else {
        return Some(Err(MethodTopicError::MissingRid(topic.to_owned())));
    };
    Some(Ok(MethodCall {
        name: percent_decode_str(name).decode_utf8_lossy().into_owned(),
        rid: rid.to_owned(),
    }))
}

/// The topic that answers call `rid` with `status` (any integer is legal).
pub(crate) fn response_topic(status: i32, rid: &str) -> String {
    format!("$iothub/methods/res/{status}/?$rid={rid}")
}

/// What [`MethodTable::accept`] decided about a new call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Hand it to the application.
    Accepted,
    /// The same `$rid` is already waiting on this connection: a duplicate, ignore it.
    Duplicate,
    /// Too many calls are waiting: answer with [`BUSY_STATUS`].
    Full,
}

/// Why an answer cannot be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerRefusal {
    /// The call's deadline passed, or the connection that carried it is gone (the hub has
    /// failed the call already), or it was answered before.
    NoLongerPending,
}

/// Calls waiting for the application, by (connection epoch, `$rid`).
#[derive(Debug, Default)]
pub(crate) struct MethodTable {
    pending: BTreeMap<(u64, String), Instant>,
}

impl MethodTable {
    /// Registers a call that arrived on connection `epoch`; it may be answered until
    /// `deadline`.
    pub(crate) fn accept(&mut self, epoch: u64, rid: &str, deadline: Instant) -> Admission {
        let key = (epoch, rid.to_owned());
        if self.pending.contains_key(&key) {
            return Admission::Duplicate;
        }
        if self.pending.len() >= MAX_PENDING_METHODS {
            return Admission::Full;
        }
        self.pending.insert(key, deadline);
        Admission::Accepted
    }

    /// Takes the entry for an answer; afterwards the call cannot be answered again.
    pub(crate) fn answer(
        &mut self,
        epoch: u64,
        rid: &str,
        now: Instant,
    ) -> Result<(), AnswerRefusal> {
        match self.pending.remove(&(epoch, rid.to_owned())) {
            Some(deadline) if now < deadline => Ok(()),
            _ => Err(AnswerRefusal::NoLongerPending),
        }
    }

    /// Forgets calls past their deadline; returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        before - self.pending.len()
    }

    /// The earliest deadline, for the driver's timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().min().copied()
    }

    /// The connection is gone, and with it every call it carried.
    pub(crate) fn on_disconnected(&mut self) {
        self.pending.clear();
    }

    /// Calls waiting for an answer.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_request_topics() {
        assert_eq!(
            parse_request("$iothub/methods/POST/reboot/?$rid=1"),
            Some(Ok(MethodCall {
                name: "reboot".into(),
                rid: "1".into()
            }))
        );
        assert_eq!(
            parse_request("$iothub/methods/POST/set%20fan/?%24rid=ab-c"),
            Some(Ok(MethodCall {
                name: "set fan".into(),
                rid: "ab-c".into()
            }))
        );
        assert!(matches!(
            parse_request("$iothub/methods/POST//?$rid=1"),
            Some(Err(MethodTopicError::MissingName(_)))
        ));
        assert!(matches!(
            parse_request("$iothub/methods/POST/reboot/"),
            Some(Err(MethodTopicError::MissingRid(_)))
        ));
        assert!(matches!(
            parse_request("$iothub/methods/POST/reboot/?$rid="),
            Some(Err(MethodTopicError::MissingRid(_)))
        ));
        assert_eq!(parse_request("$iothub/twin/res/200/?$rid=1"), None);
        assert_eq!(parse_request("devices/d/messages/devicebound/"), None);
    }

    #[test]
    fn response_topics_carry_any_integer_status() {
        assert_eq!(response_topic(200, "7"), "$iothub/methods/res/200/?$rid=7");
        assert_eq!(response_topic(299, "x"), "$iothub/methods/res/299/?$rid=x");
        assert_eq!(response_topic(-1, "x"), "$iothub/methods/res/-1/?$rid=x");
    }

    #[test]
    fn a_call_is_answered_once_before_its_deadline() {
        let now = Instant::now();
        let mut t = MethodTable::default();
        let deadline = now + Duration::from_secs(5);
        assert_eq!(t.accept(1, "1", deadline), Admission::Accepted);
        assert_eq!(t.accept(1, "1", deadline), Admission::Duplicate);
        assert_eq!(t.answer(1, "1", now), Ok(()));
        assert_eq!(t.answer(1, "1", now), Err(AnswerRefusal::NoLongerPending));

        assert_eq!(t.accept(1, "2", deadline), Admission::Accepted);
        assert_eq!(
            t.answer(1, "2", deadline),
            Err(AnswerRefusal::NoLongerPending)
        );
    }

    #[test]
    fn answers_belong_to_the_connection_that_carried_the_call() {
        let now = Instant::now();
        let mut t = MethodTable::default();
        let deadline = now + Duration::from_secs(5);
        t.accept(1, "1", deadline);
        t.on_disconnected();
        t.accept(2, "1", deadline);
        assert_eq!(t.answer(1, "1", now), Err(AnswerRefusal::NoLongerPending));
        assert_eq!(t.answer(2, "1", now), Ok(()));
    }

    #[test]
    fn the_table_is_bounded_and_expires() {
        let now = Instant::now();
        let mut t = MethodTable::default();
        for i in 0..MAX_PENDING_METHODS {
            let deadline = now + Duration::from_secs(1 + i as u64);
            assert_eq!(t.accept(1, &i.to_string(), deadline), Admission::Accepted);
        }
        assert_eq!(
            t.accept(1, "extra", now + Duration::from_secs(1)),
            Admission::Full
        );
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(1)));
        assert_eq!(t.expire(now + Duration::from_secs(2)), 2);
        assert_eq!(t.len(), MAX_PENDING_METHODS - 2);
        assert_eq!(
            t.accept(1, "extra", now + Duration::from_secs(9)),
            Admission::Accepted
        );
    }
}
