//! Aggregate queries: rows grouped by the GROUP BY property (or one group for the whole
//! result), each group reduced by COUNT/SUM/AVG/MIN/MAX.
//!
//! Groups come out in the order their first row was seen, so a caller with a stable row
//! order gets a stable result. Values that make an aggregate meaningless (a string in a
//! SUM, an object in a MIN) make it `undefined`, and an undefined column is left out of
//! the row, as Cosmos DB does.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use crate::ast::AggregateFunc;
use crate::eval::{Num, Val};
use crate::path::FieldPath;

/// One SELECT item of an aggregate query.
#[derive(Debug, Clone)]
pub(crate) enum AggColumn {
    /// The GROUP BY property itself, under `alias` or the property's own name.
    Key { alias: Option<Box<str>> },
    /// An aggregate, under `name` (its alias or `$1`, `$2`, …).
    Agg {
        func: AggregateFunc,
        arg: Option<FieldPath>,
        name: Box<str>,
    },
}

/// Groups `rows` (already filtered) and returns one output row per group.
pub(crate) fn run<'a>(
    columns: &[AggColumn],
    group_by: Option<&FieldPath>,
    rows: impl Iterator<Item = &'a Value>,
) -> Vec<Value> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut index: HashMap<GroupKey<'a>, usize> = HashMap::new();
    if group_by.is_none() {
        // Without GROUP BY there is exactly one group, even over zero rows
        // (`SELECT COUNT() FROM devices` on an empty hub is `[{"$1": 0}]`).
        groups.push(Group::new(None, columns));
    }
    for row in rows {
        let group = match group_by {
            None => &mut groups[0],
            Some(path) => {
                let found = path.resolve_named(row);
                let key = GroupKey::new(found.map(|(_, v)| v));
                let next = groups.len();
                let at = *index.entry(key).or_insert(next);
                if at == next {
                    groups.push(Group::new(found, columns));
                }
                &mut groups[at]
            }
        };
        group.add(row, columns);
    }
    groups.into_iter().map(|g| g.finish(columns)).collect()
}

struct Group<'a> {
    /// The group's key value and the key it was found under (for the output name).
    key: Option<(&'a str, &'a Value)>,
    accs: Vec<Acc<'a>>,
}

impl<'a> Group<'a> {
    fn new(key: Option<(&'a str, &'a Value)>, columns: &[AggColumn]) -> Self {
        let accs = columns
            .iter()
            .map(|c| match c {
                AggColumn::Key { .. } => Acc::Key,
                AggColumn::Agg { func, .. } => Acc::new(*func),
            })
            .collect();
        Group { key, accs }
    }

    fn add(&mut self, row: &'a Value, columns: &[AggColumn]) {
        for (acc, col) in self.accs.iter_mut().zip(columns) {
            let value = match col {
                AggColumn::Agg { arg: Some(p), .. } => p.resolve(row),
                _ => None,
            };
            acc.add(value);
        }
    }

    fn finish(self, columns: &[AggColumn]) -> Value {
        let mut out = Map::new();
        for (acc, col) in self.accs.into_iter().zip(columns) {
            match col {
                AggColumn::Key { alias } => {
                    if let Some((spelled, v)) = self.key {
                        let name = alias.as_deref().unwrap_or(spelled);
                        out.insert(name.to_owned(), v.clone());
                    }
                }
                AggColumn::Agg { name, .. } => {
                    if let Some(v) = acc.finish() {
                        out.insert(name.to_string(), v);
                    }
                }
            }
        }
        Value::Object(out)
    }
}

/// A running aggregate.
enum Acc<'a> {
    Key,
    Count(u64),
    Sum {
        int: i64,
        float: f64,
        has_float: bool,
        invalid: bool,
    },
    Avg {
        sum: f64,
        n: u64,
        invalid: bool,
    },
    Extreme {
        max: bool,
        best: Option<&'a Value>,
        invalid: bool,
    },
}

impl<'a> Acc<'a> {
    fn new(func: AggregateFunc) -> Self {
        match func {
            AggregateFunc::Count => Acc::Count(0),
            AggregateFunc::Sum => Acc::Sum {
                int: 0,
                float: 0.0,
                has_float: false,
                invalid: false,
            },
            AggregateFunc::Avg => Acc::Avg {
                sum: 0.0,
                n: 0,
                invalid: false,
            },
            AggregateFunc::Min | AggregateFunc::Max => Acc::Extreme {
                max: func == AggregateFunc::Max,
                best: None,
                invalid: false,
            },
        }
    }

    /// Adds one row's value (`None`: the property is missing, which aggregates skip).
    fn add(&mut self, value: Option<&'a Value>) {
        match self {
            Acc::Key => {}
            Acc::Count(n) => *n += 1,
            Acc::Sum {
                int,
                float,
                has_float,
                invalid,
            } => match value.map(Val::from_json) {
                None => {}
                Some(Val::Num(Num::Int(i))) => match int.checked_add(i) {
                    Some(s) => *int = s,
                    None => {
                        *float += i as f64;
                        *has_float = true;
                    }
                },
                Some(Val::Num(Num::Float(f))) => {
                    *float += f;
                    *has_float = true;
                }
                Some(_) => *invalid = true,
            },
            Acc::Avg { sum, n, invalid } => match value.map(Val::from_json) {
                None => {}
                Some(Val::Num(x)) => {
                    *sum += x.as_f64();
                    *n += 1;
                }
                Some(_) => *invalid = true,
            },
            Acc::Extreme { max, best, invalid } => {
                let Some(v) = value else { return };
                if matches!(v, Value::Array(_) | Value::Object(_)) {
                    *invalid = true;
                    return;
                }
                let replace = match best {
                    None => true,
                    Some(b) => {
                        let ord = order(v, b);
                        if *max {
                            ord.is_gt()
                        } else {
                            ord.is_lt()
                        }
                    }
                };
                if replace {
                    *best = Some(v);
                }
            }
        }
    }

    fn finish(self) -> Option<Value> {
        match self {
            Acc::Key => None,
            Acc::Count(n) => Some(Value::from(n)),
            Acc::Sum { invalid: true, .. } | Acc::Avg { invalid: true, .. } => None,
            Acc::Sum {
                int,
                has_float: false,
                ..
            } => Some(Value::from(int)),
            Acc::Sum { int, float, .. } => Number::from_f64(int as f64 + float).map(Value::Number),
            Acc::Avg { n: 0, .. } => None,
            Acc::Avg { sum, n, .. } => Number::from_f64(sum / n as f64).map(Value::Number),
            Acc::Extreme { invalid: true, .. } => None,
            Acc::Extreme { best, .. } => best.cloned(),
        }
    }
}

/// MIN/MAX order across primitive types: null < booleans < numbers < strings.
fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        _ => 3,
    };
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A hashable identity for GROUP BY values: numbers group by value (1 and 1.0 together),
/// strings borrow from the twin, objects and arrays group by their JSON text.
#[derive(Debug, PartialEq, Eq, Hash)]
enum GroupKey<'a> {
    Undefined,
    Null,
    Bool(bool),
    Num(u64),
    Str(&'a str),
    Other(String),
}

impl<'a> GroupKey<'a> {
    fn new(v: Option<&'a Value>) -> Self {
        match v {
            None => GroupKey::Undefined,
            Some(Value::Null) => GroupKey::Null,
            Some(Value::Bool(b)) => GroupKey::Bool(*b),
            Some(Value::Number(n)) => {
                let f = n.as_f64().unwrap_or(0.0);
                // +0.0 and -0.0 are one group.
                GroupKey::Num(if f == 0.0 { 0 } else { f.to_bits() })
            }
            Some(Value::String(s)) => GroupKey::Str(s),
            Some(other) => GroupKey::Other(other.to_string()),
        }
    }
}
