//! State-machine tests: correlation, retransmission, timeouts, retries, desired versions.

use super::*;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(30);

fn publishes(out: &[Output]) -> Vec<(RequestId, String, Vec<u8>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Publish { id, topic, payload } => Some((*id, topic.clone(), payload.clone())),
            _ => None,
        })
        .collect()
}

fn completions(out: &[Output]) -> Vec<(RequestId, Result<Response, RequestError>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Completed { id, result } => Some((*id, result.clone())),
            _ => None,
        })
        .collect()
}

fn desired(out: &[Output]) -> Vec<DesiredUpdate> {
    out.iter()
        .filter_map(|o| match o {
            Output::Desired(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

const TWIN_V1: &str = r#"{"desired":{"a":1,"$version":1},"reported":{"$version":1}}"#;

/// Connects and answers the resync GET with `twin`, returning the protocol ready for use.
fn connected_with_baseline(now: Instant, twin: &str) -> Protocol {
    let mut p = Protocol::new(TIMEOUT);
    let out = p.on_connected(now);
    let (resync, topic, _) = publishes(&out).remove(0);
    assert_eq!(topic, format!("$iothub/twin/GET/?$rid={}", resync.0));
    let out = p.on_publish(
        &format!("$iothub/twin/res/200/?$rid={}", resync.0),
        twin.as_bytes(),
        now,
    );
    assert!(out.is_empty(), "baseline must be silent: {out:?}");
    p
}

#[test]
fn requests_wait_for_the_connection_and_follow_the_resync_get() {
    let now = Instant::now();
    let mut p = Protocol::new(TIMEOUT);
    let (id, out) = p.submit(Request::PatchReported(b"{\"a\":1}".to_vec()), now);
    assert!(out.is_empty(), "nothing is published while disconnected");

    let out = p.on_connected(now);
    assert_eq!(out[0], Output::Subscribe);
    let sent = publishes(&out);
    assert_eq!(sent.len(), 2);
    assert!(sent[0].1.starts_with("$iothub/twin/GET/?$rid="));
    assert_eq!(sent[1].0, id);
    assert_eq!(
        sent[1].1,
        format!("$iothub/twin/PATCH/properties/reported/?$rid={}", id.0)
    );
    assert_eq!(sent[1].2, b"{\"a\":1}");
}

#[test]
fn get_response_is_correlated_by_rid() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let (a, _) = p.submit(Request::GetTwin, now);
    let (b, _) = p.submit(Request::GetTwin, now);
    let body = r#"{"desired":{"$version":4},"reported":{"x":true,"$version":9}}"#;
    let out = p.on_publish(
        &format!("$iothub/twin/res/200/?$rid={}", b.0),
        body.as_bytes(),
        now,
    );
    let done = completions(&out);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, b);
    let Ok(Response::Twin(twin)) = &done[0].1 else {
        panic!("expected a twin, got {:?}", done[0].1);
    };
    assert_eq!(twin.reported_version(), Some(9));
    assert_eq!(twin.reported["x"], true);
    // `a` is still pending.
    assert!(p.pending.contains_key(&a));
}

#[test]
fn patch_acknowledgement_carries_the_new_version() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let (id, out) = p.submit(Request::PatchReported(b"{}".to_vec()), now);
    assert_eq!(publishes(&out).len(), 1);
    let out = p.on_publish(
        &format!("$iothub/twin/res/204/?$rid={}&$version=6", id.0),
        b"",
        now,
    );
    assert_eq!(
        completions(&out),
        vec![(
            id,
            Ok(Response::Reported {
                status: 204,
                version: 6
            })
        )]
    );
    assert!(p.pending.is_empty());
}

#[test]
fn unanswered_patches_are_resent_in_order_after_reconnect_and_complete_once() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let ids: Vec<RequestId> = (0..3)
        .map(|i| {
            p.submit(
                Request::PatchReported(format!("{{\"n\":{i}}}").into_bytes()),
                now,
            )
            .0
        })
        .collect();
    // The first one is acknowledged, then the connection drops.
    let out = p.on_publish(
        &format!("$iothub/twin/res/204/?$rid={}&$version=2", ids[0].0),
        b"",
        now,
    );
    assert_eq!(completions(&out).len(), 1);
    p.on_disconnected();

    let out = p.on_connected(now);
    let resent: Vec<RequestId> = publishes(&out)
        .into_iter()
        .filter(|(_, topic, _)| topic.contains("PATCH"))
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(resent, vec![ids[1], ids[2]], "same rids, original order");

    let topic = format!("$iothub/twin/res/204/?$rid={}&$version=3", ids[1].0);
    assert_eq!(completions(&p.on_publish(&topic, b"", now)).len(), 1);
    // A duplicate answer (the hub saw both transmissions) completes nothing.
    assert!(completions(&p.on_publish(&topic, b"", now)).is_empty());
}

#[test]
fn requests_time_out_with_an_error() {
    let now = Instant::now();
    let mut p = Protocol::new(Duration::from_secs(2));
    let (id, _) = p.submit(Request::GetTwin, now);
    assert_eq!(p.next_deadline(), Some(now + Duration::from_secs(2)));
    assert!(completions(&p.on_tick(now + Duration::from_secs(1))).is_empty());
    let out = p.on_tick(now + Duration::from_secs(2));
    assert_eq!(
        completions(&out),
        vec![(
            id,
            Err(RequestError::Timeout {
                after: Duration::from_secs(2)
            })
        )]
    );
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn throttled_requests_are_retried_with_the_same_rid() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let (id, _) = p.submit(Request::PatchReported(b"{}".to_vec()), now);
    let out = p.on_publish(&format!("$iothub/twin/res/429/?$rid={}", id.0), b"", now);
    assert!(
        out.is_empty(),
        "no completion, no immediate resend: {out:?}"
    );
    assert_eq!(p.next_deadline(), Some(now + RETRY_BASE));
    assert!(publishes(&p.on_tick(now + RETRY_BASE / 2)).is_empty());
    let out = p.on_tick(now + RETRY_BASE);
    assert_eq!(publishes(&out)[0].0, id);
}

#[test]
fn retries_stop_at_the_deadline() {
    let now = Instant::now();
    let mut p = Protocol::new(Duration::from_millis(300));
    p.on_connected(now);
    let (id, _) = p.submit(Request::GetTwin, now);
    let out = p.on_publish(&format!("$iothub/twin/res/503/?$rid={}", id.0), b"", now);
    let done = completions(&out);
    assert!(matches!(
        done[0],
        (got, Err(RequestError::Status { status: 503, .. })) if got == id
    ));
}

#[test]
fn client_errors_complete_with_the_hub_message() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let (id, _) = p.submit(Request::PatchReported(b"[1]".to_vec()), now);
    let body = br#"{"errorCode":400004,"message":"Malformed JSON"}"#;
    let out = p.on_publish(&format!("$iothub/twin/res/400/?$rid={}", id.0), body, now);
    assert_eq!(
        completions(&out),
        vec![(
            id,
            Err(RequestError::Status {
                status: 400,
                message: "Malformed JSON".into()
            })
        )]
    );
}

#[test]
fn patch_without_version_is_an_invalid_response() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let (id, _) = p.submit(Request::PatchReported(b"{}".to_vec()), now);
    let out = p.on_publish(&format!("$iothub/twin/res/204/?$rid={}", id.0), b"", now);
    assert!(matches!(
        completions(&out)[0].1,
        Err(RequestError::InvalidResponse(_))
    ));
}

#[test]
fn the_window_limits_requests_on_the_wire() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let mut sent = Vec::new();
    for _ in 0..(MAX_IN_FLIGHT + 4) {
        let (_, out) = p.submit(Request::PatchReported(b"{}".to_vec()), now);
        sent.extend(publishes(&out));
    }
    assert_eq!(sent.len(), MAX_IN_FLIGHT);
    let first = sent[0].0;
    let out = p.on_publish(
        &format!("$iothub/twin/res/204/?$rid={}&$version=2", first.0),
        b"",
        now,
    );
    assert_eq!(publishes(&out).len(), 1, "one answer frees one slot");
}

#[test]
fn desired_notifications_are_delivered_once_and_in_version_order() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let topic = "$iothub/twin/PATCH/properties/desired/?$version=2";
    let out = p.on_publish(topic, br#"{"b":2,"$version":2}"#, now);
    let got = desired(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].version, 2);
    assert_eq!(got[0].kind, DesiredUpdateKind::Patch);
    assert_eq!(got[0].properties, json!({"b":2,"$version":2}));
    // Duplicate and stale notifications are dropped.
    assert!(desired(&p.on_publish(topic, br#"{"b":2,"$version":2}"#, now)).is_empty());
    let stale = "$iothub/twin/PATCH/properties/desired/?$version=1";
    assert!(desired(&p.on_publish(stale, br#"{"$version":1}"#, now)).is_empty());
}

#[test]
fn desired_changes_missed_offline_surface_after_reconnect() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    p.on_disconnected();
    let out = p.on_connected(now);
    let (resync, _, _) = publishes(&out).remove(0);
    let body = r#"{"desired":{"a":5,"$version":3},"reported":{"$version":1}}"#;
    let out = p.on_publish(
        &format!("$iothub/twin/res/200/?$rid={}", resync.0),
        body.as_bytes(),
        now,
    );
    let got = desired(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, DesiredUpdateKind::Full);
    assert_eq!(got[0].version, 3);
    assert_eq!(got[0].properties["a"], 5);
    // A late notification for a version the GET already covered is not repeated.
    let late = "$iothub/twin/PATCH/properties/desired/?$version=3";
    assert!(desired(&p.on_publish(late, br#"{"a":5,"$version":3}"#, now)).is_empty());
}

#[test]
fn unchanged_desired_after_reconnect_surfaces_nothing() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    p.on_disconnected();
    let out = p.on_connected(now);
    let (resync, _, _) = publishes(&out).remove(0);
    let out = p.on_publish(
        &format!("$iothub/twin/res/200/?$rid={}", resync.0),
        TWIN_V1.as_bytes(),
        now,
    );
    assert!(out.is_empty());
}

#[test]
fn only_one_resync_get_is_outstanding() {
    let now = Instant::now();
    let mut p = Protocol::new(TIMEOUT);
    p.on_connected(now);
    p.on_disconnected();
    let out = p.on_connected(now);
    let gets = publishes(&out)
        .into_iter()
        .filter(|(_, t, _)| t.contains("/GET/"))
        .count();
    assert_eq!(gets, 1);
}

#[test]
fn unsent_requests_go_out_on_the_next_pump() {
    let now = Instant::now();
    let mut p = connected_with_baseline(now, TWIN_V1);
    let (id, out) = p.submit(Request::GetTwin, now);
    assert_eq!(publishes(&out)[0].0, id);
    p.unsent(id);
    let out = p.on_tick(now);
    assert_eq!(publishes(&out)[0].0, id);
}
