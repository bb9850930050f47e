use iothub_query::{CompiledQuery, ErrorKind, Expected, Found, QueryError, MAX_QUERY_CHARS};

fn error(query: &str) -> QueryError {
    match CompiledQuery::compile(query) {
        Ok(q) => panic!("{query:?} should be rejected, compiled to {q}"),
        Err(e) => e,
    }
}

/// Each malformed query with the line, column and message it must produce.
#[test]
fn malformed_queries_have_positioned_errors() {
    let long = format!(
        "SELECT * FROM devices WHERE tags.a = '{}'",
        "x".repeat(MAX_QUERY_CHARS)
    );
    let deep = format!(
        "SELECT * FROM devices WHERE {}1 = 1{}",
        "(".repeat(100),
        ")".repeat(100)
    );
    let cases: Vec<(&str, usize, usize, &str)> = vec![
        ("", 1, 1, "expected SELECT, found end of query"),
        ("SELEC * FROM devices", 1, 1, "expected SELECT, found 'SELEC'"),
        ("SELECT * FORM devices", 1, 10, "expected FROM, found 'FORM'"),
        ("SELECT * FROM device", 1, 15, "expected devices or devices.modules, found 'device'"),
        ("SELECT * FROM devices.twins", 1, 23, "expected devices or devices.modules, found 'twins'"),
        (
            "SELECT * FROM devices.jobs",
            1,
            15,
            "FROM devices.jobs is not supported; use devices or devices.modules",
        ),
        (
            "SELECT * FROM devices WHERE tags.location.plant 'Redmond43'",
            1,
            49,
            "expected a comparison operator, found 'Redmond43'",
        ),
        (
            "SELECT *\nFROM devices\nWHERE tags.a = 1 tags.b = 2",
            3,
            18,
            "expected AND, OR, GROUP BY or end of query, found 'tags'",
        ),
        ("SELECT * FROM devices WHERE tags.x = 'abc", 1, 38, "string literal is not terminated"),
        (
            "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'x')",
            1,
            29,
            "unknown function 'STARTS_WITH' (did you mean STARTSWITH?)",
        ),
        ("SELECT * FROM devices WHERE CONTAINS(deviceId, 'x')", 1, 29, "unknown function 'CONTAINS'"),
        (
            "SELECT * FROM devices WHERE tags.group.name = 'x'",
            1,
            34,
            "'group' is a reserved word; write [[group]] to use it as a property name",
        ),
        ("SELECT * FROM devices WHERE (tags.a = 1", 1, 40, "expected ')', found end of query"),
        (
            "SELECT * FROM devices WHERE tags.a IN ('a', 'b')",
            1,
            39,
            "expected an array constant such as ['a', 'b'], found '('",
        ),
        ("SELECT * FROM devices WHERE tags.a IN ['a' 'b']", 1, 44, "expected ',' or ']', found 'b'"),
        ("SELECT * FROM devices WHERE tags.a IN [tags.b]", 1, 40, "expected a constant, found 'tags'"),
        ("SELECT TOP -1 * FROM devices", 1, 12, "expected a non-negative integer, found '-'"),
        ("SELECT TOP 1.5 * FROM devices", 1, 12, "expected a non-negative integer, found '1.5'"),
        (
            "SELECT * FROM devices WHERE tags.a = 'x\\q'",
            1,
            40,
            "invalid escape sequence '\\q' (supported: \\' \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
        ),
        ("SELECT * FROM devices WHERE tags.a = 12abc", 1, 38, "invalid number '12abc'"),
        (
            "SELECT * FROM devices WHERE IS_DEFINED(tags.a, tags.b)",
            1,
            29,
            "IS_DEFINED takes 1 argument, found 2",
        ),
        ("SELECT * FROM devices WHERE STARTSWITH(deviceId)", 1, 29, "STARTSWITH takes 2 arguments, found 1"),
        (
            "SELECT * FROM devices WHERE COUNT() > 1",
            1,
            29,
            "aggregate COUNT is only allowed in the SELECT list",
        ),
        (
            "SELECT deviceId, COUNT() FROM devices",
            1,
            8,
            "'deviceId' must be an aggregate or the GROUP BY property in an aggregate query",
        ),
        (
            "SELECT tags.a AS a, COUNT() AS n FROM devices GROUP BY tags.b",
            1,
            8,
            "'tags.a' must be an aggregate or the GROUP BY property in an aggregate query",
        ),
        ("SELECT * FROM devices GROUP BY tags.x", 1, 32, "GROUP BY with SELECT * is not supported"),
        ("SELECT SUM() FROM devices", 1, 8, "SUM takes 1 argument, found 0"),
        ("SELECT COUNT(deviceId) FROM devices", 1, 8, "COUNT takes 0 arguments, found 1"),
        (
            "SELECT tags.a.x, tags.b.x FROM devices",
            1,
            18,
            "two projections are named 'x'; give one an AS alias",
        ),
        (
            "SELECT IS_DEFINED(deviceId) FROM devices",
            1,
            8,
            "a scalar function in the SELECT list is not supported",
        ),
        ("SELECT deviceId x FROM devices", 1, 17, "expected AS, ',' or FROM, found 'x'"),
        ("SELECT deviceId AS FROM devices", 1, 20, "'FROM' is a reserved word; write [[FROM]] to use it as a property name"),
        ("SELECT deviceId AS 5 FROM devices", 1, 20, "expected an alias name, found '5'"),
        ("SELECT FROM devices", 1, 8, "expected '*', a property path or an aggregate, found 'FROM'"),
        ("SELECT * FROM devices WHERE", 1, 28, "expected an expression, found end of query"),
        ("SELECT * FROM devices WHERE tags.a = 1 GROUP tags.a", 1, 46, "expected BY, found 'tags'"),
        ("SELECT * FROM devices WHERE tags.a = 1 ORDER BY tags.a", 1, 40, "expected AND, OR, GROUP BY or end of query, found 'ORDER'"),
        ("SELECT * FROM devices WHERE tags.a = 1 #", 1, 40, "unexpected character '#'"),
        ("SELECT * FROM devices WHERE tags.[[a = 1", 1, 34, "'[[' escape is not closed with ']]'"),
        ("SELECT * FROM devices WHERE tags. = 1", 1, 35, "expected a property name, found '='"),
        ("SELECT * FROM devices WHERE tags.a = = 1", 1, 38, "expected an expression, found '='"),
        ("SELECT * FROM devices WHERE tags.a = 1e999", 1, 38, "invalid number '1e999'"),
        ("SELECT * FROM devices WHERE tags.a = '\\uZZZZ'", 1, 39, "invalid escape sequence '\\u' (supported: \\' \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"),
        ("SELECT * FROM devices d", 1, 23, "expected WHERE, GROUP BY or end of query, found 'd'"),
        ("SELECT * FROM devices GROUP BY tags.a tags.b", 1, 39, "expected end of query, found 'tags'"),
        (&long, 1, MAX_QUERY_CHARS + 1, "query text is 8231 characters long; the maximum is 8192"),
        (&deep, 1, 93, "expression nested deeper than 64 levels"),
        ("SELECT *\r\nFROM devices\r\n  WHERE é 'x'", 3, 11, "expected a comparison operator, found 'x'"),
    ];
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (query, line, column, message) in &cases {
        let e = error(query);
        let want = format!("line {line}, column {column}: {message}");
        if e.to_string() != want || (e.line, e.column) != (*line, *column) {
            failures.push(format!("{query:?}\n   want: {want}\n    got: {e}"));
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
fn errors_are_data() {
    let text = "SELECT * FROM devices WHERE tags.location.plant 'Redmond43'";
    let e = error(text);
    assert_eq!(
        e.kind,
        ErrorKind::Expected {
            expected: Expected::ComparisonOperator,
            found: Found::Token("'Redmond43'".into()),
        }
    );
    // The span covers the offending token.
    assert_eq!(&text[e.span.start..e.span.end], "'Redmond43'");
}

#[test]
fn long_tokens_are_shortened_in_messages() {
    let name = "x".repeat(500);
    let e = error(&format!("SELECT * FROM devices WHERE tags.a {name}"));
    assert!(e.to_string().len() < 120, "{e}");
    assert!(e.to_string().ends_with("…'"), "{e}");
}

#[test]
fn exactly_the_limit_is_accepted() {
    let prefix = "SELECT * FROM devices WHERE tags.a = '";
    let filler = "x".repeat(MAX_QUERY_CHARS - prefix.len() - 1);
    let query = format!("{prefix}{filler}'");
    assert_eq!(query.chars().count(), MAX_QUERY_CHARS);
    assert!(CompiledQuery::compile(&query).is_ok());
}

#[test]
fn long_operator_chains_are_bounded_not_overflowing() {
    // 1 + 1 + … far beyond the height limit: an error, not a stack overflow.
    let chain = vec!["1"; 2000].join("+");
    let e = error(&format!("SELECT * FROM devices WHERE {chain} = 1"));
    assert!(matches!(e.kind, ErrorKind::TooDeep { .. }), "{e}");
    // A long but reasonable OR chain is fine.
    let ors: Vec<String> = (0..200).map(|i| format!("deviceId = 'd{i}'")).collect();
    let q = CompiledQuery::compile(&format!("SELECT * FROM devices WHERE {}", ors.join(" OR ")));
    assert!(q.is_ok());
}
