use iothub_query::ast::{BinaryOp, Expr, ExprKind, Literal, Number, Path};
use iothub_query::{Span, Spanned};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::expr_strategy::{binary, binary_of, call_of, expr, in_of, not_of};
use crate::fleet::compile;

fn twins() -> Vec<Value> {
    vec![
        json!({"deviceId": "d1", "version": 3, "tags": {"s": "abc", "n": 5, "f": 2.5, "b": true,
               "z": null, "o": {"x": 1}, "a": [1, 2]}}),
        json!({"deviceId": "test2", "version": 7, "tags": {"s": "5", "n": -1, "f": 5.0, "b": false,
               "z": "null", "o": [], "a": {}}}),
        json!({"deviceId": "d3", "tags": {"n": "abc"}}),
        json!({"deviceId": "d4"}),
    ]
}

fn path() -> impl Strategy<Value = Expr> {
    prop::sample::select(vec![
        "tags.s",
        "tags.n",
        "tags.f",
        "tags.b",
        "tags.z",
        "tags.o",
        "tags.a",
        "tags.missing",
        "deviceId",
        "DeviceId",
        "version",
    ])
    .prop_map(|p| {
        let segments = p
            .split('.')
            .map(|s| Spanned::new(s.to_owned(), Span::default()))
            .collect();
        expr(ExprKind::Path(Path {
            segments,
            span: Span::default(),
        }))
    })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop::sample::select(vec![
        Literal::String("abc".into()),
        Literal::String("5".into()),
        Literal::String("d1".into()),
        Literal::Number(Number::Int(5)),
        Literal::Number(Number::Int(-1)),
        Literal::Number(Number::Float(2.5)),
        Literal::Bool(true),
        Literal::Bool(false),
        Literal::Null,
        Literal::Undefined,
    ])
}

fn general() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![path(), literal().prop_map(|l| expr(ExprKind::Literal(l)))];
    leaf.prop_recursive(4, 32, 2, |inner| {
        let op = prop::sample::select(vec![
            BinaryOp::Or,
            BinaryOp::And,
            BinaryOp::And,
            BinaryOp::Eq,
            BinaryOp::Eq,
            BinaryOp::Ne,
            BinaryOp::Lt,
            BinaryOp::Ge,
            BinaryOp::Add,
            BinaryOp::Mul,
            BinaryOp::Mod,
        ]);
        prop_oneof![
            binary_of(op, inner.clone()),
            not_of(inner.clone()),
            in_of(inner.clone(), literal(), 0..3),
            call_of(inner),
        ]
    })
}

fn comparison_op() -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(vec![
        BinaryOp::Eq,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Gt,
        BinaryOp::Le,
        BinaryOp::Ge,
    ])
}

/// One conjunct: mostly `path <op> constant` (the filter's fast path, either way round),
/// sometimes anything.
fn atom() -> impl Strategy<Value = Expr> {
    let constant = || literal().prop_map(|l| expr(ExprKind::Literal(l)));
    prop_oneof![
        3 => (path(), comparison_op(), constant()).prop_map(|(p, op, c)| binary(op, p, c)),
        1 => (constant(), comparison_op(), path()).prop_map(|(c, op, p)| binary(op, c, p)),
        2 => general(),
    ]
}

/// Conditions shaped like real WHERE clauses: AND chains of atoms, sometimes an OR.
fn condition() -> impl Strategy<Value = Expr> {
    (prop::collection::vec(atom(), 1..4), any::<bool>(), atom()).prop_map(|(atoms, or, extra)| {
        let chain = atoms
            .into_iter()
            .reduce(|l, r| binary(BinaryOp::And, l, r))
            .unwrap_or_else(|| expr(ExprKind::Literal(Literal::Bool(true))));
        if or {
            binary(BinaryOp::Or, chain, extra)
        } else {
            chain
        }
    })
}

fn selected(query: &str, twin: &Value) -> bool {
    compile(query).matches(twin)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The row filter (flattened AND chains, `path = constant` fast paths) agrees with the
    /// general three-valued evaluator, which `NOT NOT (…)` forces.
    #[test]
    fn fast_filter_agrees_with_general_evaluator(cond in condition()) {
        for twin in twins() {
            let fast = selected(&format!("SELECT * FROM devices WHERE {cond}"), &twin);
            let general = selected(&format!("SELECT * FROM devices WHERE NOT NOT ({cond})"), &twin);
            prop_assert_eq!(fast, general, "{} on {}", cond, twin);
            // A condition and its negation are never both selected.
            let negated = selected(&format!("SELECT * FROM devices WHERE NOT ({cond})"), &twin);
            prop_assert!(!(fast && negated), "{} and its negation both hold on {}", cond, twin);
        }
    }
}
