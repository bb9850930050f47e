//! [`CompiledQuery`]: a query parsed and checked once, then run over any number of twins.

use std::fmt;

use serde_json::{Map, Value};

use crate::aggregate::{self, AggColumn};
use crate::ast::{Collection, Path, Projection, ProjectionItem, Query, SelectList};
use crate::error::{ErrorKind, QueryError};
use crate::filter::Filter;
use crate::parse::parse;
use crate::path::FieldPath;

/// What a result row is, for the `x-ms-item-type` response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemType {
    /// Whole twins (`SELECT *`).
    Twin,
    /// Projections and aggregates.
    Raw,
}

impl ItemType {
    /// The header value, PascalCase as the C# SDK requires: `"Twin"` or `"Raw"`.
    pub fn as_header(self) -> &'static str {
        match self {
            ItemType::Twin => "Twin",
            ItemType::Raw => "Raw",
        }
    }
}

/// One page of a non-aggregate result.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The projected rows.
    pub items: Vec<Value>,
    /// The key of the last row in `items`: the next page starts strictly after it.
    /// `None` for an empty page and for aggregate results.
    pub last_key: Option<String>,
    /// True when no rows remain (end of input, or TOP reached).
    pub done: bool,
}

/// One page of a query's result, rendered as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPage {
    /// The rows as one compact JSON array (`[row,row,…]`).
    pub body: Vec<u8>,
    /// How many rows `body` holds.
    pub rows: usize,
    /// As [`Page::last_key`].
    pub last_key: Option<String>,
    /// As [`Page::done`].
    pub done: bool,
}

/// Appends `value` as compact JSON. Writing a `Value` into a `Vec` cannot fail (its map keys
/// are strings and the writer does not fail).
fn write_json(out: &mut Vec<u8>, value: &Value) {
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A query compiled for repeated evaluation.
///
/// ```
/// use iothub_query::CompiledQuery;
/// use serde_json::json;
///
/// let q = CompiledQuery::compile("SELECT DeviceId FROM devices WHERE tags.location.plant = 'Redmond43'")?;
/// let twin = json!({"deviceId": "d1", "tags": {"location": {"plant": "Redmond43"}}});
/// assert!(q.matches(&twin));
/// assert_eq!(q.project(&twin), json!({"deviceId": "d1"}));
/// assert_eq!(q.result_item_type().as_header(), "Raw");
/// # Ok::<(), iothub_query::QueryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CompiledQuery {
    ast: Query,
    filter: Option<Filter>,
    select: Selection,
    group_by: Option<FieldPath>,
}

#[derive(Debug, Clone)]
enum Selection {
    /// `SELECT *`.
    All,
    /// Plain projections: `(path, alias)`.
    Columns(Vec<(FieldPath, Option<Box<str>>)>),
    /// Aggregates and/or GROUP BY.
    Aggregate(Vec<AggColumn>),
}

impl CompiledQuery {
    /// Parses and checks `text`.
    ///
    /// # Errors
    /// A [`QueryError`] with the line and column of the first problem; its `Display` is
    /// suitable as an HTTP 400 message.
    pub fn compile(text: &str) -> Result<CompiledQuery, QueryError> {
        let ast = parse(text)?;
        let group_by = ast.group_by.as_ref().map(FieldPath::new);
        let select = match &ast.select.list {
            SelectList::All => select_all(text, ast.group_by.as_ref())?,
            SelectList::Items(items) => select_items(text, items, group_by.as_ref())?,
        };
        Ok(CompiledQuery {
            filter: ast.where_clause.as_ref().map(Filter::new),
            select,
            group_by,
            ast,
        })
    }

    /// The collection the query reads.
    pub fn collection(&self) -> Collection {
        self.ast.from.node
    }

    /// What the result rows are: [`ItemType::Twin`] for `SELECT *`, else [`ItemType::Raw`].
    pub fn result_item_type(&self) -> ItemType {
        match self.select {
            Selection::All => ItemType::Twin,
            _ => ItemType::Raw,
        }
    }

    /// True for queries with aggregates or GROUP BY; run those with [`Self::aggregate`].
    pub fn is_aggregate(&self) -> bool {
        matches!(self.select, Selection::Aggregate(_))
    }

    /// The `TOP` limit, if any.
    pub fn top(&self) -> Option<u64> {
        self.ast.select.top.as_ref().map(|t| t.node)
    }

    /// The parsed query.
    pub fn ast(&self) -> &Query {
        &self.ast
    }

    /// True if the twin satisfies the WHERE condition (always true without one). Only a
    /// condition that evaluates to exactly `true` selects the twin.
    #[inline]
    pub fn matches(&self, twin: &Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.selects(twin))
    }

    /// The SELECT list applied to one twin: the whole twin for `SELECT *`, otherwise an
    /// object with one member per projection whose property exists, named by its alias or
    /// by its last path segment as the twin spells it. For aggregate queries this yields
    /// only the GROUP BY property; use [`Self::aggregate`] for their rows.
    pub fn project(&self, twin: &Value) -> Value {
        match &self.select {
            Selection::All => twin.clone(),
            Selection::Columns(cols) => {
                let mut out = Map::new();
                for (path, alias) in cols {
                    if let Some((spelled, v)) = path.resolve_named(twin) {
                        let name = alias.as_deref().unwrap_or(spelled);
                        out.insert(name.to_owned(), v.clone());
                    }
                }
                Value::Object(out)
            }
            Selection::Aggregate(cols) => {
                let mut out = Map::new();
                if let Some(g) = &self.group_by {
                    for col in cols {
                        if let (AggColumn::Key { alias }, Some((spelled, v))) =
                            (col, g.resolve_named(twin))
                        {
                            out.insert(alias.as_deref().unwrap_or(spelled).to_owned(), v.clone());
                        }
                    }
                }
                Value::Object(out)
            }
        }
    }

    /// One page of the result over rows in the caller's stable order.
    ///
    /// Non-aggregate queries: `rows` should start strictly after the previous page's
    /// `last_key` (all rows for the first page); `already_returned` is how many rows earlier
    /// pages returned, so `TOP` holds across pages. The page holds at most `max_items` rows,
    /// and `done` is false only if another matching row exists. Scanning stops at the first
    /// matching row past the page, so a page costs no more than the rows it covers.
    ///
    /// Aggregate queries: pass all rows every time; the page is the window of group rows
    /// starting at `already_returned`, and `last_key` is `None`.
    pub fn page<'a, I>(&self, rows: I, already_returned: u64, max_items: usize) -> Page
    where
        I: Iterator<Item = (&'a str, &'a Value)>,
    {
        if self.is_aggregate() {
            let all = self.aggregate(rows.map(|(_, v)| v));
            let skip = usize::try_from(already_returned).unwrap_or(usize::MAX);
            let items: Vec<Value> = all.iter().skip(skip).take(max_items).cloned().collect();
            let done = skip.saturating_add(items.len()) >= all.len();
            return Page {
                items,
                last_key: None,
                done,
            };
        }
        let mut items = Vec::new();
        let (last_key, done) = self.scan_page(rows, already_returned, max_items, |twin| {
            items.push(self.project(twin))
        });
        Page {
            items,
            last_key,
            done,
        }
    }

    /// As [`CompiledQuery::page`], with the page rendered as the JSON array a response
    /// carries (byte for byte what serializing `Page::items` as an array gives): each row is
    /// written straight into one buffer, with no copy of the row made for it.
    pub fn render_page<'a, I>(
        &self,
        rows: I,
        already_returned: u64,
        max_items: usize,
    ) -> RenderedPage
    where
        I: Iterator<Item = (&'a str, &'a Value)>,
    {
        if self.is_aggregate() {
            let page = self.page(rows, already_returned, max_items);
            let mut body = b"[".to_vec();
            for (i, item) in page.items.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                write_json(&mut body, item);
            }
            body.push(b']');
            return RenderedPage {
                body,
                rows: page.items.len(),
                last_key: None,
                done: page.done,
            };
        }
        let mut body = b"[".to_vec();
        let mut count = 0;
        let (last_key, done) = self.scan_page(rows, already_returned, max_items, |twin| {
            if count > 0 {
                body.push(b',');
            }
            count += 1;
            match self.select {
                Selection::All => write_json(&mut body, twin),
                _ => write_json(&mut body, &self.project(twin)),
            }
        });
        body.push(b']');
        RenderedPage {
            body,
            rows: count,
            last_key,
            done,
        }
    }

    /// The paging walk of a non-aggregate query: calls `emit` for each row of the page, and
    /// returns the page's last key and whether no matching row remains.
    fn scan_page<'a, I, F>(
        &self,
        rows: I,
        already_returned: u64,
        max_items: usize,
        mut emit: F,
    ) -> (Option<String>, bool)
    where
        I: Iterator<Item = (&'a str, &'a Value)>,
        F: FnMut(&'a Value),
    {
        let remaining = self
            .top()
            .map_or(u64::MAX, |t| t.saturating_sub(already_returned));
        let want = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(max_items);
        if remaining == 0 {
            return (None, true);
        }
        let mut emitted = 0usize;
        let mut last_key = None;
        for (key, twin) in rows {
            if !self.matches(twin) {
                continue;
            }
            if emitted == want {
                // Another match exists beyond this page.
                return (last_key, false);
            }
            emit(twin);
            emitted += 1;
            last_key = Some(key.to_owned());
            if emitted as u64 == remaining {
                break;
            }
        }
        (last_key, true)
    }

    /// Runs the whole query over `rows`: for aggregate queries one row per group (one row
    /// in total without GROUP BY, even over no rows); for other queries every matching
    /// row, projected. `TOP` limits the rows returned.
    pub fn aggregate<'a, I>(&self, rows: I) -> Vec<Value>
    where
        I: Iterator<Item = &'a Value>,
    {
        let limit = self
            .top()
            .map_or(usize::MAX, |t| usize::try_from(t).unwrap_or(usize::MAX));
        let matching = rows.filter(|twin| self.matches(twin));
        let mut out = match &self.select {
            Selection::Aggregate(cols) => aggregate::run(cols, self.group_by.as_ref(), matching),
            _ => matching
                .take(limit)
                .map(|twin| self.project(twin))
                .collect(),
        };
        out.truncate(limit);
        out
    }
}

/// `SELECT *`: whole twins, which cannot be grouped.
fn select_all(text: &str, group_by: Option<&Path>) -> Result<Selection, QueryError> {
    match group_by {
        Some(g) => Err(QueryError::at(
            text,
            g.span,
            ErrorKind::Unsupported("GROUP BY with SELECT *"),
        )),
        None => Ok(Selection::All),
    }
}

/// A list of projections and aggregates. With GROUP BY or any aggregate it is an aggregate
/// query, in which a plain path may only be the GROUP BY property itself.
fn select_items(
    text: &str,
    items: &[Projection],
    group_by: Option<&FieldPath>,
) -> Result<Selection, QueryError> {
    let aggregate_query = group_by.is_some()
        || items
            .iter()
            .any(|p| matches!(p.item, ProjectionItem::Aggregate(_)));
    let mut names = OutputNames::default();
    let mut plain = Vec::new();
    let mut agg = Vec::new();
    for p in items {
        let name = names.claim(text, p)?;
        let alias: Option<Box<str>> = p.alias.as_ref().map(|a| a.node.as_str().into());
        match &p.item {
            ProjectionItem::Path(path) if aggregate_query => {
                agg.push(group_key_column(text, path, alias, group_by)?);
            }
            ProjectionItem::Path(path) => plain.push((FieldPath::new(path), alias)),
            ProjectionItem::Aggregate(a) => agg.push(AggColumn::Agg {
                func: a.func,
                arg: a.arg.as_ref().map(FieldPath::new),
                name: name.as_str().into(),
            }),
        }
    }
    Ok(if aggregate_query {
        Selection::Aggregate(agg)
    } else {
        Selection::Columns(plain)
    })
}

/// A plain path in an aggregate query: allowed only as the GROUP BY property.
fn group_key_column(
    text: &str,
    path: &Path,
    alias: Option<Box<str>>,
    group_by: Option<&FieldPath>,
) -> Result<AggColumn, QueryError> {
    if group_by.is_some_and(|g| g.same_as(&FieldPath::new(path))) {
        Ok(AggColumn::Key { alias })
    } else {
        Err(QueryError::at(
            text,
            path.span,
            ErrorKind::NotGrouped(path.to_string()),
        ))
    }
}

/// The member names a SELECT list writes, as the query predicts them, so that no two items
/// write the same member.
#[derive(Default)]
struct OutputNames {
    taken: Vec<String>,
    /// Unnamed aggregates so far; they are called `$1`, `$2`, ….
    positional: usize,
}

impl OutputNames {
    /// Records and returns the name `p` writes: its alias; a one-segment path in lower case
    /// (top-level names compare case-insensitively because the twin decides their spelling);
    /// a longer path's last segment; `$n` for an unnamed aggregate.
    fn claim(&mut self, text: &str, p: &Projection) -> Result<String, QueryError> {
        let name = match (&p.alias, &p.item) {
            (Some(a), _) => a.node.clone(),
            (None, ProjectionItem::Path(path)) if path.segments.len() == 1 => {
                path.segments[0].node.to_ascii_lowercase()
            }
            (None, ProjectionItem::Path(path)) => {
                path.names().last().unwrap_or_default().to_owned()
            }
            (None, ProjectionItem::Aggregate(_)) => {
                self.positional += 1;
                format!("${}", self.positional)
            }
        };
        if self.taken.contains(&name) {
            return Err(QueryError::at(text, p.span, ErrorKind::DuplicateName(name)));
        }
        self.taken.push(name.clone());
        Ok(name)
    }
}

impl fmt::Display for CompiledQuery {
    /// The query in canonical form (keywords upper-case, minimal parentheses).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ast.fmt(f)
    }
}
