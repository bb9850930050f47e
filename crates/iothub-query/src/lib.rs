//! The Azure IoT Hub query language: parsed once, evaluated over JSON twins.
//!
//! ```text
//! SELECT [TOP n] * | <path [AS alias] | aggregate [AS alias]>, …
//!   FROM devices | devices.modules
//!   [WHERE <condition>]
//!   [GROUP BY <path>]
//! ```
//!
//! Pipeline (one job per module):
//! - `lex`: text → tokens with spans (strings, numbers, `[[escaped]]` names, operators);
//! - `parse`: tokens → [`ast::Query`] with a [`Span`] on every node, errors as data
//!   ([`QueryError`]: line, column, what was expected, what was found);
//! - `print`: `Display` for the AST, which parses back to an equal tree;
//! - `path`, `eval`: compiled paths and expressions evaluated with IoT Hub's three-valued
//!   semantics (missing → `undefined`, mixed-type comparisons → `undefined`, only `true`
//!   selects);
//! - `filter`: the WHERE clause as a flat conjunction with `path = constant` fast paths;
//! - `aggregate`: GROUP BY and COUNT/SUM/AVG/MIN/MAX;
//! - `compiled`: [`CompiledQuery`], the entry point, with paging for the query endpoint.
//!
//! ```
//! use iothub_query::{Collection, CompiledQuery};
//! use serde_json::json;
//!
//! let q = CompiledQuery::compile(
//!     "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43' \
//!      AND properties.reported.connectivity.type = 'cellular'",
//! )?;
//! assert_eq!(q.collection(), Collection::Devices);
//! let twin = json!({"deviceId": "d1", "tags": {"location": {"plant": "Redmond43"}},
//!                   "properties": {"reported": {"connectivity": {"type": "cellular"}}}});
//! assert!(q.matches(&twin));
//!
//! let err = CompiledQuery::compile("SELECT * FROM devices WHERE tags.plant 'Redmond43'").unwrap_err();
//! assert_eq!(err.to_string(), "line 1, column 40: expected a comparison operator, found 'Redmond43'");
//! # Ok::<(), iothub_query::QueryError>(())
//! ```
#![deny(missing_docs)]

mod aggregate;
pub mod ast;
mod compiled;
mod error;
mod eval;
mod filter;
mod lex;
mod parse;
mod path;
mod print;
mod span;

pub use ast::{Collection, Query};
pub use compiled::{CompiledQuery, ItemType, Page, RenderedPage};
pub use error::{ErrorKind, Expected, Found, QueryError, MAX_QUERY_CHARS};
pub use parse::{parse, MAX_EXPR_HEIGHT, MAX_NESTING};
pub use span::{Span, Spanned};
