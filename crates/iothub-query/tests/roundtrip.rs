use iothub_query::ast::{
    Aggregate, AggregateFunc, BinaryOp, Collection, Expr, ExprKind, Literal, Number, Path,
    Projection, ProjectionItem, Query, Select, SelectList, UnaryOp,
};
use iothub_query::{parse, Span, Spanned};
use proptest::prelude::*;

use crate::expr_strategy::{binary_of, call_of, expr, in_of, not_of};

fn sp<T>(node: T) -> Spanned<T> {
    Spanned::new(node, Span::default())
}

/// Property names: plain identifiers, keywords (printed escaped), and names that need the
/// `[[…]]` escape. Names containing `]]` or ending in `]` cannot be written at all.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_$][a-zA-Z0-9_$]{0,8}",
        Just("group".to_owned()),
        Just("Select".to_owned()),
        Just("null".to_owned()),
        Just("é$ü".to_owned()),
        "[a-z0-9 .\\-'\"]{1,6}"
            .prop_filter("escapable", |s| !s.contains("]]") && !s.ends_with(']')),
    ]
}

fn path() -> impl Strategy<Value = Path> {
    prop::collection::vec(name(), 1..4).prop_map(|names| Path {
        segments: names.into_iter().map(sp).collect(),
        span: Span::default(),
    })
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::Int),
        (-1e15f64..1e15).prop_map(Number::Float),
        (-1e-3f64..1e-3).prop_map(Number::Float),
        Just(Number::Float(5.0)),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Undefined),
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        number().prop_map(Literal::Number),
        any::<String>().prop_map(Literal::String),
    ]
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(vec![
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Gt,
        BinaryOp::Le,
        BinaryOp::Ge,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Mod,
    ])
}

/// Expressions the parser can produce: everything except negation applied directly to a
/// number constant (the parser reads `-5` as the constant -5).
fn expression() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        literal().prop_map(|l| expr(ExprKind::Literal(l))),
        path().prop_map(|p| expr(ExprKind::Path(p))),
        prop::collection::vec(literal(), 0..4).prop_map(|l| expr(ExprKind::Array(l))),
    ];
    leaf.prop_recursive(5, 48, 3, |inner| {
        prop_oneof![
            binary_of(binary_op(), inner.clone()),
            not_of(inner.clone()),
            inner
                .clone()
                .prop_filter("-<number> is a constant", |e| {
                    !matches!(e.kind, ExprKind::Literal(Literal::Number(_)))
                })
                .prop_map(|e| expr(ExprKind::Unary {
                    op: UnaryOp::Neg,
                    expr: Box::new(e)
                })),
            in_of(inner.clone(), literal(), 0..4),
            call_of(inner),
        ]
    })
}

fn projection() -> impl Strategy<Value = Projection> {
    let item = prop_oneof![
        path().prop_map(ProjectionItem::Path),
        Just(ProjectionItem::Aggregate(Aggregate {
            func: AggregateFunc::Count,
            arg: None
        })),
        (
            prop::sample::select(AggregateFunc::ALL[1..].to_vec()),
            path()
        )
            .prop_map(|(func, p)| ProjectionItem::Aggregate(Aggregate { func, arg: Some(p) })),
    ];
    (item, prop::option::of(name())).prop_map(|(item, alias)| Projection {
        item,
        alias: alias.map(sp),
        span: Span::default(),
    })
}

fn query() -> impl Strategy<Value = Query> {
    let list = prop_oneof![
        Just(SelectList::All),
        prop::collection::vec(projection(), 1..4).prop_map(SelectList::Items),
    ];
    (
        prop::option::of(0..=i64::MAX as u64),
        list,
        prop::sample::select(vec![Collection::Devices, Collection::DevicesModules]),
        prop::option::of(expression()),
        prop::option::of(path()),
    )
        .prop_map(|(top, list, from, where_clause, group_by)| Query {
            select: Select {
                top: top.map(sp),
                list,
            },
            from: sp(from),
            where_clause,
            group_by,
            span: Span::default(),
        })
}

/// Text made of query-ish fragments, to reach deep parser states more often than
/// arbitrary strings do.
fn query_like_text() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "SELECT ",
        "TOP ",
        "* ",
        "FROM ",
        "devices",
        ".modules",
        ".jobs",
        " WHERE ",
        " GROUP BY ",
        "AS ",
        "tags",
        ".",
        "[[group]]",
        "[[",
        "]]",
        "(",
        ")",
        "[",
        "]",
        ",",
        " = ",
        " != ",
        " <> ",
        "<",
        ">=",
        " AND ",
        " OR ",
        "NOT ",
        " IN ",
        " NIN ",
        "+",
        "-",
        "*",
        "/",
        "%",
        "'a'",
        "\"b\\u00e9\"",
        "'\\",
        "0x1F",
        "1.5e3",
        "12",
        "-",
        "true",
        "null",
        "undefined",
        "IS_DEFINED(",
        "STARTSWITH(",
        "COUNT()",
        "SUM(",
        "x",
        "é",
        "\n",
    ]);
    prop::collection::vec(fragment, 0..40).prop_map(|f| f.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn parsing_query_like_text_never_panics(text in query_like_text()) {
        if let Ok(q) = parse(&text) {
            // Whatever parses, prints to text that parses to the same tree.
            let printed = q.to_string();
            let reparsed = parse(&printed);
            prop_assert!(reparsed.is_ok(), "{printed:?}: {reparsed:?}");
            prop_assert_eq!(reparsed.ok(), Some(q));
        }
    }

    #[test]
    fn printing_then_parsing_round_trips(q in query()) {
        let printed = q.to_string();
        match parse(&printed) {
            Ok(back) => prop_assert_eq!(back, q, "printed as {}", printed),
            Err(e) => prop_assert!(false, "{printed:?} did not parse: {e}"),
        }
    }
}
