//! Target `twin_patch`: the emulator's twin writes (REST PATCH and PUT bodies, device reported
//! PATCHes) through its own body parsing, content rules and merge, on a fixture twin.
//!
//! The first byte picks the write (`data[0] % 4`; seeds use `P`, `U`, `R`): 0 and 3 a service
//! PATCH, 1 a service PUT, 2 a device's reported PATCH. The rest is the body.
//!
//! Invariants, for every write the emulator accepts:
//! - the twin still passes the hub's content rules (names, values, depth, section sizes);
//! - each section equals what an independent RFC 7386 merge of the body gives (`null` deletes;
//!   a PATCH section sent as `null` is cleared; a PUT replaces `tags` and `desired`), and the
//!   other sections are unchanged;
//! - the desired patch sent to the device, merged into the device's old copy, gives the new
//!   desired section, and carries the new `$version`;
//! - writing the same body again is accepted and changes no section (the merge is idempotent).

use iothub_emulator::fuzzing::Twin;
use serde_json::{json, Map, Value};

/// A twin with something in every section, as a device that has run a while has.
fn fixture() -> Twin {
    let mut twin = Twin::new();
    let body = json!({
        "tags": {"location": {"region": "US", "plant": "Redmond43"}, "n": 1},
        "properties": {"desired": {"telemetryConfig": {"sendFrequency": "5m"}, "list": [1, 2]}},
    });
    let accepted = twin.service_write(body.to_string().as_bytes(), false);
    assert!(accepted.is_ok(), "fixture PATCH refused: {accepted:?}");
    let reported = json!({"connectivity": {"type": "cellular"}, "flag": true});
    let Value::Object(reported) = reported else {
        unreachable!("an object literal")
    };
    let accepted = twin.patch_reported(&reported);
    assert!(
        accepted.is_ok(),
        "fixture reported PATCH refused: {accepted:?}"
    );
    twin
}

/// Runs one write as described in the module documentation.
pub fn twin_patch(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        1 => service_write(body, true),
        2 => reported_patch(body),
        _ => service_write(body, false),
    }
}

/// The sections of a twin, to compare before and after.
#[derive(Debug, Clone, PartialEq)]
struct Sections {
    tags: Map<String, Value>,
    desired: Map<String, Value>,
    reported: Map<String, Value>,
}

impl Sections {
    fn of(twin: &Twin) -> Sections {
        Sections {
            tags: twin.tags().clone(),
            desired: twin.desired().clone(),
            reported: twin.reported().clone(),
        }
    }
}

fn service_write(body: &[u8], replace: bool) {
    let mut twin = fixture();
    let before = Sections::of(&twin);
    let Ok(sent) = twin.service_write(body, replace) else {
        return;
    };
    let after = Sections::of(&twin);
    assert_within_limits(&twin);

    let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(error) => panic!("accepted a body that is not JSON ({error})"),
        }
    };
    let Value::Object(parsed) = parsed else {
        panic!("accepted a body that is not an object: {parsed}")
    };
    let expected = expected_service_write(&before, &parsed, replace);
    assert_eq!(after, expected, "sections after the write");

    match &sent {
        Some(patch) => {
            let Value::Object(patch) = patch else {
                panic!("desired patch is not an object: {patch}")
            };
            let mut patch = patch.clone();
            let version = patch.remove("$version");
            assert_eq!(
                version,
                Some(Value::from(twin.versions().1)),
                "desired patch's $version"
            );
            let mut device_copy = before.desired.clone();
            merge(&mut device_copy, &patch);
            assert_eq!(
                device_copy, after.desired,
                "device's desired after the patch"
            );
        }
        None => assert_eq!(
            after.desired, before.desired,
            "desired changed, nothing sent"
        ),
    }

    let again = twin.service_write(body, replace);
    assert!(
        again.is_ok(),
        "the same write refused the second time: {again:?}"
    );
    assert_eq!(Sections::of(&twin), after, "the same write twice");
    assert_within_limits(&twin);
}

fn reported_patch(body: &[u8]) {
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let mut twin = fixture();
    let before = Sections::of(&twin);
    let Ok(version) = twin.patch_reported(&patch) else {
        return;
    };
    assert_eq!(version, twin.versions().2, "reported $version returned");
    assert_within_limits(&twin);
    let mut expected = before.clone();
    merge(&mut expected.reported, &patch);
    let after = Sections::of(&twin);
    assert_eq!(after, expected, "sections after the reported patch");

    let again = twin.patch_reported(&patch);
    assert!(
        again.is_ok(),
        "the same patch refused the second time: {again:?}"
    );
    assert_eq!(Sections::of(&twin), after, "the same reported patch twice");
}

fn assert_within_limits(twin: &Twin) {
    if let Err(broken) = twin.check_limits() {
        panic!("an accepted write left the twin outside the limits: {broken}");
    }
}

/// What the sections should be after a service write of `body`, read the way the REST API
/// documents it: member names match exactly, else ASCII case-insensitively; a PATCH merges,
/// `null` clears a whole section; a PUT replaces `tags` and `desired` (absent = empty); the
/// read-only `$metadata` and `$version` at the root of `desired` are ignored.
fn expected_service_write(before: &Sections, body: &Map<String, Value>, replace: bool) -> Sections {
    let properties = member(body, "properties").and_then(Value::as_object);
    let desired = properties.and_then(|p| member(p, "desired"));
    let desired = desired.map(|d| match d {
        Value::Object(d) => {
            let mut d = d.clone();
            d.remove("$metadata");
            d.remove("$version");
            Value::Object(d)
        }
        other => other.clone(),
    });
    Sections {
        tags: section_after(&before.tags, member(body, "tags"), replace),
        desired: section_after(&before.desired, desired.as_ref(), replace),
        reported: before.reported.clone(),
    }
}

fn section_after(
    current: &Map<String, Value>,
    sent: Option<&Value>,
    replace: bool,
) -> Map<String, Value> {
    let mut out = if replace { Map::new() } else { current.clone() };
    match sent {
        Some(Value::Object(patch)) => merge(&mut out, patch),
        Some(Value::Null) => out = Map::new(),
        _ => {}
    }
    out
}

fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// RFC 7386 JSON merge patch of objects, written independently of the emulator's.
fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(child) => {
                let mut merged = match target.remove(key) {
                    Some(Value::Object(existing)) => existing,
                    _ => Map::new(),
                };
                merge(&mut merged, child);
                target.insert(key.clone(), Value::Object(merged));
            }
            leaf => {
                target.insert(key.clone(), leaf.clone());
            }
        }
    }
}
