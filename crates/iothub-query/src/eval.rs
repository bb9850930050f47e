//! Expression evaluation over one twin, with IoT Hub's (Cosmos DB-derived) semantics:
//! a missing property is `undefined`; comparing values of different types, or anything
//! with an object or array, is `undefined`; `AND`/`OR`/`NOT` are three-valued; only
//! `true` selects a row (ARCHITECTURE.md#query-language).
//!
//! Compiled expressions ([`Code`]) hold pre-resolved paths and constants; evaluating one
//! borrows from the twin and the query and allocates nothing.

use std::cmp::Ordering;

use serde_json::Value;

use crate::ast::{BinaryOp, Expr, ExprKind, Function, Literal, Number, UnaryOp};
use crate::path::FieldPath;

/// A value during evaluation, borrowing strings from the twin or the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Undefined,
    Null,
    Bool(bool),
    Num(Num),
    Str(&'a str),
    /// Arrays and objects take part only in type tests, so their contents are not kept.
    Array,
    Object,
}

/// A number: integers stay exact, everything else is a double.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn from_json(n: &serde_json::Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    /// A finite result, or `undefined` (JSON has no NaN or infinity).
    fn finite(f: f64) -> Val<'static> {
        if f.is_finite() {
            Val::Num(Num::Float(f))
        } else {
            Val::Undefined
        }
    }
}

impl<'a> Val<'a> {
    pub(crate) fn from_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(Num::from_json(n)),
            Value::String(s) => Val::Str(s),
            Value::Array(_) => Val::Array,
            Value::Object(_) => Val::Object,
        }
    }

    pub(crate) fn from_const(c: &'a Const) -> Val<'a> {
        match c {
            Const::Undefined => Val::Undefined,
            Const::Null => Val::Null,
            Const::Bool(b) => Val::Bool(*b),
            Const::Num(n) => Val::Num(*n),
            Const::Str(s) => Val::Str(s),
        }
    }
}

/// A scalar constant of a compiled query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Undefined,
    Null,
    Bool(bool),
    Num(Num),
    Str(Box<str>),
}

impl Const {
    fn new(lit: &Literal) -> Const {
        match lit {
            Literal::Undefined => Const::Undefined,
            Literal::Null => Const::Null,
            Literal::Bool(b) => Const::Bool(*b),
            Literal::Number(Number::Int(i)) => Const::Num(Num::Int(*i)),
            Literal::Number(Number::Float(f)) => Const::Num(Num::Float(*f)),
            Literal::String(s) => Const::Str(s.as_str().into()),
        }
    }
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) enum Code {
    Const(Const),
    /// An array constant: only its type is observable.
    Array,
    Path(FieldPath),
    Call(Function, Box<[Code]>),
    Not(Box<Code>),
    Neg(Box<Code>),
    Binary(BinaryOp, Box<Code>, Box<Code>),
    In {
        expr: Box<Code>,
        list: Box<[Const]>,
        negated: bool,
    },
}

impl Code {
    /// Compiles a parsed expression: paths are prepared, constants converted.
    pub(crate) fn new(expr: &Expr) -> Code {
        match &expr.kind {
            ExprKind::Literal(lit) => Code::Const(Const::new(lit)),
            ExprKind::Array(_) => Code::Array,
            ExprKind::Path(p) => Code::Path(FieldPath::new(p)),
            ExprKind::Call { func, args } => {
                Code::Call(*func, args.iter().map(Code::new).collect())
            }
            ExprKind::Unary {
                op: UnaryOp::Not,
                expr,
            } => Code::Not(Box::new(Code::new(expr))),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                expr,
            } => Code::Neg(Box::new(Code::new(expr))),
            ExprKind::Binary { op, left, right } => {
                Code::Binary(*op, Box::new(Code::new(left)), Box::new(Code::new(right)))
            }
            ExprKind::In {
                expr,
                list,
                negated,
            } => Code::In {
                expr: Box::new(Code::new(expr)),
                list: list.iter().map(Const::new).collect(),
                negated: *negated,
            },
        }
    }

    /// True if the expression evaluates to exactly `true` for this twin.
    #[inline]
    pub(crate) fn selects(&self, twin: &Value) -> bool {
        self.eval(twin) == Val::Bool(true)
    }

    pub(crate) fn eval<'a>(&'a self, twin: &'a Value) -> Val<'a> {
        match self {
            Code::Const(c) => Val::from_const(c),
            Code::Array => Val::Array,
            Code::Path(p) => p.resolve(twin).map_or(Val::Undefined, Val::from_json),
            Code::Call(func, args) => call(*func, args, twin),
            Code::Not(e) => match e.eval(twin) {
                Val::Bool(b) => Val::Bool(!b),
                _ => Val::Undefined,
            },
            Code::Neg(e) => match e.eval(twin) {
                Val::Num(Num::Int(i)) => i
                    .checked_neg()
                    .map_or(Val::Num(Num::Float(-(i as f64))), |n| Val::Num(Num::Int(n))),
                Val::Num(Num::Float(f)) => Val::Num(Num::Float(-f)),
                _ => Val::Undefined,
            },
            Code::Binary(BinaryOp::And, l, r) => match l.eval(twin) {
                // false AND anything is false, so the right side need not be evaluated.
                Val::Bool(false) => Val::Bool(false),
                lv => match (lv, r.eval(twin)) {
                    (_, Val::Bool(false)) => Val::Bool(false),
                    (Val::Bool(true), Val::Bool(true)) => Val::Bool(true),
                    _ => Val::Undefined,
                },
            },
            Code::Binary(BinaryOp::Or, l, r) => match l.eval(twin) {
                Val::Bool(true) => Val::Bool(true),
                lv => match (lv, r.eval(twin)) {
                    (_, Val::Bool(true)) => Val::Bool(true),
                    (Val::Bool(false), Val::Bool(false)) => Val::Bool(false),
                    _ => Val::Undefined,
                },
            },
            Code::Binary(op, l, r) if op.is_comparison() => {
                compare(*op, l.eval(twin), r.eval(twin))
            }
            Code::Binary(op, l, r) => arithmetic(*op, l.eval(twin), r.eval(twin)),
            Code::In {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(twin);
                // IN is an OR of equalities: true on any match, false only if every
                // comparison was false, undefined otherwise. NIN is its negation.
                let mut result = Val::Bool(false);
                for c in list.iter() {
                    match compare(BinaryOp::Eq, v, Val::from_const(c)) {
                        Val::Bool(true) => {
                            result = Val::Bool(true);
                            break;
                        }
                        Val::Bool(false) => {}
                        _ => result = Val::Undefined,
                    }
                }
                match (result, negated) {
                    (Val::Bool(b), true) => Val::Bool(!b),
                    (r, _) => r,
                }
            }
        }
    }
}

/// `=`, `!=`, `<`, … between primitives of the same type; anything else is undefined.
pub(crate) fn compare(op: BinaryOp, a: Val<'_>, b: Val<'_>) -> Val<'static> {
    let ord = match (a, b) {
        (Val::Null, Val::Null) => Some(Ordering::Equal),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(&y)),
        (Val::Num(x), Val::Num(y)) => x.cmp(y),
        // Ordinal: byte order of UTF-8 is code point order.
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        _ => None,
    };
    let Some(ord) = ord else {
        return Val::Undefined;
    };
    Val::Bool(match op {
        BinaryOp::Eq => ord == Ordering::Equal,
        BinaryOp::Ne => ord != Ordering::Equal,
        BinaryOp::Lt => ord == Ordering::Less,
        BinaryOp::Gt => ord == Ordering::Greater,
        BinaryOp::Le => ord != Ordering::Greater,
        BinaryOp::Ge => ord != Ordering::Less,
        _ => return Val::Undefined,
    })
}

/// `+ - * / %` on numbers; integers stay exact unless they overflow. Anything that is not
/// two numbers, division by zero, and non-finite results are undefined.
fn arithmetic(op: BinaryOp, a: Val<'_>, b: Val<'_>) -> Val<'static> {
    let (Val::Num(x), Val::Num(y)) = (a, b) else {
        return Val::Undefined;
    };
    if let (Num::Int(i), Num::Int(j)) = (x, y) {
        let exact = match op {
            BinaryOp::Add => i.checked_add(j),
            BinaryOp::Sub => i.checked_sub(j),
            BinaryOp::Mul => i.checked_mul(j),
            BinaryOp::Div if j != 0 && i.checked_rem(j) == Some(0) => i.checked_div(j),
            BinaryOp::Mod => {
                if j == 0 {
                    return Val::Undefined;
                }
                i.checked_rem(j)
            }
            _ => None,
        };
        if let Some(n) = exact {
            return Val::Num(Num::Int(n));
        }
    }
    let (x, y) = (x.as_f64(), y.as_f64());
    match op {
        BinaryOp::Add => Num::finite(x + y),
        BinaryOp::Sub => Num::finite(x - y),
        BinaryOp::Mul => Num::finite(x * y),
        BinaryOp::Div if y != 0.0 => Num::finite(x / y),
        BinaryOp::Mod if y != 0.0 => Num::finite(x % y),
        _ => Val::Undefined,
    }
}

fn call<'a>(func: Function, args: &'a [Code], twin: &'a Value) -> Val<'a> {
    let arg = |i: usize| args.get(i).map_or(Val::Undefined, |a| a.eval(twin));
    let v = arg(0);
    let is = |b: bool| Val::Bool(b);
    match func {
        Function::IsDefined => is(v != Val::Undefined),
        Function::IsNull => is(v == Val::Null),
        Function::IsBool => is(matches!(v, Val::Bool(_))),
        Function::IsNumber => is(matches!(v, Val::Num(_))),
        Function::IsString => is(matches!(v, Val::Str(_))),
        Function::IsObject => is(v == Val::Object),
        Function::IsArray => is(v == Val::Array),
        Function::IsPrimitive => is(matches!(
            v,
            Val::Null | Val::Bool(_) | Val::Num(_) | Val::Str(_)
        )),
        Function::StartsWith | Function::EndsWith => match (v, arg(1)) {
            (Val::Str(s), Val::Str(affix)) => is(if func == Function::StartsWith {
                s.starts_with(affix)
            } else {
                s.ends_with(affix)
            }),
            _ => Val::Undefined,
        },
        // Only a property can hold an array with contents (array constants keep none).
        Function::ArrayContains => match args.first() {
            Some(Code::Path(path)) => match path.resolve(twin) {
                Some(Value::Array(items)) => {
                    let wanted = arg(1);
                    is(items.iter().any(|item| {
                        compare(BinaryOp::Eq, Val::from_json(item), wanted) == Val::Bool(true)
                    }))
                }
                _ => Val::Undefined,
            },
            _ => Val::Undefined,
        },
    }
}
