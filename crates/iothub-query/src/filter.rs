//! The WHERE clause as the row filter: a conjunction of tests, with the most common test,
//! `path <op> constant`, evaluated without the general evaluator.
//!
//! A row is selected only if the condition is exactly `true`, and `a AND b` is `true`
//! exactly when both sides are `true`, so a top-level AND chain can be checked as "every
//! conjunct is true" whatever three-valued results the parts have. Flattening the chain and
//! specialising the leaves keeps the per-row loop small and free of recursion, which lets
//! the CPU overlap the cache misses of consecutive twins (the scan is memory-bound).

use serde_json::Value;

use crate::ast::{BinaryOp, Expr, ExprKind};
use crate::eval::{compare, Code, Const, Val};
use crate::path::{FieldPath, Key};

/// A compiled WHERE clause.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// Every test must be true.
    all: Box<[Test]>,
}

#[derive(Debug, Clone)]
enum Test {
    /// `path = 'string'`, the usual tag/property test, with the constant prepared for a
    /// length compare and word loads (a libc `memcmp` call per row showed in the profile).
    PathEqStr { path: FieldPath, value: Key },
    /// `path <op> constant` (or `constant <op> path`, stored flipped).
    PathCmp {
        path: FieldPath,
        op: BinaryOp,
        value: Const,
    },
    /// Anything else, through the general evaluator.
    General(Code),
}

impl Filter {
    pub(crate) fn new(cond: &Expr) -> Filter {
        let mut all = Vec::new();
        conjuncts(cond, &mut all);
        Filter {
            all: all.into_iter().map(Test::new).collect(),
        }
    }

    /// True if the condition is exactly `true` for this twin.
    #[inline]
    pub(crate) fn selects(&self, twin: &Value) -> bool {
        // One or two conditions cover most queries; spelling them out keeps the row loop
        // free of the slice iterator's bookkeeping.
        match &*self.all {
            [a] => a.is_true(twin),
            [a, b] => a.is_true(twin) && b.is_true(twin),
            all => all.iter().all(|t| t.is_true(twin)),
        }
    }
}

/// Collects the operands of a top-level AND chain.
fn conjuncts<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &expr.kind {
        ExprKind::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        _ => out.push(expr),
    }
}

impl Test {
    fn new(expr: &Expr) -> Test {
        if let ExprKind::Binary { op, left, right } = &expr.kind {
            if op.is_comparison() {
                match (Code::new(left), Code::new(right)) {
                    (Code::Path(path), Code::Const(Const::Str(s)))
                    | (Code::Const(Const::Str(s)), Code::Path(path))
                        if *op == BinaryOp::Eq =>
                    {
                        return Test::PathEqStr {
                            path,
                            value: Key::new(&s),
                        }
                    }
                    (Code::Path(path), Code::Const(value)) => {
                        return Test::PathCmp {
                            path,
                            op: *op,
                            value,
                        }
                    }
                    (Code::Const(value), Code::Path(path)) => {
                        return Test::PathCmp {
                            path,
                            op: flip(*op),
                            value,
                        }
                    }
                    _ => {}
                }
            }
        }
        Test::General(Code::new(expr))
    }

    #[inline(always)]
    fn is_true(&self, twin: &Value) -> bool {
        match self {
            // A missing property or another type is undefined or false: never true.
            Test::PathEqStr { path, value } => match path.resolve(twin) {
                Some(Value::String(s)) => value.is(s),
                _ => false,
            },
            Test::PathCmp { path, op, value } => match (path.resolve(twin), value) {
                (Some(v), c) => {
                    compare(*op, Val::from_json(v), Val::from_const(c)) == Val::Bool(true)
                }
                // A missing property compares as undefined: never true.
                (None, _) => false,
            },
            Test::General(code) => code.selects(twin),
        }
    }
}

/// The operator with its operands swapped: `5 < x` is `x > 5`.
fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Ge => BinaryOp::Le,
        other => other,
    }
}
