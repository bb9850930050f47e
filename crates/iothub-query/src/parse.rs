//! Parser: tokens → [`Query`], a recursive-descent parser with precedence climbing for
//! expressions. Errors name what was expected and point at what was found.

use crate::ast::{
    is_keyword, Aggregate, AggregateFunc, BinaryOp, Collection, Expr, ExprKind, Function, Literal,
    Number, Path, Prec, Projection, ProjectionItem, Query, Select, SelectList, UnaryOp,
};
use crate::error::{ErrorKind, Expected, Found, QueryError, MAX_QUERY_CHARS};
use crate::lex::{tokenize, Tok, Token};
use crate::span::{Span, Spanned};

/// How deeply parentheses, `NOT`, `-` and function calls may nest. Bounds parser recursion
/// on untrusted text.
pub const MAX_NESTING: usize = 64;

/// How tall an expression tree may be (operator chains count one level per operator).
/// Bounds evaluator and printer recursion.
pub const MAX_EXPR_HEIGHT: usize = 256;

/// Parses query text into a syntax tree.
///
/// # Errors
/// A [`QueryError`] locating the first problem: text over [`MAX_QUERY_CHARS`] characters,
/// a malformed token, a grammar error, an unknown function or an unsupported collection.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    if let Some((offset, _)) = text.char_indices().nth(MAX_QUERY_CHARS) {
        let length = text.chars().count();
        return Err(QueryError::at(
            text,
            Span::new(offset, text.len()),
            ErrorKind::TooLong {
                length,
                max: MAX_QUERY_CHARS,
            },
        ));
    }
    let toks = tokenize(text)?;
    let mut parser = Parser {
        text,
        toks,
        pos: 0,
        depth: 0,
    };
    parser.query()
}

type PResult<T> = Result<T, QueryError>;

struct Parser<'t> {
    text: &'t str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

/// An infix operator found after an operand.
enum Infix {
    Binary(BinaryOp),
    In { negated: bool },
}

impl Parser<'_> {
    // ---- token helpers -------------------------------------------------------------------

    fn tok(&self) -> &Tok {
        self.tok_at(0)
    }

    fn tok_at(&self, ahead: usize) -> &Tok {
        self.toks
            .get(self.pos + ahead)
            .or_else(|| self.toks.last())
            .map_or(&Tok::End, |t| &t.tok)
    }

    fn span(&self) -> Span {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(Span::new(self.text.len(), self.text.len()), |t| t.span)
    }

    /// The span of the token just consumed.
    fn prev_span(&self) -> Span {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or(Span::default(), |t| t.span)
    }

    fn bump(&mut self) -> Span {
        let span = self.span();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        span
    }

    fn is_kw_at(&self, ahead: usize, kw: &str) -> bool {
        matches!(self.tok_at(ahead), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }

    fn eat_kw(&mut self, kw: &str) -> Option<Span> {
        self.is_kw(kw).then(|| self.bump())
    }

    fn expect_kw(&mut self, kw: &'static str) -> PResult<Span> {
        self.eat_kw(kw)
            .ok_or_else(|| self.expected(Expected::Keyword(kw)))
    }

    fn expect(&mut self, tok: &Tok, shown: &'static str) -> PResult<Span> {
        if self.tok() == tok {
            Ok(self.bump())
        } else {
            Err(self.expected(Expected::Token(shown)))
        }
    }

    fn found(&self) -> Found {
        match self.tok() {
            Tok::End => Found::End,
            _ => {
                let span = self.span();
                Found::token(self.text.get(span.start..span.end).unwrap_or(""))
            }
        }
    }

    fn error(&self, span: Span, kind: ErrorKind) -> QueryError {
        QueryError::at(self.text, span, kind)
    }

    fn expected(&self, expected: Expected) -> QueryError {
        self.error(
            self.span(),
            ErrorKind::Expected {
                expected,
                found: self.found(),
            },
        )
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(self.span(), ErrorKind::TooDeep { max: MAX_NESTING }));
        }
        Ok(())
    }

    /// True if the current token could begin an operand (used to say "expected a
    /// comparison operator" rather than a vaguer message).
    fn starts_operand(&self) -> bool {
        match self.tok() {
            Tok::Str(_) | Tok::Num(_) | Tok::Escaped(_) | Tok::LParen | Tok::LBracket => true,
            Tok::Ident(word) => {
                !is_keyword(word)
                    || ["TRUE", "FALSE", "NULL", "UNDEFINED"]
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(word))
            }
            _ => false,
        }
    }

    /// The error for an unexpected token right after a complete expression.
    fn unexpected_after(&self, expr: &Expr, otherwise: Expected) -> QueryError {
        if self.starts_operand() && is_operand_like(rightmost(expr)) {
            self.expected(Expected::ComparisonOperator)
        } else {
            self.expected(otherwise)
        }
    }

    // ---- clauses -------------------------------------------------------------------------

    fn query(&mut self) -> PResult<Query> {
        let start = self.span();
        self.expect_kw("SELECT")?;
        let top = match self.eat_kw("TOP") {
            Some(_) => Some(self.top_count()?),
            None => None,
        };
        let (list, after_select) = if self.tok() == &Tok::Star {
            self.bump();
            (SelectList::All, Expected::Keyword("FROM"))
        } else {
            let items = self.projections()?;
            let after = match items.last() {
                Some(p) if p.alias.is_none() => Expected::ClauseOrEnd("AS, ',' or FROM"),
                _ => Expected::ClauseOrEnd("',' or FROM"),
            };
            (SelectList::Items(items), after)
        };
        if !self.is_kw("FROM") {
            return Err(self.expected(after_select));
        }
        self.bump();
        let from = self.collection()?;
        let mut after = Expected::ClauseOrEnd("WHERE, GROUP BY or end of query");
        let where_clause = match self.eat_kw("WHERE") {
            Some(_) => {
                let (expr, _) = self.expr(Prec::Or)?;
                if !(self.tok() == &Tok::End || self.is_kw("GROUP")) {
                    return Err(self.unexpected_after(
                        &expr,
                        Expected::ClauseOrEnd("AND, OR, GROUP BY or end of query"),
                    ));
                }
                Some(expr)
            }
            None => None,
        };
        let group_by = match self.eat_kw("GROUP") {
            Some(_) => {
                self.expect_kw("BY")?;
                after = Expected::ClauseOrEnd("end of query");
                Some(self.path()?)
            }
            None => None,
        };
        if self.tok() != &Tok::End {
            return Err(self.expected(after));
        }
        let span = start.to(self.prev_span());
        Ok(Query {
            select: Select { top, list },
            from,
            where_clause,
            group_by,
            span,
        })
    }

    fn top_count(&mut self) -> PResult<Spanned<u64>> {
        match self.tok() {
            Tok::Num(Number::Int(n)) if *n >= 0 => {
                let n = n.unsigned_abs();
                Ok(Spanned::new(n, self.bump()))
            }
            _ => Err(self.expected(Expected::Count)),
        }
    }

    fn projections(&mut self) -> PResult<Vec<Projection>> {
        let mut items = vec![self.projection()?];
        while self.tok() == &Tok::Comma {
            self.bump();
            items.push(self.projection()?);
        }
        Ok(items)
    }

    fn projection(&mut self) -> PResult<Projection> {
        let start = self.span();
        let item = match (self.tok(), self.tok_at(1)) {
            (Tok::Ident(name), Tok::LParen) => {
                let name = name.clone();
                match AggregateFunc::from_name(&name) {
                    Some(func) => ProjectionItem::Aggregate(self.aggregate(func)?),
                    None if Function::from_name(&name).is_some() => {
                        return Err(self.error(
                            self.span(),
                            ErrorKind::Unsupported("a scalar function in the SELECT list"),
                        ))
                    }
                    None => return Err(self.unknown_function(&name)),
                }
            }
            (Tok::Ident(name), next) if is_keyword(name) && *next != Tok::Dot => {
                return Err(self.expected(Expected::Projection))
            }
            (Tok::Ident(_) | Tok::Escaped(_), _) => ProjectionItem::Path(self.path()?),
            _ => return Err(self.expected(Expected::Projection)),
        };
        let alias = match self.eat_kw("AS") {
            Some(_) => Some(self.alias()?),
            None => None,
        };
        Ok(Projection {
            item,
            alias,
            span: start.to(self.prev_span()),
        })
    }

    fn aggregate(&mut self, func: AggregateFunc) -> PResult<Aggregate> {
        let name_span = self.bump();
        self.expect(&Tok::LParen, "(")?;
        let mut args = Vec::new();
        if self.tok() != &Tok::RParen {
            args.push(self.path()?);
            while self.tok() == &Tok::Comma {
                self.bump();
                args.push(self.path()?);
            }
        }
        self.expect(&Tok::RParen, ")")?;
        let wanted = usize::from(func != AggregateFunc::Count);
        if args.len() != wanted {
            return Err(self.error(
                name_span.to(self.prev_span()),
                ErrorKind::WrongArgumentCount {
                    function: func.name(),
                    expected: wanted,
                    found: args.len(),
                },
            ));
        }
        Ok(Aggregate {
            func,
            arg: args.pop(),
        })
    }

    fn alias(&mut self) -> PResult<Spanned<String>> {
        match self.tok() {
            Tok::Escaped(name) => {
                let name = name.clone();
                Ok(Spanned::new(name, self.bump()))
            }
            Tok::Ident(name) if is_keyword(name) => {
                Err(self.error(self.span(), ErrorKind::ReservedWord(name.clone())))
            }
            Tok::Ident(name) => {
                let name = name.clone();
                Ok(Spanned::new(name, self.bump()))
            }
            _ => Err(self.expected(Expected::Alias)),
        }
    }

    fn collection(&mut self) -> PResult<Spanned<Collection>> {
        let start = self.span();
        if !self.is_kw("devices") {
            return Err(self.expected(Expected::Collection));
        }
        self.bump();
        if self.tok() != &Tok::Dot {
            return Ok(Spanned::new(Collection::Devices, start));
        }
        self.bump();
        if self.is_kw("modules") {
            let end = self.bump();
            return Ok(Spanned::new(Collection::DevicesModules, start.to(end)));
        }
        if self.is_kw("jobs") {
            let end = self.bump();
            let span = start.to(end);
            let written = self
                .text
                .get(span.start..span.end)
                .unwrap_or("devices.jobs");
            return Err(self.error(span, ErrorKind::UnsupportedCollection(written.to_owned())));
        }
        Err(self.expected(Expected::Collection))
    }

    // ---- paths ---------------------------------------------------------------------------

    fn path(&mut self) -> PResult<Path> {
        let first = self.segment(true)?;
        let mut span = first.span;
        let mut segments = vec![first];
        while self.tok() == &Tok::Dot {
            self.bump();
            let seg = self.segment(false)?;
            span = span.to(seg.span);
            segments.push(seg);
        }
        Ok(Path { segments, span })
    }

    fn segment(&mut self, first: bool) -> PResult<Spanned<String>> {
        match self.tok() {
            Tok::Escaped(name) => {
                let name = name.clone();
                Ok(Spanned::new(name, self.bump()))
            }
            Tok::Ident(name) if is_keyword(name) => {
                // A keyword followed by '.' or after '.' was clearly meant as a property.
                if !first || self.tok_at(1) == &Tok::Dot {
                    Err(self.error(self.span(), ErrorKind::ReservedWord(name.clone())))
                } else {
                    Err(self.expected(Expected::PropertyName))
                }
            }
            Tok::Ident(name) => {
                let name = name.clone();
                Ok(Spanned::new(name, self.bump()))
            }
            _ => Err(self.expected(Expected::PropertyName)),
        }
    }

    // ---- expressions ---------------------------------------------------------------------

    /// Parses an expression whose operators bind at least as tightly as `min`. Returns the
    /// expression and its tree height.
    fn expr(&mut self, min: Prec) -> PResult<(Expr, usize)> {
        self.enter()?;
        let result = self.expr_inner(min);
        self.depth -= 1;
        result
    }

    fn expr_inner(&mut self, min: Prec) -> PResult<(Expr, usize)> {
        let (mut lhs, mut height) = self.prefix()?;
        while let Some((infix, width)) = self.infix() {
            let prec = match infix {
                Infix::Binary(op) => op.prec(),
                Infix::In { .. } => Prec::Compare,
            };
            if prec < min {
                break;
            }
            let op_span = self.span();
            let lhs_span = lhs.span;
            for _ in 0..width {
                self.bump();
            }
            let (kind, rhs_height) = match infix {
                Infix::Binary(op) => {
                    // Left-associative: the right operand must bind strictly tighter.
                    let (rhs, h) = self.expr(prec.tighter())?;
                    let kind = ExprKind::Binary {
                        op,
                        left: Box::new(lhs),
                        right: Box::new(rhs),
                    };
                    (kind, h)
                }
                Infix::In { negated } => {
                    let list = self.array_constant(Expected::ArrayConstant)?;
                    let kind = ExprKind::In {
                        expr: Box::new(lhs),
                        list,
                        negated,
                    };
                    (kind, 0)
                }
            };
            height = height.max(rhs_height) + 1;
            if height > MAX_EXPR_HEIGHT {
                return Err(self.error(
                    op_span,
                    ErrorKind::TooDeep {
                        max: MAX_EXPR_HEIGHT,
                    },
                ));
            }
            lhs = Expr {
                span: lhs_span.to(self.prev_span()),
                kind,
            };
        }
        Ok((lhs, height))
    }

    fn infix(&self) -> Option<(Infix, usize)> {
        let op = match self.tok() {
            Tok::Eq => BinaryOp::Eq,
            Tok::Ne => BinaryOp::Ne,
            Tok::Lt => BinaryOp::Lt,
            Tok::Gt => BinaryOp::Gt,
            Tok::Le => BinaryOp::Le,
            Tok::Ge => BinaryOp::Ge,
            Tok::Plus => BinaryOp::Add,
            Tok::Minus => BinaryOp::Sub,
            Tok::Star => BinaryOp::Mul,
            Tok::Slash => BinaryOp::Div,
            Tok::Percent => BinaryOp::Mod,
            Tok::Ident(w) if w.eq_ignore_ascii_case("AND") => BinaryOp::And,
            Tok::Ident(w) if w.eq_ignore_ascii_case("OR") => BinaryOp::Or,
            Tok::Ident(w) if w.eq_ignore_ascii_case("IN") => {
                return Some((Infix::In { negated: false }, 1))
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("NIN") => {
                return Some((Infix::In { negated: true }, 1))
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("NOT") && self.is_kw_at(1, "IN") => {
                return Some((Infix::In { negated: true }, 2))
            }
            _ => return None,
        };
        Some((Infix::Binary(op), 1))
    }

    fn prefix(&mut self) -> PResult<(Expr, usize)> {
        let start = self.span();
        if self.is_kw("NOT") {
            self.bump();
            let (operand, h) = self.expr(Prec::Not)?;
            return Ok(unary(UnaryOp::Not, operand, start, h));
        }
        if self.tok() == &Tok::Minus {
            // "-5" is the constant -5, not negation applied to 5, so array constants and
            // expressions read negative numbers the same way.
            if let Some(n) = self.negative_number() {
                let kind = ExprKind::Literal(Literal::Number(n));
                let span = start.to(self.prev_span());
                return Ok((Expr { kind, span }, 0));
            }
            self.bump();
            let (operand, h) = self.expr(Prec::Unary)?;
            return Ok(unary(UnaryOp::Neg, operand, start, h));
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<(Expr, usize)> {
        let start = self.span();
        if let Some(lit) = self.literal() {
            return Ok((
                Expr {
                    kind: ExprKind::Literal(lit),
                    span: start,
                },
                0,
            ));
        }
        match self.tok().clone() {
            Tok::LParen => {
                self.bump();
                let (inner, h) = self.expr(Prec::Or)?;
                if self.tok() != &Tok::RParen {
                    return Err(self.unexpected_after(&inner, Expected::Token(")")));
                }
                let end = self.bump();
                // Parentheses only group; the node keeps the inner kind but the outer span.
                Ok((
                    Expr {
                        kind: inner.kind,
                        span: start.to(end),
                    },
                    h,
                ))
            }
            Tok::LBracket => {
                let list = self.array_constant(Expected::Expression)?;
                let kind = ExprKind::Array(list);
                Ok((
                    Expr {
                        kind,
                        span: start.to(self.prev_span()),
                    },
                    0,
                ))
            }
            Tok::Ident(name) if self.tok_at(1) == &Tok::LParen => self.call(&name),
            Tok::Ident(name) if is_keyword(&name) && self.tok_at(1) != &Tok::Dot => {
                Err(self.expected(Expected::Expression))
            }
            Tok::Ident(_) | Tok::Escaped(_) => {
                let path = self.path()?;
                let span = path.span;
                Ok((
                    Expr {
                        kind: ExprKind::Path(path),
                        span,
                    },
                    0,
                ))
            }
            _ => Err(self.expected(Expected::Expression)),
        }
    }

    /// Consumes a scalar constant (`'s'`, `1`, `true`, `null`, …) if one is next.
    fn literal(&mut self) -> Option<Literal> {
        let lit = match self.tok() {
            Tok::Str(s) => Literal::String(s.clone()),
            Tok::Num(n) => Literal::Number(*n),
            Tok::Ident(w) if w.eq_ignore_ascii_case("TRUE") => Literal::Bool(true),
            Tok::Ident(w) if w.eq_ignore_ascii_case("FALSE") => Literal::Bool(false),
            Tok::Ident(w) if w.eq_ignore_ascii_case("NULL") => Literal::Null,
            Tok::Ident(w) if w.eq_ignore_ascii_case("UNDEFINED") => Literal::Undefined,
            _ => return None,
        };
        self.bump();
        Some(lit)
    }

    /// Consumes `-` followed by a number, if that is next, as one negative constant.
    fn negative_number(&mut self) -> Option<Number> {
        if self.tok() != &Tok::Minus {
            return None;
        }
        let Tok::Num(n) = *self.tok_at(1) else {
            return None;
        };
        self.bump();
        let digits = self.bump();
        let n = match n {
            // Cannot overflow: the lexer only makes non-negative integers.
            Number::Int(i) => Number::Int(-i),
            // 9223372036854775808 does not fit i64 on its own but its negation does.
            Number::Float(f)
                if f == 9_223_372_036_854_775_808.0
                    && self.text.get(digits.start..digits.end) == Some("9223372036854775808") =>
            {
                Number::Int(i64::MIN)
            }
            Number::Float(f) => Number::Float(-f),
        };
        Some(n)
    }

    fn array_constant(&mut self, expected: Expected) -> PResult<Vec<Literal>> {
        if self.tok() != &Tok::LBracket {
            return Err(self.expected(expected));
        }
        self.bump();
        let mut items = Vec::new();
        if self.tok() == &Tok::RBracket {
            self.bump();
            return Ok(items);
        }
        loop {
            let item = match self.negative_number() {
                Some(n) => Some(Literal::Number(n)),
                None => self.literal(),
            };
            match item {
                Some(lit) => items.push(lit),
                None => return Err(self.expected(Expected::Constant)),
            }
            match self.tok() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBracket => {
                    self.bump();
                    return Ok(items);
                }
                _ => return Err(self.expected(Expected::ClauseOrEnd("',' or ']'"))),
            }
        }
    }

    fn call(&mut self, name: &str) -> PResult<(Expr, usize)> {
        let name_span = self.span();
        let func = match Function::from_name(name) {
            Some(f) => f,
            None => {
                return Err(match AggregateFunc::from_name(name) {
                    Some(agg) => self.error(name_span, ErrorKind::AggregateNotAllowed(agg.name())),
                    None => self.unknown_function(name),
                })
            }
        };
        self.bump();
        self.bump(); // '('
        self.enter()?;
        let mut args = Vec::new();
        let mut height = 0;
        if self.tok() != &Tok::RParen {
            loop {
                let (arg, h) = self.expr(Prec::Or)?;
                height = height.max(h);
                match self.tok() {
                    Tok::Comma => {
                        self.bump();
                        args.push(arg);
                    }
                    Tok::RParen => {
                        args.push(arg);
                        break;
                    }
                    _ => {
                        return Err(self.unexpected_after(&arg, Expected::ClauseOrEnd("',' or ')'")))
                    }
                }
            }
        }
        self.depth -= 1;
        let end = self.bump();
        let span = name_span.to(end);
        if args.len() != func.arity() {
            return Err(self.error(
                span,
                ErrorKind::WrongArgumentCount {
                    function: func.name(),
                    expected: func.arity(),
                    found: args.len(),
                },
            ));
        }
        Ok((
            Expr {
                kind: ExprKind::Call { func, args },
                span,
            },
            height + 1,
        ))
    }

    fn unknown_function(&self, name: &str) -> QueryError {
        self.error(
            self.span(),
            ErrorKind::UnknownFunction {
                name: name.to_owned(),
                suggestion: Function::similar(name),
            },
        )
    }
}

fn unary(op: UnaryOp, operand: Expr, start: Span, height: usize) -> (Expr, usize) {
    let span = start.to(operand.span);
    let kind = ExprKind::Unary {
        op,
        expr: Box::new(operand),
    };
    (Expr { kind, span }, height + 1)
}

/// The operand at the right edge of a condition (`a = 1 AND b` → `b`).
fn rightmost(expr: &Expr) -> &Expr {
    match &expr.kind {
        ExprKind::Binary {
            op: BinaryOp::And | BinaryOp::Or,
            right,
            ..
        } => rightmost(right),
        ExprKind::Unary {
            op: UnaryOp::Not,
            expr,
        } => rightmost(expr),
        _ => expr,
    }
}

/// True for expressions that are values rather than conditions, i.e. that would normally
/// be followed by a comparison operator.
fn is_operand_like(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Path(_) | ExprKind::Array(_) => true,
        ExprKind::Binary { op, .. } => {
            !op.is_comparison() && !matches!(op, BinaryOp::And | BinaryOp::Or)
        }
        ExprKind::Unary { op, .. } => *op == UnaryOp::Neg,
        ExprKind::Call { .. } | ExprKind::In { .. } => false,
    }
}
