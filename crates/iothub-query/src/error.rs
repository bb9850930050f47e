//! The one error type of this crate: what went wrong, and where, as data.
//!
//! Positions and kinds are fields (not text baked into a string) so a caller can underline
//! the offending token or map kinds to its own codes; `Display` renders the one-line form
//! the emulator sends as its HTTP 400 message.

use std::fmt;

use crate::span::Span;

/// The longest query text accepted, in characters (IoT Hub's documented limit,
/// ARCHITECTURE.md#limits).
pub const MAX_QUERY_CHARS: usize = 8192;

/// A query that could not be compiled.
///
/// `Display` gives `line L, column C: <what>`, e.g.
/// `line 1, column 49: expected a comparison operator, found 'Redmond43'`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct QueryError {
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    /// Byte span of the offending text.
    pub span: Span,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl QueryError {
    /// Builds an error located at `span` within `text`.
    pub(crate) fn at(text: &str, span: Span, kind: ErrorKind) -> Self {
        let (line, column) = span.line_column(text);
        QueryError {
            line,
            column,
            span,
            kind,
        }
    }
}

/// The kinds of compile error.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The parser needed one thing and found another.
    Expected {
        /// What would have been accepted here.
        expected: Expected,
        /// What was there instead.
        found: Found,
    },
    /// A character that starts no token.
    UnexpectedCharacter(char),
    /// A string literal without its closing quote.
    UnterminatedString,
    /// A `[[name]]` escape without its closing `]]`.
    UnterminatedEscape,
    /// A backslash escape that the language does not define (the text after `\`).
    InvalidEscape(String),
    /// A number literal that is malformed or out of range (its text).
    InvalidNumber(String),
    /// A reserved word used where a property name was expected.
    ReservedWord(String),
    /// A function name that the query language does not define.
    UnknownFunction {
        /// The name as written.
        name: String,
        /// The supported function with a similar name, if any.
        suggestion: Option<&'static str>,
    },
    /// A function called with the wrong number of arguments.
    WrongArgumentCount {
        /// The function's canonical name.
        function: &'static str,
        /// How many arguments it takes.
        expected: usize,
        /// How many were given.
        found: usize,
    },
    /// An aggregate (`COUNT`, `SUM`, …) outside the SELECT list.
    AggregateNotAllowed(&'static str),
    /// A plain property in the SELECT list of an aggregate query that is not the GROUP BY
    /// property (its path as written).
    NotGrouped(String),
    /// Two projections produce the same output name.
    DuplicateName(String),
    /// A FROM collection that exists in IoT Hub but that this implementation does not serve.
    UnsupportedCollection(String),
    /// A construct this implementation does not support (what it is).
    Unsupported(&'static str),
    /// Parentheses or operators nested deeper than the parser allows.
    TooDeep {
        /// The nesting limit.
        max: usize,
    },
    /// The query text is longer than [`MAX_QUERY_CHARS`].
    TooLong {
        /// The text's length in characters.
        length: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Expected { expected, found } => write!(f, "expected {expected}, found {found}"),
            ErrorKind::UnexpectedCharacter(c) => write!(f, "unexpected character '{}'", c.escape_debug()),
            ErrorKind::UnterminatedString => f.write_str("string literal is not terminated"),
            ErrorKind::UnterminatedEscape => f.write_str("'[[' escape is not closed with ']]'"),
            ErrorKind::InvalidEscape(e) => write!(
                f,
                "invalid escape sequence '\\{e}' (supported: \\' \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"
            ),
            ErrorKind::InvalidNumber(t) => write!(f, "invalid number '{t}'"),
            ErrorKind::ReservedWord(w) => {
                write!(f, "'{w}' is a reserved word; write [[{w}]] to use it as a property name")
            }
            ErrorKind::UnknownFunction { name, suggestion } => {
                write!(f, "unknown function '{name}'")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean {s}?)")?;
                }
                Ok(())
            }
            ErrorKind::WrongArgumentCount {
                function,
                expected,
                found,
            } => {
                let plural = if *expected == 1 { "" } else { "s" };
                write!(f, "{function} takes {expected} argument{plural}, found {found}")
            }
            ErrorKind::AggregateNotAllowed(name) => {
                write!(f, "aggregate {name} is only allowed in the SELECT list")
            }
            ErrorKind::NotGrouped(path) => write!(
                f,
                "'{path}' must be an aggregate or the GROUP BY property in an aggregate query"
            ),
            ErrorKind::DuplicateName(name) => {
                write!(f, "two projections are named '{name}'; give one an AS alias")
            }
            ErrorKind::UnsupportedCollection(name) => {
                write!(f, "FROM {name} is not supported; use devices or devices.modules")
            }
            ErrorKind::Unsupported(what) => write!(f, "{what} is not supported"),
            ErrorKind::TooDeep { max } => write!(f, "expression nested deeper than {max} levels"),
            ErrorKind::TooLong { length, max } => {
                write!(f, "query text is {length} characters long; the maximum is {max}")
            }
        }
    }
}

/// What the parser would have accepted at an error position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// A keyword such as `SELECT` or `FROM`.
    Keyword(&'static str),
    /// A punctuation token such as `)`.
    Token(&'static str),
    /// `=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`, `IN` or `NIN`.
    ComparisonOperator,
    /// Any operand: a property path, a constant, a function call, `(`, `NOT` or `-`.
    Expression,
    /// A property name (path segment).
    PropertyName,
    /// An alias after `AS`.
    Alias,
    /// A constant (inside an array constant).
    Constant,
    /// An array constant (after `IN`/`NIN`).
    ArrayConstant,
    /// `*`, a property path or an aggregate, in the SELECT list.
    Projection,
    /// The collection name after FROM.
    Collection,
    /// A non-negative integer (after TOP).
    Count,
    /// The end of the query or the next clause.
    ClauseOrEnd(&'static str),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Keyword(k) => f.write_str(k),
            Expected::Token(t) => write!(f, "'{t}'"),
            Expected::ComparisonOperator => f.write_str("a comparison operator"),
            Expected::Expression => f.write_str("an expression"),
            Expected::PropertyName => f.write_str("a property name"),
            Expected::Alias => f.write_str("an alias name"),
            Expected::Constant => f.write_str("a constant"),
            Expected::ArrayConstant => f.write_str("an array constant such as ['a', 'b']"),
            Expected::Projection => f.write_str("'*', a property path or an aggregate"),
            Expected::Collection => f.write_str("devices or devices.modules"),
            Expected::Count => f.write_str("a non-negative integer"),
            Expected::ClauseOrEnd(what) => f.write_str(what),
        }
    }
}

/// What the parser found at an error position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The query ended.
    End,
    /// A token, as written in the query (shortened if very long).
    Token(String),
}

impl Found {
    /// The longest token text quoted in a message, in characters.
    const MAX_SHOWN: usize = 40;

    pub(crate) fn token(text: &str) -> Found {
        let mut shown: String = text.chars().take(Self::MAX_SHOWN).collect();
        if text.chars().nth(Self::MAX_SHOWN).is_some() {
            shown.push('…');
        }
        Found::Token(shown)
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::End => f.write_str("end of query"),
            // String literals already carry their quotes; everything else gets single quotes.
            Found::Token(t) if t.starts_with('\'') || t.starts_with('"') => f.write_str(t),
            Found::Token(t) => write!(f, "'{t}'"),
        }
    }
}
