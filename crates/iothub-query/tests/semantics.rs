use serde_json::{json, Value};

use crate::fleet::compile;

/// The truth value of `cond` for `twin`: `Some(true)`, `Some(false)` or `None` (undefined).
/// Observed only through `matches`: `cond` selects iff true, `NOT (cond)` iff false.
fn truth(cond: &str, twin: &Value) -> Option<bool> {
    let yes = compile(&format!("SELECT * FROM devices WHERE {cond}")).matches(twin);
    let no = compile(&format!("SELECT * FROM devices WHERE NOT ({cond})")).matches(twin);
    match (yes, no) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
        (true, true) => panic!("{cond}: both it and its negation selected the twin"),
    }
}

const T: Option<bool> = Some(true);
const F: Option<bool> = Some(false);
const U: Option<bool> = None;

#[test]
fn type_semantics_table() {
    let twin = json!({
        "deviceId": "d1", "version": 3, "status": "enabled",
        "tags": {"s": "abc", "n": 5, "f": 5.0, "half": 2.5, "neg": -2, "b": true, "no": false,
                 "z": null, "o": {"x": 1}, "a": [1, 2], "big": 1e300,
                 "exact": 9007199254740993_i64, "S": "upper"}
    });
    let cases: &[(&str, Option<bool>)] = &[
        // numbers compare numerically, ints and floats alike
        ("tags.n = 5", T),
        ("tags.n = 5.0", T),
        ("tags.f = 5", T),
        ("tags.n > 4.5", T),
        ("tags.half < 3", T),
        ("tags.n <> 5", F),
        ("tags.n != 6", T),
        ("tags.n >= 5 AND tags.n <= 5", T),
        ("tags.neg < 0", T),
        ("tags.big > 1", T),
        ("tags.exact = 9007199254740993", T),
        ("tags.exact = 9007199254740992", F),
        ("0x10 = 16", T),
        ("1.5e1 = 15", T),
        // strings compare ordinally and case-sensitively
        ("tags.s = 'abc'", T),
        ("tags.s = \"abc\"", T),
        ("tags.s = 'ABC'", F),
        ("tags.s < 'abd'", T),
        ("tags.s > 'ab'", T),
        ("'B' < 'a'", T),
        ("'\\u0041' = 'A'", T),
        // booleans and null
        ("tags.b = true", T),
        ("tags.no = false", T),
        ("false < true", T),
        ("tags.z = null", T),
        ("tags.z != null", F),
        ("null = null", T),
        // different types: undefined, never true or false
        ("tags.n = '5'", U),
        ("tags.b = 1", U),
        ("tags.z = 0", U),
        ("tags.s > 1", U),
        ("tags.z = false", U),
        // objects and arrays are not comparable, even to themselves
        ("tags.o = tags.o", U),
        ("tags.a = tags.a", U),
        ("tags.a = [1, 2]", U),
        // missing paths are undefined
        ("tags.missing = null", U),
        ("tags.missing = undefined", U),
        ("tags.missing != 'x'", U),
        ("undefined = undefined", U),
        // IN / NIN are ORs of equalities
        ("tags.n IN [1, 5]", T),
        ("tags.n IN [1, 2]", F),
        ("tags.n NIN [1, 2]", T),
        ("tags.n NOT IN [5]", F),
        ("tags.n IN ['5']", U),
        ("tags.n IN ['a', 5]", T),
        ("tags.n IN []", F),
        ("tags.missing IN ['a']", U),
        ("tags.missing NIN ['a']", U),
        ("tags.z IN [null]", T),
        // three-valued logic
        ("NOT tags.missing = 1", U),
        ("NOT tags.n = 5", F),
        ("NOT NOT tags.b", T),
        ("tags.missing = 1 AND false", F),
        ("false AND tags.missing = 1", F),
        ("tags.missing = 1 AND true", U),
        ("true OR tags.missing = 1", T),
        ("tags.missing = 1 OR true", T),
        ("tags.missing = 1 OR false", U),
        ("tags.s AND true", U),
        // a bare value is a condition only if it is the boolean true
        ("tags.b", T),
        ("tags.no", F),
        ("tags.s", U),
        ("tags.n", U),
        ("tags.o", U),
        // arithmetic on numbers only
        ("tags.n + 1 = 6", T),
        ("tags.n - 7 = -2", T),
        ("tags.n * 2 = 10", T),
        ("tags.n / 2 = 2.5", T),
        ("tags.n % 2 = 1", T),
        ("tags.half * 2 = tags.n", T),
        ("-tags.n = -5", T),
        ("- tags.neg = 2", T),
        ("2 + 3 * 4 = 14", T),
        ("(2 + 3) * 4 = 20", T),
        ("10 - 2 - 3 = 5", T),
        ("tags.n / 0 = 1", U),
        ("tags.n % 0 = 1", U),
        ("tags.s + 1 = 2", U),
        ("tags.missing + 1 = 1", U),
        ("-tags.s = 1", U),
        ("9223372036854775807 + 1 > 0", T),
        // functions
        ("IS_DEFINED(tags.z)", T),
        ("IS_DEFINED(tags.missing)", F),
        ("IS_NULL(tags.z)", T),
        ("IS_NULL(tags.missing)", F),
        ("IS_STRING(tags.s)", T),
        ("IS_NUMBER(tags.f)", T),
        ("IS_NUMBER(tags.s)", F),
        ("IS_BOOL(tags.b)", T),
        ("IS_OBJECT(tags.o)", T),
        ("IS_ARRAY(tags.a)", T),
        ("IS_ARRAY([1, 2])", T),
        ("IS_PRIMITIVE(tags.o)", F),
        ("IS_PRIMITIVE(tags.z)", T),
        ("IS_PRIMITIVE(tags.missing)", F),
        ("STARTSWITH(tags.s, 'ab')", T),
        ("startswith(tags.s, 'AB')", F),
        ("ENDSWITH(tags.s, 'bc')", T),
        ("EndsWith(tags.s, 'b')", F),
        ("ARRAY_CONTAINS(tags.a, 2)", T),
        ("array_contains(tags.a, 3)", F),
        ("ARRAY_CONTAINS(tags.a, '1')", F),
        ("ARRAY_CONTAINS(tags.s, 'a')", U),
        ("ARRAY_CONTAINS([1, 2], 1)", U),
        ("STARTSWITH(tags.n, '5')", U),
        ("STARTSWITH(tags.missing, 'a')", U),
        // top-level fields match case-insensitively, nested ones exactly
        ("VERSION = 3", T),
        ("DeviceID = 'd1'", T),
        ("Tags.s = 'abc'", T),
        ("tags.S = 'upper'", T),
        ("tags.S = 'abc'", F),
        ("tags.N = 5", U),
        // constants on the left compare the same way
        ("4 < tags.n", T),
        ("5 < tags.n", F),
        ("5 >= tags.n", T),
        ("'abc' = tags.s", T),
        ("'5' = tags.n", U),
        ("null = tags.missing", U),
        // comparisons chain left to right
        ("tags.n = 5 = true", T),
    ];
    let mut failures = Vec::new();
    for (cond, expected) in cases {
        let got = truth(cond, &twin);
        if got != *expected {
            failures.push(format!("{cond}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn exact_top_level_key_wins_over_case_insensitive_match() {
    // Not a real twin shape, but it pins the lookup order: exact spelling first.
    let twin = json!({"Status": "upper", "status": "lower"});
    assert_eq!(truth("status = 'lower'", &twin), T);
    assert_eq!(truth("Status = 'upper'", &twin), T);
    // Neither spelling as written: the usual twin spelling is tried next.
    assert_eq!(truth("STATUS = 'lower'", &twin), T);
}

#[test]
fn no_where_clause_matches_everything() {
    let q = compile("SELECT * FROM devices");
    assert!(q.matches(&json!({})));
    assert!(q.matches(&json!(null)));
}

#[test]
fn non_object_twins_are_undefined_not_panics() {
    let q = compile("SELECT * FROM devices WHERE tags.a = 1 OR deviceId = 'x'");
    for v in [
        json!(null),
        json!(1),
        json!("s"),
        json!([1]),
        json!({"tags": 5}),
    ] {
        assert!(!q.matches(&v));
        let _ = q.project(&v);
    }
}
