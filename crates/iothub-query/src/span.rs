//! Source positions: byte spans into the query text, and their 1-based line/column form.

use std::fmt;

/// A half-open byte range `start..end` into the query text.
///
/// Spans locate AST nodes and errors; they never take part in AST equality (see
/// [`Spanned`]), so a printed-and-reparsed query compares equal to the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The 1-based line and column (in characters) of `start` within `text`.
    ///
    /// Offsets past the end, or inside a multi-byte character, are clamped to the nearest
    /// preceding character boundary so this never panics.
    pub fn line_column(self, text: &str) -> (usize, usize) {
        let mut at = self.start.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A value together with where it came from.
///
/// Equality compares only the value: two ASTs that differ only in positions (for example
/// a query and its pretty-printed form) are equal.
#[derive(Debug, Clone)]
pub struct Spanned<T> {
    /// The value.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps `node` with `span`.
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "SELECT *\nFROM dévices x";
        let x = text.find('x').unwrap_or(0);
        assert_eq!(Span::new(0, 1).line_column(text), (1, 1));
        assert_eq!(Span::new(x, x + 1).line_column(text), (2, 14));
        assert_eq!(Span::new(10_000, 10_001).line_column(text), (2, 15));
    }
}
