//! Lexer: query text → tokens with spans.
//!
//! Keywords are not decided here: an identifier is a keyword only where the parser expects
//! one, compared case-insensitively. `[[name]]` escapes become [`Tok::Escaped`] so that a
//! property literally named `group` can never be mistaken for the keyword.

use crate::ast::Number;
use crate::error::{ErrorKind, QueryError};
use crate::span::Span;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A bare identifier (keyword, function name or property name), as written.
    Ident(String),
    /// The contents of a `[[…]]` escape: always a property name or alias.
    Escaped(String),
    /// A string literal, escapes resolved.
    Str(String),
    /// A number literal.
    Num(Number),
    Star,
    Comma,
    Dot,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Eq,
    /// `!=` or `<>`.
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Plus,
    Minus,
    Slash,
    Percent,
    /// End of the query text.
    End,
}

/// A token and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Splits `text` into tokens, ending with [`Tok::End`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let mut lexer = Lexer {
        text,
        pos: 0,
        out: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.out)
}

struct Lexer<'t> {
    text: &'t str,
    pos: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn run(&mut self) -> Result<(), QueryError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            if c.is_whitespace() {
                self.bump(c);
                continue;
            }
            let tok = match c {
                '\'' | '"' => self.string(c)?,
                '0'..='9' => self.number()?,
                c if is_ident_start(c) => self.ident(),
                '[' if self.rest().starts_with("[[") => self.escaped()?,
                _ => self.punct(c)?,
            };
            self.out.push(Token {
                tok,
                span: Span::new(start, self.pos),
            });
        }
        self.out.push(Token {
            tok: Tok::End,
            span: Span::new(self.text.len(), self.text.len()),
        });
        Ok(())
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    fn error(&self, start: usize, kind: ErrorKind) -> QueryError {
        QueryError::at(self.text, Span::new(start, self.pos.max(start + 1)), kind)
    }

    fn punct(&mut self, c: char) -> Result<Tok, QueryError> {
        let two = |s: &str| self.rest().starts_with(s);
        let (tok, len) = if two("!=") || two("<>") {
            (Tok::Ne, 2)
        } else if two("<=") {
            (Tok::Le, 2)
        } else if two(">=") {
            (Tok::Ge, 2)
        } else {
            let tok = match c {
                '*' => Tok::Star,
                ',' => Tok::Comma,
                '.' => Tok::Dot,
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                '[' => Tok::LBracket,
                ']' => Tok::RBracket,
                '=' => Tok::Eq,
                '<' => Tok::Lt,
                '>' => Tok::Gt,
                '+' => Tok::Plus,
                '-' => Tok::Minus,
                '/' => Tok::Slash,
                '%' => Tok::Percent,
                other => {
                    let start = self.pos;
                    self.bump(other);
                    return Err(self.error(start, ErrorKind::UnexpectedCharacter(other)));
                }
            };
            (tok, 1)
        };
        self.pos += len;
        Ok(tok)
    }

    fn ident(&mut self) -> Tok {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !is_ident_continue(c) {
                break;
            }
            self.bump(c);
        }
        Tok::Ident(self.text[start..self.pos].to_owned())
    }

    fn escaped(&mut self) -> Result<Tok, QueryError> {
        let start = self.pos;
        let body_start = start + 2;
        match self.text[body_start..].find("]]") {
            Some(len) if len > 0 => {
                self.pos = body_start + len + 2;
                Ok(Tok::Escaped(
                    self.text[body_start..body_start + len].to_owned(),
                ))
            }
            Some(_) => {
                self.pos = body_start + 2;
                Err(self.error(
                    start,
                    ErrorKind::Expected {
                        expected: crate::error::Expected::PropertyName,
                        found: crate::error::Found::token("[[]]"),
                    },
                ))
            }
            None => {
                self.pos = body_start;
                Err(self.error(start, ErrorKind::UnterminatedEscape))
            }
        }
    }

    fn number(&mut self) -> Result<Tok, QueryError> {
        let start = self.pos;
        let rest = self.rest();
        if rest.starts_with("0x") || rest.starts_with("0X") {
            let digits = rest[2..]
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len() - 2);
            self.pos += 2 + digits;
            let text = &self.text[start..self.pos];
            return i64::from_str_radix(&text[2..], 16)
                .map(|n| Tok::Num(Number::Int(n)))
                .map_err(|_| self.error(start, ErrorKind::InvalidNumber(text.to_owned())));
        }
        let bytes = self.text.as_bytes();
        let digits = |from: usize| {
            let mut i = from;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            (i, i > from)
        };
        let (mut end, _) = digits(self.pos);
        let mut is_float = false;
        let mut well_formed = true;
        if end < bytes.len() && bytes[end] == b'.' {
            let (e, any) = digits(end + 1);
            end = e;
            well_formed &= any;
            is_float = true;
        }
        if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
            let mut e = end + 1;
            if e < bytes.len() && (bytes[e] == b'+' || bytes[e] == b'-') {
                e += 1;
            }
            let (e, any) = digits(e);
            end = e;
            well_formed &= any;
            is_float = true;
        }
        // A number glued to letters ("12abc", "1.5.2") is one malformed token, not two.
        while let Some(c) = self.text[end..].chars().next() {
            if !(is_ident_continue(c) || c == '.') {
                break;
            }
            well_formed = false;
            end += c.len_utf8();
        }
        self.pos = end;
        let text = &self.text[start..end];
        let invalid = || self.error(start, ErrorKind::InvalidNumber(text.to_owned()));
        if !well_formed {
            return Err(invalid());
        }
        if !is_float {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Tok::Num(Number::Int(n)));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Tok::Num(Number::Float(f))),
            _ => Err(invalid()),
        }
    }

    fn string(&mut self, quote: char) -> Result<Tok, QueryError> {
        let start = self.pos;
        self.bump(quote);
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, ErrorKind::UnterminatedString));
            };
            self.bump(c);
            if c == quote {
                return Ok(Tok::Str(value));
            }
            if c != '\\' {
                value.push(c);
                continue;
            }
            let escape_start = self.pos - 1;
            let Some(e) = self.peek() else {
                return Err(self.error(start, ErrorKind::UnterminatedString));
            };
            self.bump(e);
            let resolved = match e {
                '\'' | '"' | '\\' | '/' => e,
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'u' => self.unicode_escape(escape_start)?,
                other => {
                    return Err(
                        self.error(escape_start, ErrorKind::InvalidEscape(other.to_string()))
                    );
                }
            };
            value.push(resolved);
        }
    }

    /// Reads the `XXXX` of `\uXXXX` (and a following `\uXXXX` low surrogate if needed).
    fn unicode_escape(&mut self, escape_start: usize) -> Result<char, QueryError> {
        let high = self.hex4(escape_start)?;
        if !(0xD800..0xDC00).contains(&high) {
            return char::from_u32(high).ok_or_else(|| {
                self.error(
                    escape_start,
                    ErrorKind::InvalidEscape(format!("u{high:04X}")),
                )
            });
        }
        if !self.rest().starts_with("\\u") {
            return Err(self.error(
                escape_start,
                ErrorKind::InvalidEscape(format!("u{high:04X}")),
            ));
        }
        self.pos += 2;
        let low = self.hex4(escape_start)?;
        if !(0xDC00..0xE000).contains(&low) {
            return Err(self.error(
                escape_start,
                ErrorKind::InvalidEscape(format!("u{high:04X}\\u{low:04X}")),
            ));
        }
        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
        char::from_u32(code).ok_or_else(|| {
            self.error(
                escape_start,
                ErrorKind::InvalidEscape(format!("u{high:04X}")),
            )
        })
    }

    fn hex4(&mut self, escape_start: usize) -> Result<u32, QueryError> {
        let digits: String = self.rest().chars().take(4).collect();
        if digits.len() == 4 && digits.chars().all(|c| c.is_ascii_hexdigit()) {
            self.pos += 4;
            u32::from_str_radix(&digits, 16).map_err(|_| {
                self.error(escape_start, ErrorKind::InvalidEscape(format!("u{digits}")))
            })
        } else {
            let shown: String = digits
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            self.pos += shown.len();
            Err(self.error(escape_start, ErrorKind::InvalidEscape(format!("u{shown}"))))
        }
    }
}

/// Identifiers start with a letter, `_` or `$` (for `$version`, `$metadata`).
pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

pub(crate) fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text)
            .map(|t| t.into_iter().map(|t| t.tok).collect())
            .unwrap_or_default()
    }

    #[test]
    fn numbers_strings_and_escapes() {
        assert_eq!(
            toks("0x1F 12 1.5 2e3 'a\\'b' \"c\\u00e9\\\"\" [[group]] <> != <="),
            vec![
                Tok::Num(Number::Int(31)),
                Tok::Num(Number::Int(12)),
                Tok::Num(Number::Float(1.5)),
                Tok::Num(Number::Float(2000.0)),
                Tok::Str("a'b".into()),
                Tok::Str("cé\"".into()),
                Tok::Escaped("group".into()),
                Tok::Ne,
                Tok::Ne,
                Tok::Le,
                Tok::End,
            ]
        );
        assert_eq!(
            toks("'\\uD83D\\uDE00'"),
            vec![Tok::Str("😀".into()), Tok::End]
        );
    }

    #[test]
    fn malformed_tokens_are_errors() {
        for bad in [
            "'abc",
            "12abc",
            "1.",
            "1e",
            "0xZZ",
            "'\\q'",
            "'\\u12'",
            "'\\uD800'",
            "[[x",
            "#",
            "1e999",
        ] {
            assert!(tokenize(bad).is_err(), "{bad} should not lex");
        }
    }
}
