//! `query`: the IoT Hub query language, from arbitrary text to result pages.
//!
//! Invariants: nothing panics; a parsed query prints to text that parses back to the same
//! tree and compiles to a query with the same results; paging through the fixture fleet
//! with any page size yields exactly the whole result; evaluation is deterministic.

use iothub_query::{parse, CompiledQuery};
use serde_json::Value;

use crate::fleet;

/// Page sizes the result is re-read with; 1 and 2 make every row boundary a page boundary.
const PAGE_SIZES: [usize; 3] = [1, 2, 1000];

/// The `query` target.
pub fn query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let parsed = parse(text);
    let compiled = CompiledQuery::compile(text);
    match (&parsed, &compiled) {
        (Err(e), Ok(_)) => panic!("{text:?}: compiles but does not parse: {e}"),
        (Err(e), Err(c)) => {
            assert_eq!(e, c, "{text:?}: parse and compile report different errors");
            // The message must render (it slices the text at the error's span).
            let _ = e.to_string();
            return;
        }
        (Ok(_), Err(e)) => {
            let _ = e.to_string();
        }
        (Ok(_), Ok(_)) => {}
    }
    let Ok(ast) = parsed else { return };

    let printed = ast.to_string();
    match parse(&printed) {
        Ok(back) => assert_eq!(
            back, ast,
            "{text:?} printed as {printed:?} parses differently"
        ),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
    let recompiled = CompiledQuery::compile(&printed);
    let (query, requery) = match (compiled, recompiled) {
        (Ok(q), Ok(r)) => (q, r),
        (Err(_), Err(_)) => return,
        (q, r) => panic!(
            "{text:?} and its printed form {printed:?} disagree on compiling: {:?} vs {:?}",
            q.err(),
            r.err()
        ),
    };
    assert_eq!(query.to_string(), printed);

    let result = evaluate(&query);
    assert_eq!(
        result,
        evaluate(&query),
        "{text:?}: evaluation is not deterministic"
    );
    assert_eq!(
        result,
        evaluate(&requery),
        "{text:?} and its printed form {printed:?} select different rows"
    );
}

/// The whole result over the fixture fleet, checked against every way of paging it.
fn evaluate(query: &CompiledQuery) -> Vec<Value> {
    let rows = fleet::rows(query.collection());
    let whole = query.aggregate(rows.iter().map(|(_, twin)| twin));
    if let Some(top) = query.top() {
        assert!(whole.len() as u64 <= top, "{query}: more rows than TOP");
    }
    if !query.is_aggregate() {
        let selected = rows.iter().filter(|(_, twin)| query.matches(twin)).count();
        let limit = query
            .top()
            .map_or(usize::MAX, |t| usize::try_from(t).unwrap_or(usize::MAX));
        assert_eq!(whole.len(), selected.min(limit), "{query}: row count");
    }
    for size in PAGE_SIZES {
        assert_eq!(paged(query, rows, size), whole, "{query}: pages of {size}");
    }
    whole
}

/// Reads the result page by page, as the query endpoint does with continuation tokens.
fn paged(query: &CompiledQuery, rows: &[(String, Value)], size: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    // Every page but the last holds at least one row, so this bounds the loop.
    for _ in 0..=rows.len() + 1 {
        let page = if query.is_aggregate() {
            query.page(
                rows.iter().map(|(k, v)| (k.as_str(), v)),
                out.len() as u64,
                size,
            )
        } else {
            let rest = rows
                .iter()
                .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
                .map(|(k, v)| (k.as_str(), v));
            query.page(rest, out.len() as u64, size)
        };
        assert!(page.items.len() <= size, "{query}: page over {size} items");
        if query.is_aggregate() {
            assert_eq!(page.last_key, None, "{query}: aggregate page with a key");
        } else if !page.items.is_empty() {
            assert!(page.last_key.is_some(), "{query}: page without a last key");
        }
        if !page.done {
            assert!(
                !page.items.is_empty(),
                "{query}: empty page that is not the last"
            );
        }
        out.extend(page.items);
        if page.done {
            return out;
        }
        after = page.last_key;
    }
    panic!("{query}: paging with pages of {size} did not finish");
}
