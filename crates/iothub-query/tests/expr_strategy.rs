//! The compound expression nodes both property tests generate (`roundtrip` and
//! `differential`). Each test chooses its own leaves, operators and constants and arranges
//! these arms in its own `prop_oneof!`, so its coverage stays its own; only the node
//! building is shared.

use std::ops::Range;

use iothub_query::ast::{BinaryOp, Expr, ExprKind, Function, Literal, UnaryOp};
use iothub_query::Span;
use proptest::prelude::*;

/// An expression node without a source position (generated trees have none).
pub fn expr(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

/// `left <op> right`.
pub fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    expr(ExprKind::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    })
}

/// A binary operation from `ops` over two `inner` expressions.
pub fn binary_of<S>(ops: impl Strategy<Value = BinaryOp>, inner: S) -> impl Strategy<Value = Expr>
where
    S: Strategy<Value = Expr> + Clone,
{
    (ops, inner.clone(), inner).prop_map(|(op, l, r)| binary(op, l, r))
}

/// `NOT inner`.
pub fn not_of(inner: impl Strategy<Value = Expr>) -> impl Strategy<Value = Expr> {
    inner.prop_map(|e| {
        expr(ExprKind::Unary {
            op: UnaryOp::Not,
            expr: Box::new(e),
        })
    })
}

/// `inner IN [...]` or `inner NIN [...]` with `len` constants from `literal`.
pub fn in_of(
    inner: impl Strategy<Value = Expr>,
    literal: impl Strategy<Value = Literal>,
    len: Range<usize>,
) -> impl Strategy<Value = Expr> {
    (inner, prop::collection::vec(literal, len), any::<bool>()).prop_map(|(e, list, negated)| {
        expr(ExprKind::In {
            expr: Box::new(e),
            list,
            negated,
        })
    })
}

/// A call of any built-in function with its own number of `inner` arguments.
pub fn call_of(inner: impl Strategy<Value = Expr>) -> impl Strategy<Value = Expr> {
    (
        prop::sample::select(Function::ALL.to_vec()),
        prop::collection::vec(inner, 2),
    )
        .prop_map(|(func, mut args)| {
            args.truncate(func.arity());
            expr(ExprKind::Call { func, args })
        })
}
